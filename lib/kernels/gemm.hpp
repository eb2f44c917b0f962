// The projection microkernels: y = x · Wᵀ + b (nn.Linear), templated on the xsimd architecture.
// Output features sit in vector lanes: W is packed into panels of kNr features laid out k-major,
// x into micro-panels of kMr rows, and a kMr × kNr block of y stays in registers while k runs,
// fed by two W vectors and kMr broadcasts of x per k (BLIS's register blocking). A W panel is
// reused by the kMc rows of a task from L2; y is written once per 1024 values of k.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "kernels/kernel_table.hpp"
#include "kernels/simd.hpp"

namespace causalattn::kernels {

template <class Arch>
struct GemmBlocking {
  static constexpr int kLanes = static_cast<int>(Vec<Arch>::size);
  static constexpr int kNr = 2 * kLanes;                // features per W panel: two vectors
  // Accumulators: kMr × 2 vectors. AVX-512's 32 registers hold 14 × 2 plus the two W vectors
  // and a broadcast; AVX2's and SSE2's 16 hold 6 × 2 and the same three.
  static constexpr int kMr = kManyRegisters<Arch> ? 14 : 6;
  static constexpr int64_t kKc = 1024;                  // k per pass: K <= 1024 in one pass, y written once
  static constexpr int64_t kMc = kMr * (kManyRegisters<Arch> ? 12 : 24);  // rows of x per task at most
};

// Packs features [panel·kNr, panel·kNr + kNr) of W ([n][k], rows at w_stride) as [k][kNr];
// features past n are zero.
template <class Arch>
void gemm_pack_panel(const float* w, int64_t w_stride, int64_t n, int64_t k, int64_t panel, float* packed) {
  constexpr int NR = GemmBlocking<Arch>::kNr;
  const int64_t n0 = panel * NR;
  const int valid = static_cast<int>(std::min<int64_t>(NR, n - n0));
  // k outer: each packed row of NR features is written whole, W's rows are read as NR streams.
  for (int64_t kk = 0; kk < k; ++kk) {
    float* dst = packed + kk * NR;
    for (int c = 0; c < valid; ++c) dst[c] = w[(n0 + c) * w_stride + kk];
    for (int c = valid; c < NR; ++c) dst[c] = 0.0f;
  }
}

// The stride of a task's block of y in the workspace: rows of y at a multiple of 4 KiB
// (N = 1024 and the like) alias in L1 and in the store buffer, the padded copy does not.
constexpr int64_t kGemmTileStride = kGemmTaskFeatures + 16;

template <class Arch>
constexpr std::size_t gemm_workspace_floats() {
  using G = GemmBlocking<Arch>;
  return static_cast<std::size_t>(G::kMc * kGemmTileStride);
}

// An MR × kNr block of y over kc values of k. a: [kc][kMr] (a packed micro-panel of x),
// b: [kc][kNr] (the W panel from this k on). The block starts from c (accumulate), else from the
// bias (kNr features) or zero.
template <class Arch, int MR, bool kPrefetch>
inline void gemm_micro(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, const float* bias,
                       bool accumulate, const float* prefetch) {
  using V = Vec<Arch>;
  using G = GemmBlocking<Arch>;
  constexpr int W = G::kLanes;
  V acc0[MR], acc1[MR];
  if (accumulate) {
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      acc0[r] = V::load_unaligned(c + r * ldc);
      acc1[r] = V::load_unaligned(c + r * ldc + W);
    }
  } else {
    const V init0 = bias != nullptr ? V::load_unaligned(bias) : V(0.0f);
    const V init1 = bias != nullptr ? V::load_unaligned(bias + W) : V(0.0f);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      acc0[r] = init0;
      acc1[r] = init1;
    }
  }
  for (int64_t k = 0; k < kc; ++k) {
    const V b0 = V::load_aligned(b + k * G::kNr);
    const V b1 = V::load_aligned(b + k * G::kNr + W);
    const float* ak = a + k * G::kMr;
    if constexpr (kPrefetch) {
      prefetch_l2<Arch>(prefetch + k * G::kNr);
      prefetch_l2<Arch>(prefetch + k * G::kNr + W);
    }
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const V ar(ak[r]);
      acc0[r] = fmadd<Arch>(ar, b0, acc0[r]);
      acc1[r] = fmadd<Arch>(ar, b1, acc1[r]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    acc0[r].store_unaligned(c + r * ldc);
    acc1[r].store_unaligned(c + r * ldc + W);
  }
}

// Packs `rows` <= kMr rows of x ([rows][k], rows at x_stride) as one micro-panel [k][kMr];
// rows past `rows` are zero.
template <class Arch>
void gemm_pack_rows(const float* x, int64_t x_stride, int64_t rows, int64_t k, float* packed) {
  constexpr int MR = GemmBlocking<Arch>::kMr;
  for (int64_t kk = 0; kk < k; ++kk) {
    float* dst = packed + kk * MR;
    for (int r = 0; r < rows; ++r) dst[r] = x[r * x_stride + kk];
    for (int r = static_cast<int>(rows); r < MR; ++r) dst[r] = 0.0f;
  }
}

// One task's block of y: rows [m_begin, m_end) (m_begin a multiple of kMr, their micro-panels
// packed from packed_x on), features [n_begin, n_end) with n_begin a multiple of kNr and at most
// kGemmTaskFeatures of them. The block is computed in a padded copy
// (whole panels: features past n_end are computed and dropped) and then written to y. k is
// summed in passes of kKc in increasing order, the same for every block, so how y is cut into
// tasks never changes a bit.
template <class Arch>
void gemm_block(const GemmArgs& g) {
  using G = GemmBlocking<Arch>;
  constexpr int NR = G::kNr;
  constexpr int MR = G::kMr;
  alignas(64) float bias_tile[NR];
  float* const tile = g.workspace;
  const int64_t features = g.n_end - g.n_begin;
  for (int64_t m0 = g.m_begin; m0 < g.m_end; m0 += G::kMc) {
    const int64_t mc = std::min<int64_t>(G::kMc, g.m_end - m0);
    for (int64_t k0 = 0; k0 < g.k; k0 += G::kKc) {
      const int64_t kc = std::min<int64_t>(G::kKc, g.k - k0);
      for (int64_t f0 = 0; f0 < features; f0 += NR) {
        const int64_t n0 = g.n_begin + f0;
        const float* b = g.packed_w + (n0 / NR) * g.k * NR + k0 * NR;
        // The first micro-panel of a panel brings the next panel to L2 while it works.
        const float* next_b = f0 + NR < features ? b + g.k * NR : nullptr;
        const float* bias = g.bias != nullptr ? g.bias + n0 : nullptr;
        if (bias != nullptr && features - f0 < NR) {  // the last panel: no bias read past n
          std::fill(bias_tile, bias_tile + NR, 0.0f);
          std::copy(bias, bias + (features - f0), bias_tile);
          bias = bias_tile;
        }
        for (int64_t p = 0; p * MR < mc; ++p) {
          const float* a = g.packed_x + ((m0 - g.m_begin) / MR + p) * g.k * MR + k0 * MR;
          float* c = tile + p * MR * kGemmTileStride + f0;
          with_block_size<MR>(static_cast<int>(std::min<int64_t>(MR, mc - p * MR)), [&](auto rows) {
            if (p == 0 && next_b != nullptr) {
              gemm_micro<Arch, rows(), true>(kc, a, b, c, kGemmTileStride, bias, k0 > 0, next_b);
            } else {
              gemm_micro<Arch, rows(), false>(kc, a, b, c, kGemmTileStride, bias, k0 > 0, nullptr);
            }
          });
        }
      }
    }
    for (int64_t r = 0; r < mc; ++r) {
      const float* src = tile + r * kGemmTileStride;
      std::copy(src, src + features, g.y + (m0 + r) * g.y_stride + g.n_begin);
    }
  }
}

}  // namespace causalattn::kernels
