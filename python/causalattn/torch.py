"""causalattn as PyTorch custom ops (``torch.library.custom_op`` with ``register_fake``), so that
the calls work under ``torch.compile`` and pass ``torch.library.opcheck``, and a drop-in for
``torch.nn.functional.scaled_dot_product_attention``.

``torch.ops.causalattn.attention(q, k, v, softmax_scale, causal, top_left, window, softcap,
alibi_slopes, s_aux, dropout_p, seed)``: q [B, Tq, H, D], k [B, Tk, Hkv, D], v [B, Tk, Hkv, Dv] CPU
tensors (float32, float16 or bfloat16) read in place; returns (out [B, Tq, H, Dv] of q's dtype,
lse [B, H, Tq] float32). No autograd: a forward-only inference kernel.

``scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
scale=None, enable_gqa=False)`` takes PyTorch's [B, H, T, D] tensors and PyTorch's semantics:
``is_causal`` aligns the diagonal top-left (query i sees keys j <= i, also when Tq != Tk: the
library's CAUSALATTN_TOP_LEFT), the transposes to [B, T, H, D] are views (no copy). What it does
not cover falls back to PyTorch's own function with a one-time warning naming why: an explicit
attn_mask, gradients, a dtype or device the library does not take, inputs that are not 4-D with
head_dim contiguous, or heads that differ without enable_gqa (PyTorch raises then). Dropout draws
its seed from torch's generator, so torch.manual_seed makes it reproducible (the mask is the
library's, causalattn.dropout_keep, not PyTorch's).
"""

import warnings
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from . import _causalattn

__all__ = ["attention", "scaled_dot_product_attention"]


def _out_like(q, dv):
    """out [B, Tq, H, Dv] in q's memory order: a [B, H, T, D] tensor seen through a transpose
    gets a [B, H, T, Dv] one seen the same way (contiguous once transposed back)."""
    b, t, h, _ = q.shape
    if q.stride(2) > q.stride(1):
        return q.new_empty((b, h, t, dv)).transpose(1, 2)
    return q.new_empty((b, t, h, dv))


@torch.library.custom_op("causalattn::attention", mutates_args=(), device_types="cpu")
def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, softmax_scale: float, causal: bool, top_left: bool,
              window: int, softcap: float, alibi_slopes: Optional[torch.Tensor], s_aux: Optional[torch.Tensor],
              dropout_p: float, seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    out = _out_like(q, v.shape[-1])
    lse = q.new_empty((q.shape[0], q.shape[2], q.shape[1]), dtype=torch.float32)
    _causalattn.attend(q, k, v, out, lse, causal, softmax_scale, 0, window, None, None, dropout_p, seed, None, None,
                       softcap, alibi_slopes, s_aux, top_left)
    return out, lse


@attention.register_fake
def _(q, k, v, softmax_scale, causal, top_left, window, softcap, alibi_slopes, s_aux, dropout_p, seed):
    return _out_like(q, v.shape[-1]), q.new_empty((q.shape[0], q.shape[2], q.shape[1]), dtype=torch.float32)


_warned = set()


def _fall_back(why, *args, **kwargs):
    if why not in _warned:
        _warned.add(why)
        warnings.warn(f"causalattn.torch.scaled_dot_product_attention: {why}; using PyTorch's", stacklevel=3)
    return F.scaled_dot_product_attention(*args, **kwargs)


def _uncovered(query, key, value, attn_mask, enable_gqa):
    """Why the library cannot take this call, or None."""
    tensors = (query, key, value)
    if attn_mask is not None:
        return "an explicit attn_mask"
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return "inputs that require grad (no backward here)"
    if any(t.device.type != "cpu" for t in tensors):
        return "a tensor not on the CPU"
    if any(t.dtype not in (torch.float32, torch.float16, torch.bfloat16) for t in tensors):
        return "a dtype other than float32, float16 and bfloat16"
    if any(t.dim() != 4 or t.stride(-1) != 1 for t in tensors):
        return "inputs that are not [B, H, T, D] with head_dim contiguous"
    if query.shape[1] != key.shape[1] and not enable_gqa:
        return "query and key heads that differ without enable_gqa"
    return None


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False):
    """F.scaled_dot_product_attention on [B, H, T, D] tensors through causalattn (see the module's
    text for what it covers and how is_causal maps)."""
    why = _uncovered(query, key, value, attn_mask, enable_gqa)
    if why is None and scale == 0:
        why = "scale = 0 (the library reads 0 as 1/sqrt(D))"
    if why is not None:
        return _fall_back(why, query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal,
                          scale=scale, enable_gqa=enable_gqa)
    seed = int(torch.randint(0, 2 ** 62, ()).item()) if dropout_p > 0.0 else 0
    out, _ = torch.ops.causalattn.attention(query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2),
                                            0.0 if scale is None else float(scale), bool(is_causal), True, 0, 0.0,
                                            None, None, float(dropout_p), seed)
    return out.transpose(1, 2)
