// Small SIMD helpers templated on the xsimd architecture: compile-time loops over block sizes, a
// guaranteed FMA (plain and masked), the in-register square transpose and the softmax's exp.
// Everything here is a template on Arch or a constexpr constant, so the per-ISA translation units
// never share an out-of-line symbol (tools/check-isa-symbols.sh checks it).
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <type_traits>
#include <utility>

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

// Calls fn(std::integral_constant<int, I>) for I = 0, 1, ..., N - 1.
template <int N, class Fn>
inline void for_each_index(Fn&& fn) {
  [&]<int... I>(std::integer_sequence<int, I...>) { (fn(std::integral_constant<int, I>{}), ...); }(
      std::make_integer_sequence<int, N>{});
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

// Transposes the W x W block held in W vectors (row r in rows[r], W the lane count) in place.
// Shuffles within 128-bit lanes make each lane a 4 x 4 transpose, then whole 128-bit lanes move.
template <class Arch>
inline void transpose_square(Vec<Arch>* rows) noexcept {
  if constexpr (kIsAvx512<Arch>) {
    __m512 t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
      t[i] = _mm512_unpacklo_ps(rows[i], rows[i + 1]);
      t[i + 1] = _mm512_unpackhi_ps(rows[i], rows[i + 1]);
    }
    // u[4g + c] lane k: column 4k + c of rows 4g .. 4g + 3.
    for (int g = 0; g < 16; g += 4) {
      u[g] = _mm512_shuffle_ps(t[g], t[g + 2], 0x44);
      u[g + 1] = _mm512_shuffle_ps(t[g], t[g + 2], 0xEE);
      u[g + 2] = _mm512_shuffle_ps(t[g + 1], t[g + 3], 0x44);
      u[g + 3] = _mm512_shuffle_ps(t[g + 1], t[g + 3], 0xEE);
    }
    // Column 4k + c takes lane k of u[c], u[4 + c], u[8 + c], u[12 + c].
    for (int c = 0; c < 4; ++c) {
      const __m512 even_lo = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88), even_hi = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
      const __m512 odd_lo = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD), odd_hi = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
      rows[c] = _mm512_shuffle_f32x4(even_lo, even_hi, 0x88);
      rows[8 + c] = _mm512_shuffle_f32x4(even_lo, even_hi, 0xDD);
      rows[4 + c] = _mm512_shuffle_f32x4(odd_lo, odd_hi, 0x88);
      rows[12 + c] = _mm512_shuffle_f32x4(odd_lo, odd_hi, 0xDD);
    }
  } else if constexpr (Vec<Arch>::size == 8) {
    __m256 t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
      t[i] = _mm256_unpacklo_ps(rows[i], rows[i + 1]);
      t[i + 1] = _mm256_unpackhi_ps(rows[i], rows[i + 1]);
    }
    for (int g = 0; g < 8; g += 4) {
      u[g] = _mm256_shuffle_ps(t[g], t[g + 2], 0x44);
      u[g + 1] = _mm256_shuffle_ps(t[g], t[g + 2], 0xEE);
      u[g + 2] = _mm256_shuffle_ps(t[g + 1], t[g + 3], 0x44);
      u[g + 3] = _mm256_shuffle_ps(t[g + 1], t[g + 3], 0xEE);
    }
    for (int c = 0; c < 4; ++c) {
      rows[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
      rows[4 + c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
    }
  } else {
    static_assert(Vec<Arch>::size == 4, "SSE2: four lanes");
    __m128 r0 = rows[0], r1 = rows[1], r2 = rows[2], r3 = rows[3];
    _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
    rows[0] = r0, rows[1] = r1, rows[2] = r2, rows[3] = r3;
  }
}

// y[i] = e^y[i] for K vectors of y <= 0, the softmax case (scores minus their running maximum),
// as 2^(y·log2(e)). Contract: y <= 0 or NaN. y <= -127·ln(2) (and -inf) gives exactly +0, NaN
// gives NaN.
// y·log2(e) = n + f with n an integer and |f| <= 1/2; 2^f from a degree-6 polynomial fitted to
// relative error on [-1/2, 1/2], 2^n from exponent bits. Where the ISA has FMA, f comes from
// exact products with log2(e) in two parts (Cody-Waite), so the result is within 2 ulp for
// y > -87.3; without FMA y·log2(e) is rounded first, which adds up to |y|/2 ulp. Results below
// 2^-126 are subnormal or zero, which a softmax cannot see next to its maximum term of 1.
// The K evaluations advance in lock step, one operation of each in turn: each is a chain of 12
// dependent operations, and the out-of-order window alone does not overlap enough of them.
template <class Arch, int K>
inline void exp_nonpositive(Vec<Arch>* y) noexcept {
  using V = Vec<Arch>;
  using I = xsimd::batch<int32_t, Arch>;
  // log2(e) = log2e_hi + log2e_lo: y·log2e_hi alone would be off by up to 0.23·|y| ulp.
  const V log2e_hi(1.44269502162933349609375f), log2e_lo(1.925963033500011e-08f);
  // Round y·log2(e) to nearest by adding 1.5·2^23 + 127: the biased exponent n + 127 lands in the
  // low mantissa bits, from where a shift by 23 makes the bits of 2^n.
  constexpr float kRoundMagic = 12582912.0f + 127.0f;
  V shifted[K], f[K], p[K];
#pragma GCC unroll 16
  for (int i = 0; i < K; ++i) {
    // max(y_min, y), operands in this order, returns y when y is NaN (x86 max returns the
    // second). At y_min = -127·ln(2), n = -127, whose bits below make 2^n = +0.
    const V y_clamped = xsimd::max(V(-88.0296919f), y[i]);
    shifted[i] = fmadd<Arch>(y_clamped, log2e_hi, V(kRoundMagic));
    const V minus_n = V(kRoundMagic) - shifted[i];
    f[i] = fmadd<Arch>(y_clamped, log2e_lo, fmadd<Arch>(y_clamped, log2e_hi, minus_n));  // |f| <= 1/2 + 2^-19
  }
  constexpr float kPoly[] = {1.3398874e-3f, 9.6184369e-3f, 5.5503324e-2f, 2.4022648e-1f, 6.9314718e-1f, 1.0f};
#pragma GCC unroll 16
  for (int i = 0; i < K; ++i) p[i] = fmadd<Arch>(V(1.5353362e-4f), f[i], V(kPoly[0]));
#pragma GCC unroll 8
  for (int c = 1; c < 6; ++c) {
#pragma GCC unroll 16
    for (int i = 0; i < K; ++i) p[i] = fmadd<Arch>(p[i], f[i], V(kPoly[c]));
  }
#pragma GCC unroll 16
  for (int i = 0; i < K; ++i) y[i] = p[i] * xsimd::bitwise_cast<V>(xsimd::bitwise_cast<I>(shifted[i]) << 23);
}

// e^y for one vector: exp_nonpositive<Arch, 1>.
template <class Arch>
inline Vec<Arch> exp_nonpositive(Vec<Arch> y) noexcept {
  exp_nonpositive<Arch, 1>(&y);
  return y;
}

}  // namespace causalattn::kernels
