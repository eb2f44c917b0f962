// The decode kernel: a KV head's few queries (its query heads × a few positions) against a chunk
// of its keys, head_dim in vector lanes. Each key row is loaded once for all the rows; scores are
// dot products reduced across lanes, the online softmax is per row, and the output accumulates
// head_dim-wide vectors. Decode is bound by reading K and V, so this favours one pass over
// memory over FMA density. K and V are read in their stored type (f32, bf16, f16, q8_0: template
// parameters KT and VT), widened in registers as they load.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "kernels/kv_rows.hpp"
#include "kernels/kernel_table.hpp"
#include "kernels/simd.hpp"
#include "kernels/widen.hpp"

namespace causalattn::kernels {

// Keys per tile: a row's 64 scores stay in registers and L1 while the tile's K rows (32 KiB at
// D=128, and as much again for V) stream through.
constexpr int kDecodeTileKeys = 64;

template <class Arch>
constexpr int64_t padded_dim(int64_t head_dim) {
  constexpr int64_t W = Vec<Arch>::size;
  return (head_dim + W - 1) / W * W;
}

template <class Arch>
constexpr std::size_t decode_workspace_floats(int64_t head_dim, int64_t head_dim_v) {
  // Queries [rows][padded D], output accumulators [rows][padded Dv], scores [rows][tile], the
  // score partials [rows][tile][W], max and sum [rows].
  constexpr int64_t W = Vec<Arch>::size;
  return static_cast<std::size_t>(
      kDecodeRows * (padded_dim<Arch>(head_dim) + padded_dim<Arch>(head_dim_v) + kDecodeTileKeys * (1 + W) + 2));
}

// The K and V row addresses of one tile of a chunk's keys (n = 0 past the chunk's end).
template <class Arch>
using DecodeTile = TileRows<Arch, kDecodeTileKeys, std::byte>;

template <class Arch>
inline void fill_tile(const DecodeArgs& a, int64_t j0, DecodeTile<Arch>& tile) {
  tile.fill(a.k, a.v, j0, std::clamp<int64_t>(a.j_end - j0, 0, kDecodeTileKeys));
}

// Keys ahead of the one being computed whose rows the K and V passes bring into L1 (their L2
// prefetch went a tile ahead): the loads then find their lines in L1 instead of each waiting on L2.
constexpr int64_t kDecodeL1Ahead = 8;

// The order a pass takes a tile's keys in: one after another, or the tile's runs of
// kDecodeRunKeys keys side by side (the runs' first keys, then their second, ...). In a paged
// cache of 16-token pages (vLLM's default block) a tile's rows are 4 contiguous runs, far apart:
// taken one run after another, the hardware's stream prefetch follows one run at a time; side by
// side, four at once: on Zen 5 f32 decode about 10% faster, bf16 15% (docs/performance.md).
constexpr int64_t kDecodeRunKeys = 16;
static_assert(kDecodeTileKeys % kDecodeRunKeys == 0);

struct KeyOrder {
  bool side_by_side;
  int64_t key(int64_t step) const {
    constexpr int64_t kRuns = kDecodeTileKeys / kDecodeRunKeys;
    return side_by_side ? step % kRuns * kDecodeRunKeys + step / kRuns : step;
  }
};

// The K pass: scores do not depend on the order they are computed in, so it follows the layout:
// side by side where pages of at most 16 tokens cut the tile into runs. (Not for q8_0, whose
// 136-byte rows share cache lines with their neighbours: measured slower.)
template <Dtype KT>
inline KeyOrder key_order(const KvRows& k, int64_t n) {
  return {KT != Dtype::kQ8_0 && n == kDecodeTileKeys && k.pages != nullptr && k.page_tokens <= kDecodeRunKeys &&
          kDecodeRunKeys % k.page_tokens == 0};
}

// The P·V pass: the order is the order of the sums, so it cannot follow the layout (paged and
// contiguous caches give the same bits): side by side on every whole tile a row sees, which for
// f32 measured faster on every layout tried (contiguous bf16 lost 7-10%), except for q8_0.
template <Dtype VT>
inline KeyOrder value_order(int64_t lo, int64_t hi) {
  return {VT != Dtype::kQ8_0 && lo == 0 && hi == kDecodeTileKeys};
}

// Keys whose scores decode_scores computes together: each query vector, loaded once, meets all
// their key vectors. Only q8_0 gains (its widening makes it compute-bound: 2 threads 10% faster
// on Zen 5); for f32 and 16-bit keys the grouped rows' prefetches come in bursts, and f32 and
// bf16 decode from memory ran 15-20% slower (docs/performance.md).
template <class Arch, int NR, Dtype KT>
constexpr int decode_score_keys() {
  if constexpr (KT != Dtype::kQ8_0) {
    return 1;
  } else {
    // NR·keys accumulators, keys·(vectors a block) key vectors, a query vector, a scale.
    constexpr int kBlockVectors = static_cast<int>(kQ8Block / Vec<Arch>::size);
    return std::clamp((IsaTraits<Arch>::kRegisters - 4) / (NR + kBlockVectors), 1, 4);
  }
}

// Scores of the tile's keys for NR rows: s[r][j] = Σ_d q[r][d] · K[j][d] (q already scaled).
// Each key row is loaded (and widened) once for all the rows; its NR lane-wise partial sums go to
// `partials` ([NR][kDecodeTileKeys][W]), and then each row's W vectors of W keys are summed across
// lanes together (sum_lanes), far cheaper than one horizontal sum per score. Keys are computed in
// key_order's order, decode_score_keys of them at a time (each key's sums in the same order
// whatever their number: the same bits).
// Each key also brings the next tile's K row of the same index into L2 (the P·V pass brings its
// V rows): a head's rows come in short runs (one page's slots in a paged cache, one row in
// [B,T,H,D]) with jumps between them, where the hardware's streaming prefetch, bounded by 4 KiB
// pages, starts over; without this, decode waits on memory latency instead of bandwidth.
template <class Arch, int NR, Dtype KT>
inline void decode_scores(const float* qp, int64_t dp, int64_t head_dim, const DecodeTile<Arch>& tile, float* s,
                          const DecodeTile<Arch>& next, int64_t k_bytes, float* partials,
                          KeyOrder order) {
  using V = Vec<Arch>;
  constexpr int64_t W = V::size;
  constexpr int64_t T = kDecodeTileKeys;
  const int64_t d_vec = head_dim / W * W;
  // A q8_0 block's vectors at a time (one scale each), else one vector.
  constexpr int kStep = KT == Dtype::kQ8_0 ? static_cast<int>(kQ8Block / W) : 1;
  // The scores of the keys at steps step0 .. step0 + KB - 1.
  auto score_keys = [&](auto keys, int64_t step0) {
    constexpr int KB = keys();
    const std::byte* kr[KB];
    int64_t j[KB];
#pragma GCC unroll 4
    for (int b = 0; b < KB; ++b) {
      const int64_t step = step0 + b;
      j[b] = order.key(step);
      kr[b] = tile.k[j[b]];
      if (step < next.n) prefetch_row<Arch>(next.k[step], k_bytes);
      if (step + kDecodeL1Ahead < tile.n) prefetch_row<Arch, true>(tile.k[order.key(step + kDecodeL1Ahead)], k_bytes);
    }
    V acc[NR][KB];
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r)
#pragma GCC unroll 4
      for (int b = 0; b < KB; ++b) acc[r][b] = V(0.0f);
    // Unrolled (as the row's prefetches are): fewer instructions a key let the core hold more
    // keys' loads in flight (docs/performance.md, Zen 5).
#pragma GCC unroll 8
    for (int64_t d = 0; d < d_vec; d += kStep * W) {
      V kv[KB][kStep];
#pragma GCC unroll 4
      for (int b = 0; b < KB; ++b) load_vectors<Arch, KT, kStep>(kr[b], d, kv[b]);
#pragma GCC unroll 8
      for (int u = 0; u < kStep; ++u)
#pragma GCC unroll 8
        for (int r = 0; r < NR; ++r) {
          const V q = V::load_aligned(qp + r * dp + d + u * W);
#pragma GCC unroll 4
          for (int b = 0; b < KB; ++b) acc[r][b] = fmadd<Arch>(q, kv[b][u], acc[r][b]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r)
#pragma GCC unroll 4
      for (int b = 0; b < KB; ++b) acc[r][b].store_aligned(partials + (r * T + j[b]) * W);
  };
  constexpr int kKeys = decode_score_keys<Arch, NR, KT>();
  int64_t step = 0;
  for (; step + kKeys <= tile.n; step += kKeys) score_keys(std::integral_constant<int, kKeys>{}, step);
  for (; step < tile.n; ++step) score_keys(std::integral_constant<int, 1>{}, step);
  // Keys past a partial tile's end, up to its last vector of W, sum to 0.
  for (int64_t j = tile.n; j < (tile.n + W - 1) / W * W; ++j) {
    for (int r = 0; r < NR; ++r) V(0.0f).store_aligned(partials + (r * T + j) * W);
  }
  for (int64_t j0 = 0; j0 < tile.n; j0 += W) {
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) {
      V rows[W];
      for (int64_t i = 0; i < W; ++i) rows[i] = V::load_aligned(partials + (r * T + j0 + i) * W);
      V sums = IsaTraits<Arch>::sum_lanes(rows);
      sums.store_aligned(s + r * T + j0);
    }
    // The dims past the last full vector, one by one.
    for (int64_t j = j0; j < std::min(j0 + W, tile.n) && d_vec < head_dim; ++j) {
      const std::byte* kr = tile.k[j];
      for (int r = 0; r < NR; ++r) {
        float tail = 0.0f;
        for (int64_t d = d_vec; d < head_dim; ++d) tail += qp[r * dp + d] * dtype::element<Arch>(kr, KT, d);
        s[r * T + j] += tail;
      }
    }
  }
}

// o[d0 .. d0 + NV·W) = alpha · o + Σ_{j in [lo, hi)} p[j] · V[j][d0 ..].
template <class Arch, int NV, Dtype VT>
inline void decode_output_block(const float* p, int64_t lo, int64_t hi, const std::byte* const* vrows, int64_t d0,
                                Vec<Arch> alpha, float* o) {
  using V = Vec<Arch>;
  constexpr int64_t W = V::size;
  V acc[NV];
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) acc[v] = V::load_aligned(o + d0 + v * W) * alpha;
  const KeyOrder order = value_order<VT>(lo, hi);
  for (int64_t step = lo; step < hi; ++step) {
    const int64_t j = order.key(step);
    const V pj(p[j]);
    const std::byte* vr = vrows[j];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[v] = fmadd<Arch>(pj, load_as<Arch, VT>(vr, d0 + v * W), acc[v]);
  }
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) acc[v].store_aligned(o + d0 + v * W);
}

// One row's output update over its visible keys [lo, hi) of the tile; the dims past the last
// full vector are done one by one.
template <class Arch, Dtype VT>
inline void decode_output_row(const float* p, int64_t lo, int64_t hi, const std::byte* const* vrows,
                              int64_t head_dim, float alpha, float* o) {
  using V = Vec<Arch>;
  constexpr int kBlock = 8;  // vectors of accumulators held in registers
  constexpr int64_t W = V::size;
  const int64_t vectors = head_dim / W;
  int64_t v = 0;
  for (; v + kBlock <= vectors; v += kBlock) {
    decode_output_block<Arch, kBlock, VT>(p, lo, hi, vrows, v * W, V(alpha), o);
  }
  with_block_size<kBlock - 1>(static_cast<int>(vectors - v), [&](auto rest) {
    decode_output_block<Arch, rest(), VT>(p, lo, hi, vrows, v * W, V(alpha), o);
  });
  const KeyOrder order = value_order<VT>(lo, hi);
  for (int64_t d = vectors * W; d < head_dim; ++d) {
    float acc = o[d] * alpha;
    for (int64_t step = lo; step < hi; ++step) {
      const int64_t j = order.key(step);
      acc += p[j] * dtype::element<Arch>(vrows[j], VT, d);
    }
    o[d] = acc;
  }
}

// Where a P·V pass brings the next tile's V rows into L2 as it goes: bytes [offset, offset +
// bytes) of rows[step] at each step below n. (The K pass brings the next tile's K rows: a tile's
// prefetches spread over both passes, where all in the K pass kept f32 decode 8-14% slower.)
struct NextValues {
  const std::byte* const* rows;
  int64_t n, offset, bytes;
};

// The output update of all NR rows at once, for rows that see the same keys [lo, hi) of the tile
// (every row of a one-token decode): each V vector is loaded (and widened) once for all the rows
// instead of once per row. Row r's accumulators get the same operations in the same order as
// decode_output_row's, so the bits are the same. p holds row r's weights at p + r · kDecodeTileKeys.
// With v_bytes > 0 (the first block of dims), each key also brings the whole V row
// kDecodeL1Ahead keys on into L1, for this block and the next ones; and each step brings its
// share of the next tile's V rows into L2 (`next`).
template <class Arch, int NR, int NV, Dtype VT>
inline void decode_output_rows_block(const float* p, int64_t lo, int64_t hi, const std::byte* const* vrows, int64_t d0,
                                     const float* alpha, float* o, int64_t dp, int64_t v_bytes, NextValues next) {
  using V = Vec<Arch>;
  constexpr int64_t W = V::size;
  V acc[NR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = V::load_aligned(o + r * dp + d0 + v * W) * V(alpha[r]);
  const KeyOrder order = value_order<VT>(lo, hi);
  for (int64_t step = lo; step < hi; ++step) {
    const int64_t j = order.key(step);
    if (v_bytes > 0 && step + kDecodeL1Ahead < hi) prefetch_row<Arch, true>(vrows[order.key(step + kDecodeL1Ahead)], v_bytes);
    if (step < next.n) prefetch_row<Arch>(next.rows[step] + next.offset, next.bytes);
    V vv[NV];
    load_vectors<Arch, VT, NV>(vrows[j], d0, vv);
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) {
      const V pj(p[r * kDecodeTileKeys + j]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = fmadd<Arch>(pj, vv[v], acc[r][v]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v].store_aligned(o + r * dp + d0 + v * W);
}

template <class Arch, int NR, Dtype VT>
inline void decode_output_rows(const float* p, int64_t lo, int64_t hi, const std::byte* const* vrows, int64_t head_dim,
                               const float* alpha, float* o, int64_t dp, const DecodeTile<Arch>& next) {
  using V = Vec<Arch>;
  constexpr int64_t W = V::size;
  // Half the registers hold accumulators. (kBlock · W divides 32 or is a multiple of it, as
  // load_vectors needs for q8_0: it is 1, 2 or 4 vectors of 4, 8 or 16 lanes.)
  constexpr int kFit = std::clamp(IsaTraits<Arch>::kRegisters / 2 / NR, 1, 4);
  constexpr int kBlock = kFit == 3 ? 2 : kFit;
  const int64_t vectors = head_dim / W;
  int64_t v = 0;
  const int64_t v_bytes = row_bytes<Arch>(VT, head_dim);
  // The bytes of the next tile's V rows that the block of vectors [v0, v1) brings into L2: its
  // own, the last block's running to the row's end.
  auto next_values = [&](int64_t v0, int64_t v1) {
    const int64_t begin = row_bytes<Arch>(VT, v0 * W), end = v1 == vectors ? v_bytes : row_bytes<Arch>(VT, v1 * W);
    return NextValues{next.v, next.n, begin, end - begin};
  };
  for (; v + kBlock <= vectors; v += kBlock) {
    decode_output_rows_block<Arch, NR, kBlock, VT>(p, lo, hi, vrows, v * W, alpha, o, dp, v == 0 ? v_bytes : 0,
                                                   next_values(v, v + kBlock));
  }
  with_block_size<kBlock - 1>(static_cast<int>(vectors - v), [&](auto rest) {
    decode_output_rows_block<Arch, NR, rest(), VT>(p, lo, hi, vrows, v * W, alpha, o, dp, v == 0 ? v_bytes : 0,
                                                   next_values(v, vectors));
  });
  const KeyOrder order = value_order<VT>(lo, hi);
  for (int r = 0; r < NR; ++r) {
    for (int64_t d = vectors * W; d < head_dim; ++d) {
      float acc = o[r * dp + d] * alpha[r];
      for (int64_t step = lo; step < hi; ++step) {
        const int64_t j = order.key(step);
        acc += p[r * kDecodeTileKeys + j] * dtype::element<Arch>(vrows[j], VT, d);
      }
      o[r * dp + d] = acc;
    }
  }
}

// max that propagates a NaN from either side (a NaN score makes its row's softmax NaN).
template <class Arch>
inline float max_or_nan(float a, float b) {
  return (a != a || b != b) ? std::numeric_limits<float>::quiet_NaN() : std::max(a, b);
}

template <class Arch, int NR, Dtype KT, Dtype VT>
void decode_chunk_rows(const DecodeArgs& a) {
  using V = Vec<Arch>;
  constexpr int64_t W = V::size;
  constexpr int64_t T = kDecodeTileKeys;
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  const int64_t D = a.head_dim, dp = padded_dim<Arch>(D), Dv = a.head_dim_v, dpv = padded_dim<Arch>(Dv);
  float* const qp = a.workspace;
  float* const op = qp + NR * dp;
  float* const s = op + NR * dpv;
  float* const partials = s + NR * T;
  float* const m = partials + NR * T * W;
  float* const l = m + NR;
  for (int r = 0; r < NR; ++r) {
    widen_row<Arch>(a.q[r], a.q_dtype, D, qp + r * dp);
    for (int64_t d = 0; d < dp; ++d) qp[r * dp + d] = d < D ? qp[r * dp + d] * a.scale : 0.0f;
    for (int64_t d = 0; d < dpv; ++d) op[r * dpv + d] = 0.0f;
    m[r] = kNegInf;
    l[r] = 0.0f;
  }
  const int64_t k_bytes = row_bytes<Arch>(KT, D), v_bytes = row_bytes<Arch>(VT, Dv);
  const bool softcapped = a.softcap != 0.0f;
  const V cap(a.softcap), inv_cap(softcapped ? 1.0f / a.softcap : 0.0f);
  alignas(64) float lane_index[W];
  for (int64_t i = 0; i < W; ++i) lane_index[i] = static_cast<float>(i);
  // This tile's rows and the next one's, which take turns as the walk advances.
  DecodeTile<Arch> tiles[2];
  fill_tile<Arch>(a, a.j_begin, tiles[0]);
  // The first tile has no tile before it to bring its rows into L2.
  for (int64_t j = 0; j < tiles[0].n; ++j) tiles[0].prefetch(j, k_bytes, v_bytes);
  for (int64_t j0 = a.j_begin, cur = 0; j0 < a.j_end; j0 += T, cur ^= 1) {
    const DecodeTile<Arch>& tile = tiles[cur];
    const DecodeTile<Arch>& next = tiles[cur ^ 1];
    fill_tile<Arch>(a, j0 + T, tiles[cur ^ 1]);
    decode_scores<Arch, NR, KT>(qp, dp, D, tile, s, next, k_bytes, partials, key_order<KT>(a.k, tile.n));
    const int64_t n = tile.n;
    int64_t lo[NR], hi[NR];
    float alpha[NR];
    bool same_keys = true;
    for (int r = 0; r < NR; ++r) {
      // The row's visible keys in this tile; the others get -inf (and are never multiplied
      // into V, so a NaN in V where the row must not look cannot reach it).
      lo[r] = std::clamp<int64_t>(a.first_key[r] - j0, 0, n);
      hi[r] = std::clamp<int64_t>(a.last_key[r] + 1 - j0, lo[r], n);
      same_keys = same_keys && lo[r] == lo[0] && hi[r] == hi[0];
      alpha[r] = 1.0f;
      if (lo[r] == hi[r]) continue;
      float* sr = s + r * T;
      // Softcap and ALiBi, the bias from the row's last visible key as the row-block kernel takes
      // it (transform_scores), on the vectors that hold visible keys.
      if (softcapped || a.alibi_slope[r] != 0.0f) {
        const V slope(a.alibi_slope[r]), lanes = V::load_aligned(lane_index);
        for (int64_t j = lo[r] / W * W; j < hi[r]; j += W) {
          V x = V::load_aligned(sr + j);
          if (softcapped) x = softcap<Arch>(x, cap, inv_cap);
          x = fmadd<Arch>(slope, V(static_cast<float>(j0 + j - a.last_key[r])) + lanes, x);
          x.store_aligned(sr + j);
        }
      }
      for (int64_t j = 0; j < lo[r]; ++j) sr[j] = kNegInf;
      for (int64_t j = hi[r]; j < (n + W - 1) / W * W; ++j) sr[j] = kNegInf;
      // The maximum over the visible keys, NaN if any is NaN (vectors of whole lanes: the
      // others hold -inf now).
      // (x == x is false exactly for NaN; xsimd 8.1's x != x is an ordered compare on AVX, false
      // for NaN too.)
      V m_vec(kNegInf);
      auto ordered = m_vec == m_vec;  // all true
      for (int64_t j = lo[r] / W * W; j < hi[r]; j += W) {
        const V x = V::load_aligned(sr + j);
        m_vec = xsimd::max(m_vec, x);
        ordered = ordered & (x == x);
      }
      alignas(64) float lanes[W];
      m_vec.store_aligned(lanes);
      float m_new = m[r];
      for (int64_t i = 0; i < W; ++i) m_new = max_or_nan<Arch>(m_new, lanes[i]);
      if (!xsimd::all(ordered)) m_new = std::numeric_limits<float>::quiet_NaN();
      const float m_ref = m_new == kNegInf ? 0.0f : m_new;  // all -inf so far: keep exp at 0
      V sum(0.0f);
      for (int64_t j = lo[r] / W * W; j < hi[r]; j += W) {
        const V p = exp_nonpositive<Arch>(V::load_aligned(sr + j) - V(m_ref));
        p.store_aligned(sr + j);
        sum += p;
      }
      alpha[r] = exp_nonpositive<Arch>(V(m[r]) - V(m_ref)).get(0);
      l[r] = l[r] * alpha[r] + xsimd::hadd(sum);
      m[r] = m_new;
    }
    int64_t brought_lo = 0, brought_hi = 0;  // the next tile's V rows the P·V pass brings into L2
    if (same_keys && lo[0] < hi[0]) {
      decode_output_rows<Arch, NR, VT>(s, lo[0], hi[0], tile.v, Dv, alpha, op, dpv, next);
      if (Dv >= W) {  // (else no block of vectors ran)
        brought_lo = lo[0];
        brought_hi = hi[0];
      }
    } else {
      for (int r = 0; r < NR; ++r) {
        if (lo[r] < hi[r]) decode_output_row<Arch, VT>(s + r * T, lo[r], hi[r], tile.v, Dv, alpha[r], op + r * dpv);
      }
    }
    for (int64_t j = 0; j < next.n; ++j) {
      if (j < brought_lo || j >= brought_hi) prefetch_row<Arch>(next.v[j], v_bytes);
    }
  }
  for (int r = 0; r < NR; ++r) {
    const float inv_l = 1.0f / l[r];
    for (int64_t d = 0; d < Dv; ++d) a.out[r * Dv + d] = op[r * dpv + d] * inv_l;
    a.lse[r] = m[r] == kNegInf ? kNegInf : m[r] + std::log(l[r]);
    // ALiBi's constant rest for the row (its bias was taken from its last visible key).
    if (a.lse[r] != kNegInf && a.alibi_slope[r] != 0.0f) {
      a.lse[r] -= static_cast<float>(static_cast<double>(a.alibi_slope[r]) *
                                     static_cast<double>(a.position[r] - a.last_key[r]));
    }
  }
}

// Calls fn(std::integral_constant<Dtype, t>) for the run-time type t.
template <class Fn>
inline void with_dtype(Dtype t, Fn&& fn) {
  switch (t) {
    case Dtype::kF32: return fn(std::integral_constant<Dtype, Dtype::kF32>{});
    case Dtype::kBf16: return fn(std::integral_constant<Dtype, Dtype::kBf16>{});
    case Dtype::kF16: return fn(std::integral_constant<Dtype, Dtype::kF16>{});
    case Dtype::kQ8_0: return fn(std::integral_constant<Dtype, Dtype::kQ8_0>{});
  }
}

template <class Arch>
void decode_chunk(const DecodeArgs& a) {
  with_dtype(a.k.dtype, [&](auto kt) {
    with_dtype(a.v.dtype, [&](auto vt) {
      with_block_size<kDecodeRows>(a.rows, [&](auto rows) { decode_chunk_rows<Arch, rows(), kt(), vt()>(a); });
    });
  });
}

}  // namespace causalattn::kernels
