"""causalattn's Python package against a float64 numpy reference: flash-attn's calls on shapes that
break tilings, strided views, GQA, windows, varlen, dropout against dropout_keep, the merge,
errors with their messages and untouched outputs, zero copies, the GIL released."""

import threading

import numpy as np
import pytest

import causalattn
from attention_reference import reference


def tolerance(v):
    return 2.0 ** -16 * max(1.0, float(np.abs(v).max()))


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("b,tq,tk,h,hkv,d", [(1, 1, 1, 1, 1, 1), (2, 17, 17, 4, 2, 16), (1, 50, 130, 8, 2, 64),
                                             (3, 5, 1031, 2, 1, 80), (1, 129, 129, 3, 3, 128), (2, 1, 300, 8, 8, 31)])
@pytest.mark.parametrize("causal", [True, False])
def test_flash_attn_func_matches_the_reference(b, tq, tk, h, hkv, d, causal):
    q, k, v = rand(b, tq, h, d, seed=1), rand(b, tk, hkv, d, seed=2), rand(b, tk, hkv, d, seed=3)
    out, lse = causalattn.flash_attn_func(q, k, v, causal=causal, return_attn_probs=True)
    ref, ref_lse = reference(q, k, v, causal)
    np.testing.assert_allclose(out, ref, rtol=0, atol=tolerance(v))
    np.testing.assert_allclose(lse, ref_lse, rtol=2.0 ** -16, atol=2.0 ** -16)


def test_strided_views_are_read_in_place():
    # Non-contiguous slices of larger buffers: every stride but head_dim's.
    big_q = rand(2, 40, 6, 32, seed=4)
    big_kv = rand(2, 60, 4, 2, 32, seed=5)
    q = big_q[:, ::2, 1:5]              # [2, 20, 4, 32], strided tokens and heads
    k, v = big_kv[:, 10:, :2, 0], big_kv[:, 10:, :2, 1]
    out = np.full((2, 20, 4, 32), -7.0, np.float32)
    returned = causalattn.flash_attn_func(q, k, v, causal=True, out=out, softmax_scale=0.3)
    assert returned is out
    ref, _ = reference(q, k, v, True, scale=0.3)
    np.testing.assert_allclose(out, ref, rtol=0, atol=tolerance(v))


def test_causal_window():
    q, k, v = rand(1, 70, 2, 16, seed=6), rand(1, 90, 2, 16, seed=7), rand(1, 90, 2, 16, seed=8)
    out = causalattn.flash_attn_func(q, k, v, causal=True, window_size=(9, 0))
    ref, _ = reference(q, k, v, True, window=10)  # flash-attn's left 9 = keys p - 9 .. p
    np.testing.assert_allclose(out, ref, rtol=0, atol=tolerance(v))


def test_varlen_packed_sequences():
    lens_q, lens_k = [3, 0, 17, 1], [40, 5, 17, 1030]
    cu_q = np.concatenate([[0], np.cumsum(lens_q)]).astype(np.int32)
    cu_k = np.concatenate([[0], np.cumsum(lens_k)]).astype(np.int32)
    q, k, v = rand(cu_q[-1], 4, 24, seed=9), rand(cu_k[-1], 2, 24, seed=10), rand(cu_k[-1], 2, 24, seed=11)
    out, lse = causalattn.flash_attn_varlen_func(q, k, v, cu_q, cu_k, max(lens_q), max(lens_k), causal=True,
                                                 return_attn_probs=True)
    assert lse.shape == (4, cu_q[-1])
    for s in range(len(lens_q)):
        if lens_q[s] == 0:
            continue
        qs, ks, vs = (x[None, a:b] for x, a, b in ((q, cu_q[s], cu_q[s + 1]), (k, cu_k[s], cu_k[s + 1]),
                                                   (v, cu_k[s], cu_k[s + 1])))
        ref, ref_lse = reference(qs, ks, vs, True)
        np.testing.assert_allclose(out[cu_q[s]:cu_q[s + 1]], ref[0], rtol=0, atol=tolerance(v))
        np.testing.assert_allclose(lse[:, cu_q[s]:cu_q[s + 1]], ref_lse[0], rtol=2.0 ** -16, atol=2.0 ** -16)


@pytest.mark.parametrize("paged", [False, True])
@pytest.mark.parametrize("new_tokens", [0, 1, 5])
def test_kvcache_appends_then_attends(paged, new_tokens):
    b, h, hkv, d, cap, page = 3, 8, 2, 32, 64, 16
    cache_seqlens = np.array([10, 3, 40], np.int32)
    tq = max(new_tokens, 1)
    q = rand(b, tq, h, d, seed=21)
    keys = rand(b, cap, hkv, d, seed=22)   # each sequence's keys in order
    values = rand(b, cap, hkv, d, seed=23)
    k_new, v_new = keys[:, :0], values[:, :0]
    if new_tokens:
        k_new = np.stack([keys[s, cache_seqlens[s]:cache_seqlens[s] + new_tokens] for s in range(b)])
        v_new = np.stack([values[s, cache_seqlens[s]:cache_seqlens[s] + new_tokens] for s in range(b)])
    if not paged:
        k_cache = np.where(np.arange(cap)[None, :, None, None] < cache_seqlens[:, None, None, None], keys, np.nan)
        v_cache = np.where(np.arange(cap)[None, :, None, None] < cache_seqlens[:, None, None, None], values, np.nan)
        k_cache, v_cache, table = k_cache.astype(np.float32), v_cache.astype(np.float32), None
    else:
        # Pages of 16 tokens in a shuffled pool; unused slots hold NaN, so a stray read shows.
        blocks = cap // page
        order = np.random.default_rng(24).permutation(b * blocks).astype(np.int32)
        table = order.reshape(b, blocks)
        k_cache = np.full((b * blocks, page, hkv, d), np.nan, np.float32)
        v_cache = np.full_like(k_cache, np.nan)
        for s in range(b):
            for j in range(cache_seqlens[s]):
                k_cache[table[s, j // page], j % page] = keys[s, j]
                v_cache[table[s, j // page], j % page] = values[s, j]
    out, lse = causalattn.flash_attn_with_kvcache(
        q, k_cache, v_cache, k=k_new if new_tokens else None, v=v_new if new_tokens else None,
        cache_seqlens=cache_seqlens, block_table=table, causal=True, return_softmax_lse=True)
    for s in range(b):
        total = int(cache_seqlens[s]) + new_tokens
        if total < tq:
            continue
        ref, ref_lse = reference(q[s:s + 1], keys[s:s + 1, :total], values[s:s + 1, :total], True)
        np.testing.assert_allclose(out[s], ref[0], rtol=0, atol=tolerance(values))
        np.testing.assert_allclose(lse[s], ref_lse[0], rtol=2.0 ** -16, atol=2.0 ** -16)


def test_dropout_drops_the_weights_dropout_keep_names():
    b, t, h, d, p, seed = 2, 33, 2, 16, 0.3, 1234
    q, k, v = rand(b, t, h, d, seed=12), rand(b, t, h, d, seed=13), rand(b, t, h, d, seed=14)
    out = causalattn.flash_attn_func(q, k, v, dropout_p=p, causal=True, seed=seed)
    keep = np.array([[[[causalattn.dropout_keep(p, seed, s, hh, i, j) for j in range(t)] for i in range(t)]
                      for hh in range(h)] for s in range(b)], np.float64) / (1 - p)
    ref, _ = reference(q, k, v, True, keep=keep)
    np.testing.assert_allclose(out, ref, rtol=0, atol=tolerance(v) / (1 - p))


def test_merge_states_equals_one_call_over_all_keys():
    q, k, v = rand(1, 9, 4, 32, seed=15), rand(1, 300, 4, 32, seed=16), rand(1, 300, 4, 32, seed=17)
    whole = causalattn.flash_attn_func(q, k, v)
    parts = [causalattn.flash_attn_func(q, k[:, a:b], v[:, a:b], return_attn_probs=True)
             for a, b in ((0, 100), (100, 250), (250, 300))]
    # FlashInfer's layout: v [tokens, heads, D], s [tokens, heads].
    vs = [o[0] for o, _ in parts]
    ss = [np.ascontiguousarray(lse[0].T) for _, lse in parts]
    merged, s = causalattn.merge_states(vs, ss)
    np.testing.assert_allclose(merged, whole[0], rtol=0, atol=1e-5)
    _, ref_lse = reference(q, k, v, False)
    np.testing.assert_allclose(s, ref_lse[0].T, rtol=1e-6, atol=1e-6)
    merged2, _ = causalattn.merge_state(vs[0], ss[0], vs[1], ss[1])
    assert merged2.shape == merged.shape


def test_errors_name_the_problem_and_write_nothing():
    q, k, v = rand(1, 8, 4, 16), rand(1, 8, 3, 16), rand(1, 8, 3, 16)
    out = np.full(q.shape, -7.0, np.float32)
    with pytest.raises(ValueError, match="not a multiple"):
        causalattn.flash_attn_func(q, k, v, out=out)
    assert (out == -7.0).all()
    with pytest.raises(ValueError, match="q_len <= kv_len"):
        causalattn.flash_attn_func(rand(1, 9, 2, 16), rand(1, 8, 2, 16), rand(1, 8, 2, 16), causal=True)
    with pytest.raises(ValueError, match="head_dim must be contiguous"):
        causalattn.flash_attn_func(rand(1, 8, 2, 32)[..., ::2], rand(1, 8, 2, 16), rand(1, 8, 2, 16))
    with pytest.raises(ValueError, match="out overlaps q"):
        causalattn.flash_attn_func(q, rand(1, 8, 2, 16), rand(1, 8, 2, 16), out=q)
    # Another dtype is refused, never converted: a converted copy of out would be written and lost.
    with pytest.raises(TypeError):
        causalattn.flash_attn_func(q.astype(np.float64), k, v)
    with pytest.raises(TypeError):
        causalattn.flash_attn_func(q, k, v, out=np.zeros(q.shape, np.float64))
    q, k, v = rand(1, 8, 4, 16), rand(1, 8, 2, 16), rand(1, 8, 2, 16)
    with pytest.raises(ValueError, match="softcap must be 0"):
        causalattn.flash_attn_func(q, k, v, softcap=-30.0)
    with pytest.raises(NotImplementedError, match="alibi_slopes: only causal"):
        causalattn.flash_attn_func(q, k, v, alibi_slopes=np.ones(4, np.float32))
    with pytest.raises(NotImplementedError, match="window_size"):
        causalattn.flash_attn_func(q, k, v, window_size=(4, 4))


def test_the_gil_is_released():
    # While one thread is inside a long call, another runs Python: with the GIL held it could not
    # run a single bytecode until the call returned. (No timing: a count of loop turns.)
    q, k, v = rand(1, 2048, 8, 64, seed=18), rand(1, 2048, 8, 64, seed=19), rand(1, 2048, 8, 64, seed=20)
    inside = threading.Event()
    done = threading.Event()

    def call():
        inside.set()
        for _ in range(3):
            causalattn.flash_attn_func(q, k, v, causal=True, num_threads=1)
        done.set()

    worker = threading.Thread(target=call)
    worker.start()
    inside.wait()
    turns = 0
    while not done.is_set():
        turns += 1
    worker.join()
    assert turns > 10000, f"the main thread ran {turns} loop turns during the calls"


def book_mha(x, sd, num_heads):
    """The book's MultiHeadAttention forward in float64, from its state dict."""
    x = x.astype(np.float64)
    w = {k: np.asarray(v, np.float64) for k, v in sd.items()}
    b, t, _ = x.shape
    proj = lambda name: x @ w[name + ".weight"].T + w.get(name + ".bias", 0.0)
    q, k, v = proj("W_query"), proj("W_key"), proj("W_value")
    d_out = q.shape[-1]
    hd = d_out // num_heads
    split = lambda a: a.reshape(b, t, num_heads, hd)
    out, _ = reference(split(q), split(k), split(v), True)
    context = out.reshape(b, t, d_out)
    return context @ w["out_proj.weight"].T + w["out_proj.bias"]


def test_multi_head_attention_is_the_books():
    m = causalattn.MultiHeadAttention(16, 24, 10, 0.0, 3, qkv_bias=True)
    m.eval()
    sd = m.state_dict()
    assert sorted(sd) == sorted(["W_query.weight", "W_query.bias", "W_key.weight", "W_key.bias", "W_value.weight",
                                 "W_value.bias", "out_proj.weight", "out_proj.bias", "mask"])
    # New weights through load_state_dict, as from a PyTorch state dict's tensors.
    rng = np.random.default_rng(25)
    new = {k: rng.uniform(-0.3, 0.3, v.shape).astype(np.float32) for k, v in sd.items() if k != "mask"}
    m.load_state_dict(new)
    x = rand(2, 7, 16, seed=26)
    y = m.forward(x)
    np.testing.assert_allclose(y, book_mha(x, new, 3), rtol=0, atol=1e-5)
    bad = dict(new)
    bad["W_query.weight"] = np.zeros((3, 3), np.float32)
    with pytest.raises(ValueError, match="W_query.weight has shape"):
        m.load_state_dict(bad)
    np.testing.assert_array_equal(m.forward(x), y)  # unchanged by the failed load
    with pytest.raises(ValueError, match="num_tokens"):
        m.forward(rand(1, 11, 16))


@pytest.mark.parametrize("tq,tk", [(3, 300), (70, 130)])
def test_float16_arrays_are_widened_and_the_output_rounded(tq, tk):
    # float16 Q and K, float32 V: the reference on the widened values; a float16 out is the
    # float32 out rounded to nearest even (numpy's float16 cast rounds so too).
    q = rand(2, tq, 4, 64, seed=4).astype(np.float16)
    k = rand(2, tk, 2, 64, seed=5).astype(np.float16)
    v = rand(2, tk, 2, 64, seed=6)
    out = causalattn.flash_attn_func(q, k, v, causal=True)
    assert out.dtype == np.float16
    out32, lse = causalattn.flash_attn_func(q, k, v, causal=True, out=np.empty(q.shape, np.float32),
                                            return_attn_probs=True)
    assert lse.dtype == np.float32
    ref, ref_lse = reference(q.astype(np.float32), k.astype(np.float32), v, True)
    np.testing.assert_allclose(out32, ref, rtol=0, atol=tolerance(v))
    np.testing.assert_allclose(lse, ref_lse, rtol=2.0 ** -16, atol=2.0 ** -16)
    np.testing.assert_array_equal(out.view(np.uint16), out32.astype(np.float16).view(np.uint16))


def test_bfloat16_tensors_through_dlpack():
    torch = pytest.importorskip("torch")
    q = torch.from_numpy(rand(1, 40, 4, 32, seed=7)).to(torch.bfloat16)
    k = torch.from_numpy(rand(1, 90, 4, 32, seed=8)).to(torch.bfloat16)
    v = torch.from_numpy(rand(1, 90, 4, 32, seed=9)).to(torch.bfloat16)
    out = causalattn.flash_attn_func(q, k, v, causal=True)
    assert out.dtype == torch.bfloat16
    ref, _ = reference(q.float().numpy(), k.float().numpy(), v.float().numpy(), True)
    # bf16 rounding of the output: half an ulp of 8 significant bits, relative; the kernels of the
    # amx and avx512bf16 ISAs round the weights P to bf16 too: 2^-8 · max|v| (docs/guarantees.md).
    v_max = float(np.max(np.abs(v.float().numpy())))
    rounds_p = causalattn.isa() in ("amx", "avx512bf16", "neonbf16")
    np.testing.assert_allclose(out.float().numpy(), ref, rtol=2.0 ** -8,
                               atol=tolerance(v.float().numpy()) + (2.0 ** -8 * v_max if rounds_p else 0.0))


def test_other_dtypes_are_refused():
    q = rand(1, 4, 2, 16).astype(np.float64)
    with pytest.raises(TypeError, match="q must be float32, float16 or bfloat16"):
        causalattn.flash_attn_func(q, q, q, out=np.empty(q.shape, np.float32))


def test_torch_views_are_read_and_written_in_place():
    torch = pytest.importorskip("torch")
    # Every token second of a larger buffer, and [B, H, T, D] memory seen as [B, T, H, D]: views
    # the library reads through their strides; out= is a view into the caller's buffer.
    big = torch.from_numpy(rand(1, 80, 4, 32, seed=21))
    q = big[:, ::2]
    k = torch.from_numpy(rand(1, 4, 40, 32, seed=22)).transpose(1, 2)
    v = torch.from_numpy(rand(1, 4, 40, 32, seed=23)).transpose(1, 2)
    assert not q.is_contiguous() and not k.is_contiguous()
    buffer = torch.full((1, 4, 40, 32), -7.0)
    out = buffer.transpose(1, 2)
    pointer = out.data_ptr()
    result = causalattn.flash_attn_func(q, k, v, causal=True, out=out)
    assert result.data_ptr() == pointer and result is out
    ref, _ = reference(q.numpy(), k.numpy(), v.numpy(), True)
    np.testing.assert_allclose(buffer.transpose(1, 2).numpy(), ref, rtol=0, atol=tolerance(v.numpy()))
