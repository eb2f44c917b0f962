// causalattn_bench: causal and non-causal prefill over sequence lengths, the machine's limits (FMA
// peak of the ISA in use, read bandwidth) and the baselines (the textbook algorithm with OpenBLAS,
// the naive double reference), in one binary so that ratios come from one run.
// FLOPs are counted as docs/design.md does for every method: 2·D·T·(T+1) per (batch, head).
#include <benchmark/benchmark.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "causalattn/causalattn.h"
#include "causalattn/modules.hpp"
#include "peak_fma.hpp"
#include "read_bandwidth.hpp"
#include "reference/reference.hpp"
#ifdef CAUSALATTN_BENCH_HAVE_BLAS
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

// The one-core FMA peak, measured for about 15 ms right before a one-thread case's timed loop:
// within one run the clock and the neighbours move the peak by 10-30%, so the report reads each
// such case against the peak of its own moment (counter fma_peak_here, GFLOP/s) beside the run's.
double peak_here() {
  const causalattn::bench::PeakLoop loop = causalattn::bench::peak_loop(causalattn_isa());
  constexpr int64_t kIterations = 1 << 22;
  const auto start = std::chrono::steady_clock::now();
  benchmark::DoNotOptimize(loop.run(kIterations));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return kIterations * loop.flops_per_iteration / seconds / 1e9;
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
  const double peak = options.num_threads == 1 ? peak_here() : 0.0;
  for (auto _ : state) {
    call();
    benchmark::DoNotOptimize(in.out.data());
    benchmark::ClobberMemory();
  }
  set_common_counters(state, causal_flops(kHeads, t, d));
  if (peak > 0.0) state.counters["fma_peak_here"] = peak;
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

// Cheap deterministic values in [-1, 1): the big caches would take long to fill from a normal
// distribution, and a kernel's speed does not depend on the values (none is subnormal).
void fill_pattern(std::vector<float>& data, uint32_t seed) {
  uint32_t x = seed * 2654435761u + 1;
  for (float& f : data) {
    x = x * 1664525u + 1013904223u;
    f = static_cast<float>(x >> 8) * 0x1p-23f - 1.0f;
  }
}

// ---- Projections (issue: textbook modules) ----

// The projection shapes: the target's M=4096, N=K=1024, and GPT-2 small's fused QKV (N = 3·768)
// at a short and a full context.
const std::vector<std::vector<int64_t>> kLinearShapes = {{4096, 1024, 1024}, {1024, 2304, 768}, {64, 2304, 768}};

struct LinearInputs {
  std::vector<float> x, w, bias, y;
  LinearInputs(int64_t m, int64_t n, int64_t k) : x(m * k), w(n * k), bias(n), y(m * n) {
    fill_pattern(x, 1);
    fill_pattern(w, 2);
    fill_pattern(bias, 3);
  }
};

double linear_flops(int64_t m, int64_t n, int64_t k) { return 2.0 * m * n * k; }

// Times call() (a causalattn_linear_* call writing y) as a product of m × n × k.
template <class Call>
void time_linear(benchmark::State& state, int64_t m, int64_t n, int64_t k, Call call, const void* y) {
  if (call() != CAUSALATTN_OK) {
    state.SkipWithError(causalattn_last_error());
    return;
  }
  for (auto _ : state) {
    call();
    benchmark::DoNotOptimize(y);
    benchmark::ClobberMemory();
  }
  set_common_counters(state, linear_flops(m, n, k));
}

// y = x · Wᵀ + b with our microkernels (W packed on every call). args: M, N, K, threads (0 = all)
void BM_Linear(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  LinearInputs in(m, n, k);
  time_linear(state, m, n, k, [&] {
    return causalattn_linear_f32(m, n, k, in.x.data(), k, in.w.data(), k, in.bias.data(), in.y.data(), n,
                                 static_cast<int32_t>(state.range(3)));
  }, in.y.data());
}

// Allocates on 64-byte boundaries, as PyTorch's CPU allocator does for the tensors an engine
// passes (a large std::vector starts 16 bytes past a page, which makes each 512-byte f32 row touch
// 9 cache lines instead of 8, and each 256-byte bf16 row 5 instead of 4).
template <class T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <class U>
  explicit CacheLineAllocator(const CacheLineAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{64})); }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, std::align_val_t{64}); }
  friend bool operator==(const CacheLineAllocator&, const CacheLineAllocator&) { return true; }
};

// A tensor as stored: its elements of any dtype in 64-bit words, 64-byte aligned.
using Stored = std::vector<uint64_t, CacheLineAllocator<uint64_t>>;

Stored stored(const std::vector<float>& x, causalattn_dtype t);

// The same product in bf16 (causalattn_linear_bf16: AMX tiles on the amx ISA, else widened to
// f32), W packed on every call. args: M, N, K, threads (0 = all)
void BM_LinearBf16(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  LinearInputs in(m, n, k);
  const Stored x = stored(in.x, CAUSALATTN_DTYPE_BF16), w = stored(in.w, CAUSALATTN_DTYPE_BF16),
               bias = stored(in.bias, CAUSALATTN_DTYPE_BF16);
  Stored y = stored(in.y, CAUSALATTN_DTYPE_BF16);
  time_linear(state, m, n, k, [&] {
    return causalattn_linear_bf16(m, n, k, x.data(), k, w.data(), k, bias.data(), y.data(), n,
                                  static_cast<int32_t>(state.range(3)));
  }, y.data());
}

#ifdef CAUSALATTN_BENCH_HAVE_BLAS
// The same product with OpenBLAS's sgemm. args: M, N, K, threads (0 = all)
void BM_LinearBlas(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  const int threads = state.range(3) == 0 ? tbb::this_task_arena::max_concurrency() : static_cast<int>(state.range(3));
  LinearInputs in(m, n, k);
  causalattn::bench::blas_linear(m, n, k, in.x.data(), in.w.data(), in.bias.data(), in.y.data(), threads);
  for (auto _ : state) {
    causalattn::bench::blas_linear(m, n, k, in.x.data(), in.w.data(), in.bias.data(), in.y.data(), threads);
    benchmark::DoNotOptimize(in.y.data());
    benchmark::ClobberMemory();
  }
  set_common_counters(state, linear_flops(m, n, k));
}
#endif

// ---- A GPT-2-small attention layer (issue: textbook modules) ----

constexpr int64_t kGpt2Dim = 768, kGpt2Heads = 12, kGpt2Context = 1024;
const std::vector<int64_t> kGpt2Tokens = {64, 128, 256, 512, 1024};

// The book's MultiHeadAttention at GPT-2 small's sizes (qkv_bias on, as GPT-2's c_attn), eval
// mode, one sequence of T tokens, in f32 (T = float) or bf16 (T = causalattn::bf16: the module
// after to(CAUSALATTN_DTYPE_BF16)). The rate counts the four projections and the causal attention.
// args: T, threads (0 = all)
template <class T>
void gpt2_layer(benchmark::State& state) {
  const int64_t t = state.range(0);
  causalattn::MultiHeadAttention layer(kGpt2Dim, kGpt2Dim, kGpt2Context, 0.0f, kGpt2Heads, true);
  layer.eval();
  layer.set_num_threads(static_cast<int>(state.range(1)));
  layer.to(causalattn::dtype_of<T>);
  std::vector<float> x32(t * kGpt2Dim);
  fill_pattern(x32, 4);
  std::vector<T> x(x32.size()), y(x32.size());
  causalattn_convert(x32.data(), CAUSALATTN_DTYPE_F32, x.data(), causalattn::dtype_of<T>,
                     static_cast<int64_t>(x32.size()));
  layer.forward(x.data(), 1, t, kGpt2Dim, y.data());  // warm-up
  for (auto _ : state) {
    layer.forward(x.data(), 1, t, kGpt2Dim, y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  const double projections = 2.0 * t * kGpt2Dim * 4 * kGpt2Dim;
  set_common_counters(state, projections + causal_flops(kGpt2Heads, t, kGpt2Dim / kGpt2Heads));
}

void BM_Gpt2Layer(benchmark::State& state) { gpt2_layer<float>(state); }
void BM_Gpt2LayerBf16(benchmark::State& state) { gpt2_layer<causalattn::bf16>(state); }

// ---- Serving shapes (issue: decode, chunked prefill, sliding window) ----

constexpr int64_t kDecodeQHeads = 32, kDecodeKvHeads = 8, kDecodeHeadDim = 128, kPageTokens = 16;
const std::vector<int64_t> kDecodeKvLens = {512, 2048, 8192, 32768, 131072};
// (q_dtype, kv_dtype) pairs of BM_PrefillDtypes: f32 queries with 16- and 8-bit caches, all bf16.
const std::vector<std::vector<int64_t>> kPrefillDtypes = {
    {CAUSALATTN_DTYPE_F32, CAUSALATTN_DTYPE_F32}, {CAUSALATTN_DTYPE_F32, CAUSALATTN_DTYPE_BF16},
    {CAUSALATTN_DTYPE_F32, CAUSALATTN_DTYPE_F16}, {CAUSALATTN_DTYPE_F32, CAUSALATTN_DTYPE_Q8_0},
    {CAUSALATTN_DTYPE_BF16, CAUSALATTN_DTYPE_BF16}};


// Bytes of n elements stored as t (q8_0: blocks of 32 in 34 bytes).
int64_t stored_bytes(causalattn_dtype t, int64_t n) {
  return t == CAUSALATTN_DTYPE_F32 ? 4 * n : t == CAUSALATTN_DTYPE_Q8_0 ? n / 32 * 34 : 2 * n;
}

// f32 values stored as t, through the library's own conversion.
Stored stored(const std::vector<float>& x, causalattn_dtype t) {
  Stored out(static_cast<size_t>((stored_bytes(t, static_cast<int64_t>(x.size())) + 7) / 8));
  if (causalattn_convert(x.data(), CAUSALATTN_DTYPE_F32, out.data(), t, static_cast<int64_t>(x.size())) != CAUSALATTN_OK) {
    std::fprintf(stderr, "causalattn_convert: %s\n", causalattn_last_error());
    std::abort();
  }
  return out;
}

// Decode: one new token per sequence against a paged KV cache of Tk keys per sequence, pages of
// 16 tokens laid out [page][kv head][slot][D] (a head's tokens of a page are contiguous), Hq=32,
// Hkv=8, D=128, K and V stored as kv_dtype (a causalattn_dtype). Memory-bound: the rate reported
// is the bytes of K and V read per second, as stored. args: Tk, batch, threads (0 = all), kv_dtype,
// invariant (1: CAUSALATTN_BATCH_INVARIANT)
void BM_Decode(benchmark::State& state) {
  const int64_t kv_len = state.range(0), batch = state.range(1), D = kDecodeHeadDim;
  const auto kv_dtype = static_cast<causalattn_dtype>(state.range(3));
  const int64_t pages_per_seq = kv_len / kPageTokens, num_pages = batch * pages_per_seq;
  const int64_t row = kDecodeKvHeads * D;
  std::vector<float> k(num_pages * kPageTokens * row), v(k.size()), q(batch * kDecodeQHeads * D),
      out(q.size());
  fill_pattern(k, 1);
  fill_pattern(v, 2);
  fill_pattern(q, 3);
  const Stored k_stored = stored(k, kv_dtype), v_stored = stored(v, kv_dtype);
  k = {};
  v = {};
  std::vector<int32_t> block_table(num_pages);
  for (int64_t i = 0; i < num_pages; ++i) block_table[i] = static_cast<int32_t>(i);
  std::vector<int64_t> kv_lens(batch, kv_len);
  causalattn_seq_lens lens{};
  lens.kv_lens = kv_lens.data();
  const causalattn_kv_pages pages{block_table.data(), pages_per_seq, kPageTokens, num_pages};
  const int64_t units = kv_dtype == CAUSALATTN_DTYPE_Q8_0 ? D / 32 : D;  // strides count blocks in q8_0
  causalattn_attend_args a{};
  a.shape = {batch, kDecodeQHeads, kDecodeKvHeads, 1, kv_len, D};
  a.q = q.data();
  a.q_layout = {kDecodeQHeads * D, D, kDecodeQHeads * D};
  a.k = k_stored.data();
  a.k_layout = {kPageTokens * kDecodeKvHeads * units, kPageTokens * units, units};
  a.v = v_stored.data();
  a.v_layout = a.k_layout;
  a.out = out.data();
  a.out_layout = a.q_layout;
  a.options.num_threads = static_cast<int32_t>(state.range(2));
  a.seq_lens = &lens;
  a.pages = &pages;
  a.k_dtype = a.v_dtype = kv_dtype;
  if (state.range(4) != 0) a.options.flags = CAUSALATTN_BATCH_INVARIANT;
  if (causalattn_attend(&a) != CAUSALATTN_OK) {
    state.SkipWithError(causalattn_last_error());
    return;
  }
  for (auto _ : state) {
    causalattn_attend(&a);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * batch * kDecodeKvHeads * kv_len * 2 * stored_bytes(kv_dtype, D));
  state.SetLabel(causalattn_isa());
}

// Times causalattn_attend(a) (its first call the warm-up), with flops per call, and the FMA peak
// right before on one thread.
void time_attend(benchmark::State& state, const causalattn_attend_args& a, double flops) {
  if (causalattn_attend(&a) != CAUSALATTN_OK) {
    state.SkipWithError(causalattn_last_error());
    return;
  }
  const double peak = a.options.num_threads == 1 ? peak_here() : 0.0;
  for (auto _ : state) {
    causalattn_attend(&a);
    benchmark::DoNotOptimize(a.out);
    benchmark::ClobberMemory();
  }
  set_common_counters(state, flops);
  if (peak > 0.0) state.counters["fma_peak_here"] = peak;
}

// Causal prefill, B=1, H=8, with Q and out in q_dtype and K and V in kv_dtype (causalattn_dtypes):
// 16-bit caches with f32 queries, against BM_Attention's f32 in the same run.
// args: T, D, q_dtype, kv_dtype, threads (0 = all)
void BM_PrefillDtypes(benchmark::State& state) {
  const int64_t t = state.range(0), d = state.range(1);
  const auto q_dtype = static_cast<causalattn_dtype>(state.range(2)), kv_dtype = static_cast<causalattn_dtype>(state.range(3));
  Inputs in(kBatch * kHeads * t * d);
  const Stored q = stored(in.q, q_dtype), k = stored(in.k, kv_dtype), v = stored(in.v, kv_dtype);
  Stored out(q.size());
  const int64_t units = kv_dtype == CAUSALATTN_DTYPE_Q8_0 ? d / 32 : d;
  causalattn_attend_args a{};
  a.shape = {kBatch, kHeads, kHeads, t, t, d};
  a.q = q.data();
  a.q_layout = a.out_layout = {kHeads * t * d, t * d, d};
  a.k = k.data();
  a.k_layout = a.v_layout = {kHeads * t * units, t * units, units};
  a.v = v.data();
  a.out = out.data();
  a.options.num_threads = static_cast<int32_t>(state.range(4));
  a.q_dtype = a.out_dtype = q_dtype;
  a.k_dtype = a.v_dtype = kv_dtype;
  time_attend(state, a, causal_flops(kHeads, t, d));
}

// The model variants of causalattn_attend_args, for BM_Variants.
enum Variant : int64_t { kPlain, kSinks, kSoftcap, kAlibi, kTopLeft, kOffsets, kBatchInvariant, kVariantCount };

// Causal prefill, B=1, H=8, f32, with one model variant, against the plain kernel (variant 0) in
// the same run: the rate is the plain causal flops'. args: T, D, variant, threads (0 = all)
void BM_Variants(benchmark::State& state) {
  const int64_t t = state.range(0), d = state.range(1);
  const auto variant = static_cast<Variant>(state.range(2));
  Inputs in(kBatch * kHeads * t * d);
  std::vector<float> sinks(kHeads), slopes(kHeads);
  for (int64_t h = 0; h < kHeads; ++h) {
    sinks[h] = 0.25f * static_cast<float>(h);
    slopes[h] = std::ldexp(1.0f, -static_cast<int>(h + 1));  // BLOOM's for 8 heads
  }
  causalattn_attend_args a{};
  a.shape = {kBatch, kHeads, kHeads, t, t, d};
  a.q = in.q.data();
  a.k = in.k.data();
  a.v = in.v.data();
  a.out = in.out.data();
  a.q_layout = a.k_layout = a.v_layout = a.out_layout = {kHeads * t * d, t * d, d};
  a.options.num_threads = static_cast<int32_t>(state.range(3));
  if (variant == kSinks) a.sinks = sinks.data();
  if (variant == kSoftcap) a.softcap = 50.0f;  // Gemma 2's
  if (variant == kAlibi) a.alibi_slopes = slopes.data();
  if (variant == kTopLeft) a.options.flags = CAUSALATTN_TOP_LEFT;
  if (variant == kOffsets) {  // a worker's part of a long sequence: the same diagonal, far on
    a.options.flags = CAUSALATTN_EXPLICIT_POSITIONS;
    a.q_pos_offset = a.kv_pos_offset = 1 << 20;
  }
  if (variant == kBatchInvariant) a.options.flags = CAUSALATTN_BATCH_INVARIANT;
  time_attend(state, a, causal_flops(kHeads, t, d));
}

// Causal prefill with V's head size apart from K's (DeepSeek's MLA prefill: 192 / 128), B=1,
// H=8, f32. Flops: Q·Kᵀ over D and P·V over Dv. args: T, D, Dv, threads (0 = all)
void BM_HeadDimV(benchmark::State& state) {
  const int64_t t = state.range(0), d = state.range(1), dv = state.range(2);
  Inputs in(kBatch * kHeads * t * d);
  std::vector<float> out(kBatch * kHeads * t * dv);
  causalattn_attend_args a{};
  a.shape = {kBatch, kHeads, kHeads, t, t, d};
  a.q = in.q.data();
  a.k = in.k.data();
  a.v = in.v.data();  // (its first kHeads · t · dv floats)
  a.out = out.data();
  a.q_layout = a.k_layout = {kHeads * t * d, t * d, d};
  a.v_layout = a.out_layout = {kHeads * t * dv, t * dv, dv};
  a.head_dim_v = dv;
  a.options.num_threads = static_cast<int32_t>(state.range(3));
  time_attend(state, a, (causal_flops(kHeads, t, d) + causal_flops(kHeads, t, dv)) / 2.0);
}

// Chunked prefill: a T-token prompt in chunks of C tokens, each chunk attending to the cache so
// far (its own keys included), B=1, H=8. The work equals one causal prefill of T tokens, so the
// rate compares directly with BM_Attention. args: T, C, D, threads (0 = all)
void BM_ChunkedPrefill(benchmark::State& state) {
  const int64_t t = state.range(0), chunk = state.range(1), d = state.range(2);
  Inputs in(kBatch * kHeads * t * d);
  const causalattn_layout layout{kHeads * t * d, t * d, d};
  causalattn_options options{};
  options.num_threads = static_cast<int32_t>(state.range(3));
  auto prefill = [&] {
    for (int64_t begin = 0; begin < t; begin += chunk) {
      const int64_t n = std::min(chunk, t - begin);
      const causalattn_shape shape{kBatch, kHeads, kHeads, n, begin + n, d};
      const int status = causalattn_forward_f32(&shape, in.q.data() + begin * d, layout, in.k.data(), layout,
                                                in.v.data(), layout, in.out.data() + begin * d, layout, &options);
      if (status != CAUSALATTN_OK) return status;
    }
    return static_cast<int>(CAUSALATTN_OK);
  };
  if (prefill() != CAUSALATTN_OK) {
    state.SkipWithError(causalattn_last_error());
    return;
  }
  for (auto _ : state) {
    prefill();
    benchmark::DoNotOptimize(in.out.data());
    benchmark::ClobberMemory();
  }
  set_common_counters(state, causal_flops(kHeads, t, d));
}

// Sliding-window prefill: T tokens, each seeing its last W keys, B=1, H=8. FLOPs count the
// visible pairs as docs/design.md counts the causal ones (4·D per pair). args: T, W, D, threads
void BM_SlidingWindow(benchmark::State& state) {
  const int64_t t = state.range(0), window = state.range(1), d = state.range(2);
  Inputs in(kBatch * kHeads * t * d);
  causalattn_attend_args a{};
  a.shape = {kBatch, kHeads, kHeads, t, t, d};
  const causalattn_layout layout{kHeads * t * d, t * d, d};
  a.q = in.q.data();
  a.k = in.k.data();
  a.v = in.v.data();
  a.out = in.out.data();
  a.q_layout = a.k_layout = a.v_layout = a.out_layout = layout;
  a.options.num_threads = static_cast<int32_t>(state.range(3));
  a.window = window;
  if (causalattn_attend_f32(&a) != CAUSALATTN_OK) {
    state.SkipWithError(causalattn_last_error());
    return;
  }
  for (auto _ : state) {
    causalattn_attend_f32(&a);
    benchmark::DoNotOptimize(in.out.data());
    benchmark::ClobberMemory();
  }
  const double pairs = static_cast<double>(std::min(t, window)) * (std::min(t, window) + 1) / 2 +
                       static_cast<double>(std::max<int64_t>(t - window, 0)) * window;
  set_common_counters(state, 4.0 * d * pairs * kHeads * kBatch);
}

// Read bandwidth from memory: 1 GiB, far past any cache. args: threads (0 = all)
void BM_ReadBandwidth(benchmark::State& state) {
  const int threads = state.range(0) == 0 ? static_cast<int>(std::thread::hardware_concurrency())
                                          : static_cast<int>(state.range(0));
  const std::vector<float> data((size_t{1} << 30) / sizeof(float), 1.0f);
  for (auto _ : state) benchmark::DoNotOptimize(causalattn::bench::read_all(data.data(), data.size(), threads));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size() * sizeof(float)));
}

// The FMA peak of the ISA the kernels use, on one thread or on every core at once (each thread
// its own loop): the second over the first is the machine's own scaling, the ceiling of ours
// on a host whose other tenants share the cores. args: threads (0 = all)
void BM_PeakFma(benchmark::State& state) {
  const causalattn::bench::PeakLoop loop = causalattn::bench::peak_loop(causalattn_isa());
  const int threads = state.range(0) == 0 ? tbb::this_task_arena::max_concurrency() : static_cast<int>(state.range(0));
  constexpr int64_t kIterations = 1 << 20;
  // The other threads stay up for the whole run, spinning between rounds: a thread started per
  // round begins on its parent's core, and the scheduler takes milliseconds to move it.
  std::atomic<int64_t> round{0}, finished{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> others;
  for (int i = 1; i < threads; ++i) {
    others.emplace_back([&] {
      for (int64_t seen = 0;; ++seen) {
        while (round.load() == seen && !stop.load()) {
        }
        if (stop.load()) return;
        benchmark::DoNotOptimize(loop.run(kIterations));
        finished.fetch_add(1);
      }
    });
  }
  auto run_round = [&] {
    finished.store(0);
    round.fetch_add(1);
    benchmark::DoNotOptimize(loop.run(kIterations));
    while (finished.load() < threads - 1) {
    }
  };
  for (int i = 0; i < 8; ++i) run_round();  // untimed: the scheduler spreads the threads meanwhile
  for (auto _ : state) run_round();
  stop.store(true);
  for (std::thread& other : others) other.join();
  set_common_counters(state, static_cast<double>(threads * kIterations * loop.flops_per_iteration));
}

// Short sequences: a packed batch of `sequences` causal sequences of T tokens each in one call
// (cu_seqlens, [tokens][H][D]), H=8, D=128, all tensors in `dtype` (f32 or bf16). args: T,
// sequences, dtype, threads (0 = all)
void BM_PackedBatch(benchmark::State& state) {
  const int64_t t = state.range(0), n = state.range(1), d = 128;
  const auto dtype = static_cast<causalattn_dtype>(state.range(2));
  Inputs in(n * t * kHeads * d);
  const Stored q = stored(in.q, dtype), k = stored(in.k, dtype), v = stored(in.v, dtype);
  Stored out(q.size());
  std::vector<int64_t> cu(n + 1);
  for (int64_t s = 0; s <= n; ++s) cu[s] = s * t;
  causalattn_seq_lens lens{};
  lens.cu_q_lens = lens.cu_kv_lens = cu.data();
  causalattn_attend_args a{};
  a.shape = {n, kHeads, kHeads, n * t, n * t, d};
  a.q = q.data();
  a.k = k.data();
  a.v = v.data();
  a.out = out.data();
  a.q_layout = a.k_layout = a.v_layout = a.out_layout = {0, d, kHeads * d};
  a.seq_lens = &lens;
  a.options.num_threads = static_cast<int32_t>(state.range(3));
  a.q_dtype = a.k_dtype = a.v_dtype = a.out_dtype = dtype;
  time_attend(state, a, n * causal_flops(kHeads, t, d));
}

// A bf16 peak on one core (independent chains of a product), for the first ISA of the table that
// has the product and this CPU runs, beside BM_PeakFma: what a bf16 kernel on it can reach.
// run and flops pick the product's loop of a PeakLoop.
template <class Run>
void run_bf16_peak(benchmark::State& state, const char* product, Run run, int64_t causalattn::bench::PeakLoop::*flops) {
  const causalattn::bench::PeakLoop* loop = nullptr;
  for (int i = 0; causalattn::bench::kPeakLoops[i] != nullptr; ++i) {
    const causalattn::bench::PeakLoop* l = causalattn::bench::kPeakLoops[i];
    if (l->*run != nullptr && causalattn_set_isa(l->isa) == CAUSALATTN_OK) {
      loop = l;
      break;
    }
  }
  causalattn_set_isa(nullptr);
  if (loop == nullptr) {
    state.SkipWithError((std::string("no ISA of this build with ") + product + " runs on this CPU").c_str());
    return;
  }
  constexpr int64_t kIterations = 1 << 20;
  for (auto _ : state) benchmark::DoNotOptimize((loop->*run)(kIterations));
  state.counters["FLOPS"] = benchmark::Counter(static_cast<double>(kIterations * loop->*flops),
                                               benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(loop->isa);
}

// The BF16 dot product (vdpbf16ps).
void BM_PeakDotBf16(benchmark::State& state) {
  run_bf16_peak(state, "the BF16 dot product", &causalattn::bench::PeakLoop::run_dot_bf16,
                &causalattn::bench::PeakLoop::dot_bf16_flops_per_iteration);
}

// AMX's bf16 tile product (tdpbf16ps): what the AMX kernel's two products can reach.
void BM_PeakAmxBf16(benchmark::State& state) {
  run_bf16_peak(state, "AMX", &causalattn::bench::PeakLoop::run_amx_bf16,
                &causalattn::bench::PeakLoop::amx_bf16_flops_per_iteration);
}

void register_benchmarks() {
  // The peak is the best of several runs: a neighbour on a shared machine only ever lowers it.
  benchmark::RegisterBenchmark("BM_PeakFma", BM_PeakFma)
      ->Arg(1)
      ->Arg(0)
      ->ArgName("threads")
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime()
      ->Repetitions(6);
  benchmark::RegisterBenchmark("BM_PeakDotBf16", BM_PeakDotBf16)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime()
      ->Repetitions(6);
  benchmark::RegisterBenchmark("BM_PeakAmxBf16", BM_PeakAmxBf16)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime()
      ->Repetitions(6);
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
  // Five repetitions: the report takes the best, and the projection target is read from it.
  for (int64_t threads : {1, 0}) {
    for (const std::vector<int64_t>& mnk : kLinearShapes) {
      const std::vector<int64_t> args = {mnk[0], mnk[1], mnk[2], threads};
      benchmark::RegisterBenchmark("BM_Linear", BM_Linear)
          ->Args(args)
          ->ArgNames({"M", "N", "K", "threads"})
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime()
          ->Repetitions(5);
      benchmark::RegisterBenchmark("BM_LinearBf16", BM_LinearBf16)
          ->Args(args)
          ->ArgNames({"M", "N", "K", "threads"})
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime()
          ->Repetitions(5);
#ifdef CAUSALATTN_BENCH_HAVE_BLAS
      benchmark::RegisterBenchmark("BM_LinearBlas", BM_LinearBlas)
          ->Args(args)
          ->ArgNames({"M", "N", "K", "threads"})
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime()
          ->Repetitions(5);
#endif
    }
  }
  for (int64_t threads : {1, 0}) {
    for (int64_t t : kGpt2Tokens) {
      benchmark::RegisterBenchmark("BM_Gpt2Layer", BM_Gpt2Layer)
          ->Args({t, threads})
          ->ArgNames({"T", "threads"})
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime()
          ->Repetitions(3);
      benchmark::RegisterBenchmark("BM_Gpt2LayerBf16", BM_Gpt2LayerBf16)
          ->Args({t, threads})
          ->ArgNames({"T", "threads"})
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime()
          ->Repetitions(3);
    }
  }
  for (int64_t threads : {1, 0}) {
    for (int64_t batch : {1, 8}) {
      for (int64_t kv_len : kDecodeKvLens) {
        for (int64_t kv_dtype = CAUSALATTN_DTYPE_F32; kv_dtype <= CAUSALATTN_DTYPE_Q8_0; ++kv_dtype) {
          // The 16- and 8-bit caches at the lengths the targets name, beside f32 at every one.
          if (kv_dtype != CAUSALATTN_DTYPE_F32 && kv_len < 2048) continue;
          // The batch-invariant mode beside the default at the length its cost is measured at.
          const bool with_invariant = kv_len == 32768 && kv_dtype != CAUSALATTN_DTYPE_BF16;
          for (int64_t invariant = 0; invariant <= (with_invariant ? 1 : 0); ++invariant) {
            benchmark::RegisterBenchmark("BM_Decode", BM_Decode)
                ->Args({kv_len, batch, threads, kv_dtype, invariant})
                ->ArgNames({"Tk", "batch", "threads", "kv_dtype", "invariant"})
                ->Unit(benchmark::kMillisecond)
                ->UseRealTime()
                ->Repetitions(kv_len * batch >= 262144 ? 2 : 3);
          }
        }
      }
    }
    for (const std::vector<int64_t>& dtypes : kPrefillDtypes) {
      benchmark::RegisterBenchmark("BM_PrefillDtypes", BM_PrefillDtypes)
          ->Args({4096, 128, dtypes[0], dtypes[1], threads})
          ->ArgNames({"T", "D", "q_dtype", "kv_dtype", "threads"})
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime()
          ->Repetitions(3);
    }
    // All-bf16 beside all-f32 at a shorter sequence and the other common head sizes (the AMX
    // kernel's shapes), one thread.
    for (const std::vector<int64_t>& td : std::vector<std::vector<int64_t>>{{1024, 128}, {4096, 64}, {4096, 256}}) {
      for (int64_t dtype : {CAUSALATTN_DTYPE_F32, CAUSALATTN_DTYPE_BF16}) {
        if (threads != 1) continue;
        benchmark::RegisterBenchmark("BM_PrefillDtypes", BM_PrefillDtypes)
            ->Args({td[0], td[1], dtype, dtype, threads})
            ->ArgNames({"T", "D", "q_dtype", "kv_dtype", "threads"})
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime()
            ->Repetitions(3);
      }
    }
    for (int64_t dtype : {CAUSALATTN_DTYPE_F32, CAUSALATTN_DTYPE_BF16}) {
      benchmark::RegisterBenchmark("BM_PackedBatch", BM_PackedBatch)
          ->Args({256, 32, dtype, threads})
          ->ArgNames({"T", "sequences", "dtype", "threads"})
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime()
          ->Repetitions(3);
    }
    for (int64_t variant = kPlain; variant < kVariantCount; ++variant) {
      benchmark::RegisterBenchmark("BM_Variants", BM_Variants)
          ->Args({4096, 128, variant, threads})
          ->ArgNames({"T", "D", "variant", "threads"})
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime()
          ->Repetitions(3);
    }
    benchmark::RegisterBenchmark("BM_HeadDimV", BM_HeadDimV)
        ->Args({4096, 192, 128, threads})
        ->ArgNames({"T", "D", "Dv", "threads"})
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->Repetitions(3);
    benchmark::RegisterBenchmark("BM_ChunkedPrefill", BM_ChunkedPrefill)
        ->Args({4096, 512, 128, threads})
        ->ArgNames({"T", "chunk", "D", "threads"})
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->Repetitions(3);
    benchmark::RegisterBenchmark("BM_SlidingWindow", BM_SlidingWindow)
        ->Args({32768, 4096, 128, threads})
        ->ArgNames({"T", "window", "D", "threads"})
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->Repetitions(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  register_benchmarks();
  benchmark::AddCustomContext("causalattn_isa", causalattn_isa());
  benchmark::AddCustomContext("causalattn_row_block", std::to_string(causalattn_prefill_block_queries()));
  benchmark::AddCustomContext("causalattn_version", causalattn_version());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
