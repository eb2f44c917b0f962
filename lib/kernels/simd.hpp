// Small SIMD helpers templated on the xsimd architecture: compile-time loops over block sizes, the
// per-ISA traits the kernels use (FMA, masked FMA, square transpose, prefetch, register count),
// the softmax's exp and the logit softcap's tanh.
// Everything here is a template on Arch or a constexpr constant, so the per-ISA translation units
// never share an out-of-line symbol (tools/check-isa-symbols.sh checks it).
#pragma once

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

// What each ISA provides, as one traits type per xsimd architecture (the ARCH of a row of
// cmake/isas.cmake), specialized in that ISA family's own file (lib/kernels/x86.hpp, arm.hpp):
//   kRegisters                   vector registers, which the blockings derive from
//   kFusedMultiplyAdd            fmadd rounds once
//   kDotBf16                     dot_bf16(acc, a, b) and pair_bf16(p0, p1) exist (vdpbf16ps)
//   kAmx                         the AMX tile operations exist (x86.hpp, attention_amx.hpp)
//   fmadd(a, b, c)               a * b + c, fused wherever the ISA has FMA; through intrinsics, so
//                                results do not depend on -ffp-contract (xsimd 8.1's fma is a
//                                plain a * b + c on AVX-512)
//   fmadd_where(mask, a, b, c)   mask ? a * b + c : c, lane by lane
//   transpose_square(rows)       the W x W block in W vectors (row r in rows[r]) transposed in place
//   prefetch_l2(address)         the cache line brought into L2, as an asm volatile statement:
//                                GCC finds a function whose only effect is __builtin_prefetch
//                                pure and, C++ loops being finite, deletes the calls to it that
//                                it does not inline (the invariant decode's prefetch loop was)
//   prefetch_l1(address)         the cache line brought into L1 (and L2), the same way
//   sum_lanes(rows)              for W vectors, lane k = the sum of rows[k]'s lanes
//   load_bf16(p), load_f16(p)    W 16-bit values from p, widened exactly
//   load_i8(p)                   W int8 values from p, as floats
//   f16_scalar(h)                one f16 widened
//   store_bf16(x, p), store_f16(x, p)  x rounded to nearest even into W 16-bit values at p
//                                (NaN stays NaN, subnormals kept)
template <class Arch>
struct IsaTraits;

template <class Arch>
inline Vec<Arch> fmadd(Vec<Arch> a, Vec<Arch> b, Vec<Arch> c) noexcept {
  return IsaTraits<Arch>::fmadd(a, b, c);
}

template <class Arch>
inline Vec<Arch> fmadd_where(xsimd::batch_bool<float, Arch> mask, Vec<Arch> a, Vec<Arch> b, Vec<Arch> c) noexcept {
  return IsaTraits<Arch>::fmadd_where(mask, a, b, c);
}

template <class Arch>
inline void transpose_square(Vec<Arch>* rows) noexcept {
  IsaTraits<Arch>::transpose_square(rows);
}

template <class Arch>
inline void prefetch_l2(const void* address) noexcept {
  IsaTraits<Arch>::prefetch_l2(address);
}

template <class Arch>
inline void prefetch_l1(const void* address) noexcept {
  IsaTraits<Arch>::prefetch_l1(address);
}

// Blocking for a register file of this size: 32 vector registers hold a 3 x 8 accumulator block
// and its operands, 16 hold 2 x 6.
template <class Arch>
constexpr bool kManyRegisters = IsaTraits<Arch>::kRegisters >= 32;

// Lane k = the sum of rows[k]'s lanes: the square transposed, then its rows added (sum_lanes of
// ISAs without a cheaper tree).
template <class Arch>
inline Vec<Arch> sum_lanes_by_transpose(const Vec<Arch>* rows) noexcept {
  constexpr int W = static_cast<int>(Vec<Arch>::size);
  Vec<Arch> t[W];
  for (int i = 0; i < W; ++i) t[i] = rows[i];
  IsaTraits<Arch>::transpose_square(t);
  Vec<Arch> sum = t[0];
  for (int i = 1; i < W; ++i) sum += t[i];
  return sum;
}

}  // namespace causalattn::kernels

#if defined(__x86_64__) || defined(_M_X64)
#include "kernels/x86.hpp"
#elif defined(__aarch64__)
#include "kernels/arm.hpp"
#endif

namespace causalattn::kernels {

// y[i] = e^y[i] for K vectors of y <= 0, the softmax case (scores minus their running maximum),
// as 2^(y·log2(e)). Contract: y <= 0 or NaN. y <= -127·ln(2) (and -inf) gives exactly +0, NaN
// gives NaN. (Positive y up to 64·ln(2), as a softmax with a rescale slack takes, are within the
// same bound: 2^n stays a normal number.)
// y·log2(e) = n + f with n an integer and |f| <= 1/2; 2^f from a degree-6 polynomial fitted to
// relative error on [-1/2, 1/2], 2^n from exponent bits. Where the ISA has FMA, f comes from
// exact products with log2(e) in two parts (Cody-Waite), so the result is within 2 ulp for
// y > -87.3 (measured: 1.13); without FMA y·log2(e) is rounded first, which adds up to |y| ulp:
// within |y| + 2 in all (measured: |y| + 0.84; tests/microkernels/). Results below
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
    // second; NEON's fmax returns NaN). At y_min = -127·ln(2), n = -127, whose bits below make 2^n = +0.
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

// The logit softcap cap · tanh(s / cap) of K vectors in lock step (as exp_nonpositive's), each as
// cap · sign(s) · (1 - e) / (1 + e) with e = exp(-2 |s / cap|) <= 1: no overflow for any s,
// tanh(±inf) = ±1, NaN stays NaN. Its error is absolute (the cancellation in 1 - e at small |s|):
// within 2^-21 · cap, measured over the whole range by the microkernel tests.
template <class Arch, int K>
inline void softcap(Vec<Arch>* s, Vec<Arch> cap, Vec<Arch> inv_cap) noexcept {
  using V = Vec<Arch>;
  V x[K], e[K];
#pragma GCC unroll 16
  for (int i = 0; i < K; ++i) {
    x[i] = s[i] * inv_cap;
    e[i] = V(-2.0f) * xsimd::abs(x[i]);
  }
  exp_nonpositive<Arch, K>(e);
#pragma GCC unroll 16
  for (int i = 0; i < K; ++i) s[i] = xsimd::copysign(cap * ((V(1.0f) - e[i]) / (V(1.0f) + e[i])), x[i]);
}

template <class Arch>
inline Vec<Arch> softcap(Vec<Arch> s, Vec<Arch> cap, Vec<Arch> inv_cap) noexcept {
  softcap<Arch, 1>(&s, cap, inv_cap);
  return s;
}

}  // namespace causalattn::kernels
