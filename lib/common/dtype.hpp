// Element types as the library stores them: the storage unit of each (one element, or one q8_0
// block of 32), and the scalar conversions every path shares (causalattn_convert, the kernels'
// odd tail dims, the merges, the tests). The conversions are templates on the caller's Arch, like
// everything the per-ISA kernels use, so no two per-ISA objects share an out-of-line copy; code
// outside the kernels instantiates them with Arch = void.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "causalattn/causalattn.h"

namespace causalattn {

enum class Dtype : int32_t {
  kF32 = CAUSALATTN_DTYPE_F32,
  kBf16 = CAUSALATTN_DTYPE_BF16,
  kF16 = CAUSALATTN_DTYPE_F16,
  kQ8_0 = CAUSALATTN_DTYPE_Q8_0,
};

// ggml's block_q8_0: an f16 scale, then 32 int8 values.
constexpr int64_t kQ8Block = 32;
constexpr int64_t kQ8BlockBytes = 34;

// Bytes of one storage unit (what strides count), and elements in it.
constexpr int64_t unit_bytes(Dtype t) { return t == Dtype::kF32 ? 4 : t == Dtype::kQ8_0 ? kQ8BlockBytes : 2; }
constexpr int64_t unit_elements(Dtype t) { return t == Dtype::kQ8_0 ? kQ8Block : 1; }
// The alignment a tensor's address needs.
constexpr int64_t dtype_alignment(Dtype t) { return t == Dtype::kF32 ? 4 : 2; }

// A causalattn_dtype as the int its caller stored. C lets an enum object hold any int; C++ reads
// one outside the enumerators' range as undefined behaviour, so the library reads the bits of
// every dtype a caller gives it (an argument once, at the C entry point) and validates the int.
inline int32_t raw_dtype(const causalattn_dtype& t) {
  static_assert(sizeof(causalattn_dtype) == sizeof(int32_t), "causalattn_dtype is an int");
  int32_t value;
  std::memcpy(&value, &t, sizeof value);
  return value;
}

// causalattn_convert, its dtypes as raw_dtype read them.
int convert(const void* src, int32_t src_dtype, void* dst, int32_t dst_dtype, int64_t n);

namespace dtype {

// "f32", "bf16", "f16", "q8_0".
const char* name(Dtype t);

template <class Arch>
inline uint32_t bits_of(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}

template <class Arch>
inline float float_of(uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

// Exact widenings.
template <class Arch>
inline float bf16_to_f32(uint16_t h) {
  return float_of<Arch>(static_cast<uint32_t>(h) << 16);
}

template <class Arch>
inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t magnitude = h & 0x7fffu;
  if (magnitude == 0x7c00u) return float_of<Arch>(sign | 0x7f800000u);  // infinity
  // NaN, made quiet with its payload kept, as vcvtph2ps does.
  if (magnitude > 0x7c00u) return float_of<Arch>(sign | 0x7fc00000u | ((magnitude & 0x3ffu) << 13));
  // Exponent and mantissa moved into place, then scaled by 2^(127 - 15): exact for normals and
  // subnormals alike.
  return float_of<Arch>(sign | bits_of<Arch>(float_of<Arch>(magnitude << 13) * 0x1p112f));
}

// Round to nearest even; NaN stays a quiet NaN (sign and top payload bits kept), overflow goes to
// infinity, subnormals are kept (no flush).
template <class Arch>
inline uint16_t f32_to_bf16(float x) {
  const uint32_t u = bits_of<Arch>(x);
  if (x != x) return static_cast<uint16_t>((u >> 16) | 0x40u);
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

template <class Arch>
inline uint16_t f32_to_f16(float x) {
  // As F. Giesen's float_to_half_fast3_rtne: the f16 subnormal range is rounded by a float addition.
  const uint32_t u = bits_of<Arch>(x);
  const uint32_t sign = u & 0x80000000u;
  uint32_t f = u ^ sign;
  uint32_t o;
  if (f >= (127u + 16u) << 23) {  // too large for f16, Inf or NaN
    o = f > 0x7f800000u ? 0x7e00u | ((f >> 13) & 0x3ffu) : 0x7c00u;
  } else if (f < 113u << 23) {  // subnormal or zero in f16
    const uint32_t magic = ((127u - 15u) + (23u - 10u) + 1u) << 23;
    o = bits_of<Arch>(float_of<Arch>(f) + float_of<Arch>(magic)) - magic;
  } else {
    f += ((15u - 127u) << 23) + 0xfffu + ((f >> 13) & 1u);
    o = f >> 13;
  }
  return static_cast<uint16_t>(o | (sign >> 16));
}

// Element d of a row stored as `t` (for q8_0 the row's first block), as f32.
template <class Arch>
inline float element(const void* row, Dtype t, int64_t d) {
  const auto* bytes = static_cast<const unsigned char*>(row);
  uint16_t h;
  switch (t) {
    case Dtype::kF32: {
      float x;
      std::memcpy(&x, bytes + 4 * d, sizeof x);
      return x;
    }
    case Dtype::kBf16: std::memcpy(&h, bytes + 2 * d, sizeof h); return bf16_to_f32<Arch>(h);
    case Dtype::kF16: std::memcpy(&h, bytes + 2 * d, sizeof h); return f16_to_f32<Arch>(h);
    case Dtype::kQ8_0: {
      const unsigned char* block = bytes + d / kQ8Block * kQ8BlockBytes;
      std::memcpy(&h, block, sizeof h);
      return f16_to_f32<Arch>(h) * static_cast<float>(static_cast<int8_t>(block[2 + d % kQ8Block]));
    }
  }
  return 0.0f;
}

// Stores x as element d of a row of f32, bf16 or f16.
template <class Arch>
inline void store_element(void* row, Dtype t, int64_t d, float x) {
  auto* bytes = static_cast<unsigned char*>(row);
  if (t == Dtype::kF32) {
    std::memcpy(bytes + 4 * d, &x, sizeof x);
    return;
  }
  const uint16_t h = t == Dtype::kBf16 ? f32_to_bf16<Arch>(x) : f32_to_f16<Arch>(x);
  std::memcpy(bytes + 2 * d, &h, sizeof h);
}

// One q8_0 block from 32 finite floats, as ggml's quantize_row_q8_0_ref: d = max|x| / 127 (stored
// as f16), q = round(x / d) (half away from zero), all q = 0 when d is 0.
template <class Arch>
inline void quantize_q8_0(const float* x, void* block) {
  float amax = 0.0f;
  for (int64_t i = 0; i < kQ8Block; ++i) amax = std::fmax(amax, std::fabs(x[i]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  auto* out = static_cast<unsigned char*>(block);
  const uint16_t scale = f32_to_f16<Arch>(d);
  std::memcpy(out, &scale, sizeof scale);
  for (int64_t i = 0; i < kQ8Block; ++i) {
    const auto q = static_cast<int8_t>(std::round(x[i] * id));
    std::memcpy(out + 2 + i, &q, 1);
  }
}

}  // namespace dtype
}  // namespace causalattn
