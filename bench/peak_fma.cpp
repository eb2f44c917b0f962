// The machine's FMA peak per ISA, measured in the same binary as the kernels so every figure
// can be read as a fraction of it. Each function carries its ISA as a target attribute.
#include "peak_fma.hpp"

#include <immintrin.h>

namespace causalattn::bench {
namespace {

// 16 independent accumulators: more than FMA latency (4 cycles) × ports (2) needs, so the loop
// runs at the FMA units' throughput, not their latency.
constexpr int kChains = 16;

__attribute__((target("avx512f,fma"))) float fma_loop_avx512(int64_t iterations) {
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(0.001f * i);
  const __m512 a = _mm512_set1_ps(0.9999f), b = _mm512_set1_ps(1e-4f);
  for (int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  }
  __m512 sum = acc[0];
  for (int i = 1; i < kChains; ++i) sum = _mm512_add_ps(sum, acc[i]);
  return _mm512_reduce_add_ps(sum);
}

__attribute__((target("avx2,fma"))) float fma_loop_avx2(int64_t iterations) {
  __m256 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm256_set1_ps(0.001f * i);
  const __m256 a = _mm256_set1_ps(0.9999f), b = _mm256_set1_ps(1e-4f);
  for (int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < kChains; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  }
  alignas(32) float lanes[8];
  __m256 sum = acc[0];
  for (int i = 1; i < kChains; ++i) sum = _mm256_add_ps(sum, acc[i]);
  _mm256_store_ps(lanes, sum);
  return lanes[0];
}

// SSE2 has no FMA: a multiply and an add per element, counted as two flops like an FMA.
float fma_loop_sse2(int64_t iterations) {
  __m128 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm_set1_ps(0.001f * i);
  const __m128 a = _mm_set1_ps(0.9999f), b = _mm_set1_ps(1e-4f);
  for (int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < kChains; ++i) acc[i] = _mm_add_ps(_mm_mul_ps(acc[i], a), b);
  }
  __m128 sum = acc[0];
  for (int i = 1; i < kChains; ++i) sum = _mm_add_ps(sum, acc[i]);
  return _mm_cvtss_f32(sum);
}

}  // namespace

PeakLoop peak_loop(const std::string& isa) {
  if (isa == "avx512") return {fma_loop_avx512, kChains * 16 * 2};
  if (isa == "avx2") return {fma_loop_avx2, kChains * 8 * 2};
  return {fma_loop_sse2, kChains * 4 * 2};
}

}  // namespace causalattn::bench
