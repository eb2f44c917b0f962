// The aarch64 rows of the ISA table as IsaTraits (lib/kernels/simd.hpp): NEON (Advanced SIMD, the
// baseline of every aarch64 CPU: 32 registers of 4 floats, fused multiply-add), and NEON with the
// BF16 dot product (BFDOT: Neoverse V1/V2/N2, Graviton 3 and later, Apple M2 and later). Every NEON
// intrinsic of the kernels lives here, as every x86 one lives in x86.hpp.
#pragma once

#include <arm_neon.h>

#include <cstdint>
#include <cstring>

#include <xsimd/xsimd.hpp>

#if defined(__aarch64__) && defined(__ARM_FEATURE_BF16_VECTOR_ARITHMETIC)
namespace causalattn::kernels {
// NEON with BF16: xsimd's neon64 registers under an architecture type of its own, so its kernels
// share no symbol with the neon row's.
struct neonbf16 : xsimd::neon64 {
  static constexpr bool supported() noexcept { return true; }
  static constexpr bool available() noexcept { return true; }
  static constexpr unsigned version() noexcept { return xsimd::generic::version(8, 2, 1); }
  static constexpr char const* name() noexcept { return "neonbf16"; }
};
}  // namespace causalattn::kernels

namespace xsimd::types {
template <class T>
struct get_bool_simd_register<T, causalattn::kernels::neonbf16>
    : detail::neon_bool_simd_register<T, causalattn::kernels::neonbf16> {};
XSIMD_DECLARE_SIMD_REGISTER_ALIAS(causalattn::kernels::neonbf16, neon64);
}  // namespace xsimd::types

namespace xsimd::kernel {
// xsimd 8.1's neon64 broadcast names neon64 itself where it should name the caller's arch, so it
// cannot return a batch of an arch derived from neon64: its specializations for ours (the
// kernels broadcast floats and 32-bit integers).
template <>
inline batch<float, causalattn::kernels::neonbf16> broadcast<causalattn::kernels::neonbf16, float>(
    float val, requires_arch<neon64>) noexcept {
  return vdupq_n_f32(val);
}
template <>
inline batch<int32_t, causalattn::kernels::neonbf16> broadcast<causalattn::kernels::neonbf16, int32_t>(
    int32_t val, requires_arch<neon64>) noexcept {
  return vdupq_n_s32(val);
}
template <>
inline batch<uint32_t, causalattn::kernels::neonbf16> broadcast<causalattn::kernels::neonbf16, uint32_t>(
    uint32_t val, requires_arch<neon64>) noexcept {
  return vdupq_n_u32(val);
}
}  // namespace xsimd::kernel
#endif

namespace causalattn::kernels {

#if defined(__aarch64__)
// The NEON rows (neon, and neonbf16 below): everything but the BF16 dot product.
template <class A>
struct NeonTraits {
  using V = Vec<A>;
  static constexpr int kRegisters = 32;
  static constexpr bool kFusedMultiplyAdd = true;
  static constexpr bool kDotBf16 = false;
  static constexpr bool kAmx = false;
  static V fmadd(V a, V b, V c) noexcept { return vfmaq_f32(c, a, b); }
  static V fmadd_where(xsimd::batch_bool<float, A> mask, V a, V b, V c) noexcept {
    return vbslq_f32(mask, vfmaq_f32(c, a, b), c);
  }
  // 4 x 4: 2 x 2 blocks of pairs swap across the diagonal (trn on 64-bit lanes), then the pairs
  // within each block (trn on 32-bit lanes).
  static void transpose_square(V* rows) noexcept {
    const float32x4_t t0 = vtrn1q_f32(rows[0], rows[1]), t1 = vtrn2q_f32(rows[0], rows[1]);
    const float32x4_t t2 = vtrn1q_f32(rows[2], rows[3]), t3 = vtrn2q_f32(rows[2], rows[3]);
    auto f64 = [](float32x4_t x) { return vreinterpretq_f64_f32(x); };
    rows[0] = vreinterpretq_f32_f64(vtrn1q_f64(f64(t0), f64(t2)));
    rows[1] = vreinterpretq_f32_f64(vtrn1q_f64(f64(t1), f64(t3)));
    rows[2] = vreinterpretq_f32_f64(vtrn2q_f64(f64(t0), f64(t2)));
    rows[3] = vreinterpretq_f32_f64(vtrn2q_f64(f64(t1), f64(t3)));
  }
  // Lane k = the sum of rows[k]'s lanes: two rounds of pairwise adds (faddp), 3 instructions for
  // 4 rows.
  static V sum_lanes(const V* rows) noexcept {
    return vpaddq_f32(vpaddq_f32(rows[0], rows[1]), vpaddq_f32(rows[2], rows[3]));
  }
  static void prefetch_l2(const void* address) noexcept { asm volatile("prfm pldl2keep, [%0]" : : "r"(address)); }
  static void prefetch_l1(const void* address) noexcept { asm volatile("prfm pldl1keep, [%0]" : : "r"(address)); }
  static V load_bf16(const void* p) noexcept {
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(static_cast<const uint16_t*>(p)), 16));
  }
  // fcvtl: exact, subnormals, infinities and NaN payloads kept (FPCR.FZ16 and DN are off on Linux).
  static V load_f16(const void* p) noexcept {
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(static_cast<const uint16_t*>(p))));
  }
  // Exactly 4 bytes read (a q8_0 block's tail may end the tensor).
  static V load_i8(const void* p) noexcept {
    int32_t word;
    std::memcpy(&word, p, sizeof word);
    const int16x8_t wide = vmovl_s8(vreinterpret_s8_s32(vdup_n_s32(word)));
    return vcvtq_f32_s32(vmovl_s16(vget_low_s16(wide)));
  }
  static float f16_scalar(uint16_t h) noexcept {
    __fp16 half;
    std::memcpy(&half, &h, sizeof half);
    return static_cast<float>(half);
  }
  // Round to nearest even on the bits (as x86.hpp's: bfcvt would need FEAT_BF16); NaN made quiet.
  static void store_bf16(V x, void* p) noexcept {
    const uint32x4_t u = vreinterpretq_u32_f32(x), high = vshrq_n_u32(u, 16);
    const uint32x4_t bias = vaddq_u32(vandq_u32(high, vdupq_n_u32(1)), vdupq_n_u32(0x7fff));
    const uint32x4_t rounded = vshrq_n_u32(vaddq_u32(u, bias), 16);
    const uint32x4_t quiet = vorrq_u32(high, vdupq_n_u32(0x40));
    const uint32x4_t r = vbslq_u32(vceqq_f32(x, x), rounded, quiet);
    vst1_u16(static_cast<uint16_t*>(p), vmovn_u32(r));
  }
  // fcvtn rounds as FPCR says: to nearest even on Linux.
  static void store_f16(V x, void* p) noexcept {
    vst1_u16(static_cast<uint16_t*>(p), vreinterpret_u16_f16(vcvt_f16_f32(x)));
  }
  // x rounded to nearest even on the bits into the high halves of the lanes (low halves garbage).
  static uint32x4_t round_bf16_high(V x) noexcept {
    const uint32x4_t u = vreinterpretq_u32_f32(x);
    return vaddq_u32(u, vaddq_u32(vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1)), vdupq_n_u32(0x7fff)));
  }
};

template <>
struct IsaTraits<xsimd::neon64> : NeonTraits<xsimd::neon64> {};
#endif

#if defined(__aarch64__) && defined(__ARM_FEATURE_BF16_VECTOR_ARITHMETIC)
// The neonbf16 row: the NEON traits and BFDOT, whose lanes are the pairs vdpbf16ps takes on x86,
// so the bf16 kernel (attention_bf16.hpp) runs unchanged.
template <>
struct IsaTraits<neonbf16> : NeonTraits<neonbf16> {
  using V = Vec<neonbf16>;
  static constexpr bool kDotBf16 = true;
  // 4 lanes of bf16 pairs (the first of each pair in the low half).
  using Pairs = uint32x4_t;
  // acc + a[2i]·b[2i] + a[2i+1]·b[2i+1] in each lane (bfdot: the products exact, their sum and
  // the accumulation rounded to odd, subnormal inputs and results flushed to zero).
  static V dot_bf16(V acc, Pairs a, Pairs b) noexcept {
    return vbfdotq_f32(acc, vreinterpretq_bf16_u32(a), vreinterpretq_bf16_u32(b));
  }
  // Lane l: the pair (p0[l], p1[l]) rounded to nearest even (weights: finite, in [0, 1]).
  static Pairs pair_bf16(V p0, V p1) noexcept {
    return vsriq_n_u32(round_bf16_high(p1), round_bf16_high(p0), 16);
  }
  static Pairs load_pairs(const uint32_t* p) noexcept { return vld1q_u32(p); }
  static void store_pairs(Pairs x, uint32_t* p) noexcept { vst1q_u32(p, x); }
  static Pairs broadcast_pair(uint32_t pair) noexcept { return vdupq_n_u32(pair); }
  // out[d] = r0[d] | r1[d] << 16 for 32 bf16 elements d of rows r0 and r1.
  static void interleave_bf16(const void* r0, const void* r1, uint32_t* out) noexcept {
    for (int i = 0; i < 4; ++i) {
      const uint16x8_t a = vld1q_u16(static_cast<const uint16_t*>(r0) + 8 * i);
      const uint16x8_t b = vld1q_u16(static_cast<const uint16_t*>(r1) + 8 * i);
      vst1q_u32(out + 8 * i, vreinterpretq_u32_u16(vzip1q_u16(a, b)));
      vst1q_u32(out + 8 * i + 4, vreinterpretq_u32_u16(vzip2q_u16(a, b)));
    }
  }
};
#endif

}  // namespace causalattn::kernels
