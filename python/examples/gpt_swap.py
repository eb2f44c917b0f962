"""The book's GPT model with causalattn's attention: chapter 4's GPTModel (PyPI's llms-from-scratch,
random weights, nothing downloaded), every MultiHeadAttention swapped for causalattn's module with
the same weights, greedy generation of 50 tokens by the book's generate_text_simple from both.
The tokens must be the same; the example prints both times.

    python python/examples/gpt_swap.py [--small]
"""

import argparse
import copy
import time

import numpy as np
import torch
from llms_from_scratch.ch04 import GPTModel, generate_text_simple

import causalattn

# GPT-2 small (124M), as chapter 4 configures it.
GPT_124M = {"vocab_size": 50257, "context_length": 1024, "emb_dim": 768, "n_heads": 12, "n_layers": 12,
            "drop_rate": 0.0, "qkv_bias": False}
SMALL = dict(GPT_124M, vocab_size=1000, context_length=128, emb_dim=256, n_heads=4, n_layers=4)


class OurAttention(torch.nn.Module):
    """A drop-in for the book's MultiHeadAttention: causalattn.MultiHeadAttention (its projections
    and causal attention in C++) with the book module's weights."""

    def __init__(self, book_module, cfg):
        super().__init__()
        self.module = causalattn.MultiHeadAttention(cfg["emb_dim"], cfg["emb_dim"], cfg["context_length"], 0.0,
                                                    cfg["n_heads"], qkv_bias=cfg["qkv_bias"])
        self.module.load_state_dict({k: v.detach().numpy() for k, v in book_module.state_dict().items()})
        self.module.eval()

    def forward(self, x):
        return torch.from_numpy(self.module.forward(np.ascontiguousarray(x.detach().numpy(), dtype=np.float32)))


def swapped(model, cfg):
    """A copy of model with every TransformerBlock's attention ours."""
    ours = copy.deepcopy(model)
    for block in ours.trf_blocks:
        block.att = OurAttention(block.att, cfg)
    return ours


def generate(model, start, tokens, cfg):
    begin = time.perf_counter()
    out = generate_text_simple(model, start, max_new_tokens=tokens, context_size=cfg["context_length"])
    return out, time.perf_counter() - begin


def run(cfg, tokens=50, seed=123):
    """(book's tokens, ours, book's seconds, ours) for greedy generation from a fixed start."""
    torch.manual_seed(seed)
    model = GPTModel(cfg).eval()
    start = torch.tensor([[15496, 11, 314, 716]]) % cfg["vocab_size"]  # "Hello, I am" in GPT-2's tokens
    ours = swapped(model, cfg).eval()
    book_tokens, book_time = generate(model, start, tokens, cfg)
    our_tokens, our_time = generate(ours, start, tokens, cfg)
    return book_tokens, our_tokens, book_time, our_time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a 4-layer, 256-wide model instead of GPT-2 small")
    args = parser.parse_args()
    cfg = SMALL if args.small else GPT_124M
    book, ours, book_time, our_time = run(cfg)
    same = torch.equal(book, ours)
    print(f"{'small model' if args.small else 'GPT-2 small (124M)'}, random weights, 50 greedy tokens, "
          f"{torch.get_num_threads()} torch threads, causalattn ISA {causalattn.isa()}")
    print(f"  book's MultiHeadAttention: {book_time:.2f} s")
    print(f"  causalattn's:              {our_time:.2f} s")
    print(f"  same tokens: {same}")
    raise SystemExit(0 if same else 1)


if __name__ == "__main__":
    main()
