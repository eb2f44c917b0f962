// Small SIMD helpers templated on the xsimd architecture: a guaranteed FMA and exp2 for softmax.
// Everything here is a template on Arch or a constexpr constant, so the per-ISA translation units
// never share an out-of-line symbol (see lib/arch/README.md).
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <type_traits>

#include <xsimd/xsimd.hpp>

namespace causalattn::kernels {

template <class Arch>
using Vec = xsimd::batch<float, Arch>;

// Calls fn(std::integral_constant<int, N>) for N = n, 1 <= n <= kMax: microkernels with a
// compile-time block size also for the remainder of a loop.
template <int kMax, class Fn>
inline void with_block_size(int n, Fn&& fn) {
  if constexpr (kMax >= 1) {
    if (n == kMax) return fn(std::integral_constant<int, kMax>{});
    with_block_size<kMax - 1>(n, fn);
  }
}

template <class Arch>
constexpr bool kIsAvx512 = std::is_base_of_v<xsimd::avx512f, Arch>;
template <class Arch>
constexpr bool kHasFma = kIsAvx512<Arch> || std::is_base_of_v<xsimd::fma3<xsimd::avx2>, Arch>;

// a * b + c, fused wherever the ISA has FMA. Called through intrinsics so that the results do
// not depend on -ffp-contract (xsimd 8.1's fma is a plain a*b+c on AVX-512).
template <class Arch>
inline Vec<Arch> fmadd(Vec<Arch> a, Vec<Arch> b, Vec<Arch> c) noexcept {
  if constexpr (kIsAvx512<Arch>) {
    return _mm512_fmadd_ps(a, b, c);
  } else if constexpr (kHasFma<Arch>) {
    return _mm256_fmadd_ps(a, b, c);
  } else {
    return a * b + c;
  }
}

// where(mask) ? a * b + c : c, lane by lane; on AVX-512 one masked FMA.
template <class Arch>
inline Vec<Arch> fmadd_where(xsimd::batch_bool<float, Arch> mask, Vec<Arch> a, Vec<Arch> b, Vec<Arch> c) noexcept {
  if constexpr (kIsAvx512<Arch>) {
    return _mm512_mask3_fmadd_ps(a, b, c, static_cast<__mmask16>(mask));
  } else {
    return xsimd::select(mask, fmadd<Arch>(a, b, c), c);
  }
}

// 2^x for x <= 0, the softmax case (scores minus their running maximum).
// Contract: x <= 0 or NaN. x <= -127 (and -inf) gives exactly +0, NaN gives NaN.
// Accuracy: <= 2 ulp relative for x > -126 (degree-6 polynomial fitted to relative error on
// [-1/2, 1/2], 1.6 ulp when evaluated in fp32); results below 2^-126 flush to zero, which a
// softmax cannot see next to its maximum term of 1.
template <class Arch>
inline Vec<Arch> exp2_nonpositive(Vec<Arch> x) noexcept {
  using V = Vec<Arch>;
  using I = xsimd::batch<int32_t, Arch>;
  // max(-127, x), operands in this order, returns x when x is NaN (x86 max returns the second).
  x = xsimd::max(V(-127.0f), x);
  // Round to nearest by adding 1.5 * 2^23: the integer lands in the low mantissa bits.
  constexpr float kRoundMagic = 12582912.0f;
  const V shifted = x + V(kRoundMagic);
  const V n = shifted - V(kRoundMagic);
  const V f = x - n;  // in [-1/2, 1/2]
  V p = V(1.5353362e-4f);
  p = fmadd<Arch>(p, f, V(1.3398874e-3f));
  p = fmadd<Arch>(p, f, V(9.6184369e-3f));
  p = fmadd<Arch>(p, f, V(5.5503324e-2f));
  p = fmadd<Arch>(p, f, V(2.4022648e-1f));
  p = fmadd<Arch>(p, f, V(6.9314718e-1f));
  p = fmadd<Arch>(p, f, V(1.0f));
  // 2^n from its exponent bits; n = -127 gives the bit pattern of +0.
  const I n_int = xsimd::bitwise_cast<I>(shifted) - xsimd::bitwise_cast<I>(V(kRoundMagic));
  const V scale = xsimd::bitwise_cast<V>((n_int + I(127)) << 23);
  return p * scale;
}

}  // namespace causalattn::kernels
