// The bf16 projection on the BF16 dot product (vdpbf16ps): y = x · Wᵀ + b with x, W, b and y in
// bf16 and the sums in f32 (causalattn_linear_bf16), for rows with the dot product and 16-lane
// vectors but no AMX (avx512bf16). W is packed once as for AMX (gemm_amx.hpp's
// gemm_bf16_pack_panel), which is the lane layout vdpbf16ps takes: row p of a 16-feature half is
// the 16 features' pairs (W[f][2p], W[f][2p + 1]). A step computes 12 rows by 32 features,
// broadcasting a row's pair of x against the panel's two vectors. Each output's sum runs over k in
// order whatever the task, so the bits do not depend on the thread count.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/gemm_amx.hpp"
#include "kernels/kernel_table.hpp"
#include "kernels/simd.hpp"

namespace causalattn::kernels {

// Whether the row takes this kernel (the amx row takes the tile one).
template <class Arch>
constexpr bool kDotGemmBf16 = IsaTraits<Arch>::kDotBf16 && !IsaTraits<Arch>::kAmx && Vec<Arch>::size == 16;

constexpr int64_t kDotGemmRows = 12;  // 24 accumulators, 2 vectors of W, a broadcast: 27 of 32 registers

template <class Arch>
std::size_t gemm_bf16_dot_workspace_bytes(int64_t) {
  return 64;  // none used
}

// Rows [r0, r0 + R) by the 32 features from f0 (fewer past n_end).
template <class Arch, int R>
void gemm_bf16_dot_step(const GemmBf16Args& g, int64_t r0, int64_t f0) {
  if constexpr (kDotGemmBf16<Arch>) {
    using T = IsaTraits<Arch>;
    using V = Vec<Arch>;
    constexpr int64_t F = kAmxGemmFeatures, D = kAmxGemmDepth;
    const int64_t depth = (g.k + D - 1) / D;
    const uint16_t* const panel = g.packed_w + f0 / F * depth * F * D;
    V acc[R][2];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = V(0.0f);
    // Pair q of k: row r's pair of x (pair(r)) against W's two vectors.
    auto step = [&](int64_t q, auto pair) {
      const uint16_t* w = panel + q / 16 * 2 * 16 * D + q % 16 * D;
      const auto w0 = T::load_pairs(reinterpret_cast<const uint32_t*>(w));
      const auto w1 = T::load_pairs(reinterpret_cast<const uint32_t*>(w + 16 * D));
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const auto xb = T::broadcast_pair(pair(r));
        acc[r][0] = T::dot_bf16(acc[r][0], xb, w0);
        acc[r][1] = T::dot_bf16(acc[r][1], xb, w1);
      }
    };
    const uint16_t* const x = g.x + r0 * g.x_stride;
    for (int64_t q = 0; q < g.k / 2; ++q) {
      step(q, [&](int r) {
        uint32_t pair;
        std::memcpy(&pair, x + r * g.x_stride + 2 * q, sizeof pair);
        return pair;
      });
    }
    // An odd k's last pair is (x[k - 1], 0), W being zero past k: x is never read past its row.
    if (g.k % 2 != 0) step(g.k / 2, [&](int r) { return uint32_t{x[r * g.x_stride + g.k - 1]}; });
    const int64_t features = std::min(F, g.n_end - f0);
    for (int r = 0; r < R; ++r) {
      alignas(64) float sums[F];
      acc[r][0].store_aligned(sums);
      acc[r][1].store_aligned(sums + 16);
      store_bf16_sums<Arch>(sums, features, g.bias != nullptr ? g.bias + f0 : nullptr, g.y + (r0 + r) * g.y_stride + f0);
    }
  }
}

// Rows [m_begin, m_end) and features [n_begin, n_end) of y (n_begin a multiple of 32): 12 rows at
// a time against each panel, so the rows' x stays in L1 while W's panels come from L2.
template <class Arch>
void gemm_bf16_dot_block(const GemmBf16Args& g) {
  for (int64_t r0 = g.m_begin; r0 < g.m_end; r0 += kDotGemmRows) {
    const int rows = static_cast<int>(std::min(kDotGemmRows, g.m_end - r0));
    for (int64_t f0 = g.n_begin; f0 < g.n_end; f0 += kAmxGemmFeatures) {
      with_block_size<kDotGemmRows>(rows, [&](auto r) { gemm_bf16_dot_step<Arch, r()>(g, r0, f0); });
    }
  }
}

}  // namespace causalattn::kernels
