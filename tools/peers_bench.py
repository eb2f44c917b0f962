"""The CPU attention a user would pick instead of ours, on this machine, for tools/report.py.

tools/report.sh --with-peers runs it: our Python binding (f32, f16 K/V, and bf16 through PyTorch
tensors), OpenVINO's ScaledDotProductAttention
(f32, and bf16 where the CPU has it), ONNX Runtime's GroupQueryAttention and MultiHeadAttention (com.microsoft) and
llama.cpp's ggml_flash_attn_ext (f16 and f32 K/V, and a q8_0 cache in decode, through
bench/peers/ggml_attention.cpp), on the
same shapes and thread counts. Every method is first checked against a float64 reference at a
small size; one that disagrees is reported as wrong and not timed. Repetitions run in passes, each
pass every (method, case) once in a random order with the FMA peak measured at its start.

Usage: peers_bench.py OUT.json --bench CAUSALATTN_BENCH --ggml GGML_DRIVER [--quick]
"""
import argparse
import json
import os
import random
import subprocess
import time

import numpy as np

CORES = os.cpu_count() or 1


def prefill_flops(c):
    return 2.0 * c["D"] * c["T"] * (c["T"] + 1) * c["H"]


def decode_bytes(c, kv_bytes):
    return 2.0 * c["Tk"] * c["Hkv"] * c["D"] * kv_bytes


def reference(q, k, v, causal):
    """q [H, T, D], k, v [Hkv, S, D] in float64: softmax(q k^T / sqrt(D)) v, bottom-right causal."""
    H, T, D = q.shape
    Hkv, S, _ = k.shape
    out = np.empty((H, T, D))
    for h in range(H):
        s = q[h].astype(np.float64) @ k[h // (H // Hkv)].astype(np.float64).T / np.sqrt(D)
        if causal:
            s[np.triu(np.ones((T, S), bool), k=S - T + 1)] = -np.inf
        s = np.exp(s - s.max(axis=1, keepdims=True))
        out[h] = (s / s.sum(axis=1, keepdims=True)) @ v[h // (H // Hkv)].astype(np.float64)
    return out


def inputs(c, seed=0):
    rng = np.random.default_rng(seed)
    T = c["T"] if c["mode"] == "prefill" else 1
    S = c["T"] if c["mode"] == "prefill" else c["Tk"]
    q = rng.standard_normal((c["H"], T, c["D"]), dtype=np.float32)
    k = rng.standard_normal((c["Hkv"], S, c["D"]), dtype=np.float32)
    v = rng.standard_normal((c["Hkv"], S, c["D"]), dtype=np.float32)
    return q, k, v


def best_of(run, budget=0.3, most=10):
    """Runs `run` once to warm up, then until `budget` seconds or `most` runs: the best time."""
    run()
    times = []
    start = time.perf_counter()
    while len(times) < most and (not times or time.perf_counter() - start < budget):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return min(times)


class Skip(Exception):
    pass


# Each method: prepare(case, q, k, v) -> a function computing [H, T, D] output (float32).

def ours(dtype):
    """f32, f16 (K/V in f16, Q and out f32) or bf16 (everything in bf16, as PyTorch tensors through
    DLPack: numpy has no bfloat16)."""
    import causalattn

    def prepare(c, q, k, v):
        threads = c["threads"]
        if dtype == "f16":
            k, v = k.astype(np.float16), v.astype(np.float16)
        # [1, T, H, D] views of [1, H, T, D] buffers: our fastest layout, read in place.
        qv, kv, vv = (x[None].transpose(0, 2, 1, 3) for x in (q, k, v))
        out = np.empty((1, q.shape[0], q.shape[1], q.shape[2]), np.float32).transpose(0, 2, 1, 3)
        as_f32 = lambda o: o[0].transpose(1, 0, 2)
        if dtype == "bf16":
            import torch
            qv, kv, vv = (torch.from_numpy(x[None]).to(torch.bfloat16).transpose(1, 2) for x in (q, k, v))
            out = torch.empty(qv.shape, dtype=torch.bfloat16).transpose(1, 2).contiguous().transpose(1, 2)
            as_f32 = lambda o: o[0].float().numpy().transpose(1, 0, 2)
        if c["mode"] == "prefill":
            def run():
                causalattn.flash_attn_func(qv, kv, vv, causal=True, out=out, num_threads=threads)
                return as_f32(out)
        else:
            def run():
                causalattn.flash_attn_with_kvcache(qv, kv, vv, cache_seqlens=kv.shape[1], causal=True, out=out,
                                                   num_threads=threads)
                return as_f32(out)
        return run
    return prepare


def rounded_to(x, name):
    """The values a method of ours is given, in f32: K/V through f16, or everything through bf16."""
    if name == "causalattn_f16kv":
        return x.astype(np.float16).astype(np.float32)
    if name == "causalattn_bf16":
        import torch
        return torch.from_numpy(x).to(torch.bfloat16).float().numpy()
    return x


def openvino_sdpa(precision):
    import openvino as ov
    import openvino.opset13 as ops
    core = ov.Core()
    if precision == "bf16" and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        raise Skip("this CPU has no bf16 for OpenVINO")

    def prepare(c, q, k, v):
        H, T, D = q.shape
        Hkv, S, _ = k.shape
        g = H // Hkv
        # GQA through broadcasting: q [1, Hkv, g, T, D] against k, v [1, Hkv, 1, S, D].
        qs, ks = ([1, H, T, D], [1, Hkv, S, D]) if g == 1 else ([1, Hkv, g, T, D], [1, Hkv, 1, S, D])
        pq, pk, pv = (ops.parameter(s, ov.Type.f32) for s in (qs, ks, ks))
        # OpenVINO aligns causal top-left: a one-token decode step runs non-causal (it sees all keys).
        model = ov.Model([ops.scaled_dot_product_attention(pq, pk, pv, causal=c["mode"] == "prefill")], [pq, pk, pv])
        compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": str(c["threads"]),
                                                     "INFERENCE_PRECISION_HINT": precision, "NUM_STREAMS": "1"})
        request = compiled.create_infer_request()
        feed = [q.reshape(qs), k.reshape(ks), v.reshape(ks)]

        def run():
            request.infer(feed)
            return request.get_output_tensor(0).data.reshape(H, T, D)
        return run
    return prepare


def ort_gqa():
    import onnxruntime as ort
    from onnx import TensorProto, helper

    def prepare(c, q, k, v):
        H, T, D = q.shape
        Hkv, S, _ = k.shape
        past = S - T  # decode: the cache before the new token, in ORT's past_key [1, Hkv, past, D]
        names = ["query", "key", "value", "past_key" if past else "", "past_value" if past else "", "seqlens_k",
                 "total_sequence_length"]
        node = helper.make_node("GroupQueryAttention", names, ["output", "present_key", "present_value"],
                                domain="com.microsoft", num_heads=H, kv_num_heads=Hkv)
        f = TensorProto.FLOAT
        declared = [helper.make_tensor_value_info("query", f, [1, T, H * D]),
                    helper.make_tensor_value_info("key", f, [1, T, Hkv * D]),
                    helper.make_tensor_value_info("value", f, [1, T, Hkv * D])]
        if past:
            declared += [helper.make_tensor_value_info(n, f, [1, Hkv, past, D]) for n in ("past_key", "past_value")]
        declared += [helper.make_tensor_value_info(n, TensorProto.INT32, [1])
                     for n in ("seqlens_k", "total_sequence_length")]
        graph = helper.make_graph([node], "gqa", declared,
                                  [helper.make_tensor_value_info(n, f, None)
                                   for n in ("output", "present_key", "present_value")])
        model = helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17),
                                                                       helper.make_opsetid("com.microsoft", 1)])
        options = ort.SessionOptions()
        options.intra_op_num_threads = c["threads"]
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        feed = {"query": q.transpose(1, 0, 2).reshape(1, T, H * D),
                "key": np.ascontiguousarray(k[:, past:].transpose(1, 0, 2)).reshape(1, T, Hkv * D),
                "value": np.ascontiguousarray(v[:, past:].transpose(1, 0, 2)).reshape(1, T, Hkv * D),
                "seqlens_k": np.array([S - 1], np.int32), "total_sequence_length": np.array([S], np.int32)}
        if past:
            feed["past_key"], feed["past_value"] = k[None, :, :past].copy(), v[None, :, :past].copy()

        def run():
            return session.run(["output"], feed)[0].reshape(T, H, D).transpose(1, 0, 2)
        return run
    return prepare


def ort_mha():
    """ONNX Runtime's MultiHeadAttention (com.microsoft): causal through unidirectional=1, which it
    computes by materialising the T x T scores; no GQA, so K and V are repeated per query head."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    def prepare(c, q, k, v):
        H, T, D = q.shape
        Hkv, S, _ = k.shape
        # Causal is aligned top-left: a one-token decode step runs non-causal (it sees every key).
        node = helper.make_node("MultiHeadAttention", ["query", "key", "value"], ["output"], domain="com.microsoft",
                                num_heads=H, unidirectional=int(c["mode"] == "prefill"))
        f = TensorProto.FLOAT
        graph = helper.make_graph([node], "mha", [helper.make_tensor_value_info("query", f, [1, T, H * D]),
                                                  helper.make_tensor_value_info("key", f, [1, S, H * D]),
                                                  helper.make_tensor_value_info("value", f, [1, S, H * D])],
                                  [helper.make_tensor_value_info("output", f, None)])
        model = helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17),
                                                                       helper.make_opsetid("com.microsoft", 1)])
        options = ort.SessionOptions()
        options.intra_op_num_threads = c["threads"]
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        g = H // Hkv
        feed = {"query": q.transpose(1, 0, 2).reshape(1, T, H * D),
                "key": np.repeat(k, g, axis=0).transpose(1, 0, 2).reshape(1, S, H * D),
                "value": np.repeat(v, g, axis=0).transpose(1, 0, 2).reshape(1, S, H * D)}

        def run():
            return session.run(["output"], feed)[0].reshape(T, H, D).transpose(1, 0, 2)
        return run
    return prepare


def ggml_driver(path, kv_type):
    if not path or not os.path.exists(path):
        raise Skip("ggml was not built (tools/report.sh --with-peers builds it from PyPI's llama-cpp-python sdist)")

    def args_of(c, mode, reps=3):
        T = c["T"] if c["mode"] == "prefill" else 1
        S = c["T"] if c["mode"] == "prefill" else c["Tk"]
        return [path, "--mode", mode, "--q-len", str(T), "--kv-len", str(S), "--dim", str(c["D"]), "--heads",
                str(c["H"]), "--kv-heads", str(c["Hkv"]), "--kv-type", kv_type, "--threads", str(c["threads"]),
                "--reps", str(reps)]

    def seconds(c):
        return json.loads(subprocess.run(args_of(c, "time"), check=True, capture_output=True, text=True).stdout)["best"]

    def check(c):
        r = json.loads(subprocess.run(args_of(c, "check"), check=True, capture_output=True, text=True).stdout)
        return r["max_error"] / r["v_max"]
    return seconds, check


# (name, label, kv bytes per element for decode's GB/s, tolerance relative to max|v|)
METHODS = [
    ("causalattn", "causalattn f32", 4, 2e-5),
    ("causalattn_f16kv", "causalattn, f16 K/V", 2, 2e-5),
    ("causalattn_bf16", "causalattn bf16", 2, 1e-2),  # P rounded to bf16 (2^-8), out bf16 (2^-8)
    ("openvino_f32", "OpenVINO SDPA f32", 4, 1e-4),
    ("openvino_bf16", "OpenVINO SDPA bf16", 4, 3e-2),
    ("ort_gqa", "ONNX Runtime GQA f32", 4, 1e-4),
    ("ort_mha", "ONNX Runtime MHA f32 (T×T scores)", 4, 1e-4),
    ("ggml_f16", "ggml flash_attn_ext, f16 K/V", 2, 2e-3),  # its one-query path rounds Q to f16
    ("ggml_f32", "ggml flash_attn_ext, f32 K/V", 4, 2e-5),
    # Q quantized to q8_0 for integer dot products: 2^-8 of |q| per block of 32
    ("ggml_q8_0", "ggml flash_attn_ext, q8_0 K/V", 34 / 32, 2e-3),
]
# Run in decode only: a quantized cache is what a decode step reads (the report sets our
# batch-invariant decode, from causalattn_bench, beside it).
DECODE_ONLY = {"ggml_q8_0"}


def make_methods(ggml_path):
    """name -> (seconds(case), check(case) -> max error / max|v|), or a reason it is skipped."""
    made, skipped = {}, {}
    factories = {
        "causalattn": lambda: ours("f32"), "causalattn_f16kv": lambda: ours("f16"), "causalattn_bf16": lambda: ours("bf16"),
        "openvino_f32": lambda: openvino_sdpa("f32"), "openvino_bf16": lambda: openvino_sdpa("bf16"),
        "ort_gqa": ort_gqa, "ort_mha": ort_mha,
    }
    for name, _, _, _ in METHODS:
        try:
            if name.startswith("ggml"):
                made[name] = ggml_driver(ggml_path, name.split("_", 1)[1])
                continue
            prepare = factories[name]()
        except Skip as e:
            skipped[name] = str(e)
            continue
        except Exception as e:  # a peer that is not installed or fails to load
            skipped[name] = f"{type(e).__name__}: {e}"
            continue

        def seconds(c, prepare=prepare, name=name):
            q, k, v = inputs(c)
            if name != "causalattn_f16kv":  # (its Q stays f32)
                q = rounded_to(q, name)
            k, v = rounded_to(k, name), rounded_to(v, name)
            return best_of(prepare(c, q, k, v))

        def check(c, prepare=prepare, name=name):
            q, k, v = inputs(c, seed=1)
            if name != "causalattn_f16kv":
                q = rounded_to(q, name)
            k, v = rounded_to(k, name), rounded_to(v, name)
            got = prepare(c, q, k, v)()
            return float(np.max(np.abs(got - reference(q, k, v, True)))) / float(np.max(np.abs(v)))
        made[name] = (seconds, check)
    return made, skipped


def fma_peak(bench, threads):
    """GFLOP/s of our FMA loop right now (causalattn_bench's BM_PeakFma), or None."""
    if not bench:
        return None
    run = subprocess.run([bench, f"--benchmark_filter=BM_PeakFma/threads:{threads}/", "--benchmark_repetitions=1",
                          "--benchmark_min_time=0.05", "--benchmark_format=json"], capture_output=True, text=True)
    try:
        return max(b["FLOPS"] for b in json.loads(run.stdout)["benchmarks"]) / 1e9
    except (ValueError, KeyError):
        return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--bench", default="")
    parser.add_argument("--ggml", default="")
    parser.add_argument("--quick", action="store_true")
    a = parser.parse_args()
    threads = [1] if a.quick or CORES == 1 else [1, CORES]
    prefill_ts, dims, decode_tks, passes = ([256, 1024], [128], [4096], 1) if a.quick else \
        ([256, 1024, 4096], [64, 128], [4096, 32768], 3)
    cases = [dict(mode="prefill", T=t, D=d, H=8, Hkv=8, threads=n) for d in dims for t in prefill_ts for n in threads]
    cases += [dict(mode="decode", Tk=tk, D=128, H=32, Hkv=8, threads=n) for tk in decode_tks for n in threads]

    methods, skipped = make_methods(a.ggml)
    checks = {}
    for name in list(methods):
        for mode, small in (("prefill", dict(mode="prefill", T=77, D=64, H=2, Hkv=2, threads=1)),
                            ("decode", dict(mode="decode", Tk=300, D=128, H=8, Hkv=2, threads=1))):
            if name in DECODE_ONLY and mode == "prefill":
                continue
            tolerance = next(m[3] for m in METHODS if m[0] == name)
            try:
                error = methods[name][1](small)
                checks.setdefault(name, {})[mode] = {"error": error, "tolerance": tolerance, "ok": error <= tolerance}
            except Exception as e:
                checks.setdefault(name, {})[mode] = {"error": None, "ok": False, "failure": f"{type(e).__name__}: {e}"}
        print(f"  check {name}: " + ", ".join(f"{m} {'ok' if r['ok'] else 'WRONG'} ({r.get('error')})"
                                                for m, r in checks[name].items()), flush=True)

    rows = []
    jobs = [(name, c) for name in methods for c in cases if checks[name].get(c["mode"], {}).get("ok")]
    for p in range(passes):
        peaks = {n: fma_peak(a.bench, 0 if n > 1 else 1) for n in threads}
        random.Random(p).shuffle(jobs)
        for name, c in jobs:
            try:
                rows.append(dict(c, method=name, seconds=methods[name][0](c), fma_peak=peaks[c["threads"]], ok=True))
            except Exception as e:
                rows.append(dict(c, method=name, ok=False, failure=f"{type(e).__name__}: {e}"))
        print(f"  peers pass {p + 1}/{passes} done", flush=True)
    versions = {}
    for module in ("openvino", "onnxruntime", "numpy"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            pass
    json.dump({"methods": [dict(name=m[0], label=m[1], kv_bytes=m[2]) for m in METHODS], "rows": rows,
               "checks": checks, "skipped": skipped, "versions": versions, "cores": CORES}, open(a.out, "w"), indent=1)


if __name__ == "__main__":
    main()
