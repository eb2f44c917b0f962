#!/usr/bin/env python3
"""PyTorch's CPU attention under the sweep's sizes and threads, for the report's baselines.

Measures, in fp32 on [B, H, T, D] inputs:
  torch_textbook: the CausalAttention core of "Build a Large Language Model (From Scratch)",
                  ch. 3: q @ kᵀ, masked_fill_ through a cached context_length² triu mask sliced to
                  T, softmax of scores / sqrt(d_k), @ v (eval mode: no dropout);
  torch_sdpa:     torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True),
                  where this torch has it (2.0 and later).
FLOPs are counted as docs/design.md counts them: 2·D·T·(T+1) per (batch, head).
and the book's MultiHeadAttention module (tools/torch_parity.py) at GPT-2 small's sizes
(d_in = d_out = 768, 12 heads, context 1024, qkv_bias on), eval mode, batch 1, over num_tokens:
  torch_mha_layer: milliseconds per forward.
Usage: torch_bench.py OUT_JSON [--quick]
  (one JSON object: {"torch_version", "rows": [...], "layer_rows": [...]})
"""
import json
import math
import os
import sys
import time

import torch

from torch_parity import MultiHeadAttention

BATCH, HEADS = 1, 8
SEQ_LENS = [128, 256, 512, 1000, 1024, 2048, 3000, 4096, 8192, 16384]
QUICK_SEQ_LENS = [256, 1024]
HEAD_DIMS = [64, 128]
GPT2_TOKENS = [64, 128, 256, 512, 1024]
QUICK_GPT2_TOKENS = [256]


def textbook(q, k, v, mask):
    """The book's CausalAttention.forward after the projections, batched over heads."""
    num_tokens = q.shape[-2]
    attn_scores = q @ k.transpose(-2, -1)
    attn_scores.masked_fill_(mask[:num_tokens, :num_tokens], -torch.inf)
    attn_weights = torch.softmax(attn_scores / k.shape[-1] ** 0.5, dim=-1)
    return attn_weights @ v


def sdpa(q, k, v, mask):
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)


def best_seconds(fn, min_time, repetitions):
    """Best over repetitions of the mean time of a batch of calls lasting about min_time."""
    fn()  # warm-up
    best = math.inf
    for _ in range(repetitions):
        calls, start = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_time:
                break
        best = min(best, elapsed / calls)
    return best


def available_bytes():
    for line in open("/proc/meminfo"):
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def main():
    out_path = sys.argv[1]
    quick = "--quick" in sys.argv[2:]
    seq_lens = QUICK_SEQ_LENS if quick else SEQ_LENS
    min_time, repetitions = (0.05, 2) if quick else (0.3, 3)
    all_threads = os.cpu_count()
    methods = {"torch_textbook": textbook}
    if hasattr(torch.nn.functional, "scaled_dot_product_attention"):
        methods["torch_sdpa"] = sdpa
    mask = torch.triu(torch.ones(max(seq_lens), max(seq_lens), dtype=torch.bool), diagonal=1)
    rows = []
    gen = torch.Generator().manual_seed(42)
    for d in HEAD_DIMS:
        for threads in (1, 0):
            torch.set_num_threads(threads or all_threads)
            for name, fn in methods.items():
                for t in seq_lens:
                    # The textbook path holds about three [B, H, T, T] fp32 tensors at once.
                    if name == "torch_textbook" and 3 * BATCH * HEADS * t * t * 4 > available_bytes() // 2:
                        print(f"{name} T={t} D={d}: skipped, its T×T scores need more memory than is free",
                              flush=True)
                        continue
                    q, k, v = (torch.randn(BATCH, HEADS, t, d, generator=gen) for _ in range(3))
                    with torch.no_grad():
                        seconds = best_seconds(lambda: fn(q, k, v, mask), min_time,
                                               repetitions if t <= 4096 else 2)
                    gflops = 2.0 * d * t * (t + 1) * BATCH * HEADS / seconds / 1e9
                    rows.append({"method": name, "T": t, "D": d, "threads": threads, "gflops": gflops})
                    print(f"{name} T={t} D={d} threads={threads or 'all'}: {gflops:.1f} GFLOP/s", flush=True)
    layer_rows = []
    torch.manual_seed(0)
    layer = MultiHeadAttention(768, 768, 1024, 0.0, 12, qkv_bias=True).eval()
    # The same module in f32 and after .to(torch.bfloat16), beside BM_Gpt2Layer and BM_Gpt2LayerBf16.
    for method, dtype in (("torch_mha_layer", torch.float32), ("torch_mha_layer_bf16", torch.bfloat16)):
        module = layer.to(dtype)
        for threads in (1, 0):
            torch.set_num_threads(threads or all_threads)
            for t in QUICK_GPT2_TOKENS if quick else GPT2_TOKENS:
                x = torch.randn(1, t, 768, generator=gen).to(dtype)
                with torch.no_grad():
                    seconds = best_seconds(lambda: module(x), min_time, repetitions)
                layer_rows.append({"method": method, "T": t, "threads": threads, "ms": seconds * 1e3})
                print(f"{method} T={t} threads={threads or 'all'}: {seconds * 1e3:.2f} ms", flush=True)
    json.dump({"torch_version": torch.__version__, "rows": rows, "layer_rows": layer_rows}, open(out_path, "w"),
              indent=1)


if __name__ == "__main__":
    main()
