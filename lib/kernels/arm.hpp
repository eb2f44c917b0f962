// The aarch64 rows of the ISA table as IsaTraits (lib/kernels/simd.hpp): NEON (Advanced SIMD, the
// baseline of every aarch64 CPU: 32 registers of 4 floats, fused multiply-add). Every NEON
// intrinsic of the kernels lives here, as every x86 one lives in x86.hpp.
#pragma once

#include <arm_neon.h>

#include <cstdint>
#include <cstring>

#include <xsimd/xsimd.hpp>

namespace causalattn::kernels {

#if defined(__aarch64__)
template <>
struct IsaTraits<xsimd::neon64> {
  using A = xsimd::neon64;
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
  static void prefetch_l2(const void* address) noexcept { __builtin_prefetch(address, 0, 2); }
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
};
#endif

}  // namespace causalattn::kernels
