"""The report's peers section (tools/peers_bench.py's peers.json): tables per mode, D and thread
count, the checks, the headline line, a plot of our speedup over each peer and decode GB/s."""
import os

# Which of ours a peer is set against: the same K/V dtype (bf16: every tensor bf16). ggml's q8_0
# cache is set against our decode from causalattn_bench (invariant_decode_headline), not here.
OURS = {"ggml_f16": "causalattn_f16kv", "openvino_bf16": "causalattn_bf16", "ggml_q8_0": None}
OURS_DEFAULT = "causalattn"
# The ggml method with the cache dtype of a causalattn_dtype (BM_Decode's kv_dtype).
GGML_OF_DTYPE = {0: "ggml_f32", 2: "ggml_f16", 3: "ggml_q8_0"}


def _key(r):
    return (r["mode"], r["D"], r["threads"], r.get("T", r.get("Tk")))


def best_seconds(rows):
    """(method, mode, D, threads, size) -> (best time over the passes, median time, FMA peak)."""
    times, peaks = {}, {}
    for r in rows:
        if r.get("ok"):
            k = (r["method"],) + _key(r)
            times.setdefault(k, []).append(r["seconds"])
            peaks[k] = max(peaks.get(k) or 0.0, r.get("fma_peak") or 0.0) or None
    return {k: (min(v), sorted(v)[len(v) // 2], peaks[k]) for k, v in times.items()}


def comparisons(peers):
    """Every (peer, point): our time over theirs and the ratio theirs / ours (> 1: we lead)."""
    best = best_seconds(peers["rows"])
    out = []
    for (method, mode, d, threads, size), (seconds, _, _) in best.items():
        if method.startswith("causalattn"):
            continue
        ours = best.get((OURS.get(method, OURS_DEFAULT), mode, d, threads, size))
        if ours:
            out.append(dict(peer=method, mode=mode, D=d, threads=threads, size=size, ratio=seconds / ours[0]))
    return out


def headline(peers, labels, cores):
    points = comparisons(peers)
    if not points:
        return None
    behind = [p for p in points if p["ratio"] < 1.0]
    if not behind:
        low = min(points, key=lambda p: p["ratio"])
        return (f"ahead of every peer at every point (smallest lead {low['ratio']:.2f}× over {labels[low['peer']]}, "
                f"{low['mode']} {'T' if low['mode'] == 'prefill' else 'Tk'}={low['size']}, D={low['D']}, "
                f"{_threads(low['threads'], cores)})")
    return "behind at: " + "; ".join(
        f"{labels[p['peer']]}, {p['mode']} {'T' if p['mode'] == 'prefill' else 'Tk'}={p['size']} D={p['D']} "
        f"{_threads(p['threads'], cores)}: ours {p['ratio']:.2f}× its speed" for p in sorted(behind, key=lambda p: p["ratio"]))


def invariant_decode_headline(peers, invariant_rows, dtypes, stored_bytes, cores):
    """Headline rows: our batch-invariant decode (causalattn_bench's BM_Decode rows, batch 1,
    Hq=32, Hkv=8, D=128 as the peers' decode) against ggml's on the same cache dtype."""
    best = best_seconds(peers["rows"])
    out = []
    for r in invariant_rows:
        threads = r["threads"] or cores
        theirs = best.get((GGML_OF_DTYPE.get(r.get("kv_dtype", 0)), "decode", 128, threads, r["Tk"]))
        if r["batch"] != 1 or not theirs:
            continue
        ours_ms = 2 * 8 * r["Tk"] * 128 * stored_bytes[r.get("kv_dtype", 0)] / r["rate"] / 1e6
        lead = theirs[0] * 1e3 / ours_ms
        out.append((f"batch-invariant decode, {dtypes[r.get('kv_dtype', 0)]} cache, Tk={r['Tk']}, batch 1, "
                    f"{_threads(threads, cores)}: llama.cpp's time on the same cache over ours",
                    f"{lead:.2f}× ({ours_ms:.1f} against {theirs[0] * 1e3:.1f} ms)", "> 1×", lead > 1.0))
    return out


def _threads(threads, cores):
    return "1 thread" if threads == 1 else f"{threads} threads"


def section(peers, bandwidth, cores):
    labels = {m["name"]: m["label"] for m in peers["methods"]}
    kv_bytes = {m["name"]: m["kv_bytes"] for m in peers["methods"]}
    best = best_seconds(peers["rows"])
    present = [m["name"] for m in peers["methods"] if any(k[0] == m["name"] for k in best)]
    versions = ", ".join(f"{k} {v}" for k, v in sorted(peers.get("versions", {}).items()))
    lines = ["", "## Beside the peers (tools/report.sh --with-peers)", "",
             f"Same inputs and threads for every method ({versions}; ggml from PyPI's llama-cpp-python sdist, "
             "built Release, native). Prefill: causal, B=1, H=8, GFLOP/s as ours are counted (2·D·T·(T+1)·H). "
             "Decode: one query, Hq=32, Hkv=8, ms per step and GB/s of K and V read. OpenVINO and ONNX Runtime's "
             "MHA align causal top-left, so their one-token decode runs non-causal (it sees every key, as it "
             "should). ONNX Runtime's GQA decodes from past_key/past_value, copying them into its present outputs "
             "each step; its MHA computes causal attention through the whole T × T score matrix "
             "(unidirectional=1), with K and V repeated per head (no GQA). ggml's f16 cache path rounds the query "
             "to f16; its q8_0 cache (decode only) quantizes the query to q8_0 for integer dot products, and the "
             "headline sets it against our batch-invariant decode with a q8_0 cache. Best time over the passes; each pass ran every (method, case) once in a random order with "
             "the FMA peak measured at its start. The smallest lead is the least, over the peers, of a peer's time over "
             "ours in its dtype (OpenVINO bf16 against ours in bf16, ggml's f16 cache against ours with f16 K/V, the "
             "rest against ours in f32).", ""]
    headline_line = headline(peers, labels, cores)
    if headline_line:
        lines += [f"**Headline: {headline_line}.**", ""]
    lines += ["| method | prefill check | decode check |", "|---|---|---|"]
    for name, modes in peers.get("checks", {}).items():
        cells = []
        for mode in ("prefill", "decode"):
            r = modes.get(mode)
            if r is None:
                cells.append("not run (decode only)")
            elif r.get("error") is None:
                cells.append(f"failed: {r.get('failure', '')}")
            else:
                cells.append(f"{'ok' if r['ok'] else 'WRONG, not timed'}: {r['error']:.1e} of max|v| "
                             f"(tolerance {r['tolerance']:.0e})")
        lines.append(f"| {labels.get(name, name)} | " + " | ".join(cells) + " |")
    for name, reason in peers.get("skipped", {}).items():
        lines.append(f"| {labels.get(name, name)} | skipped: {reason} | |")

    for mode in ("prefill", "decode"):
        for d in sorted({k[2] for k in best if k[1] == mode}):
            for threads in sorted({k[3] for k in best if k[1] == mode and k[2] == d}):
                sizes = sorted({k[4] for k in best if k[1:4] == (mode, d, threads)})
                methods = [m for m in present if any(k[0] == m and k[1:4] == (mode, d, threads) for k in best)]
                unit = "GFLOP/s, best / median" if mode == "prefill" else "ms, best / median (GB/s at the best)"
                lines += ["", f"### {mode}, D={d}, {_threads(threads, cores)}: {unit}", "",
                          f"| {'T' if mode == 'prefill' else 'Tk'} | " + " | ".join(labels[m] for m in methods) +
                          " | smallest lead (peer's time ÷ ours, same dtype) | FMA peak |", "|---|" + "---|" * (len(methods) + 2)]
                for size in sizes:
                    cells, peer_times, peak = [], [], None
                    for m in methods:
                        got = best.get((m, mode, d, threads, size))
                        if not got:
                            cells.append("")
                            continue
                        seconds, median, peak = got[0], got[1], got[2] or peak
                        if mode == "prefill":
                            rate = 2.0 * d * size * (size + 1) * 8 / 1e9
                            cells.append(f"{rate / seconds:.1f} / {rate / median:.1f}")
                        else:
                            gbps = 2.0 * size * 8 * d * kv_bytes[m] / seconds / 1e9
                            cells.append(f"{seconds * 1e3:.2f} / {median * 1e3:.2f} ({gbps:.1f})")
                        ours = best.get((OURS.get(m, OURS_DEFAULT), mode, d, threads, size))
                        if not m.startswith("causalattn") and ours:
                            peer_times.append(seconds / ours[0])
                    lead = f"{min(peer_times):.2f}×" if peer_times else ""
                    lines.append(f"| {size} | " + " | ".join(cells) + f" | {lead} | "
                                 f"{f'{peak:.0f}' if peak else ''} |")
    if bandwidth:
        lines += ["", "Read bandwidth measured by the sweep: " +
                  ", ".join(f"{v:.1f} GB/s ({_threads(k, cores) if k else 'all threads'})"
                            for k, v in sorted(bandwidth.items())) + "."]
    return lines


def plots(peers, bandwidth, cores, out_dir):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    labels = {m["name"]: m["label"] for m in peers["methods"]}
    kv_bytes = {m["name"]: m["kv_bytes"] for m in peers["methods"]}
    points = comparisons(peers)
    made = []
    prefill = [p for p in points if p["mode"] == "prefill"]
    if prefill:
        fig, ax = plt.subplots(figsize=(7, 4.8))
        for (peer, d, threads) in sorted({(p["peer"], p["D"], p["threads"]) for p in prefill}):
            pts = sorted((p["size"], p["ratio"]) for p in prefill if (p["peer"], p["D"], p["threads"]) == (peer, d, threads))
            ax.plot(*zip(*pts), marker="o", linestyle="-" if threads == 1 else "--",
                    label=f"over {labels[peer]}, D={d}, {_threads(threads, cores)}")
        ax.axhline(1.0, color="black", linewidth=1)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("sequence length T")
        ax.set_ylabel("our speedup (peer's time ÷ ours)")
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title("Causal prefill: our speedup over each peer (above 1: we lead)")
        ax.legend(fontsize=6)
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "peers_speedup.png"), dpi=110)
        plt.close(fig)
        made.append("peers_speedup.png")
    best = best_seconds(peers["rows"])
    decode = sorted(k for k in best if k[1] == "decode" and k[3] == 1)
    if decode:
        tk = max(k[4] for k in decode)
        bars = [(labels[k[0]], 2.0 * tk * 8 * k[2] * kv_bytes[k[0]] / best[k][0] / 1e9) for k in decode if k[4] == tk]
        fig, ax = plt.subplots(figsize=(7, 4.8))
        ax.barh([b[0] for b in bars], [b[1] for b in bars], color="tab:blue")
        if 1 in bandwidth:
            ax.axvline(bandwidth[1], color="tab:red", linestyle=":", label="read bandwidth, 1 thread")
            ax.legend(fontsize=7)
        ax.set_xlabel("GB/s of K and V read (stored bytes)")
        ax.set_title(f"Decode, Tk={tk}, Hq=32, Hkv=8, D=128, 1 thread")
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "peers_decode.png"), dpi=110)
        plt.close(fig)
        made.append("peers_decode.png")
    return made
