#!/usr/bin/env python3
"""Turns causalattn_bench JSON into report.md with plots: rates, % of the measured FMA peak,
causal over non-causal speedup, thread scaling. Usage: report.py BENCH_JSON OUT_DIR"""
import json
import os
import re
import subprocess
import sys


def parse(path):
    """Best repetition of each case: a neighbour on a shared machine only ever slows a run down."""
    data = json.load(open(path))
    peak = None
    best = {}
    for b in data["benchmarks"]:
        if b.get("error_occurred") or b.get("run_type", "iteration") != "iteration":
            continue
        name = b["run_name"] if "run_name" in b else b["name"]
        gflops = b["FLOPS"] / 1e9
        if name.startswith("BM_PeakFma"):
            peak = max(peak or 0.0, gflops)
            continue
        best[name] = max(best.get(name, 0.0), gflops)
    rows = []
    for name, gflops in best.items():
        args = dict(re.findall(r"(\w+):(\d+)", name))
        rows.append({"method": name.split("/")[0], "T": int(args["T"]), "D": int(args["D"]),
                     "causal": int(args.get("causal", 1)), "threads": int(args.get("threads", 1)),
                     "gflops": gflops})
    return data["context"], peak, rows


def find(rows, **key):
    for r in rows:
        if all(r[k] == v for k, v in key.items()):
            return r
    return None


def git_commit(root):
    try:
        return subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_model():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def plots(rows, peak, out_dir):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    made = []
    dims = sorted({r["D"] for r in rows if r["method"] == "BM_Attention"})
    fig, axes = plt.subplots(1, len(dims), figsize=(6 * len(dims), 4.5), squeeze=False)
    for ax, d in zip(axes[0], dims):
        for threads, style in ((1, "-"), (0, "--")):
            for causal, color in ((1, "tab:blue"), (0, "tab:orange")):
                pts = sorted((r["T"], r["gflops"]) for r in rows if r["method"] == "BM_Attention"
                             and r["D"] == d and r["causal"] == causal and r["threads"] == threads)
                if pts:
                    label = f"{'causal' if causal else 'non-causal'}, {'1 thread' if threads == 1 else 'all threads'}"
                    ax.plot(*zip(*pts), style, marker="o", color=color, label=label)
        ref = sorted((r["T"], r["gflops"]) for r in rows if r["method"] == "BM_Reference" and r["D"] == d)
        if ref:
            ax.plot(*zip(*ref), ":", marker="x", color="gray", label="textbook reference (double, 1 thread)")
        if peak:
            ax.axhline(peak, color="black", linewidth=0.8, label=f"FMA peak, 1 core ({peak:.0f})")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("sequence length T (tokens)")
        ax.set_ylabel("GFLOP/s (causal FLOPs, DESIGN.md §1)")
        ax.set_title(f"B=1, H=8, D={d}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "gflops.png"), dpi=110)
    made.append("gflops.png")

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for d in dims:
        pts = []
        for r in rows:
            if r["method"] == "BM_Attention" and r["D"] == d and r["causal"] == 1 and r["threads"] == 1:
                nc = find(rows, method="BM_Attention", D=d, T=r["T"], causal=0, threads=1)
                if nc:
                    pts.append((r["T"], r["gflops"] / nc["gflops"]))
        if pts:
            ax.plot(*zip(*sorted(pts)), marker="o", label=f"D={d}, 1 thread")
    ax.axhline(2.0, color="black", linewidth=0.8, label="ideal 2×")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("sequence length T (tokens)")
    ax.set_ylabel("time non-causal / time causal")
    ax.set_title("What skipping tiles above the diagonal buys")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "causal_speedup.png"), dpi=110)
    made.append("causal_speedup.png")
    return made


def main():
    bench_json, out_dir = sys.argv[1], sys.argv[2]
    context, peak, rows = parse(bench_json)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    lines = ["# causalattn performance report", ""]
    lines += [f"- CPU: {cpu_model()}, {context.get('num_cpus')} cores",
              f"- ISA: {context.get('causalattn_isa')}; library {context.get('causalattn_version')}, commit {git_commit(root)}",
              f"- date: {context.get('date')}",
              f"- measured FMA peak, one core, same run: {peak:.1f} GFLOP/s" if peak else "- FMA peak: not measured",
              "", "FLOPs are counted as DESIGN.md §1 counts them for every method and mode: 2·D·T·(T+1) per "
              "(batch, head), so a non-causal rate is the causal work divided by the non-causal time.", ""]
    lines += ["## Kernel over sequence length", "",
              "| D | threads | T | causal GFLOP/s | % of 1-core peak | non-causal time / causal time | threads speedup |",
              "|---|---|---|---|---|---|---|"]
    for r in sorted((r for r in rows if r["method"] == "BM_Attention" and r["causal"] == 1),
                    key=lambda r: (r["D"], r["threads"] != 1, r["T"])):
        nc = find(rows, method="BM_Attention", D=r["D"], T=r["T"], causal=0, threads=r["threads"])
        one = find(rows, method="BM_Attention", D=r["D"], T=r["T"], causal=1, threads=1)
        pct = f"{100 * r['gflops'] / peak:.0f}%" if peak and r["threads"] == 1 else ""
        ratio = f"{r['gflops'] / nc['gflops']:.2f}×" if nc else ""
        scale = f"{r['gflops'] / one['gflops']:.2f}×" if one and r["threads"] != 1 else ""
        lines.append(f"| {r['D']} | {'1' if r['threads'] == 1 else 'all'} | {r['T']} | {r['gflops']:.1f} | {pct} | {ratio} | {scale} |")
    ref_rows = [r for r in rows if r["method"] == "BM_Reference"]
    if ref_rows:
        lines += ["", "## Against the naive textbook reference (double, one thread)", "",
                  "| D | T | reference GFLOP/s | causal kernel, 1 thread | speedup |", "|---|---|---|---|---|"]
        for r in sorted(ref_rows, key=lambda r: (r["D"], r["T"])):
            k = find(rows, method="BM_Attention", D=r["D"], T=r["T"], causal=1, threads=1)
            if k:
                lines.append(f"| {r['D']} | {r['T']} | {r['gflops']:.2f} | {k['gflops']:.1f} | {k['gflops'] / r['gflops']:.0f}× |")
    made = plots(rows, peak, out_dir)
    if made:
        lines += ["", "## Plots", ""] + [f"![{m}]({m})" for m in made]
    open(os.path.join(out_dir, "report.md"), "w").write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
