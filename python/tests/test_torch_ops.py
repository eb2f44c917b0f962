"""causalattn.torch: the custom op under torch.library.opcheck and torch.compile, and the
scaled_dot_product_attention drop-in against PyTorch's own, its top-left causal alignment, GQA,
16-bit tensors, and its fallback. Skipped with a message when torch is not installed."""

import warnings

import pytest

torch = pytest.importorskip("torch", reason="PyPI's torch is not installed: the custom-op checks skip")
import torch.nn.functional as F  # noqa: E402

import causalattn.torch as ca_torch  # noqa: E402


def rand(*shape, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g).to(dtype)


@pytest.mark.parametrize("b,h,hkv,tq,tk,d,causal", [(2, 4, 4, 33, 33, 64, True), (1, 8, 2, 7, 130, 32, True),
                                                    (1, 4, 4, 130, 40, 16, True), (2, 2, 1, 1, 300, 128, False),
                                                    (1, 3, 3, 50, 50, 80, False)])
def test_sdpa_drop_in_matches_pytorch(b, h, hkv, tq, tk, d, causal):
    # Tq != Tk with is_causal: PyTorch aligns top-left (also Tq > Tk), and so does the drop-in.
    q, k, v = rand(b, h, tq, d, seed=1), rand(b, hkv, tk, d, seed=2), rand(b, hkv, tk, d, seed=3)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=h != hkv)
    out = ca_torch.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=h != hkv)
    assert out.shape == expected.shape and out.is_contiguous()
    torch.testing.assert_close(out, expected, rtol=0, atol=2e-5)
    out = ca_torch.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=0.3, enable_gqa=h != hkv)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=0.3,
                                                                   enable_gqa=h != hkv), rtol=0, atol=2e-5)


def test_sdpa_drop_in_on_bfloat16():
    q, k, v = (rand(1, 4, 64, 64, dtype=torch.bfloat16, seed=s) for s in (4, 5, 6))
    out = ca_torch.scaled_dot_product_attention(q, k, v, is_causal=True)
    expected = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), expected, rtol=2 ** -7, atol=2 ** -7)


def test_sdpa_falls_back_with_one_warning():
    q, k, v = rand(1, 2, 8, 16, seed=7), rand(1, 2, 8, 16, seed=8), rand(1, 2, 8, 16, seed=9)
    mask = torch.rand(8, 8, generator=torch.Generator().manual_seed(1)) > 0.3
    mask.fill_diagonal_(True)
    with pytest.warns(UserWarning, match="an explicit attn_mask; using PyTorch's"):
        out = ca_torch.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second time: no warning
        ca_torch.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    q.requires_grad_(True)
    with pytest.warns(UserWarning, match="require grad"):
        out = ca_torch.scaled_dot_product_attention(q, k, v)
    out.sum().backward()  # PyTorch's, with its backward
    assert q.grad is not None


def test_the_op_passes_opcheck():
    q, k, v = rand(2, 17, 4, 32, seed=10), rand(2, 17, 2, 32, seed=11), rand(2, 17, 2, 24, seed=12)
    slopes = torch.tensor([0.5, 0.25, 0.125, 0.0625])
    sinks = torch.tensor([0.0, 1.0, -1.0, 2.0])
    for args in ((q, k, v, 0.0, True, False, 0, 0.0, None, None, 0.0, 0),
                 (q, k, v, 0.2, True, True, 5, 3.0, slopes, sinks, 0.0, 0),
                 (q, k, v, 0.0, False, False, 0, 0.0, None, None, 0.25, 1234)):
        torch.library.opcheck(torch.ops.causalattn.attention.default, args)


def test_the_op_under_torch_compile():
    q, k, v = rand(1, 4, 96, 64, seed=13), rand(1, 4, 96, 64, seed=14), rand(1, 4, 96, 64, seed=15)

    def block(q, k, v):
        return ca_torch.scaled_dot_product_attention(q, k, v, is_causal=True) * 2.0 + 1.0

    compiled = torch.compile(block, backend="aot_eager", fullgraph=True)  # no graph break at the op
    torch.testing.assert_close(compiled(q, k, v), block(q, k, v), rtol=0, atol=0)
