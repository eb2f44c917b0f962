"""The tests' oracle: attention in float64 numpy, each variant from its formula (causalattn.h)."""

import numpy as np


def reference(q, k, v, causal, scale=None, window=None, keep=None, softcap=0.0, slopes=None, sinks=None):
    """softmax(s) v per (batch, head) in float64, s = scale q.k (1/sqrt(D) by default); s = softcap
    tanh(s / softcap); s -= slope (p_i - j); masked (bottom-right: p_i = i + Tk - Tq sees keys
    j <= p_i, and with a window j > p_i - window); a sink joins the denominator with no value;
    keep: a [B, H, Tq, Tk] multiplier for the weights (dropout). q [B, Tq, H, D]; k [B, Tk, Hkv, D];
    v [B, Tk, Hkv, Dv]. Returns out [B, Tq, H, Dv] and lse [B, H, Tq]."""
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    _, tq, h, d = q.shape
    tk, hkv = k.shape[1], k.shape[2]
    scale = 1 / np.sqrt(d) if scale is None else scale
    kk, vv = np.repeat(k, h // hkv, axis=2), np.repeat(v, h // hkv, axis=2)
    s = np.einsum("bihd,bjhd->bhij", q, kk) * scale
    if softcap:
        s = softcap * np.tanh(s / softcap)
    p_i = np.arange(tq)[:, None] + (tk - tq)
    j = np.arange(tk)[None, :]
    if slopes is not None:
        s = s - np.asarray(slopes, np.float64)[None, :, None, None] * (p_i - j)[None, None]
    visible = np.ones((tq, tk), bool)
    if causal:
        visible &= j <= p_i
    if window:
        visible &= j > p_i - window
    s = np.where(visible, s, -np.inf)
    sink = np.full((1, h, 1, 1), -np.inf) if sinks is None else np.asarray(sinks, np.float64)[None, :, None, None]
    m = np.maximum(s.max(axis=-1, keepdims=True), sink)
    e = np.exp(s - m)
    total = e.sum(axis=-1, keepdims=True) + np.exp(sink - m)
    w = e / total
    if keep is not None:
        w = w * keep
    return np.einsum("bhij,bjhd->bihd", w, vv), (m + np.log(total))[..., 0]
