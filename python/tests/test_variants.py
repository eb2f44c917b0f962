"""The model variants through flash-attn's calls: softcap, ALiBi, sinks (s_aux) and a V head size
of its own against a float64 numpy reference written from the formulas; then, with PyPI's torch,
against each model family's own way of computing its variant (gpt-oss's sinks, Gemma 2's softcap,
BLOOM's ALiBi) on random weights. The torch checks are skipped with a message when torch is not
installed."""

import numpy as np
import pytest

import causalattn
from attention_reference import reference


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def tolerance(v, scale=1.0):
    return 2.0 ** -16 * max(1.0, float(np.abs(v).max())) * scale


@pytest.mark.parametrize("tq,tk,d,dv", [(40, 40, 64, 64), (5, 1500, 128, 128), (33, 90, 192, 128), (1, 700, 576, 512)])
def test_variants_match_the_reference(tq, tk, d, dv):
    b, h, hkv = 2, 4, 2
    q, k, v = rand(b, tq, h, d, seed=1), rand(b, tk, hkv, d, seed=2), rand(b, tk, hkv, dv, seed=3)
    slopes = np.array([2.0 ** (-2 * (i + 1)) for i in range(h)], np.float32)
    sinks = np.array([0.3, -1.0, 2.0, 0.0], np.float32)
    for kwargs in ({"softcap": 4.0}, {"alibi_slopes": slopes}, {"s_aux": sinks},
                   {"softcap": 2.0, "alibi_slopes": slopes, "s_aux": sinks, "window_size": (24, 0)}):
        out, lse = causalattn.flash_attn_func(q, k, v, causal=True, return_attn_probs=True, **kwargs)
        assert out.shape == (b, tq, h, dv)
        ref, ref_lse = reference(q, k, v, True, window=kwargs.get("window_size", (-1, 0))[0] + 1 or None,
                                 softcap=kwargs.get("softcap", 0.0), slopes=kwargs.get("alibi_slopes"),
                                 sinks=kwargs.get("s_aux"))
        np.testing.assert_allclose(out, ref, rtol=0, atol=tolerance(v, 4.0), err_msg=str(kwargs))
        np.testing.assert_allclose(lse, ref_lse, rtol=2.0 ** -15, atol=2.0 ** -15, err_msg=str(kwargs))


def test_sinks_are_counted_once_over_a_long_cache():
    # 5000 keys: the library's split decode merges five chunks, the sink joins once.
    q, k, v = rand(1, 1, 8, 64, seed=4), rand(1, 5000, 2, 64, seed=5), rand(1, 5000, 2, 64, seed=6)
    sinks = np.linspace(-1.0, 3.0, 8).astype(np.float32)
    out = causalattn.flash_attn_with_kvcache(q, k, v, causal=True, s_aux=sinks)
    ref, _ = reference(q, k, v, True, sinks=sinks)
    np.testing.assert_allclose(out, ref, rtol=0, atol=tolerance(v, 4.0))


def test_bad_variants_are_refused():
    q, k, v = rand(1, 4, 2, 16), rand(1, 4, 2, 16), rand(1, 4, 2, 16)
    with pytest.raises(ValueError, match="one value per query head"):
        causalattn.flash_attn_func(q, k, v, causal=True, s_aux=np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="alibi_slopes\\[1\\] = nan is not finite"):
        causalattn.flash_attn_func(q, k, v, causal=True, alibi_slopes=np.array([0.5, np.nan], np.float32))
    with pytest.raises(NotImplementedError, match="one value per head"):
        causalattn.flash_attn_func(q, k, v, causal=True, alibi_slopes=np.ones((1, 2), np.float32))


# ---- With PyPI's torch: the model families' own code paths, on random weights ----

def torch_or_skip():
    return pytest.importorskip("torch", reason="PyPI's torch is not installed: the model-family parity checks skip")


def test_gpt_oss_sinks_as_its_reference_computes_them():
    torch = torch_or_skip()
    torch.manual_seed(0)
    # gpt-oss's sdpa: the sink is one more column of the scores before the softmax, dropped after.
    n_tokens, n_heads, q_mult, d, window = 96, 2, 4, 64, 32
    q = torch.randn(n_tokens, n_heads, q_mult, d)
    k = torch.randn(n_tokens, n_heads, d)
    v = torch.randn(n_tokens, n_heads, d)
    sinks = torch.randn(n_heads * q_mult)
    scale = 0.125
    for sliding in (0, window):
        mask = torch.triu(q.new_full((n_tokens, n_tokens), -float("inf")), diagonal=1)
        if sliding:
            mask += torch.tril(mask.new_full((n_tokens, n_tokens), -float("inf")), diagonal=-sliding)
        scores = torch.einsum("qhmd,khd->hmqk", q, k) * scale + mask[None, None]
        s = sinks.reshape(n_heads, q_mult, 1, 1).expand(-1, -1, n_tokens, -1)
        weights = torch.softmax(torch.cat([scores, s], dim=-1), dim=-1)[..., :-1]
        expected = torch.einsum("hmqk,khd->qhmd", weights, v).reshape(n_tokens, n_heads * q_mult, d)
        out = causalattn.flash_attn_func(q.reshape(1, n_tokens, n_heads * q_mult, d), k[None], v[None],
                                         softmax_scale=scale, causal=True, s_aux=sinks,
                                         window_size=(sliding - 1, 0) if sliding else (-1, -1))
        torch.testing.assert_close(out[0], expected, rtol=0, atol=2e-5)


def test_gemma2_softcap_as_its_reference_computes_it():
    torch = torch_or_skip()
    torch.manual_seed(1)
    # Gemma 2's eager attention: scores / cap, tanh, * cap, then the causal mask, softmax in f32.
    b, t, h, hkv, d, cap = 2, 70, 8, 4, 128, 50.0
    q, k, v = torch.randn(b, h, t, d) * 4, torch.randn(b, hkv, t, d) * 4, torch.randn(b, hkv, t, d)
    scaling = 256 ** -0.5  # query_pre_attn_scalar = 256
    kk, vv = k.repeat_interleave(h // hkv, dim=1), v.repeat_interleave(h // hkv, dim=1)
    scores = torch.matmul(q, kk.transpose(2, 3)) * scaling
    scores = torch.tanh(scores / cap) * cap
    scores = scores + torch.triu(torch.full((t, t), -float("inf")), diagonal=1)
    expected = torch.matmul(torch.softmax(scores, dim=-1, dtype=torch.float32), vv).transpose(1, 2)
    out = causalattn.flash_attn_func(q.transpose(1, 2).contiguous(), k.transpose(1, 2).contiguous(),
                                     v.transpose(1, 2).contiguous(), softmax_scale=scaling, causal=True, softcap=cap)
    torch.testing.assert_close(out, expected, rtol=0, atol=2e-5)


def test_bloom_alibi_as_its_reference_computes_it():
    torch = torch_or_skip()
    torch.manual_seed(2)
    import math
    # BLOOM's build_alibi_tensor: slopes 2^(-8 (i + 1) / n) for a power-of-two n, the bias
    # slope * key position added to the scores through baddbmm (the same softmax as
    # -slope * (i - j): they differ by a constant per row).
    b, t, n, d = 2, 64, 8, 64
    base = 2 ** (-(2 ** -(math.log2(n) - 3)))
    slopes = torch.pow(torch.tensor(base), torch.arange(1, n + 1, dtype=torch.float32))
    alibi = (slopes[:, None] * torch.arange(t, dtype=torch.float32)[None, :])[None, :, None, :]
    q, k, v = torch.randn(b, n, t, d), torch.randn(b, n, t, d), torch.randn(b, n, t, d)
    inv_norm = 1 / math.sqrt(d)
    scores = torch.baddbmm(alibi.expand(b, n, 1, t).reshape(b * n, 1, t), q.reshape(b * n, t, d),
                           k.reshape(b * n, t, d).transpose(1, 2), beta=1.0, alpha=inv_norm).view(b, n, t, t)
    scores = scores.masked_fill(torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1), torch.finfo(torch.float32).min)
    expected = torch.matmul(torch.softmax(scores, dim=-1), v).transpose(1, 2)
    out = causalattn.flash_attn_func(q.transpose(1, 2).contiguous(), k.transpose(1, 2).contiguous(),
                                     v.transpose(1, 2).contiguous(), causal=True, alibi_slopes=slopes)
    torch.testing.assert_close(out, expected, rtol=0, atol=2e-5)
