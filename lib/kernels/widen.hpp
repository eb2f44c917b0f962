// Rows of any element type read as f32 vectors and f32 vectors written as any output type,
// through the ISA's conversions (IsaTraits: load_bf16, load_f16, load_i8, store_bf16, store_f16).
// Widening is exact, so the kernels compute on the same f32 values whatever the storage was.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "common/dtype.hpp"
#include "kernels/kv_rows.hpp"
#include "kernels/simd.hpp"

namespace causalattn::kernels {

// The W elements d, d + 1, ... of a row stored as T (for q8_0 the row's first block; W divides
// the block's 32, so a vector never spans two blocks).
template <class Arch, Dtype T>
inline Vec<Arch> load_as(const std::byte* row, int64_t d) noexcept {
  using Traits = IsaTraits<Arch>;
  if constexpr (T == Dtype::kF32) {
    return Vec<Arch>::load_unaligned(reinterpret_cast<const float*>(row) + d);
  } else if constexpr (T == Dtype::kBf16) {
    return Traits::load_bf16(row + 2 * d);
  } else if constexpr (T == Dtype::kF16) {
    return Traits::load_f16(row + 2 * d);
  } else {
    const std::byte* block = row + d / kQ8Block * kQ8BlockBytes;
    uint16_t scale;
    std::memcpy(&scale, block, sizeof scale);
    return Traits::load_i8(block + 2 + d % kQ8Block) * Vec<Arch>(Traits::f16_scalar(scale));
  }
}

// NV consecutive vectors from element d0 of a row stored as T: out[v] = load_as<T>(row, d0 + v·W).
// For q8_0 each block's scale is read and widened once for the vectors in it; d0 must then be a
// multiple of 32, or the NV vectors lie in one block.
template <class Arch, Dtype T, int NV>
inline void load_vectors(const std::byte* row, int64_t d0, Vec<Arch>* out) noexcept {
  constexpr int64_t W = Vec<Arch>::size;
  if constexpr (T == Dtype::kQ8_0) {
    const std::byte* first = row + d0 / kQ8Block * kQ8BlockBytes;
    const int64_t offset = d0 % kQ8Block;
    Vec<Arch> scale;
    for_each_index<NV>([&](auto v) {
      constexpr int64_t block = v() * W / kQ8Block, within = v() * W % kQ8Block;
      const std::byte* b = first + block * kQ8BlockBytes;
      if constexpr (within == 0 || v() == 0) {
        uint16_t bits;
        std::memcpy(&bits, b, sizeof bits);
        scale = Vec<Arch>(IsaTraits<Arch>::f16_scalar(bits));
      }
      out[v()] = IsaTraits<Arch>::load_i8(b + 2 + offset + within) * scale;
    });
  } else {
    for (int v = 0; v < NV; ++v) out[v] = load_as<Arch, T>(row, d0 + v * W);
  }
}

// load_as with the type chosen at run time.
template <class Arch>
inline Vec<Arch> load_any(const std::byte* row, Dtype t, int64_t d) noexcept {
  switch (t) {
    case Dtype::kBf16: return load_as<Arch, Dtype::kBf16>(row, d);
    case Dtype::kF16: return load_as<Arch, Dtype::kF16>(row, d);
    case Dtype::kQ8_0: return load_as<Arch, Dtype::kQ8_0>(row, d);
    case Dtype::kF32: break;
  }
  return load_as<Arch, Dtype::kF32>(row, d);
}

// Stores x as elements d, d + 1, ... of a row of f32, bf16 or f16.
template <class Arch>
inline void store_any(Vec<Arch> x, std::byte* row, Dtype t, int64_t d) noexcept {
  switch (t) {
    case Dtype::kBf16: return IsaTraits<Arch>::store_bf16(x, row + 2 * d);
    case Dtype::kF16: return IsaTraits<Arch>::store_f16(x, row + 2 * d);
    default: return x.store_unaligned(reinterpret_cast<float*>(row) + d);
  }
}

// out[0 .. head_dim) = row as f32 (out 64-byte aligned when head_dim is a multiple of W).
template <class Arch>
inline void widen_row(const std::byte* row, Dtype t, int64_t head_dim, float* out) noexcept {
  constexpr int64_t W = Vec<Arch>::size;
  int64_t d = 0;
  for (; d + W <= head_dim; d += W) load_any<Arch>(row, t, d).store_unaligned(out + d);
  for (; d < head_dim; ++d) out[d] = dtype::element<Arch>(row, t, d);
}

// Keys [begin, end) of `rows` widened into out ([end - begin][head_dim] f32), as contiguous f32
// rows from key `begin`. Each row's source is prefetched a few rows ahead: paged caches jump
// between pages where the hardware's prefetch starts over.
template <class Arch>
KvRows widen_chunk(const KvRows& rows, int64_t begin, int64_t end, int64_t head_dim, float* out) {
  constexpr int64_t kBatch = 64, kAhead = 4;
  const int64_t bytes = row_bytes<Arch>(rows.dtype, head_dim);
  const std::byte* sources[kBatch];
  for (int64_t j0 = begin; j0 < end; j0 += kBatch) {
    const int64_t n = std::min(kBatch, end - j0);
    fill_rows<Arch>(rows, j0, n, sources);
    for (int64_t i = 0; i < n; ++i) {
      if (i + kAhead < n) prefetch_row<Arch>(sources[i + kAhead], bytes);
      widen_row<Arch>(sources[i], rows.dtype, head_dim, out + (j0 - begin + i) * head_dim);
    }
  }
  return {reinterpret_cast<const std::byte*>(out), head_dim * static_cast<int64_t>(sizeof(float)), nullptr, 0, 0,
          Dtype::kF32, begin};
}

}  // namespace causalattn::kernels
