// The bf16 projection on AMX tiles: y = x · Wᵀ + b with x, W, b and y in bf16 and the sums in f32
// (causalattn_linear_bf16), for the amx row of the ISA table; other rows widen to f32
// (linear/linear.cpp). A task computes 32 rows by 32 features at a time in four C tiles, from two
// A tiles of x's rows (read in place when they are whole, else copied zero-padded) and two B tiles
// of W packed once in AMX's pair layout; the sums leave the tiles through a 32 × 32 f32 block, get
// the bias and are rounded to bf16 (nearest even). Each output's sum runs over k in the same order
// whatever the task, so the bits do not depend on the thread count.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/kernel_table.hpp"
#include "kernels/simd.hpp"

namespace causalattn::kernels {

constexpr int64_t kAmxGemmRows = 32;  // rows of y per microkernel step (two A tiles)

// Packs panel `panel` of W ([n][k] bf16, rows at w_stride): B tile (d, half) row p holds, for
// features panel·32 + half·16 + f, the pair (W[f][32d + 2p], W[f][32d + 2p + 1]).
// A whole 16-feature, 32-deep tile is 16 rows of 16 bf16 pairs transposed (bits moved, no
// arithmetic); a tile past n or k is filled one element at a time.
template <class Arch>
void gemm_bf16_pack_panel(const uint16_t* w, int64_t w_stride, int64_t n, int64_t k, int64_t panel, uint16_t* packed) {
  const int64_t depth = (k + kAmxGemmDepth - 1) / kAmxGemmDepth;
  uint16_t* out = packed + panel * depth * kAmxGemmFeatures * kAmxGemmDepth;
  for (int64_t d = 0; d < depth; ++d)
    for (int64_t half = 0; half < 2; ++half, out += 16 * kAmxGemmDepth) {
      const int64_t first = panel * kAmxGemmFeatures + half * 16, j0 = d * kAmxGemmDepth;
      if constexpr (Vec<Arch>::size == 16) {
        if (first + 16 <= n && j0 + kAmxGemmDepth <= k) {
          Vec<Arch> square[16];
          for (int f = 0; f < 16; ++f) square[f] = Vec<Arch>::load_unaligned(reinterpret_cast<const float*>(w + (first + f) * w_stride + j0));
          transpose_square<Arch>(square);
          for (int p = 0; p < 16; ++p) square[p].store_unaligned(reinterpret_cast<float*>(out + p * kAmxGemmDepth));
          continue;
        }
      }
      for (int64_t p = 0; p < kAmxGemmDepth / 2; ++p)
        for (int64_t f = 0; f < 16; ++f)
          for (int64_t e = 0; e < 2; ++e) {
            const int64_t feature = first + f, j = j0 + 2 * p + e;
            out[p * kAmxGemmDepth + 2 * f + e] = feature < n && j < k ? w[feature * w_stride + j] : uint16_t{0};
          }
    }
}

// Bytes of a task's workspace for depth k: 32 rows of x zero-padded, and the 32 × 32 f32 sums.
template <class Arch>
std::size_t gemm_bf16_workspace_bytes(int64_t k) {
  const int64_t padded = (k + kAmxGemmDepth - 1) / kAmxGemmDepth * kAmxGemmDepth;
  return static_cast<std::size_t>(kAmxGemmRows * padded * 2 + kAmxGemmRows * kAmxGemmFeatures * 4 + 64);
}

// y[0 .. features) = sums (+ bias) rounded to bf16 (nearest even), a vector at a time, the last
// ones past a whole vector one by one; bias is nullptr or the features' first bias. (Both bf16
// projections end with it: this one and gemm_bf16_dot.hpp's.)
template <class Arch>
void store_bf16_sums(const float* sums, int64_t features, const uint16_t* bias, uint16_t* y) {
  using T = IsaTraits<Arch>;
  using V = Vec<Arch>;
  constexpr int64_t W = V::size;
  int64_t f = 0;
  for (; f + W <= features; f += W) {
    V s = V::load_unaligned(sums + f);
    if (bias != nullptr) s = s + T::load_bf16(bias + f);
    T::store_bf16(s, y + f);
  }
  for (; f < features; ++f) {
    float s = sums[f];
    if (bias != nullptr) s += dtype::element<Arch>(bias + f, Dtype::kBf16, 0);
    dtype::store_element<Arch>(y + f, Dtype::kBf16, 0, s);
  }
}

// Rows [m_begin, m_end) and features [n_begin, n_end) of y (n_begin a multiple of 32).
template <class Arch>
void gemm_bf16_block(const GemmBf16Args& g) {
  if constexpr (IsaTraits<Arch>::kAmx) {
    using T = IsaTraits<Arch>;
    constexpr int64_t R = kAmxGemmRows, F = kAmxGemmFeatures;
    const int64_t depth = (g.k + kAmxGemmDepth - 1) / kAmxGemmDepth, padded = depth * kAmxGemmDepth;
    auto* const rows_copy = reinterpret_cast<std::byte*>(g.workspace);
    auto* const sums = reinterpret_cast<float*>(rows_copy + R * padded * 2);  // [32][32], 64-byte aligned
    T::configure_tiles();
    for (int64_t r0 = g.m_begin; r0 < g.m_end; r0 += R) {
      const int64_t rows = std::min(R, g.m_end - r0);
      const std::byte* a = reinterpret_cast<const std::byte*>(g.x + r0 * g.x_stride);
      int64_t a_stride = g.x_stride * 2;
      if (rows < R || g.k % kAmxGemmDepth != 0) {  // tiles read whole 32-row, 32-k blocks
        std::memset(rows_copy, 0, static_cast<std::size_t>(R * padded * 2));
        for (int64_t i = 0; i < rows; ++i) std::memcpy(rows_copy + i * padded * 2, a + i * a_stride, static_cast<std::size_t>(g.k * 2));
        a = rows_copy;
        a_stride = padded * 2;
      }
      for (int64_t f0 = g.n_begin; f0 < g.n_end; f0 += F) {
        const uint16_t* b = g.packed_w + f0 / F * depth * F * kAmxGemmDepth;
        T::template tile_zero<0>();
        T::template tile_zero<1>();
        T::template tile_zero<2>();
        T::template tile_zero<3>();
        for (int64_t d = 0; d < depth; ++d) {
          T::template tile_load<4>(a + d * kAmxGemmDepth * 2, a_stride);
          T::template tile_load<5>(a + 16 * a_stride + d * kAmxGemmDepth * 2, a_stride);
          T::template tile_load<6>(b + (2 * d) * 16 * kAmxGemmDepth, T::kTileBytes);
          T::template tile_load<7>(b + (2 * d + 1) * 16 * kAmxGemmDepth, T::kTileBytes);
          T::template tile_dot_bf16<0, 4, 6>();
          T::template tile_dot_bf16<1, 4, 7>();
          T::template tile_dot_bf16<2, 5, 6>();
          T::template tile_dot_bf16<3, 5, 7>();
        }
        T::template tile_store<0>(sums, F * 4);
        T::template tile_store<1>(sums + 16, F * 4);
        T::template tile_store<2>(sums + 16 * F, F * 4);
        T::template tile_store<3>(sums + 16 * F + 16, F * 4);
        const int64_t features = std::min(F, g.n_end - f0);
        for (int64_t i = 0; i < rows; ++i) {
          store_bf16_sums<Arch>(sums + i * F, features, g.bias != nullptr ? g.bias + f0 : nullptr,
                                g.y + (r0 + i) * g.y_stride + f0);
        }
      }
    }
    T::release_tiles();
  }
}

}  // namespace causalattn::kernels
