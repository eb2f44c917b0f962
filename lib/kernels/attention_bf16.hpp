// The bf16 row-block kernel, for ISAs with the BF16 dot product (IsaTraits::kDotBf16: vdpbf16ps)
// and bf16 Q, K and V: the f32 kernel's tile walk (attention_row_block.hpp) with its two products
// on pairs of bf16 accumulated in f32, half the instructions of the f32 FMAs.
// - Q·Kᵀ: Q packed as pairs of dims per query lane, K's row read as it is (a dim pair is one
//   32-bit broadcast). The products of two bf16 are exact in f32; the scale multiplies the f32
//   score afterwards (scaling bf16 Q would round it).
// - P·V on the unmasked keys: P rounded to bf16 (a key pair per lane), V packed as key pairs per
//   dim once per chunk for the whole row group. The keys of the masked runs (the diagonal's end,
//   a window's edge) and a run's odd first or last key take the f32 path on V widened to f32, so
//   a key a lane must not see is never multiplied in, not even 0 · NaN.
// Rounding P costs at most 2^-8 of each weight (round to nearest even on 8 significant bits: half
// an ulp of 2^-7 at the bottom of a binade; the instruction also flushes weights below 2^-126 to
// 0): an output moves by at most 2^-8 · Σ_j p_j·|v_j| / Σ_j p_j <= 2^-8 · max|v| beyond the f32
// kernel's error (docs/guarantees.md).
// Its ISA row (avx512bf16) runs only when selected: on Sapphire Rapids vdpbf16ps peaks at half
// the FMA's flops (cmake/isas.cmake).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/attention_row_block.hpp"
#include "kernels/widen.hpp"

namespace causalattn::kernels {

// The block's bf16 state beside BlockState: Q as dim pairs over Qt's memory ([D/2 rounded up][R]
// 32-bit pairs, half of Qt's floats), and the P pairs of a tile after the block's own state.
template <class Arch>
struct Bf16BlockState {
  static constexpr int R = Blocking<Arch>::kRows;
  uint32_t* q_pairs;  // [(D + 1) / 2][R]: lane i holds dims 2d, 2d + 1 of query i (high half 0 past D)
  uint32_t* p_pairs;  // [kTileKeys / 2][R]: lane i holds the weights of keys 2k, 2k + 1 of the run

  Bf16BlockState(const BlockState<Arch>& b) : q_pairs(reinterpret_cast<uint32_t*>(b.qt)),
                                             p_pairs(reinterpret_cast<uint32_t*>(b.lane_index + R)) {}
};

// The bf16 bits of element d of a bf16 row, 0 past head_dim.
template <class Arch>
inline uint32_t bf16_bits(const std::byte* row, int64_t d, int64_t head_dim) {
  uint16_t h = 0;
  if (d < head_dim) std::memcpy(&h, row + 2 * d, sizeof h);
  return h;
}

// begin_block's running state, and Q as raw bf16 dim pairs (unscaled) over Qt: W queries by W
// pairs at a time, each query's pairs loaded as W 32-bit lanes and the square transposed (bits
// moved, no arithmetic); the pairs past the last whole W one by one.
template <class Arch>
void begin_block_bf16(const RowBlockArgs& a) {
  using V = Vec<Arch>;
  constexpr int R = Blocking<Arch>::kRows;
  constexpr int W = Blocking<Arch>::kLanes;
  begin_block<Arch>(a, false);
  const Bf16BlockState<Arch> s(BlockState<Arch>(a.workspace, a.head_dim, a.head_dim_v));
  const int first = first_lane<Arch>(a);
  const int64_t pairs = (a.head_dim + 1) / 2, whole = a.head_dim / (2 * W) * W;
  for (int i0 = 0; i0 < R; i0 += W) {
    for (int64_t d2 = 0; d2 < whole; d2 += W) {
      V square[W];
      for (int r = 0; r < W; ++r) {
        const int64_t row = i0 + r - first;
        square[r] = row >= 0 ? V::load_unaligned(reinterpret_cast<const float*>(a.q + row * a.q_stride + 4 * d2)) : V(0.0f);
      }
      transpose_square<Arch>(square);
      for (int t = 0; t < W; ++t) square[t].store_aligned(reinterpret_cast<float*>(s.q_pairs + (d2 + t) * R + i0));
    }
  }
  for (int64_t d2 = whole; d2 < pairs; ++d2) {
    for (int i = 0; i < R; ++i) {
      const std::byte* row = a.q + (i - first) * a.q_stride;
      s.q_pairs[d2 * R + i] =
          i < first ? 0u : bf16_bits<Arch>(row, 2 * d2, a.head_dim) | bf16_bits<Arch>(row, 2 * d2 + 1, a.head_dim) << 16;
    }
  }
}

// Scores of NK keys (bf16 rows krows) against query vectors QV0 and up, as score_block: the dim
// pairs on dot_bf16, then the scale.
template <class Arch, int NK, int QV0>
inline void score_block_bf16(const uint32_t* q_pairs, int64_t head_dim, float scale, const std::byte* const* krows,
                             float* st, Vec<Arch>* max) {
  using V = Vec<Arch>;
  using T = IsaTraits<Arch>;
  constexpr int W = Blocking<Arch>::kLanes;
  constexpr int R = Blocking<Arch>::kRows;
  constexpr int QV = Blocking<Arch>::kQueryVectors;
  const std::byte* kp[NK];
#pragma GCC unroll 16
  for (int k = 0; k < NK; ++k) kp[k] = krows[k];
  V acc[QV][NK];
#pragma GCC unroll 4
  for (int qv = QV0; qv < QV; ++qv)
#pragma GCC unroll 16
    for (int k = 0; k < NK; ++k) acc[qv][k] = V(0.0f);
  const int64_t full_pairs = head_dim / 2;
  auto step = [&](int64_t d2, auto key_pair) {
    typename T::Pairs q[QV];
#pragma GCC unroll 4
    for (int qv = QV0; qv < QV; ++qv) q[qv] = T::load_pairs(q_pairs + d2 * R + qv * W);
#pragma GCC unroll 16
    for (int k = 0; k < NK; ++k) {
      const typename T::Pairs kb = T::broadcast_pair(key_pair(kp[k], d2));
#pragma GCC unroll 4
      for (int qv = QV0; qv < QV; ++qv) acc[qv][k] = T::dot_bf16(acc[qv][k], q[qv], kb);
    }
  };
  for (int64_t d2 = 0; d2 < full_pairs; ++d2) {
    step(d2, [](const std::byte* row, int64_t i) {
      uint32_t pair;
      std::memcpy(&pair, row + 4 * i, sizeof pair);
      return pair;
    });
  }
  if (head_dim % 2 != 0) {  // the last dim alone: its pair's other half is 0 in Q and K
    step(full_pairs, [&](const std::byte* row, int64_t i) { return bf16_bits<Arch>(row, 2 * i, head_dim); });
  }
#pragma GCC unroll 16
  for (int k = 0; k < NK; ++k)
#pragma GCC unroll 4
    for (int qv = QV0; qv < QV; ++qv) {
      acc[qv][k] = acc[qv][k] * V(scale);
      acc[qv][k].store_aligned(st + k * R + qv * W);
      max[qv] = xsimd::max(max[qv], acc[qv][k]);
    }
}

template <class Arch, int QV0>
inline void score_keys_bf16(const uint32_t* q_pairs, int64_t head_dim, float scale, const std::byte* const* krows,
                            int64_t n, float* st, Vec<Arch>* max) {
  constexpr int NK = Blocking<Arch>::kKeyBlock;
  constexpr int R = Blocking<Arch>::kRows;
  int64_t j = 0;
  for (; j + NK <= n; j += NK) score_block_bf16<Arch, NK, QV0>(q_pairs, head_dim, scale, krows + j, st + j * R, max);
  with_block_size<NK - 1>(static_cast<int>(n - j), [&](auto rest) {
    score_block_bf16<Arch, rest(), QV0>(q_pairs, head_dim, scale, krows + j, st + j * R, max);
  });
}

// Ot[d] (+)= Σ over key pairs of the P pair · the V pair, ND dims from d0, for query vectors QV0
// and up; alpha as output_block's (nullptr: Ot written afresh). v_pairs: [pairs][head_dim].
template <class Arch, int ND, int QV0>
inline void output_pairs_block(const uint32_t* p_pairs, int64_t pairs, const uint32_t* v_pairs, int64_t head_dim,
                               int64_t d0, const Vec<Arch>* alpha, float* ot) {
  using V = Vec<Arch>;
  constexpr int W = Blocking<Arch>::kLanes;
  constexpr int R = Blocking<Arch>::kRows;
  constexpr int QV = Blocking<Arch>::kQueryVectors;
  V acc[QV][ND];
#pragma GCC unroll 16
  for (int d = 0; d < ND; ++d)
#pragma GCC unroll 4
    for (int qv = QV0; qv < QV; ++qv) acc[qv][d] = alpha ? V::load_aligned(ot + d * R + qv * W) * alpha[qv] : V(0.0f);
  using T = IsaTraits<Arch>;
  for (int64_t i = 0; i < pairs; ++i) {
    typename T::Pairs p[QV];
#pragma GCC unroll 4
    for (int qv = QV0; qv < QV; ++qv) p[qv] = T::load_pairs(p_pairs + i * R + qv * W);
    const uint32_t* vp = v_pairs + i * head_dim + d0;
    asm("" : "+r"(vp));  // as in output_block: vp[d] stays vp plus a constant
#pragma GCC unroll 16
    for (int d = 0; d < ND; ++d) {
      const typename T::Pairs vb = T::broadcast_pair(vp[d]);
#pragma GCC unroll 4
      for (int qv = QV0; qv < QV; ++qv) acc[qv][d] = T::dot_bf16(acc[qv][d], p[qv], vb);
    }
  }
#pragma GCC unroll 16
  for (int d = 0; d < ND; ++d)
#pragma GCC unroll 4
    for (int qv = QV0; qv < QV; ++qv) acc[qv][d].store_aligned(ot + d * R + qv * W);
}

template <class Arch, int QV0>
inline void output_pairs_dims(const uint32_t* p_pairs, int64_t pairs, const uint32_t* v_pairs, int64_t head_dim,
                              const Vec<Arch>* alpha, float* ot) {
  constexpr int ND = Blocking<Arch>::kDimBlock;
  constexpr int R = Blocking<Arch>::kRows;
  int64_t d = 0;
  for (; d + ND <= head_dim; d += ND) output_pairs_block<Arch, ND, QV0>(p_pairs, pairs, v_pairs, head_dim, d, alpha, ot + d * R);
  with_block_size<ND - 1>(static_cast<int>(head_dim - d), [&](auto rest) {
    output_pairs_block<Arch, rest(), QV0>(p_pairs, pairs, v_pairs, head_dim, d, alpha, ot + d * R);
  });
}

// The f32 weights of keys [from, from + 2·pairs) of the tile as bf16 pairs, vectors QV0 and up.
template <class Arch, int QV0>
inline void pack_weights(const float* st, int64_t from, int64_t pairs, uint32_t* p_pairs) {
  using V = Vec<Arch>;
  constexpr int W = Blocking<Arch>::kLanes;
  constexpr int R = Blocking<Arch>::kRows;
  constexpr int QV = Blocking<Arch>::kQueryVectors;
  for (int64_t i = 0; i < pairs; ++i) {
    for (int qv = QV0; qv < QV; ++qv) {
      const V p0 = V::load_aligned(st + (from + 2 * i) * R + qv * W), p1 = V::load_aligned(st + (from + 2 * i + 1) * R + qv * W);
      IsaTraits<Arch>::store_pairs(IsaTraits<Arch>::pair_bf16(p0, p1), p_pairs + i * R + qv * W);
    }
  }
}

// V of keys [begin, end) as key pairs: out[i][d] = V[begin + 2i][d] | V[begin + 2i + 1][d] << 16
// (0 for a key past end), for a bf16 V.
template <class Arch>
void pack_value_pairs(const KvRows& v, int64_t begin, int64_t end, int64_t head_dim, uint32_t* out) {
  constexpr int64_t kBatch = 64;
  const std::byte* rows[kBatch];
  for (int64_t j0 = begin; j0 < end; j0 += kBatch) {
    const int64_t n = std::min(kBatch, end - j0);
    fill_rows<Arch>(v, j0, n, rows);
    for (int64_t i = 0; i < n; i += 2) {
      uint32_t* pair_row = out + (j0 - begin + i) / 2 * head_dim;
      const std::byte* r0 = rows[i];
      const std::byte* r1 = i + 1 < n ? rows[i + 1] : nullptr;
      int64_t d = 0;
      for (; r1 != nullptr && d + 32 <= head_dim; d += 32) IsaTraits<Arch>::interleave_bf16(r0 + 2 * d, r1 + 2 * d, pair_row + d);
      for (; d < head_dim; ++d) {
        pair_row[d] = bf16_bits<Arch>(r0, d, head_dim) | (r1 != nullptr ? bf16_bits<Arch>(r1, d, head_dim) << 16 : 0u);
      }
    }
  }
}

// block_tiles for the bf16 kernel: K rows read in bf16 from `keys`, the masked and odd keys'
// V from the f32 rows of `values_f32`, the unmasked pairs from v_pairs (pair 0 = keys
// pairs_begin, pairs_begin + 1).
template <class Arch>
void block_tiles_bf16(const RowBlockArgs& a, int64_t j_begin, int64_t j_end, const KvRows& keys,
                      const KvRows& values_f32, const uint32_t* v_pairs, int64_t pairs_begin) {
  using B = Blocking<Arch>;
  constexpr int R = B::kRows;
  const BlockWalk<Arch> w(a);
  const Bf16BlockState<Arch> s(w.b);
  const int64_t kv_end = block_kv_end<Arch>(a);
  const std::byte* krows[B::kTileKeys];
  TileRows<Arch, B::kTileKeys> tile;  // V's f32 rows (tile.k unused)
  for (int64_t j0 = std::max(j_begin, w.first_tile); j0 < std::min(j_end, kv_end); j0 += B::kTileKeys) {
    TileStep<Arch> t;
    TileMaxima<Arch> mx;
    t.j0 = j0;
    t.n = std::min<int64_t>(kv_end - j0, B::kTileKeys);
    fill_rows<Arch>(keys, j0, t.n, krows);
    fill_rows<Arch>(values_f32, j0, t.n, tile.v);
    tile.n = t.n;
    auto score = [&](auto qv0, int64_t from, int64_t count, Vec<Arch>* m_new) {
      score_keys_bf16<Arch, qv0()>(s.q_pairs, w.head_dim, a.scale, krows + from, count, w.b.st + from * R, m_new);
    };
    // Keys [from, to): the even-aligned pairs on dot_bf16, an odd key at either end in f32.
    auto unmasked = [&](auto qv0, int64_t from, int64_t to, const Vec<Arch>* scale) {
      auto f32_run = [&](int64_t lo, int64_t hi, const Vec<Arch>* run_scale) {
        output_dims<Arch, B::kDimBlock, Masking::kNone, qv0()>(w.b.st + lo * R, hi - lo, tile.v + lo, w.head_dim_v,
                                                               run_scale, t.mask, w.b.ot);
      };
      Vec<Arch> ones[B::kQueryVectors];
      for (auto& one : ones) one = Vec<Arch>(1.0f);
      const int64_t pair_from = (from + 1) / 2 * 2, pair_to = std::max(pair_from, to / 2 * 2);
      if (pair_from >= pair_to) return f32_run(from, to, scale);
      f32_run(from, pair_from, scale);  // the rescale rides on this run, even when it has no key
      pack_weights<Arch, qv0()>(w.b.st, pair_from, (pair_to - pair_from) / 2, s.p_pairs);
      output_pairs_dims<Arch, qv0()>(s.p_pairs, (pair_to - pair_from) / 2,
                                     v_pairs + (j0 + pair_from - pairs_begin) / 2 * w.head_dim_v, w.head_dim_v, ones,
                                     w.b.ot);
      if (pair_to < to) f32_run(pair_to, to, ones);
    };
    score_tile<Arch>(a, w, score, t, mx);
    mask_tile<Arch>(w, t, mx);
    softmax_tile<Arch>(w, t, mx);
    if (a.dropout_threshold != 0) drop_weights<Arch>(a, j0, t.n, w.b.st);
    accumulate_tile<Arch>(a, w, tile, unmasked, t, mx);
  }
}

// The group workspace of the bf16 kernel, within group_workspace_floats: V of a chunk as key
// pairs ([chunk / 2][Dv] 32-bit) and widened to f32 ([chunk][Dv]).
template <class Arch>
void attention_row_blocks_bf16(const RowBlockArgs* blocks, int count, float* group_workspace, int64_t chunk_keys) {
  int64_t kv_begin = INT64_MAX, kv_end = 0;
  for (int i = 0; i < count; ++i) {
    begin_block_bf16<Arch>(blocks[i]);
    kv_begin = std::min(kv_begin, block_first_tile<Arch>(blocks[i]));
    kv_end = std::max(kv_end, block_kv_end<Arch>(blocks[i]));
  }
  const int64_t Dv = blocks[0].head_dim_v;
  auto* const v_pairs = reinterpret_cast<uint32_t*>(group_workspace);
  float* const v_f32 = group_workspace + chunk_keys / 2 * Dv;
  for (int64_t j = kv_begin; j < kv_end; j += chunk_keys) {
    const int64_t end = std::min(kv_end, j + chunk_keys);
    pack_value_pairs<Arch>(blocks[0].v, j, end, Dv, v_pairs);
    const KvRows values = widen_chunk<Arch>(blocks[0].v, j, end, Dv, v_f32);
    for (int i = 0; i < count; ++i) {
      if (block_keys_in<Arch>(blocks[i], j, j + chunk_keys) > 0) {
        block_tiles_bf16<Arch>(blocks[i], j, j + chunk_keys, blocks[i].k, values, v_pairs, j);
      }
    }
  }
  for (int i = 0; i < count; ++i) finish_block<Arch>(blocks[i]);
}

}  // namespace causalattn::kernels
