// The AMX row-block kernel, for the amx ISA row and bf16 Q, K and V: the f32 kernel's tile walk
// (attention_row_block.hpp) with its two products on tiles, in the block's own layouts, so that
// the softmax, masks, variants and dropout between them stay the f32 kernel's:
// - Scores, transposed: St[key][query] = K · Qᵀ. A = 16 K rows by 32 dims, as stored (copied
//   contiguous per chunk, zero past its end); B = Q's dim pairs per query, the bf16 kernel's
//   q_pairs ([D/2][R]); C = 16 keys by 16 queries, stored straight into St. The products of two
//   bf16 are exact in f32; the scale multiplies the f32 score afterwards.
// - Output, transposed: Ot[dim][query] += Vᵀ · Pᵀ. A = 16 dims by 32 keys of V transposed (once
//   per chunk for the whole group); B = P rounded to bf16 as key pairs per query (pack_weights);
//   C = 16 dims by 16 queries, loaded from and stored to Ot.
// Only runs of 32 keys that every lane of the block sees go through the tiles: a key a lane must
// not see (the diagonal's end, a window's edge) and the ends of a run take the f32 path on V
// widened to f32, so a masked key is never multiplied in, not even 0 · NaN. Which keys take which
// path depends on the block's position alone, so the bits do not depend on threads, grouping or
// layout, and chunks that are multiples of the row block give one call's bits.
// Rounding P costs at most 2^-8 of each weight, as in the bf16 kernel (attention_bf16.hpp): an
// output moves by at most 2^-8 · max|v| beyond the f32 kernel's error. The tiles flush subnormal
// inputs and results to zero, which moves a score or an output by less than 2^-126 per term.
// Shapes: head_dim a multiple of 32 and head_dim_v of 16 (every common head size); others take
// the f32 kernel on widened rows.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/attention_bf16.hpp"

namespace causalattn::kernels {

// The dims of a tile row: 32 bf16 (16 pairs) of A and B, 16 f32 of C.
constexpr int64_t kAmxPairDims = 32;
constexpr int64_t kAmxLanes = 16;
// The softmax's rescale slack (softmax_tile), as log2 of the largest weight: a row's accumulator
// is rescaled only when a tile's maximum passes the running one by more than ln(2^8), so the
// vector pass that rescales Ot, and its wait between the tiles' products, is rare after a row's
// first tiles. Weights are then at most 2^8, the sums of weights and of weighted values up to
// 2^8 times the exact softmax's (still in f32 while 2^8 · Σ|v| stays below FLT_MAX).
constexpr int kRescaleSlackLog2 = 8;

template <class Arch>
bool amx_runs(const RowBlockArgs& a) {
  return !a.f32_products && a.q_dtype == Dtype::kBf16 && a.k.dtype == Dtype::kBf16 && a.v.dtype == Dtype::kBf16 &&
         a.head_dim % kAmxPairDims == 0 && a.head_dim_v % kAmxLanes == 0;
}

// Floats of the group workspace: the chunk's K rows and V transposed in bf16, V in f32.
template <class Arch>
constexpr std::size_t amx_group_workspace_floats(int64_t chunk_keys, int64_t head_dim, int64_t head_dim_v) {
  return static_cast<std::size_t>(chunk_keys * ((head_dim + 1) / 2 + (head_dim_v + 1) / 2 + head_dim_v));
}

// One chunk of the group as the tiles read it.
struct AmxChunk {
  const std::byte* k;   // key begin + i at k + i · row_bytes, head_dim bf16
  int64_t k_row_bytes;
  const std::byte* vt;  // dim d's keys at vt + d · vt_row_bytes, begin first
  int64_t vt_row_bytes;
  int64_t begin;
  uint64_t finite;      // bit g: V of keys [begin + 32g, begin + 32g + 32) is finite (zeros past the end)

  // Whether V of keys [from, to) of the chunk, whole 32-key groups, is finite.
  bool finite_values(int64_t from, int64_t to) const {
    for (int64_t g = from / kAmxPairDims; g * kAmxPairDims < to; ++g) {
      if ((finite >> g & 1u) == 0) return false;
    }
    return true;
  }
};

// Copies K rows [begin, end) contiguous, and zero rows after them up to a whole 16 keys (a score
// tile may reach past the chunk's last key; its scores there are never read).
template <class Arch>
void pack_amx_keys(const KvRows& k, int64_t begin, int64_t end, int64_t head_dim, std::byte* out) {
  constexpr int64_t kBatch = 64;
  const int64_t bytes = head_dim * 2;
  const std::byte* rows[kBatch];
  for (int64_t j0 = begin; j0 < end; j0 += kBatch) {
    const int64_t n = std::min(kBatch, end - j0);
    fill_rows<Arch>(k, j0, n, rows);
    for (int64_t i = 0; i < n; ++i) std::memcpy(out + (j0 - begin + i) * bytes, rows[i], static_cast<std::size_t>(bytes));
  }
  const int64_t padded = (end - begin + kAmxLanes - 1) / kAmxLanes * kAmxLanes;
  std::memset(out + (end - begin) * bytes, 0, static_cast<std::size_t>((padded - (end - begin)) * bytes));
}

// V rows [begin, end) transposed, 32 keys at a time (zeros past end): out row d = dim d of every
// key, row_bytes apart. Returns AmxChunk::finite's bits.
template <class Arch>
uint64_t pack_amx_values(const KvRows& v, int64_t begin, int64_t end, int64_t head_dim_v, std::byte* out,
                         int64_t row_bytes) {
  const std::byte* rows[kAmxPairDims];
  uint64_t finite = 0;
  for (int64_t j0 = begin; j0 < end; j0 += kAmxPairDims) {
    const int64_t n = std::min(kAmxPairDims, end - j0);
    fill_rows<Arch>(v, j0, n, rows);
    std::fill(rows + n, rows + kAmxPairDims, nullptr);
    bool group_finite = true;
    for (int64_t d = 0; d < head_dim_v; d += kAmxLanes) {
      group_finite &= IsaTraits<Arch>::transpose_bf16_rows(rows, d, out + d * row_bytes + (j0 - begin) * 2, row_bytes);
    }
    finite |= uint64_t{group_finite} << ((j0 - begin) / kAmxPairDims);
  }
  return finite;
}

// The tiles: C (the accumulators) 0-2, one per query vector; A 3; B 4-6, one per query vector.

// Scores of keys [from, from + count) of the tile (its K rows from `keys`) for query vectors QV0
// and up, into st and max, as score_keys does. The tiles cover whole 16-key groups from
// from / 16 · 16: the keys before `from` are scored again with the same bits (every vector from
// QV0 up saw them already), those past the range are left unscaled for a later call or unread.
template <class Arch, int QV0>
void score_keys_amx(const uint32_t* q_pairs, int64_t head_dim, float scale, const std::byte* keys, int64_t k_row_bytes,
                    int64_t from, int64_t count, float* st, Vec<Arch>* max) {
  using T = IsaTraits<Arch>;
  using V = Vec<Arch>;
  constexpr int R = Blocking<Arch>::kRows;
  constexpr int W = Blocking<Arch>::kLanes;
  constexpr int QV = Blocking<Arch>::kQueryVectors;
  static_assert(W == kAmxLanes && QV <= 3, "a C tile is one query vector; C, A and B tiles fit in 8");
  static_assert(CAUSALATTN_INVARIANT_SPLIT_KEYS % kAmxPairDims == 0, "tiles start on a 32-key group");
  const int64_t first = from / kAmxLanes * kAmxLanes, end = from + count;
  auto scale_rows = [&](int64_t lo, int64_t hi) {
    for (int64_t j = lo; j < hi; ++j) {
#pragma GCC unroll 4
      for (int qv = QV0; qv < QV; ++qv) {
        const V s = V::load_aligned(st + j * R + qv * W) * V(scale);
        s.store_aligned(st + j * R + qv * W);
        max[qv] = xsimd::max(max[qv], s);
      }
    }
  };
  // Each group's scale pass runs after the next group's tiles are issued, so the vector unit
  // works while the tiles compute (a pass right after its own tiles would wait for them).
  for (int64_t g = first; g < end; g += kAmxLanes) {
    for_each_index<QV>([&](auto qv) {
      if constexpr (qv() >= QV0) T::template tile_zero<qv()>();
    });
    for (int64_t d = 0; d < head_dim; d += kAmxPairDims) {
      T::template tile_load<3>(keys + g * k_row_bytes + d * 2, k_row_bytes);
      for_each_index<QV>([&](auto qv) {
        if constexpr (qv() >= QV0) {
          T::template tile_load<4 + qv()>(q_pairs + d / 2 * R + qv() * W, R * 4);
          T::template tile_dot_bf16<qv(), 3, 4 + qv()>();
        }
      });
    }
    for_each_index<QV>([&](auto qv) {
      if constexpr (qv() >= QV0) T::template tile_store<qv()>(st + g * R + qv() * W, R * 4);
    });
    if (g > first) scale_rows(g - kAmxLanes, g);
  }
  scale_rows(std::max(first, (end - 1) / kAmxLanes * kAmxLanes), end);
}

// Ot[d][lane] += Σ over `pairs` key pairs (a multiple of 16) of the P pair · the V pair, for
// query vectors QV0 and up; values: dim 0 of the run's first key in the transposed V.
template <class Arch, int QV0>
void output_amx(const uint32_t* p_pairs, int64_t pairs, const std::byte* values, int64_t vt_row_bytes,
                int64_t head_dim_v, float* ot) {
  using T = IsaTraits<Arch>;
  constexpr int R = Blocking<Arch>::kRows;
  constexpr int W = Blocking<Arch>::kLanes;
  constexpr int QV = Blocking<Arch>::kQueryVectors;
  for (int64_t d = 0; d < head_dim_v; d += kAmxLanes) {
    for_each_index<QV>([&](auto qv) {
      if constexpr (qv() >= QV0) T::template tile_load<qv()>(ot + d * R + qv() * W, R * 4);
    });
    for (int64_t i = 0; i < pairs; i += kAmxLanes) {
      T::template tile_load<3>(values + d * vt_row_bytes + i * 4, vt_row_bytes);
      for_each_index<QV>([&](auto qv) {
        if constexpr (qv() >= QV0) {
          T::template tile_load<4 + qv()>(p_pairs + i * R + qv() * W, R * 4);
          T::template tile_dot_bf16<qv(), 3, 4 + qv()>();
        }
      });
    }
    for_each_index<QV>([&](auto qv) {
      if constexpr (qv() >= QV0) T::template tile_store<qv()>(ot + d * R + qv() * W, R * 4);
    });
  }
}

// block_tiles for the AMX kernel: the chunk's packed K and transposed V for the tiles. A tile
// whose V is finite takes all its keys on the tiles; another takes its masked keys and the ends
// of its runs in f32, from V's f32 rows (values_f32, read only then).
template <class Arch>
void block_tiles_amx(const RowBlockArgs& a, int64_t j_begin, int64_t j_end, const AmxChunk& chunk,
                     const KvRows& values_f32) {
  using B = Blocking<Arch>;
  using V = Vec<Arch>;
  constexpr int R = B::kRows;
  const BlockWalk<Arch> w(a);
  const Bf16BlockState<Arch> s(w.b);
  const int64_t kv_end = block_kv_end<Arch>(a);
  TileRows<Arch, B::kTileKeys> tile;  // V's f32 rows (tile.k unused)
  V ones[B::kQueryVectors];
  for (V& one : ones) one = V(1.0f);
  for (int64_t j0 = std::max(j_begin, w.first_tile); j0 < std::min(j_end, kv_end); j0 += B::kTileKeys) {
    TileStep<Arch> t;
    TileMaxima<Arch> mx;
    t.j0 = j0;
    t.n = std::min<int64_t>(kv_end - j0, B::kTileKeys);
    const std::byte* const keys = chunk.k + (j0 - chunk.begin) * chunk.k_row_bytes;
    auto score = [&](auto qv0, int64_t from, int64_t count, V* m_new) {
      score_keys_amx<Arch, qv0()>(s.q_pairs, w.head_dim, a.scale, keys, chunk.k_row_bytes, from, count, w.b.st, m_new);
    };
    // Whether Ot of vectors qv0 and up must be rescaled (or, scale nullptr, written afresh)
    // before tiles add to it.
    auto needs_rescale = [&](auto qv0, const V* scale) {
      for (int qv = qv0(); scale != nullptr && qv < B::kQueryVectors; ++qv) {
        if (!xsimd::all(scale[qv] == V(1.0f))) return true;
      }
      return scale == nullptr;
    };
    // Keys [from, to) of the tile (from a multiple of 32) on the tiles, their weights packed first.
    auto tiles_run = [&](auto qv0, int64_t from, int64_t to) {
      pack_weights<Arch, qv0()>(w.b.st, from, (to - from) / 2, s.p_pairs);
      output_amx<Arch, qv0()>(s.p_pairs, (to - from) / 2, chunk.vt + (j0 - chunk.begin + from) * 2, chunk.vt_row_bytes,
                              w.head_dim_v, w.b.ot);
    };
    // Keys [from, to): whole 32-key groups on the tiles, the keys before and after in f32.
    auto unmasked = [&](auto qv0, int64_t from, int64_t to, const V* scale) {
      auto f32_run = [&](int64_t lo, int64_t hi, const V* run_scale) {
        output_dims<Arch, B::kDimBlock, Masking::kNone, qv0()>(w.b.st + lo * R, hi - lo, tile.v + lo, w.head_dim_v,
                                                               run_scale, t.mask, w.b.ot);
      };
      const int64_t tiles_from = (from + kAmxPairDims - 1) / kAmxPairDims * kAmxPairDims;
      const int64_t tiles_to = std::max(tiles_from, to / kAmxPairDims * kAmxPairDims);
      if (tiles_from >= tiles_to) return f32_run(from, to, scale);
      // The rescale rides on the first f32 run, even one of no key, unless it is 1.
      if (tiles_from > from || needs_rescale(qv0, scale)) f32_run(from, tiles_from, scale);
      tiles_run(qv0, tiles_from, tiles_to);
      if (tiles_to < to) f32_run(tiles_to, to, ones);
    };
    score_tile<Arch>(a, w, score, t, mx);
    mask_tile<Arch>(w, t, mx);
    softmax_tile<Arch, kRescaleSlackLog2>(w, t, mx);
    if (a.dropout_threshold != 0) drop_weights<Arch>(a, j0, t.n, w.b.st);
    const int64_t whole = (t.n + kAmxPairDims - 1) / kAmxPairDims * kAmxPairDims;
    if (!chunk.finite_values(j0 - chunk.begin, j0 - chunk.begin + whole)) {
      fill_rows<Arch>(values_f32, j0, t.n, tile.v);
      tile.n = t.n;
      accumulate_tile<Arch>(a, w, tile, unmasked, t, mx);
      continue;
    }
    // V finite in all the tile's 32-key groups: every key on the tiles, the masked ones (weight
    // exactly 0 after the mask) included, and the keys past the tile with weight 0.
    const V* first_scale = j0 == w.first_tile ? nullptr : mx.alpha;
    for_each_index<B::kQueryVectors>([&](auto qv0) {
      if (qv0() != w.first_vector) return;
      if (needs_rescale(qv0, first_scale)) {  // Ot *= alpha, or Ot = 0 on the block's first tile
        output_dims<Arch, B::kDimBlock, Masking::kNone, qv0()>(w.b.st, 0, tile.v, w.head_dim_v, first_scale, t.mask, w.b.ot);
      }
      for (int64_t j = t.n; j < whole; ++j)
        for (int qv = qv0(); qv < B::kQueryVectors; ++qv) V(0.0f).store_aligned(w.b.st + j * R + qv * B::kLanes);
      tiles_run(qv0, 0, whole);
    });
  }
}

// The row blocks of one group (attention_row_blocks' contract) on the tiles, each chunk's K
// copied, V transposed and V widened once for all the blocks. The tile configuration is set on
// entry and released on exit.
template <class Arch>
void attention_row_blocks_amx(const RowBlockArgs* blocks, int count, float* group_workspace, int64_t chunk_keys) {
  using T = IsaTraits<Arch>;
  // AmxChunk::finite has a bit per 32-key group (chunk_keys is kChunkKeys, 384 keys).
  T::configure_tiles();
  int64_t kv_begin = INT64_MAX, kv_end = 0;
  for (int i = 0; i < count; ++i) {
    begin_block_bf16<Arch>(blocks[i]);
    kv_begin = std::min(kv_begin, block_first_tile<Arch>(blocks[i]));
    kv_end = std::max(kv_end, block_kv_end<Arch>(blocks[i]));
  }
  const int64_t D = blocks[0].head_dim, Dv = blocks[0].head_dim_v;
  auto* const k_rows = reinterpret_cast<std::byte*>(group_workspace);
  std::byte* const vt = k_rows + chunk_keys * D * 2;
  auto* const v_f32 = reinterpret_cast<float*>(vt + chunk_keys * Dv * 2);
  for (int64_t j = kv_begin; j < kv_end; j += chunk_keys) {
    const int64_t end = std::min(kv_end, j + chunk_keys);
    pack_amx_keys<Arch>(blocks[0].k, j, end, D, k_rows);
    const uint64_t finite = pack_amx_values<Arch>(blocks[0].v, j, end, Dv, vt, chunk_keys * 2);
    const AmxChunk chunk{k_rows, D * 2, vt, chunk_keys * 2, j, finite};
    // V in f32 only where a group is not finite (its tiles then take the f32 path for some keys).
    const KvRows values = chunk.finite_values(0, end - j) ? KvRows{} : widen_chunk<Arch>(blocks[0].v, j, end, Dv, v_f32);
    for (int i = 0; i < count; ++i) {
      if (block_keys_in<Arch>(blocks[i], j, j + chunk_keys) > 0) block_tiles_amx<Arch>(blocks[i], j, j + chunk_keys, chunk, values);
    }
  }
  for (int i = 0; i < count; ++i) finish_block<Arch>(blocks[i]);
  T::release_tiles();
}

}  // namespace causalattn::kernels
