// The attention microkernels, templated on the xsimd architecture: the blocking, the score block
// (Q·Kᵀ for a register block of keys), the spread prefetch of the next chunk's rows, the diagonal
// and window masks, the output block (P·V for a register block of head dims). Queries sit in
// vector lanes (docs/design.md): scores, softmax and the output accumulator are all vertical, K
// and V are read in their natural row-major layout through broadcasts.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "kernels/kernel_table.hpp"
#include "kernels/kv_rows.hpp"
#include "kernels/simd.hpp"

namespace causalattn::kernels {

// Register blocking per architecture. With 32 vector registers (AVX-512) a 3 × 8 accumulator
// block leaves room for the three query (or probability) vectors and a broadcast; with 16 (AVX2,
// SSE2) 2 × 6 does. Each broadcast of K or V then feeds three (two) FMAs: on AVX-512 11 loads
// per 24 FMAs instead of the 14 of a 2 × 12 block.
template <class Arch>
struct Blocking {
  static constexpr int kLanes = static_cast<int>(Vec<Arch>::size);
  static constexpr int kQueryVectors = kManyRegisters<Arch> ? 3 : 2;
  static constexpr int kRows = kLanes * kQueryVectors;  // queries per row block
  static constexpr int kKeyBlock = kManyRegisters<Arch> ? 8 : 6;
  static constexpr int kDimBlock = kManyRegisters<Arch> ? 8 : 6;
  // Keys per KV tile: 96 keys of K and V at D=128 are 96 KiB, which stay in L2 between the
  // score and the output pass; the online-softmax bookkeeping is amortized over 96 keys.
  static constexpr int kTileKeys = 96;
};

// Scores of NK keys (rows krows[0..NK) of K) against the packed queries of query vectors QV0 and
// up (the vectors below see none of these keys): st[k][lane] = Σ_d qt[d][lane] · K[k][d].
template <class Arch, int NK, int QV0>
inline void score_block(const float* qt, int64_t head_dim, const float* const* krows, float* st, Vec<Arch>* max) {
  using V = Vec<Arch>;
  constexpr int W = Blocking<Arch>::kLanes;
  constexpr int R = Blocking<Arch>::kRows;
  constexpr int QV = Blocking<Arch>::kQueryVectors;
  const float* kp[NK];
#pragma GCC unroll 16
  for (int k = 0; k < NK; ++k) kp[k] = krows[k];
  V acc[QV][NK];
#pragma GCC unroll 4
  for (int qv = QV0; qv < QV; ++qv)
#pragma GCC unroll 16
    for (int k = 0; k < NK; ++k) acc[qv][k] = V(0.0f);
  for (int64_t d = 0; d < head_dim; ++d) {
    V q[QV];
#pragma GCC unroll 4
    for (int qv = QV0; qv < QV; ++qv) q[qv] = V::load_aligned(qt + d * R + qv * W);
#pragma GCC unroll 16
    for (int k = 0; k < NK; ++k) {
      const V kb(kp[k][d]);
#pragma GCC unroll 4
      for (int qv = QV0; qv < QV; ++qv) acc[qv][k] = fmadd<Arch>(q[qv], kb, acc[qv][k]);
    }
  }
#pragma GCC unroll 16
  for (int k = 0; k < NK; ++k)
#pragma GCC unroll 4
    for (int qv = QV0; qv < QV; ++qv) {
      acc[qv][k].store_aligned(st + k * R + qv * W);
      max[qv] = xsimd::max(max[qv], acc[qv][k]);
    }
}

// K and V rows of the group's next chunk, brought into L2 a few keys at a time while the blocks
// of the group compute the current one: each block takes a share of the next chunk and spreads
// it over its score blocks, so the chunk's rows arrive over the whole group's pass instead of in
// a burst (the score pass reads 8 rows at once, 512 bytes apart at D=128: a pattern the
// hardware's streaming prefetch does not follow).
template <class Arch>
struct KeyPrefetch {
  static constexpr int64_t kBatch = Blocking<Arch>::kTileKeys;
  const RowBlockArgs* a;
  int64_t next, end;      // keys [next, end) are still to be prefetched
  int64_t per_step;       // keys per call of step()
  TileRows<Arch, kBatch> rows;
  int64_t rows_begin = 0;  // rows holds keys [rows_begin, rows_begin + rows.n)

  // Keys [begin, end_key) in about `steps` steps.
  KeyPrefetch(const RowBlockArgs& args, int64_t begin, int64_t end_key, int64_t steps)
      : a(&args), next(begin), end(end_key), per_step(std::max<int64_t>(1, (end_key - begin + steps - 1) / steps)) {}

  void keys(int64_t count) {
    for (const int64_t stop = std::min(end, next + count); next < stop; ++next) {
      if (next >= rows_begin + rows.n) {
        rows_begin = next;
        rows.fill(a->k, a->v, next, std::min(end - next, kBatch));
      }
      rows.prefetch(next - rows_begin, a->head_dim * 4, a->head_dim_v * 4);  // f32 rows
    }
  }
  void step() { keys(per_step); }
  void rest() { keys(end - next); }
};

// Scores for n keys of query vectors QV0 and up: blocks of NK keys, then one block of the
// remainder; max[qv] becomes the maximum of its lanes' scores and its value on entry.
// After each block it takes a step of the prefetch.
template <class Arch, int NK, int QV0>
inline void score_keys(const float* qt, int64_t head_dim, const float* const* krows, int64_t n, float* st,
                       KeyPrefetch<Arch>& prefetch, Vec<Arch>* max) {
  constexpr int R = Blocking<Arch>::kRows;
  int64_t j = 0;
  for (; j + NK <= n; j += NK) {
    score_block<Arch, NK, QV0>(qt, head_dim, krows + j, st + j * R, max);
    prefetch.step();
  }
  with_block_size<NK - 1>(static_cast<int>(n - j), [&](auto rest) {
    score_block<Arch, rest(), QV0>(qt, head_dim, krows + j, st + j * R, max);
  });
}

// Lanes of a row block that see key j of an edge tile: lane i sees it iff
// j + shift <= lane < j + shift + window, where shift = j0 - q_begin - diagonal for the
// tile starting at key j0 (the upper bound is the causal diagonal, the lower one the window's
// edge; window is +inf without one). The values stay small and exact in float on edge tiles.
template <class Arch>
struct DiagonalMask {
  Vec<Arch> lanes[Blocking<Arch>::kQueryVectors];  // lane indices of each query vector, as floats
  float shift;
  float window;

  xsimd::batch_bool<float, Arch> sees(int qv, float j) const {
    const Vec<Arch> first_lane(j + shift);
    return (lanes[qv] >= first_lane) & (lanes[qv] < first_lane + Vec<Arch>(window));
  }
};

// Which lanes of a run of keys skip some of them (DiagonalMask says which keys a lane sees).
enum class Masking {
  kNone,          // every lane sees every key
  kEveryVector,   // any lane may skip any key (the lower edge of a window)
  kFirstVector,   // only query vector QV0's lanes skip keys, the vectors above see them all
                  // (the causal diagonal without a window, cut where vectors drop out)
};

// Output update for ND head dims over n keys of probabilities pt, for query vectors QV0 and up:
// ot[d][lane] = alpha[lane] · ot[d][lane] + Σ_j pt[j][lane] · V[j][d], or with alpha = nullptr
// (the block's first tile: ot holds nothing yet) ot[d][lane] = Σ_j pt[j][lane] · V[j][d].
// The online-softmax rescale rides along with the load of the accumulators. A lane skips the
// keys it must not see instead of adding 0 · V[j]: a NaN or Inf in V at a future position then
// cannot reach an earlier row.
template <class Arch, int ND, Masking kMasking, int QV0>
inline void output_block(const float* pt, int64_t n, const float* const* vrows, int64_t d0, const Vec<Arch>* alpha,
                         const DiagonalMask<Arch>& mask, float* ot) {
  using V = Vec<Arch>;
  constexpr int W = Blocking<Arch>::kLanes;
  constexpr int R = Blocking<Arch>::kRows;
  constexpr int QV = Blocking<Arch>::kQueryVectors;
  V acc[QV][ND];
#pragma GCC unroll 16
  for (int d = 0; d < ND; ++d)
#pragma GCC unroll 4
    for (int qv = QV0; qv < QV; ++qv) acc[qv][d] = alpha ? V::load_aligned(ot + d * R + qv * W) * alpha[qv] : V(0.0f);
  for (int64_t j = 0; j < n; ++j) {
    V p[QV];
#pragma GCC unroll 4
    for (int qv = QV0; qv < QV; ++qv) p[qv] = V::load_aligned(pt + j * R + qv * W);
    const float* vp = vrows[j] + d0;
    // Hides vp's origin from g++, which otherwise keeps each vp[d]'s offset d0 + d in a register
    // of its own and spills the loop's state; now vp[d] is vp plus a constant.
    asm("" : "+r"(vp));
    if constexpr (kMasking != Masking::kNone) {
      constexpr int kMaskedEnd = kMasking == Masking::kFirstVector ? QV0 + 1 : QV;  // vectors that skip keys
      xsimd::batch_bool<float, Arch> sees[QV];
#pragma GCC unroll 4
      for (int qv = QV0; qv < kMaskedEnd; ++qv) sees[qv] = mask.sees(qv, static_cast<float>(j));
#pragma GCC unroll 16
      for (int d = 0; d < ND; ++d) {
        const V vb(vp[d]);
#pragma GCC unroll 4
        for (int qv = QV0; qv < QV; ++qv) {
          acc[qv][d] = qv < kMaskedEnd ? fmadd_where<Arch>(sees[qv], p[qv], vb, acc[qv][d])
                                       : fmadd<Arch>(p[qv], vb, acc[qv][d]);
        }
      }
    } else {
#pragma GCC unroll 16
      for (int d = 0; d < ND; ++d) {
        const V vb(vp[d]);
#pragma GCC unroll 4
        for (int qv = QV0; qv < QV; ++qv) acc[qv][d] = fmadd<Arch>(p[qv], vb, acc[qv][d]);
      }
    }
  }
#pragma GCC unroll 16
  for (int d = 0; d < ND; ++d)
#pragma GCC unroll 4
    for (int qv = QV0; qv < QV; ++qv) acc[qv][d].store_aligned(ot + d * R + qv * W);
}

// Output update for all head dims: blocks of ND dims, then one block of the remainder.
template <class Arch, int ND, Masking kMasking, int QV0 = 0>
inline void output_dims(const float* pt, int64_t n, const float* const* vrows, int64_t head_dim, const Vec<Arch>* alpha,
                        const DiagonalMask<Arch>& mask, float* ot) {
  constexpr int R = Blocking<Arch>::kRows;
  int64_t d = 0;
  for (; d + ND <= head_dim; d += ND) output_block<Arch, ND, kMasking, QV0>(pt, n, vrows, d, alpha, mask, ot + d * R);
  with_block_size<ND - 1>(static_cast<int>(head_dim - d), [&](auto rest) {
    output_block<Arch, rest(), kMasking, QV0>(pt, n, vrows, d, alpha, mask, ot + d * R);
  });
}

}  // namespace causalattn::kernels
