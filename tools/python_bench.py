"""The Python binding's cost against the C call it makes, in one process: the same arrays through
causalattn.flash_attn_func and through causalattn_forward_f32 called with ctypes (the extension
exports the C API), its arguments built once. The C side is the ctypes call less a ctypes call of
causalattn_version, the price of ctypes itself (an underestimate: ten arguments cost ctypes more
than none, which counts against the binding here).

    build-py-venv/bin/python tools/python_bench.py

Prints the per-call overhead at a T = 1 decode step (256 keys, H = 8, D = 64) and the rate of a
T = 4096 causal prefill (H = 8, D = 128, [B, T, H, D]) through Python against C, one thread.
"""

import ctypes
import time

import numpy as np

import causalattn
from causalattn import _causalattn


class Shape(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int64) for name in ("batch", "q_heads", "kv_heads", "q_len", "kv_len", "head_dim")]


class Layout(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int64) for name in ("batch", "head", "token")]


class Options(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint32), ("scale", ctypes.c_float), ("num_threads", ctypes.c_int32),
                ("lse", ctypes.POINTER(ctypes.c_float))]


library = ctypes.CDLL(_causalattn.__file__)
forward = library.causalattn_forward_f32
forward.restype = ctypes.c_int
forward.argtypes = [ctypes.POINTER(Shape)] + [ctypes.c_void_p, Layout] * 4 + [ctypes.POINTER(Options)]
version = library.causalattn_version
version.restype = ctypes.c_char_p


def bthd(a):
    """The element strides of a C-contiguous [B, T, H, D] array as (batch, head, token)."""
    b, t, h, d = a.shape
    return Layout(t * h * d, d, h * d)


def c_call(q, k, v, out, threads):
    shape = Shape(q.shape[0], q.shape[2], k.shape[2], q.shape[1], k.shape[1], q.shape[3])
    options = Options(0, 0.0, threads, None)
    arguments = [ctypes.byref(shape)]
    for x in (q, k, v, out):
        arguments += [x.ctypes.data, bthd(x)]
    arguments.append(ctypes.byref(options))

    def call():
        return forward(*arguments)
    assert call() == 0
    return call


def best_per_call(fn, calls, rounds):
    best = float("inf")
    for _ in range(rounds):
        begin = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - begin) / calls)
    return best


def main():
    rng = np.random.default_rng(0)
    # A decode step: 1 query, 256 keys, H = 8, D = 64, one thread.
    q = rng.standard_normal((1, 1, 8, 64), np.float32)
    k, v = rng.standard_normal((1, 256, 8, 64), np.float32), rng.standard_normal((1, 256, 8, 64), np.float32)
    out = np.empty_like(q)
    python_call = lambda: causalattn.flash_attn_func(q, k, v, causal=True, out=out, num_threads=1)  # noqa: E731
    c = c_call(q, k, v, out, 1)
    python_us = best_per_call(python_call, 20000, 5) * 1e6
    ctypes_us = best_per_call(c, 20000, 5) * 1e6
    ctypes_itself_us = best_per_call(version, 20000, 5) * 1e6
    c_us = ctypes_us - ctypes_itself_us
    print(f"decode step (1 query, 256 keys, H=8, D=64), one thread, best of 5 x 20000 calls:")
    print(f"  Python flash_attn_func {python_us:.2f} us, C call {c_us:.2f} us "
          f"(ctypes {ctypes_us:.2f} less its own {ctypes_itself_us:.2f}): overhead {python_us - c_us:.2f} us")
    # A prefill, T = 4096, H = 8, D = 128, [B, T, H, D], causal, one thread: interleaved, best of 8.
    t, h, d = 4096, 8, 128
    q, k, v = (rng.standard_normal((1, t, h, d), np.float32) for _ in range(3))
    out = np.empty_like(q)
    python_call = lambda: causalattn.flash_attn_func(q, k, v, causal=True, out=out, num_threads=1)  # noqa: E731
    c = c_call(q, k, v, out, 1)
    flops = 2.0 * d * t * (t + 1) * h
    python_s, c_s = float("inf"), float("inf")
    for _ in range(8):
        python_s = min(python_s, best_per_call(python_call, 1, 1))
        c_s = min(c_s, best_per_call(c, 1, 1))
    print(f"prefill T={t}, H={h}, D={d}, [B, T, H, D], causal, one thread, best of 8 interleaved:")
    print(f"  Python {flops / python_s / 1e9:.1f} GFLOP/s, C {flops / c_s / 1e9:.1f} GFLOP/s: "
          f"{c_s / python_s:.3f}x the C rate")


if __name__ == "__main__":
    main()
