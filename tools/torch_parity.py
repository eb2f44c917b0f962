#!/usr/bin/env python3
"""PyTorch parity fixtures for causalattn's CausalAttention and MultiHeadAttention.

Defines the two modules exactly as "Build a Large Language Model (From Scratch)", chapter 3,
writes them, seeds them, and exports eval-mode cases as safetensors files that
tests/test_modules.cpp replays:

  <case>.weights.safetensors  the module's state_dict() as PyTorch saves it (mask included)
  <case>.io.safetensors       x [B, T, d_in], y = module(x) [B, T, d_out], and
                              config [is_mha, d_in, d_out, context_length, num_heads, qkv_bias]

Usage:
  torch_parity.py fixtures OUT_DIR             the committed cases (tests/data/parity)
  torch_parity.py random OUT_DIR SEED COUNT    COUNT cases of random sizes
  torch_parity.py check-load WEIGHTS IO        loads WEIGHTS (written by causalattn) into the
                                               PyTorch module with strict=True, runs IO's x and
                                               compares with IO's y; exit status 0 if they match
Needs torch (Debian's python3-torch or PyPI's); writes safetensors without the safetensors package.
"""
import json
import os
import random
import struct
import sys

import torch
import torch.nn as nn


# ---- The textbook's modules, as the book writes them ----

class CausalAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, qkv_bias=False):
        super().__init__()
        self.d_out = d_out
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer('mask', torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x):
        b, num_tokens, d_in = x.shape
        keys = self.W_key(x)
        queries = self.W_query(x)
        values = self.W_value(x)
        attn_scores = queries @ keys.transpose(1, 2)
        attn_scores.masked_fill_(self.mask.bool()[:num_tokens, :num_tokens], -torch.inf)
        attn_weights = torch.softmax(attn_scores / keys.shape[-1]**0.5, dim=-1)
        attn_weights = self.dropout(attn_weights)
        context_vec = attn_weights @ values
        return context_vec


class MultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        assert (d_out % num_heads == 0), "d_out must be divisible by num_heads"
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer('mask', torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x):
        b, num_tokens, d_in = x.shape
        keys = self.W_key(x)
        queries = self.W_query(x)
        values = self.W_value(x)
        keys = keys.view(b, num_tokens, self.num_heads, self.head_dim)
        values = values.view(b, num_tokens, self.num_heads, self.head_dim)
        queries = queries.view(b, num_tokens, self.num_heads, self.head_dim)
        keys = keys.transpose(1, 2)
        queries = queries.transpose(1, 2)
        values = values.transpose(1, 2)
        attn_scores = queries @ keys.transpose(2, 3)
        mask_bool = self.mask.bool()[:num_tokens, :num_tokens]
        attn_scores.masked_fill_(mask_bool, -torch.inf)
        attn_weights = torch.softmax(attn_scores / keys.shape[-1]**0.5, dim=-1)
        attn_weights = self.dropout(attn_weights)
        context_vec = (attn_weights @ values).transpose(1, 2)
        context_vec = context_vec.contiguous().view(b, num_tokens, self.d_out)
        context_vec = self.out_proj(context_vec)
        return context_vec


# ---- safetensors, by hand ----

DTYPES = {torch.float32: 'F32', torch.bfloat16: 'BF16', torch.float16: 'F16'}
TORCH_DTYPES = {v: k for k, v in DTYPES.items()}


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        data = t.view(torch.uint8).numpy().tobytes() if t.numel() else b''
        header[name] = {'dtype': DTYPES[t.dtype], 'shape': list(t.shape), 'data_offsets': [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(',', ':')).encode()
    text += b' ' * (-len(text) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def read_safetensors(path):
    with open(path, 'rb') as f:
        raw = f.read()
    (n,) = struct.unpack('<Q', raw[:8])
    header = json.loads(raw[8:8 + n])
    body = raw[8 + n:]
    tensors = {}
    for name, info in header.items():
        if name == '__metadata__':
            continue
        begin, end = info['data_offsets']
        dtype = TORCH_DTYPES[info['dtype']]
        t = torch.frombuffer(bytearray(body[begin:end]), dtype=dtype) if end > begin else torch.empty(0, dtype=dtype)
        tensors[name] = t.reshape(info['shape']).float()
    return tensors


# ---- cases ----

def make_module(is_mha, d_in, d_out, context_length, num_heads, qkv_bias):
    if is_mha:
        return MultiHeadAttention(d_in, d_out, context_length, 0.0, num_heads, qkv_bias)
    return CausalAttention(d_in, d_out, context_length, 0.0, qkv_bias)


def export_case(out_dir, name, seed, is_mha, d_in, d_out, context_length, num_heads, qkv_bias, batch, num_tokens,
                weights_dtype=torch.float32):
    torch.manual_seed(seed)
    module = make_module(is_mha, d_in, d_out, context_length, num_heads, qkv_bias)
    if weights_dtype != torch.float32:
        # Weights stored in 16 bits: the module runs with the rounded values, widened to fp32.
        with torch.no_grad():
            for p in module.parameters():
                p.copy_(p.to(weights_dtype).float())
    module.eval()
    x = torch.randn(batch, num_tokens, d_in)
    with torch.no_grad():
        y = module(x)
    state = {k: (v.to(weights_dtype) if k != 'mask' else v) for k, v in module.state_dict().items()}
    write_safetensors(os.path.join(out_dir, name + '.weights.safetensors'), state)
    config = torch.tensor([float(is_mha), d_in, d_out, context_length, num_heads, float(qkv_bias)])
    write_safetensors(os.path.join(out_dir, name + '.io.safetensors'), {'x': x, 'y': y, 'config': config})


# The committed cases: both modules, qkv_bias on and off, num_tokens below context_length,
# batch > 1, several head counts, and 16-bit weights. Kept small: tests/data stays under 1 MB.
FIXTURES = [
    # name, seed, is_mha, d_in, d_out, context_length, num_heads, qkv_bias, batch, num_tokens, dtype
    ('causal_bias0_b1', 1, False, 3, 2, 6, 1, False, 1, 6, torch.float32),  # the book's 6-token example sizes
    ('causal_bias1_b2_short', 2, False, 16, 24, 12, 1, True, 2, 7, torch.float32),
    ('mha_h1_bias0', 3, True, 12, 8, 10, 1, False, 2, 10, torch.float32),
    ('mha_h2_bias0_b2', 4, True, 16, 16, 8, 2, False, 2, 8, torch.float32),  # the book's d_out=2 per head analogue
    ('mha_h4_bias1_short', 5, True, 32, 32, 24, 4, True, 3, 17, torch.float32),
    ('mha_h3_bias1_b2', 6, True, 20, 48, 16, 3, True, 2, 16, torch.float32),
    ('mha_h8_bias0_long', 7, True, 64, 64, 40, 8, False, 1, 37, torch.float32),
    ('mha_h2_bf16', 8, True, 24, 32, 12, 2, True, 2, 11, torch.bfloat16),
    ('causal_f16', 9, False, 16, 16, 9, 1, True, 1, 5, torch.float16),
]


def main(argv):
    if len(argv) >= 2 and argv[0] == 'fixtures':
        os.makedirs(argv[1], exist_ok=True)
        for case in FIXTURES:
            export_case(argv[1], *case)
        return 0
    if len(argv) == 4 and argv[0] == 'random':
        out_dir, seed, count = argv[1], int(argv[2]), int(argv[3])
        os.makedirs(out_dir, exist_ok=True)
        rng = random.Random(seed)
        for i in range(count):
            is_mha = rng.random() < 0.75
            num_heads = rng.randint(1, 12) if is_mha else 1
            d_out = num_heads * rng.randint(1, 80)
            context_length = rng.randint(1, 200)
            export_case(out_dir, 'random%d' % i, seed * 1000 + i, is_mha, rng.randint(1, 100), d_out, context_length,
                        num_heads, rng.random() < 0.5, rng.randint(1, 3), rng.randint(1, context_length))
        return 0
    if len(argv) == 3 and argv[0] == 'check-load':
        state = read_safetensors(argv[1])
        io = read_safetensors(argv[2])
        is_mha, d_in, d_out, context_length, num_heads, qkv_bias = [int(v) for v in io['config'].tolist()]
        module = make_module(bool(is_mha), d_in, d_out, context_length, num_heads, bool(qkv_bias))
        module.load_state_dict(state, strict=True)
        module.eval()
        with torch.no_grad():
            y = module(io['x'])
        diff = (y - io['y']).abs().max().item()
        bound = 2.0**-16 * max(1.0, io['y'].abs().max().item())
        print('max |torch - causalattn| = %.3g (bound %.3g)' % (diff, bound))
        return 0 if diff <= bound else 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
