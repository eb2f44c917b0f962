// causalattn_bench: causal and non-causal prefill over sequence lengths, the machine's limits (FMA
// peak of the ISA in use, read bandwidth) and the baselines (the textbook algorithm with OpenBLAS,
// the naive double reference), in one binary so that ratios come from one run.
// FLOPs are counted as DESIGN.md §1 does for every method: 2·D·T·(T+1) per (batch, head).
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "causalattn/causalattn.h"
#include "peak_fma.hpp"
#include "read_bandwidth.hpp"
#include "reference/reference.hpp"
#ifdef CAUSALATTN_BENCH_HAVE_BLAS
#include <tbb/task_arena.h>

#include "textbook_blas.hpp"
#endif

namespace {

constexpr int64_t kBatch = 1;
constexpr int64_t kHeads = 8;
// The shapes of the sweep, as data: sequence lengths and head dims.
const std::vector<int64_t> kSeqLens = {128, 256, 512, 1000, 1024, 2048, 3000, 4096, 8192, 16384};
const std::vector<int64_t> kHeadDims = {64, 128};
const std::vector<int64_t> kReferenceSeqLens = {128, 256, 512, 1024};
// Machines here are shared: the report keeps each case's best repetition, as for the peak.
// Past 4096 tokens a case runs for seconds; fewer repetitions keep the sweep under 20 minutes.
int repetitions(int64_t t) { return t <= 4096 ? 3 : 2; }

double causal_flops(int64_t heads, int64_t t, int64_t d) { return 2.0 * d * t * (t + 1) * heads * kBatch; }

struct Inputs {
  std::vector<float> q, k, v, out;
  explicit Inputs(int64_t elements) : q(elements), k(elements), v(elements), out(elements) {
    std::mt19937 rng(42);
    std::normal_distribution<float> normal;
    for (auto* t : {&q, &k, &v})
      for (float& x : *t) x = normal(rng);
  }
};

void set_common_counters(benchmark::State& state, double flops) {
  state.counters["FLOPS"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(causalattn_isa());
}

// args: T, D, causal (1/0), threads (0 = all)
void BM_Attention(benchmark::State& state) {
  const int64_t t = state.range(0), d = state.range(1);
  const bool causal = state.range(2) != 0;
  Inputs in(kBatch * kHeads * t * d);
  const causalattn_shape shape{kBatch, kHeads, kHeads, t, t, d};
  const causalattn_layout layout{kHeads * t * d, t * d, d};
  causalattn_options options{};
  options.flags = causal ? 0u : CAUSALATTN_NON_CAUSAL;
  options.num_threads = static_cast<int32_t>(state.range(3));
  auto call = [&] {
    return causalattn_forward_f32(&shape, in.q.data(), layout, in.k.data(), layout, in.v.data(), layout,
                                  in.out.data(), layout, &options);
  };
  if (call() != CAUSALATTN_OK) {  // also the warm-up: workspaces and pages are touched once
    state.SkipWithError(causalattn_last_error());
    return;
  }
  for (auto _ : state) {
    call();
    benchmark::DoNotOptimize(in.out.data());
    benchmark::ClobberMemory();
  }
  set_common_counters(state, causal_flops(kHeads, t, d));
}

// The textbook algorithm in double: the naive baseline (one thread).
void BM_Reference(benchmark::State& state) {
  const int64_t t = state.range(0), d = state.range(1);
  Inputs in(kBatch * kHeads * t * d);
  const causalattn_shape shape{kBatch, kHeads, kHeads, t, t, d};
  const causalattn_layout layout{kHeads * t * d, t * d, d};
  for (auto _ : state) {
    auto result = causalattn::reference::attention(shape, in.q.data(), layout, in.k.data(), layout, in.v.data(),
                                                   layout, true, 0.0);
    benchmark::DoNotOptimize(result.out.data());
  }
  set_common_counters(state, causal_flops(kHeads, t, d));
}

#ifdef CAUSALATTN_BENCH_HAVE_BLAS
// The textbook algorithm with OpenBLAS, as a user would write it. args: T, D, threads (0 = all)
void BM_TextbookBlas(benchmark::State& state) {
  const int64_t t = state.range(0), d = state.range(1);
  const int threads = state.range(2) == 0 ? tbb::this_task_arena::max_concurrency() : static_cast<int>(state.range(2));
  Inputs in(kBatch * kHeads * t * d);
  causalattn::bench::TextbookBlasAttention textbook;
  textbook.run(kHeads, t, d, in.q.data(), in.k.data(), in.v.data(), in.out.data(), threads);  // warm-up
  for (auto _ : state) {
    textbook.run(kHeads, t, d, in.q.data(), in.k.data(), in.v.data(), in.out.data(), threads);
    benchmark::DoNotOptimize(in.out.data());
    benchmark::ClobberMemory();
  }
  set_common_counters(state, causal_flops(kHeads, t, d));
}
#endif

// Read bandwidth from memory: 1 GiB, far past any cache. args: threads (0 = all)
void BM_ReadBandwidth(benchmark::State& state) {
  const int threads = state.range(0) == 0 ? static_cast<int>(std::thread::hardware_concurrency())
                                          : static_cast<int>(state.range(0));
  const std::vector<float> data((size_t{1} << 30) / sizeof(float), 1.0f);
  for (auto _ : state) benchmark::DoNotOptimize(causalattn::bench::read_all(data.data(), data.size(), threads));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size() * sizeof(float)));
}

// The FMA peak of the ISA the kernels use, one thread.
void BM_PeakFma(benchmark::State& state) {
  const causalattn::bench::PeakLoop loop = causalattn::bench::peak_loop(causalattn_isa());
  constexpr int64_t kIterations = 1 << 20;
  for (auto _ : state) benchmark::DoNotOptimize(loop.run(kIterations));
  set_common_counters(state, static_cast<double>(kIterations * loop.flops_per_iteration));
}

void register_benchmarks() {
  // The peak is the best of several runs: a neighbour on a shared machine only ever lowers it.
  benchmark::RegisterBenchmark("BM_PeakFma", BM_PeakFma)->Unit(benchmark::kMillisecond)->Repetitions(6);
  benchmark::RegisterBenchmark("BM_ReadBandwidth", BM_ReadBandwidth)
      ->Arg(1)
      ->Arg(0)
      ->ArgName("threads")
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime()
      ->Repetitions(3);
  for (int64_t d : kHeadDims) {
    for (int64_t threads : {1, 0}) {
      for (int64_t causal : {1, 0}) {
        for (int64_t t : kSeqLens) {
          benchmark::RegisterBenchmark("BM_Attention", BM_Attention)
              ->Args({t, d, causal, threads})
              ->ArgNames({"T", "D", "causal", "threads"})
              ->Unit(benchmark::kMillisecond)
              ->UseRealTime()
              ->Repetitions(repetitions(t));
        }
      }
#ifdef CAUSALATTN_BENCH_HAVE_BLAS
      for (int64_t t : kSeqLens) {
        benchmark::RegisterBenchmark("BM_TextbookBlas", BM_TextbookBlas)
            ->Args({t, d, threads})
            ->ArgNames({"T", "D", "threads"})
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime()
            ->Repetitions(repetitions(t));
      }
#endif
    }
    for (int64_t t : kReferenceSeqLens) {
      benchmark::RegisterBenchmark("BM_Reference", BM_Reference)
          ->Args({t, d})
          ->ArgNames({"T", "D"})
          ->Unit(benchmark::kMillisecond)
          ->Iterations(1);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  register_benchmarks();
  benchmark::AddCustomContext("causalattn_isa", causalattn_isa());
  benchmark::AddCustomContext("causalattn_version", causalattn_version());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
