"""The book's PyTorch modules (PyPI's llms-from-scratch) against ours: chapter 3's
MultiHeadAttention with the same weights gives the same outputs, and chapter 4's GPTModel with
every MultiHeadAttention swapped for causalattn's (python/examples/gpt_swap.py) generates the same
50 greedy tokens (a small random-weight model; the example's default is GPT-2 small). Skipped with
a message without PyPI's torch and llms-from-scratch."""

import pathlib
import sys

import pytest

pytest.importorskip("torch", reason="PyPI's torch is not installed")
pytest.importorskip("llms_from_scratch", reason="PyPI's llms-from-scratch is not installed")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples"))
import gpt_swap  # noqa: E402


def test_swapped_attention_generates_the_same_tokens():
    book, ours, _, _ = gpt_swap.run(gpt_swap.SMALL)
    assert book.shape == (1, 54)
    assert book.tolist() == ours.tolist()


def test_our_module_matches_the_books_pytorch_module():
    import numpy as np
    import torch
    from llms_from_scratch.ch03 import MultiHeadAttention as BookMultiHeadAttention

    import causalattn

    torch.manual_seed(4)
    for d_in, d_out, heads, tokens, bias in ((64, 64, 4, 37, False), (48, 96, 8, 100, True), (768, 768, 12, 5, True)):
        book = BookMultiHeadAttention(d_in, d_out, 128, 0.0, heads, qkv_bias=bias).eval()
        ours = causalattn.MultiHeadAttention(d_in, d_out, 128, 0.0, heads, qkv_bias=bias)
        ours.load_state_dict({k: v.detach().numpy() for k, v in book.state_dict().items()})
        ours.eval()
        x = torch.randn(2, tokens, d_in)
        with torch.no_grad():
            expected = book(x)
        got = ours.forward(np.ascontiguousarray(x.numpy()))
        torch.testing.assert_close(torch.from_numpy(got), expected, rtol=0, atol=2e-5)
