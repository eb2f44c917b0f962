// The x86 rows of the ISA table as IsaTraits (lib/kernels/simd.hpp): AVX-512 with AMX, AVX-512 with
// BF16, AVX-512 (F/CD/DQ/BW/VL + FMA + F16C), AVX2 + FMA + F16C, SSE2. Every x86 intrinsic of the
// kernels lives here. Each specialization is defined only where its ISA's flags are on: a kernel
// object is compiled with one ISA's flags and instantiates only that ISA's traits.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include <xsimd/xsimd.hpp>

#include "common/dtype.hpp"

// AMX-TILE and AMX-BF16 are on (g++ and clang spell the macros differently).
#if (defined(__AMX_TILE__) && defined(__AMX_BF16__)) || (defined(__AMXTILE__) && defined(__AMXBF16__))
#define CAUSALATTN_HAS_AMX_BF16 1
#else
#define CAUSALATTN_HAS_AMX_BF16 0
#endif

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__FMA__) && defined(__F16C__) && defined(__AVX512BF16__)
namespace causalattn::kernels {
// AVX-512 with the BF16 dot product (vdpbf16ps: Cooper Lake, Sapphire Rapids, Zen 4): xsimd's
// AVX-512 registers under an architecture type of its own, so its kernels share no symbol with
// the avx512 row's.
struct avx512bf16 : xsimd::avx512bw {
  static constexpr bool supported() noexcept { return true; }
  static constexpr bool available() noexcept { return true; }
  static constexpr unsigned version() noexcept { return xsimd::generic::version(3, 4, 1); }
  static constexpr char const* name() noexcept { return "avx512bf16"; }
};

}  // namespace causalattn::kernels

namespace xsimd::types {
template <class T>
struct get_bool_simd_register<T, causalattn::kernels::avx512bf16> {
  using type = simd_avx512_bool_register<T>;
};
XSIMD_DECLARE_SIMD_REGISTER_ALIAS(causalattn::kernels::avx512bf16, avx512bw);
}  // namespace xsimd::types
#endif

#if defined(__AVX512BF16__) && CAUSALATTN_HAS_AMX_BF16
namespace causalattn::kernels {
// AVX-512 with BF16 and AMX's bf16 tiles (Sapphire Rapids and later): again xsimd's AVX-512
// registers under an architecture type of its own.
struct amx : xsimd::avx512bw {
  static constexpr bool supported() noexcept { return true; }
  static constexpr bool available() noexcept { return true; }
  static constexpr unsigned version() noexcept { return xsimd::generic::version(3, 5, 1); }
  static constexpr char const* name() noexcept { return "amx"; }
};

}  // namespace causalattn::kernels

namespace xsimd::types {
template <class T>
struct get_bool_simd_register<T, causalattn::kernels::amx> {
  using type = simd_avx512_bool_register<T>;
};
XSIMD_DECLARE_SIMD_REGISTER_ALIAS(causalattn::kernels::amx, avx512bw);
}  // namespace xsimd::types
#endif

namespace causalattn::kernels {

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__FMA__) && defined(__F16C__)
// The AVX-512 rows (avx512, and avx512bf16 below): everything but the BF16 dot product.
template <class A>
struct Avx512Traits {
  using V = Vec<A>;
  static constexpr int kRegisters = 32;
  static constexpr bool kFusedMultiplyAdd = true;
  static constexpr bool kDotBf16 = false;
  static constexpr bool kAmx = false;
  static V fmadd(V a, V b, V c) noexcept { return _mm512_fmadd_ps(a, b, c); }
  // One masked FMA.
  static V fmadd_where(xsimd::batch_bool<float, A> mask, V a, V b, V c) noexcept {
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
  // Lane k = the sum of rows[k]'s 16 lanes, for 16 rows: a tree of 15 shuffle-and-add steps, each
  // halving the lanes every row spans, then one permute into key order (31 shuffles, against
  // about 3 per row for one horizontal sum at a time).
  static V sum_lanes(const V* rows) noexcept {
    __m512 c[8], e[4], f[2];
    for (int i = 0; i < 8; ++i) {  // row pairs: 8 partial sums of each in lanes 0-7 / 8-15
      c[i] = _mm512_add_ps(_mm512_shuffle_f32x4(rows[2 * i], rows[2 * i + 1], 0x44),
                           _mm512_shuffle_f32x4(rows[2 * i], rows[2 * i + 1], 0xEE));
    }
    for (int i = 0; i < 4; ++i) {  // 128-bit group g of e[i]: 4 partial sums of row 4i + g
      e[i] = _mm512_add_ps(_mm512_shuffle_f32x4(c[2 * i], c[2 * i + 1], 0x88),
                           _mm512_shuffle_f32x4(c[2 * i], c[2 * i + 1], 0xDD));
    }
    for (int i = 0; i < 2; ++i) {  // group g: 2 partial sums of row 8i + g in lanes 0-1, of 8i + 4 + g in 2-3
      f[i] = _mm512_add_ps(_mm512_shuffle_ps(e[2 * i], e[2 * i + 1], 0x44), _mm512_shuffle_ps(e[2 * i], e[2 * i + 1], 0xEE));
    }
    // Lane 4g + t: the sum of row g + 4t.
    const __m512 sums = _mm512_add_ps(_mm512_shuffle_ps(f[0], f[1], 0x88), _mm512_shuffle_ps(f[0], f[1], 0xDD));
    const __m512i key_order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    return _mm512_permutexvar_ps(key_order, sums);
  }
  static void prefetch_l2(const void* address) noexcept { asm volatile("prefetcht1 %0" : : "m"(*static_cast<const char*>(address))); }
  static void prefetch_l1(const void* address) noexcept { asm volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(address))); }
  static V load_bf16(const void* p) noexcept {
    const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(static_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
  }
  static V load_f16(const void* p) noexcept { return _mm512_cvtph_ps(_mm256_loadu_si256(static_cast<const __m256i*>(p))); }
  static V load_i8(const void* p) noexcept {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(static_cast<const __m128i*>(p))));
  }
  static float f16_scalar(uint16_t h) noexcept { return _cvtsh_ss(h); }
  // Round to nearest even on the bits (vcvtneps2bf16 would flush subnormals); NaN made quiet.
  static void store_bf16(V x, void* p) noexcept {
    const __m512i u = _mm512_castps_si512(x), high = _mm512_srli_epi32(u, 16);
    const __m512i bias = _mm512_add_epi32(_mm512_and_si512(high, _mm512_set1_epi32(1)), _mm512_set1_epi32(0x7fff));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, bias), 16);
    r = _mm512_mask_or_epi32(r, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), high, _mm512_set1_epi32(0x40));
    _mm256_storeu_si256(static_cast<__m256i*>(p), _mm512_cvtepi32_epi16(r));
  }
  static void store_f16(V x, void* p) noexcept {
    _mm256_storeu_si256(static_cast<__m256i*>(p), _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
};

template <>
struct IsaTraits<xsimd::avx512bw> : Avx512Traits<xsimd::avx512bw> {};
#endif

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__FMA__) && defined(__F16C__) && defined(__AVX512BF16__)
// The BF16 rows (avx512bf16, amx): the AVX-512 traits and the BF16 dot product.
template <class A>
struct Avx512Bf16Traits : Avx512Traits<A> {
  using V = Vec<A>;
  static constexpr bool kDotBf16 = true;
  // acc + a[2i]·b[2i] + a[2i+1]·b[2i+1] in each lane, a and b pairs of bf16 (vdpbf16ps: products
  // exact, subnormal inputs and results flushed to zero).
  static V dot_bf16(V acc, __m512i a, __m512i b) noexcept {
    return _mm512_dpbf16_ps(static_cast<__m512>(acc), reinterpret_cast<__m512bh>(a), reinterpret_cast<__m512bh>(b));
  }
  // Lane l of the result: the bf16 pair (p0[l], p1[l]) rounded to nearest even (subnormals flushed).
  static __m512i pair_bf16(V p0, V p1) noexcept {
    const __m512i halves = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(static_cast<__m512>(p1), static_cast<__m512>(p0)));  // p0 below, p1 above
    const __m512i interleave = _mm512_setr_epi32(0x00100000, 0x00110001, 0x00120002, 0x00130003, 0x00140004,
                                                 0x00150005, 0x00160006, 0x00170007, 0x00180008, 0x00190009,
                                                 0x001a000a, 0x001b000b, 0x001c000c, 0x001d000d, 0x001e000e,
                                                 0x001f000f);
    return _mm512_permutexvar_epi16(interleave, halves);
  }
  // 16 lanes of bf16 pairs.
  using Pairs = __m512i;
  static Pairs load_pairs(const uint32_t* p) noexcept { return _mm512_load_si512(p); }
  static void store_pairs(Pairs x, uint32_t* p) noexcept { _mm512_store_si512(p, x); }
  static Pairs broadcast_pair(uint32_t pair) noexcept { return _mm512_set1_epi32(static_cast<int>(pair)); }
  // out[d] = r0[d] | r1[d] << 16 for 32 bf16 elements d of rows r0 and r1.
  static void interleave_bf16(const void* r0, const void* r1, uint32_t* out) noexcept {
    const __m512i a = _mm512_loadu_si512(r0), b = _mm512_loadu_si512(r1);
    const __m512i low = _mm512_setr_epi32(0x00200000, 0x00210001, 0x00220002, 0x00230003, 0x00240004, 0x00250005,
                                          0x00260006, 0x00270007, 0x00280008, 0x00290009, 0x002a000a, 0x002b000b,
                                          0x002c000c, 0x002d000d, 0x002e000e, 0x002f000f);
    const __m512i high = _mm512_add_epi16(low, _mm512_set1_epi16(16));
    _mm512_storeu_si512(out, _mm512_permutex2var_epi16(a, low, b));
    _mm512_storeu_si512(out + 16, _mm512_permutex2var_epi16(a, high, b));
  }
};

template <>
struct IsaTraits<avx512bf16> : Avx512Bf16Traits<avx512bf16> {};
#endif

#if defined(__AVX512BF16__) && CAUSALATTN_HAS_AMX_BF16
#define CAUSALATTN_EACH_TILE(T, op, ...)          \
  static_assert(T >= 0 && T < 8, "eight tiles");  \
  if constexpr (T == 0) op(0 __VA_OPT__(, ) __VA_ARGS__); \
  if constexpr (T == 1) op(1 __VA_OPT__(, ) __VA_ARGS__); \
  if constexpr (T == 2) op(2 __VA_OPT__(, ) __VA_ARGS__); \
  if constexpr (T == 3) op(3 __VA_OPT__(, ) __VA_ARGS__); \
  if constexpr (T == 4) op(4 __VA_OPT__(, ) __VA_ARGS__); \
  if constexpr (T == 5) op(5 __VA_OPT__(, ) __VA_ARGS__); \
  if constexpr (T == 6) op(6 __VA_OPT__(, ) __VA_ARGS__); \
  if constexpr (T == 7) op(7 __VA_OPT__(, ) __VA_ARGS__)
// AMX with bf16 (attention_amx.hpp): eight tile registers of 16 rows by 64 bytes, one
// configuration for every tile; a tile index is an immediate, hence the template arguments.
template <>
struct IsaTraits<amx> : Avx512Bf16Traits<amx> {
  static constexpr bool kAmx = true;
  static constexpr int kTileRows = 16;    // rows of every tile
  static constexpr int kTileBytes = 64;   // bytes of a tile row: 16 f32, or 32 bf16 (16 pairs)

  // Every tile 16 rows by 64 bytes (palette 1). The state is the calling thread's: a kernel sets
  // it on entry and releases it on exit, so nothing of ours stays in the thread's tile registers.
  static void configure_tiles() noexcept {
    struct alignas(64) {
      uint8_t palette, start_row, reserved[14];
      uint16_t bytes_per_row[16];
      uint8_t rows[16];
    } config = {};
    config.palette = 1;
    for (int t = 0; t < 8; ++t) {
      config.bytes_per_row[t] = kTileBytes;
      config.rows[t] = kTileRows;
    }
    _tile_loadconfig(&config);
  }
  static void release_tiles() noexcept { _tile_release(); }
  // g++'s tile intrinsics paste their index into the assembly as written, so each index is
  // spelled out once here.
  template <int T>
  static void tile_zero() noexcept {
    CAUSALATTN_EACH_TILE(T, _tile_zero);
  }
  template <int T>
  static void tile_load(const void* p, int64_t stride_bytes) noexcept {
    CAUSALATTN_EACH_TILE(T, _tile_loadd, p, stride_bytes);
  }
  template <int T>
  static void tile_store(void* p, int64_t stride_bytes) noexcept {
    CAUSALATTN_EACH_TILE(T, _tile_stored, p, stride_bytes);
  }
  // C += A · B, tiles by index: A 16 rows of 16 bf16 pairs, B 16 rows (pairs) of 16 bf16 pairs,
  // C 16 x 16 f32; products exact, sums in f32 (subnormal inputs and results flushed to zero).
  // The (C, A, B) triples the kernels use, each spelled out (clang checks a tile product's literal
  // indices even in a discarded branch): the attention kernel's three, the projection's four, the
  // peak loop's six.
  template <int C, int A, int B>
  static void tile_dot_bf16() noexcept {
#define CAUSALATTN_DOT(c, a, b) else if constexpr (C == c && A == a && B == b) _tile_dpbf16ps(c, a, b);
    if constexpr (false) {
    }
    CAUSALATTN_DOT(0, 3, 4) CAUSALATTN_DOT(1, 3, 5) CAUSALATTN_DOT(2, 3, 6)
    CAUSALATTN_DOT(0, 4, 6) CAUSALATTN_DOT(1, 4, 7) CAUSALATTN_DOT(2, 5, 6) CAUSALATTN_DOT(3, 5, 7)
    CAUSALATTN_DOT(0, 6, 7) CAUSALATTN_DOT(1, 6, 7) CAUSALATTN_DOT(2, 6, 7) CAUSALATTN_DOT(3, 6, 7)
    CAUSALATTN_DOT(4, 6, 7) CAUSALATTN_DOT(5, 6, 7)
    else static_assert(C < 0, "add this (C, A, B) triple to tile_dot_bf16's list");
#undef CAUSALATTN_DOT
  }

  // 16 dims [d0, d0 + 16) of 32 bf16 rows (nullptr: a row of zeros) transposed: out row d holds
  // the 32 rows' element d0 + d, 64 bytes at out + d · out_stride bytes. Returns whether every
  // element is finite (no exponent of all ones: ±∞, NaN).
  static bool transpose_bf16_rows(const std::byte* const* rows, int64_t d0, std::byte* out, int64_t out_stride) noexcept {
    __m512 pairs[16];  // pairs[i] lane d: rows 2i and 2i + 1 at dim d0 + d, the first in the low half
    const __m512i exponent = _mm512_set1_epi16(0x7f80);
    __mmask32 not_finite = 0;
    for (int i = 0; i < 16; ++i) {
      auto widen = [&](const std::byte* row) {
        return row == nullptr ? _mm512_setzero_si512()
                              : _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * d0)));
      };
      const __m512i pair = _mm512_or_si512(widen(rows[2 * i]), _mm512_slli_epi32(widen(rows[2 * i + 1]), 16));
      not_finite |= _mm512_cmpeq_epi16_mask(_mm512_and_si512(pair, exponent), exponent);
      pairs[i] = _mm512_castsi512_ps(pair);
    }
    transpose_square(reinterpret_cast<V*>(pairs));  // moves bits only: shuffles, no arithmetic
    for (int d = 0; d < 16; ++d) _mm512_storeu_ps(out + d * out_stride, pairs[d]);
    return not_finite == 0;
  }
};
#endif

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
template <>
struct IsaTraits<xsimd::fma3<xsimd::avx2>> {
  using A = xsimd::fma3<xsimd::avx2>;
  using V = Vec<A>;
  static constexpr int kRegisters = 16;
  static constexpr bool kFusedMultiplyAdd = true;
  static constexpr bool kDotBf16 = false;
  static constexpr bool kAmx = false;
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
  static V sum_lanes(const V* rows) noexcept { return sum_lanes_by_transpose<A>(rows); }
  static void prefetch_l2(const void* address) noexcept { asm volatile("prefetcht1 %0" : : "m"(*static_cast<const char*>(address))); }
  static void prefetch_l1(const void* address) noexcept { asm volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(address))); }
  static V load_bf16(const void* p) noexcept {
    const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(static_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
  }
  static V load_f16(const void* p) noexcept { return _mm256_cvtph_ps(_mm_loadu_si128(static_cast<const __m128i*>(p))); }
  static V load_i8(const void* p) noexcept {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(static_cast<const __m128i*>(p))));
  }
  static float f16_scalar(uint16_t h) noexcept { return _cvtsh_ss(h); }
  static void store_bf16(V x, void* p) noexcept {
    const __m256i u = _mm256_castps_si256(x), high = _mm256_srli_epi32(u, 16);
    const __m256i bias = _mm256_add_epi32(_mm256_and_si256(high, _mm256_set1_epi32(1)), _mm256_set1_epi32(0x7fff));
    const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(u, bias), 16);
    const __m256i quiet = _mm256_or_si256(high, _mm256_set1_epi32(0x40));
    const __m256i r = _mm256_blendv_epi8(rounded, quiet, _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q)));
    // Lanes hold 16-bit values: pack within each 128-bit half, then gather the two halves' low words.
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08);
    _mm_storeu_si128(static_cast<__m128i*>(p), _mm256_castsi256_si128(packed));
  }
  static void store_f16(V x, void* p) noexcept {
    _mm_storeu_si128(static_cast<__m128i*>(p), _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
};
#endif

// The x86-64 baseline: no FMA (a * b + c rounds twice).
template <>
struct IsaTraits<xsimd::sse2> {
  using V = Vec<xsimd::sse2>;
  static constexpr int kRegisters = 16;
  static constexpr bool kFusedMultiplyAdd = false;
  static constexpr bool kDotBf16 = false;
  static constexpr bool kAmx = false;
  static V fmadd(V a, V b, V c) noexcept { return a * b + c; }
  static V fmadd_where(xsimd::batch_bool<float, xsimd::sse2> mask, V a, V b, V c) noexcept {
    return xsimd::select(mask, fmadd(a, b, c), c);
  }
  static void transpose_square(V* rows) noexcept {
    __m128 r0 = rows[0], r1 = rows[1], r2 = rows[2], r3 = rows[3];
    _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
    rows[0] = r0, rows[1] = r1, rows[2] = r2, rows[3] = r3;
  }
  static V sum_lanes(const V* rows) noexcept { return sum_lanes_by_transpose<xsimd::sse2>(rows); }
  static void prefetch_l2(const void* address) noexcept { asm volatile("prefetcht1 %0" : : "m"(*static_cast<const char*>(address))); }
  static void prefetch_l1(const void* address) noexcept { asm volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(address))); }
  // The baseline has no F16C or widening loads: the conversions go element by element through
  // the library's scalar ones (common/dtype.cpp), a fallback for CPUs older than any that an
  // engine would run 16-bit caches on.
  static V load_bf16(const void* p) noexcept { return convert_from(p, Dtype::kBf16); }
  static V load_f16(const void* p) noexcept { return convert_from(p, Dtype::kF16); }
  static V load_i8(const void* p) noexcept {
    alignas(16) float t[4];
    for (int i = 0; i < 4; ++i) t[i] = static_cast<float>(static_cast<const int8_t*>(p)[i]);
    return V::load_aligned(t);
  }
  static float f16_scalar(uint16_t h) noexcept { return dtype::f16_to_f32<xsimd::sse2>(h); }
  static void store_bf16(V x, void* p) noexcept { convert_to(x, p, Dtype::kBf16); }
  static void store_f16(V x, void* p) noexcept { convert_to(x, p, Dtype::kF16); }

 private:
  static V convert_from(const void* p, Dtype t) noexcept {
    alignas(16) float out[4];
    for (int i = 0; i < 4; ++i) out[i] = dtype::element<xsimd::sse2>(p, t, i);
    return V::load_aligned(out);
  }
  static void convert_to(V x, void* p, Dtype t) noexcept {
    alignas(16) float in[4];
    x.store_aligned(in);
    for (int i = 0; i < 4; ++i) dtype::store_element<xsimd::sse2>(p, t, i, in[i]);
  }
};

}  // namespace causalattn::kernels

