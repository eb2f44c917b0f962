// The x86 rows of the ISA table as IsaTraits (lib/kernels/simd.hpp): AVX-512 (F/CD/DQ/BW/VL +
// FMA), AVX2 + FMA, SSE2. Every x86 intrinsic of the kernels lives here. Each specialization is
// defined only where its ISA's flags are on: a kernel object is compiled with one ISA's flags
// and instantiates only that ISA's traits.
#pragma once

#include <immintrin.h>

#include <xsimd/xsimd.hpp>

namespace causalattn::kernels {

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__FMA__)
template <>
struct IsaTraits<xsimd::avx512bw> {
  using V = Vec<xsimd::avx512bw>;
  static constexpr int kRegisters = 32;
  static constexpr bool kFusedMultiplyAdd = true;
  static V fmadd(V a, V b, V c) noexcept { return _mm512_fmadd_ps(a, b, c); }
  // One masked FMA.
  static V fmadd_where(xsimd::batch_bool<float, xsimd::avx512bw> mask, V a, V b, V c) noexcept {
    return _mm512_mask3_fmadd_ps(a, b, c, static_cast<__mmask16>(mask));
  }
  // 16 x 16: shuffles within 128-bit lanes make each lane a 4 x 4 transpose, then whole 128-bit
  // lanes move.
  static void transpose_square(V* rows) noexcept {
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
  }
  static void prefetch_l2(const void* address) noexcept { _mm_prefetch(static_cast<const char*>(address), _MM_HINT_T1); }
};
#endif

#if defined(__AVX2__) && defined(__FMA__)
template <>
struct IsaTraits<xsimd::fma3<xsimd::avx2>> {
  using A = xsimd::fma3<xsimd::avx2>;
  using V = Vec<A>;
  static constexpr int kRegisters = 16;
  static constexpr bool kFusedMultiplyAdd = true;
  static V fmadd(V a, V b, V c) noexcept { return _mm256_fmadd_ps(a, b, c); }
  static V fmadd_where(xsimd::batch_bool<float, A> mask, V a, V b, V c) noexcept {
    return xsimd::select(mask, fmadd(a, b, c), c);
  }
  // 8 x 8: 4 x 4 transposes within 128-bit lanes, then the lanes swap.
  static void transpose_square(V* rows) noexcept {
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
  }
  static void prefetch_l2(const void* address) noexcept { _mm_prefetch(static_cast<const char*>(address), _MM_HINT_T1); }
};
#endif

// The x86-64 baseline: no FMA (a * b + c rounds twice).
template <>
struct IsaTraits<xsimd::sse2> {
  using V = Vec<xsimd::sse2>;
  static constexpr int kRegisters = 16;
  static constexpr bool kFusedMultiplyAdd = false;
  static V fmadd(V a, V b, V c) noexcept { return a * b + c; }
  static V fmadd_where(xsimd::batch_bool<float, xsimd::sse2> mask, V a, V b, V c) noexcept {
    return xsimd::select(mask, fmadd(a, b, c), c);
  }
  static void transpose_square(V* rows) noexcept {
    __m128 r0 = rows[0], r1 = rows[1], r2 = rows[2], r3 = rows[3];
    _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
    rows[0] = r0, rows[1] = r1, rows[2] = r2, rows[3] = r3;
  }
  static void prefetch_l2(const void* address) noexcept { _mm_prefetch(static_cast<const char*>(address), _MM_HINT_T1); }
};

}  // namespace causalattn::kernels
