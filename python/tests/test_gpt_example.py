"""python/examples/gpt_swap.py: the book's GPTModel with every MultiHeadAttention swapped for
causalattn's generates the same 50 greedy tokens (a small random-weight model; the example's
default is GPT-2 small). Skipped with a message without PyPI's torch and llms-from-scratch."""

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
