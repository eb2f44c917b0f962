// The FMA-throughput loop of one ISA, for the peak the kernel figures are set against: compiled
// once per row of the ISA table with that row's flags alone (bench/CMakeLists.txt), through the
// same IsaTraits the kernels use, so a new ISA brings its peak with its traits.
#include <cstdint>

#include "kernels/simd.hpp"
#include "peak_fma.hpp"

namespace {

using Arch = CAUSALATTN_ARCH;
using V = causalattn::kernels::Vec<Arch>;

// Independent accumulators, more than FMA latency (4 cycles) × ports (2) needs, so the loop runs
// at the FMA units' throughput, not their latency: 16, or 12 where the ISA has 16 registers
// (AVX2, SSE2), which must also hold the two operands; 16 chains spilled three of them there,
// and each iteration waited on a store and a reload: half the peak on Zen 3. Without FMA the
// ISA's fmadd is a multiply and an add, counted as two flops like an FMA.
constexpr int kChains = causalattn::kernels::IsaTraits<Arch>::kRegisters >= 32 ? 16 : 12;

float fma_loop(int64_t iterations) {
  V acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = V(0.001f * i);
  const V a(0.9999f), b(1e-4f);
  for (int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < kChains; ++i) acc[i] = causalattn::kernels::fmadd<Arch>(acc[i], a, b);
  }
  V sum = acc[0];
  for (int i = 1; i < kChains; ++i) sum = sum + acc[i];
  alignas(64) float lanes[V::size];
  sum.store_aligned(lanes);
  return lanes[0];
}

// Chains of the BF16 dot product, where the ISA has one: 4 flops per lane. 30 of them, as many as
// the registers hold beside the operands (16 and 30 chains ran at the same rate on Sapphire
// Rapids: its limit is throughput).
constexpr int kDotChains = 30;

template <class A>
float dot_bf16_loop(int64_t iterations) {
  if constexpr (causalattn::kernels::IsaTraits<A>::kDotBf16) {
    using T = causalattn::kernels::IsaTraits<A>;
    V acc[kDotChains];
    for (int i = 0; i < kDotChains; ++i) acc[i] = V(0.001f * i);
    const typename T::Pairs a = T::broadcast_pair(0x3f7f3f7fu), b = T::broadcast_pair(0x38d138d1u);
    for (int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 30
      for (int i = 0; i < kDotChains; ++i) acc[i] = T::dot_bf16(acc[i], a, b);
    }
    V sum = acc[0];
    for (int i = 1; i < kDotChains; ++i) sum = sum + acc[i];
    alignas(64) float lanes[V::size];
    sum.store_aligned(lanes);
    return lanes[0];
  } else {
    return static_cast<float>(iterations);
  }
}

// Independent tile products, where the ISA has AMX: six accumulators (tiles 0-5) on one A and one
// B tile, more than the product's latency needs at its throughput.
constexpr int kAmxChains = 6;

template <class A>
float amx_bf16_loop(int64_t iterations) {
  if constexpr (causalattn::kernels::IsaTraits<A>::kAmx) {
    using T = causalattn::kernels::IsaTraits<A>;
    alignas(64) static const uint16_t operand[T::kTileRows * T::kTileBytes / 2] = {};
    alignas(64) float c[T::kTileRows * T::kTileBytes / 4];
    T::configure_tiles();
    T::template tile_load<6>(operand, T::kTileBytes);
    T::template tile_load<7>(operand, T::kTileBytes);
    causalattn::kernels::for_each_index<kAmxChains>([&](auto i) { T::template tile_zero<i()>(); });
    for (int64_t it = 0; it < iterations; ++it) {
      causalattn::kernels::for_each_index<kAmxChains>([&](auto i) { T::template tile_dot_bf16<i(), 6, 7>(); });
    }
    T::template tile_store<0>(c, T::kTileBytes);
    T::release_tiles();
    return c[0];
  } else {
    return static_cast<float>(iterations);
  }
}

}  // namespace

extern const causalattn::bench::PeakLoop CAUSALATTN_PEAK_LOOP;
const causalattn::bench::PeakLoop CAUSALATTN_PEAK_LOOP = {
    CAUSALATTN_ISA_NAME, fma_loop, kChains * static_cast<int64_t>(V::size) * 2,
    causalattn::kernels::IsaTraits<Arch>::kDotBf16 ? dot_bf16_loop<Arch> : nullptr, kDotChains * static_cast<int64_t>(V::size) * 4,
    causalattn::kernels::IsaTraits<Arch>::kAmx ? amx_bf16_loop<Arch> : nullptr, kAmxChains * 16 * 16 * 32 * 2};
