"""causalattn: SIMD CPU attention kernels with flash-attn 2's calling conventions.

Arrays are numpy arrays or PyTorch CPU tensors (anything with DLPack or the buffer protocol),
float32, float16 or bfloat16, each its own (the attention calls; merges and modules take float32),
read in place through their strides (head_dim must be contiguous); ``out=`` writes into the
caller's array, by default of q's dtype. Inputs are widened to float32 exactly and a 16-bit out is
the float32 result rounded to nearest even; the LSE is float32. Every call releases the GIL. Bad shapes and layouts raise ``ValueError``,
runtime failures ``RuntimeError``, with the library's message; nothing is written then.
Arguments of flash-attn that this CPU library cannot honour yet raise ``NotImplementedError``.
``causalattn.torch`` (imported on its own: it needs PyTorch) registers the call as a PyTorch custom
op and gives a drop-in for ``torch.nn.functional.scaled_dot_product_attention``.
"""

import numpy as np

from . import _causalattn

__all__ = ["CausalAttention", "MultiHeadAttention", "flash_attn_func", "flash_attn_varlen_func", "flash_attn_with_kvcache", "merge_state", "merge_states", "isa", "version",
           "dropout_keep"]

__version__ = _causalattn.version()

# The textbook's modules ("Build a Large Language Model (From Scratch)", chapter 3), constructed
# like the book's, with PyTorch's parameter names: forward(x [batch, num_tokens, d_in] float32,
# C-contiguous) returns a new [batch, num_tokens, d_out] array; load_state_dict takes a dict of
# arrays (a PyTorch state dict's tensors as numpy: {k: t.numpy() for k, t in sd.items()}), load a
# safetensors file; train(), eval(), manual_seed() as nn.Module's.
CausalAttention = _causalattn.CausalAttention
MultiHeadAttention = _causalattn.MultiHeadAttention


def isa():
    """The kernel ISA in use ("avx512", "avx2", "sse2", ...)."""
    return _causalattn.isa()


def version():
    """The library's version."""
    return _causalattn.version()


def dropout_keep(p, seed, sequence, head, query, key):
    """1 if dropout (p, seed) keeps weight (query, key) of that sequence and head, else 0."""
    return _causalattn.dropout_keep(p, seed, sequence, head, query, key)


def _empty(like, shape, float32=False):
    """An uninitialized array of `shape` of the same kind as `like` (torch or numpy), of like's
    dtype, or float32 (the LSE, which is always float32)."""
    if hasattr(like, "new_empty"):  # a PyTorch tensor
        import torch
        return like.new_empty(shape, dtype=torch.float32) if float32 else like.new_empty(shape)
    return np.empty(shape, dtype=np.float32 if float32 else like.dtype)


def _window(window_size, causal):
    """flash-attn's (left, right) window as the library's: keys p - left <= j <= p."""
    left, right = window_size
    if left < 0 and right < 0:
        return 0
    if not causal or right not in (0, -1):
        raise NotImplementedError("window_size: only causal windows (right = 0) are supported, got "
                                  f"{window_size} with causal={causal}")
    if left < 0:
        return 0
    return left + 1


def _per_head(name, values, causal=True):
    """A per-query-head float32 array (ALiBi slopes, sinks) as the library reads it, or None."""
    if values is None:
        return None
    if name == "alibi_slopes" and not causal:
        # flash-attn's non-causal bias is -slope * |i - j|; the library's is signed (causalattn.h).
        raise NotImplementedError("alibi_slopes: only causal attention is supported")
    values = values.detach() if hasattr(values, "detach") else values
    values = np.ascontiguousarray(np.asarray(values, dtype=np.float32))
    if values.ndim != 1:
        raise NotImplementedError(f"{name}: only one value per head ([heads]) is supported, got shape {values.shape}")
    return values


def _scale(softmax_scale):
    if softmax_scale is None:
        return 0.0  # the library's 1/sqrt(head_dim)
    if softmax_scale == 0:
        raise ValueError("softmax_scale must not be 0")
    return float(softmax_scale)


def _out_shape(q, v):
    """out's shape: q's, with v's head_dim (which may differ from q's, as in DeepSeek's MLA)."""
    return tuple(q.shape[:-1]) + (v.shape[-1],)


def flash_attn_func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False, window_size=(-1, -1), softcap=0.0,
                    alibi_slopes=None, deterministic=True, return_attn_probs=False, *, out=None, num_threads=0,
                    seed=0, s_aux=None):
    """Attention over q [batch, seqlen_q, heads, head_dim], k [batch, seqlen_k, kv_heads, head_dim]
    and v [batch, seqlen_k, kv_heads, head_dim_v] (grouped-query when heads is a multiple of
    kv_heads), as flash-attn's: causal masks are aligned bottom-right (query i sees key j iff
    j <= i + seqlen_k - seqlen_q). Returns out [batch, seqlen_q, heads, head_dim_v], or (out,
    softmax_lse [batch, heads, seqlen_q]) with return_attn_probs (no probabilities are returned).
    Results are deterministic whatever `deterministic` says. Dropout draws from (seed, sequence,
    head, query, key): dropout_keep. softcap > 0 caps the scaled scores at softcap * tanh(s /
    softcap); alibi_slopes [heads] (causal) add -slope * (i + seqlen_k - seqlen_q - j); s_aux
    [heads] are attention sinks (vLLM's name): one more logit per head in the softmax's
    denominator, with no value (gpt-oss)."""
    del deterministic  # always deterministic
    if out is None:
        out = _empty(q, _out_shape(q, v))
    lse = _empty(q, (q.shape[0], q.shape[2], q.shape[1]), float32=True) if return_attn_probs else None
    _causalattn.attend(q, k, v, out, lse, bool(causal), _scale(softmax_scale), int(num_threads),
                       _window(window_size, causal), None, None, float(dropout_p), int(seed), None, None,
                       float(softcap), _per_head("alibi_slopes", alibi_slopes, causal), _per_head("s_aux", s_aux))
    return (out, lse) if return_attn_probs else out


def flash_attn_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, dropout_p=0.0,
                           softmax_scale=None, causal=False, window_size=(-1, -1), softcap=0.0, alibi_slopes=None,
                           deterministic=True, return_attn_probs=False, *, out=None, num_threads=0, seed=0,
                           s_aux=None):
    """flash_attn_func over packed sequences: q [total_q, heads, head_dim], k, v [total_k,
    kv_heads, head_dim], sequence s's queries at rows cu_seqlens_q[s] .. cu_seqlens_q[s+1] (keys
    likewise), each with its own bottom-right causal alignment. max_seqlen_q and max_seqlen_k
    are accepted for flash-attn's signature and not needed. softmax_lse is [heads, total_q].
    softcap, alibi_slopes and s_aux as flash_attn_func's."""
    del deterministic, max_seqlen_q, max_seqlen_k
    cu_q = np.ascontiguousarray(np.asarray(cu_seqlens_q), dtype=np.int64)
    cu_k = np.ascontiguousarray(np.asarray(cu_seqlens_k), dtype=np.int64)
    if out is None:
        out = _empty(q, _out_shape(q, v))
    lse = _empty(q, (q.shape[1], q.shape[0]), float32=True) if return_attn_probs else None
    _causalattn.attend(q, k, v, out, lse, bool(causal), _scale(softmax_scale), int(num_threads),
                       _window(window_size, causal), cu_q, cu_k, float(dropout_p), int(seed), None, None,
                       float(softcap), _per_head("alibi_slopes", alibi_slopes, causal), _per_head("s_aux", s_aux))
    return (out, lse) if return_attn_probs else out


def _as_lengths(values, batch):
    if isinstance(values, int):
        return np.full(batch, values, dtype=np.int64)
    values = values.numpy() if hasattr(values, "numpy") else values
    return np.ascontiguousarray(np.asarray(values), dtype=np.int64)


def flash_attn_with_kvcache(q, k_cache, v_cache, k=None, v=None, rotary_cos=None, rotary_sin=None,
                            cache_seqlens=None, cache_batch_idx=None, cache_leftpad=None, block_table=None,
                            softmax_scale=None, causal=False, window_size=(-1, -1), softcap=0.0,
                            rotary_interleaved=True, alibi_slopes=None, num_splits=0, return_softmax_lse=False,
                            *, out=None, num_threads=0, s_aux=None):
    """Decode and chunked prefill against a KV cache, as flash-attn's: q [batch, seqlen_q, heads,
    head_dim]; k_cache, v_cache [batch_cache, seqlen_cache, kv_heads, head_dim], or with
    block_table [batch, max_blocks] (int32) pages [num_blocks, block_size, kv_heads, head_dim].
    cache_seqlens (int or [batch]) are the keys already there; the new k, v [batch, seqlen_new,
    kv_heads, head_dim], when given, are written into the cache after them (in place), and q
    attends to cache_seqlens + seqlen_new keys, bottom-right aligned. num_splits is ignored (the
    library splits long caches itself, with the same bits for any thread count, and counts the
    sinks s_aux once). softcap, alibi_slopes and s_aux as flash_attn_func's."""
    for name, value in (("rotary_cos", rotary_cos), ("rotary_sin", rotary_sin), ("cache_batch_idx", cache_batch_idx),
                        ("cache_leftpad", cache_leftpad)):
        if value is not None:
            raise NotImplementedError(f"{name} is not supported yet")
    del rotary_interleaved, num_splits
    batch = q.shape[0]
    if (k is None) != (v is None):
        raise ValueError("k and v come together")
    seqlens = _as_lengths(k_cache.shape[1] if cache_seqlens is None and block_table is None else
                          (0 if cache_seqlens is None else cache_seqlens), batch)
    table = None
    if block_table is not None:
        table = block_table.numpy() if hasattr(block_table, "numpy") else np.asarray(block_table)
        if table.dtype != np.int32:
            raise ValueError(f"block_table must be int32, got {table.dtype}")
    if k is not None:
        # Where each new key goes, all checked before any is written.
        new, page = k.shape[1], k_cache.shape[1]
        slots = []
        for b in range(batch):
            start = int(seqlens[b])
            if start < 0:
                raise ValueError(f"cache_seqlens[{b}] = {start} is negative")
            if table is None:
                if start + new > k_cache.shape[1]:
                    raise ValueError(f"sequence {b}: {start} + {new} keys exceed the cache's {k_cache.shape[1]}")
                continue
            for position in range(start, start + new):
                if position // page >= table.shape[1]:
                    raise ValueError(f"sequence {b}: key {position} is past its block table row")
                block = int(table[b, position // page])
                if not 0 <= block < k_cache.shape[0]:
                    raise ValueError(f"block_table[{b}][{position // page}] = {block} is outside the cache's "
                                     f"{k_cache.shape[0]} blocks")
                slots.append((b, position - start, block, position % page))
        if table is None:
            for b in range(batch):
                start = int(seqlens[b])
                k_cache[b, start:start + new] = k[b]
                v_cache[b, start:start + new] = v[b]
        for b, t, block, slot in slots:
            k_cache[block, slot] = k[b, t]
            v_cache[block, slot] = v[b, t]
        seqlens = seqlens + new
    if out is None:
        out = _empty(q, _out_shape(q, v_cache))
    lse = _empty(q, (q.shape[0], q.shape[2], q.shape[1]), float32=True) if return_softmax_lse else None
    _causalattn.attend(q, k_cache, v_cache, out, lse, bool(causal), _scale(softmax_scale), int(num_threads),
                       _window(window_size, causal), None, None, 0.0, 0, seqlens, table, float(softcap),
                       _per_head("alibi_slopes", alibi_slopes, causal), _per_head("s_aux", s_aux))
    return (out, lse) if return_softmax_lse else out


def merge_states(vs, ss):
    """Merges attention results over disjoint key ranges of the same queries (FlashInfer's
    merge_states): vs are [tokens, heads, head_dim] outputs, ss their [tokens, heads] natural-log
    LSEs (as softmax_lse, transposed to [tokens, heads]). Returns (v, s) over the union."""
    vs, ss = list(vs), list(ss)
    if not vs:
        raise ValueError("merge_states needs at least one state")
    v = _empty(vs[0], tuple(vs[0].shape), float32=True)
    s = _empty(vs[0], tuple(ss[0].shape), float32=True)
    _causalattn.merge(vs, ss, v, s)
    return v, s


def merge_state(v_a, s_a, v_b, s_b):
    """merge_states([v_a, v_b], [s_a, s_b])."""
    return merge_states([v_a, v_b], [s_a, s_b])
