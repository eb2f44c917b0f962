// One row block of queries against its keys: its workspace (BlockState), its bounds (the tiles it
// touches), begin (pack Q), the tile walk with the online softmax (score, mask, softmax update,
// dropout, accumulate), and finish (normalize, transpose back, LSE).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "causalattn/causalattn.h"
#include "kernels/attention_microkernels.hpp"
#include "kernels/philox.hpp"
#include "kernels/widen.hpp"

namespace causalattn::kernels {

// A row block's workspace: Qt [D][rows] and Ot [Dv][rows], one score tile, running max and sum.
template <class Arch>
struct BlockState {
  static constexpr int R = Blocking<Arch>::kRows;
  float* qt;          // [D][R] queries, multiplied by the scale
  float* ot;          // [Dv][R] unnormalized output
  float* st;          // [kTileKeys][R] scores, then probabilities
  float* m;           // [R] running max of the scores
  float* l;           // [R] running sum
  float* lane_index;  // [R] 0, 1, 2, ... as floats, for the diagonal mask

  BlockState(float* ws, int64_t head_dim, int64_t head_dim_v)
      : qt(ws), ot(qt + head_dim * R), st(ot + head_dim_v * R), m(st + Blocking<Arch>::kTileKeys * R),
        l(m + R), lane_index(l + R) {}
};

// Query i sees key j iff j <= i + diagonal: keys from kv_end on are never touched, nor keys
// past the block's split (RowBlockArgs::key_end).
// (A template on Arch, like everything here, so per-ISA objects share no out-of-line symbol.)
template <class Arch>
int64_t block_kv_end(const RowBlockArgs& a) {
  const int64_t end = a.key_end > 0 ? a.key_end : a.kv_len;
  return a.causal ? std::clamp<int64_t>(a.q_begin + a.q_count + a.diagonal, 0, end) : end;
}

// The first tile the block needs: with a window, query i needs no key j <= i + diagonal -
// window, so tiles wholly below the first query's band are never touched either. Tiles start
// at multiples of kTileKeys, so a block's tiles do not depend on how its range is cut.
template <class Arch>
int64_t block_first_tile(const RowBlockArgs& a) {
  static_assert(CAUSALATTN_INVARIANT_SPLIT_KEYS % Blocking<Arch>::kTileKeys == 0, "splits start on a tile");
  if (a.window == 0) return a.key_begin;
  const int64_t first_key = std::max<int64_t>(0, a.q_begin + a.diagonal - a.window + 1);
  return std::max(a.key_begin, first_key / Blocking<Arch>::kTileKeys * Blocking<Arch>::kTileKeys);
}

// How many keys of [j_begin, j_end) the block computes: those of its tiles that start there.
template <class Arch>
int64_t block_keys_in(const RowBlockArgs& a, int64_t j_begin, int64_t j_end) {
  return std::max<int64_t>(
      0, std::min(j_end, block_kv_end<Arch>(a)) - std::max(j_begin, block_first_tile<Arch>(a)));
}

// A block of fewer than kRows queries fills the top lanes: lane i holds query i - first_lane.
// The query vectors below first_lane / kLanes then hold no query and are skipped (a diagonal
// tile skips low vectors already), so a short block costs the vectors it fills, not all of them.
template <class Arch>
int first_lane(const RowBlockArgs& a) {
  return Blocking<Arch>::kRows - static_cast<int>(a.q_count);
}

// Dropout on a tile's weights (after they were summed into the softmax's denominator): each is
// kept and scaled by 1/(1 - p), or zeroed, by the Philox rule of philox.hpp. Tiles start at
// multiples of kTileKeys, so one Philox call serves four consecutive keys of a row.
template <class Arch>
void drop_weights(const RowBlockArgs& a, int64_t j0, int64_t n, float* st) {
  constexpr int R = Blocking<Arch>::kRows;
  static_assert(Blocking<Arch>::kTileKeys % 4 == 0, "tiles start on a four-key boundary");
  const int first = first_lane<Arch>(a);
  for (int64_t i = first; i < R; ++i) {
    const auto query = static_cast<uint32_t>(a.q_begin + i - first);
    for (int64_t j = 0; j < n; j += 4) {
      const Philox4x32 words =
          dropout_words<Arch>(a.dropout_seed, a.sequence, a.head, query, static_cast<uint32_t>((j0 + j) / 4));
      for (int64_t t = 0; t < 4 && j + t < n; ++t) {
        float& weight = st[(j + t) * R + i];
        weight = words.v[t] >= a.dropout_threshold ? weight * a.dropout_scale : 0.0f;
      }
    }
  }
}

// Packs Q transposed and multiplied by the scale (lanes below first_lane zero), and clears the
// running state. Q of any type is widened on the way. pack_q = false: the running state alone,
// for the kernels that pack Q their own way.
template <class Arch>
void begin_block(const RowBlockArgs& a, bool pack_q = true) {
  using V = Vec<Arch>;
  constexpr int W = Blocking<Arch>::kLanes;
  constexpr int R = Blocking<Arch>::kRows;
  const BlockState<Arch> b(a.workspace, a.head_dim, a.head_dim_v);
  const int64_t D = a.head_dim;
  const int first = first_lane<Arch>(a);
  const float scale = a.scale;
  auto q_row = [&](int64_t row) { return a.q + row * a.q_stride; };
  // The block's first tile writes Ot; a block with no tile (no keys) leaves it zero.
  if (block_kv_end<Arch>(a) <= block_first_tile<Arch>(a)) {
    for (int64_t d = 0; d < a.head_dim_v * R; d += W) V(0.0f).store_aligned(b.ot + d);
  }
  // W queries by W dims at a time: W row loads, one transpose, W aligned stores; the dims past
  // the last multiple of W one by one.
  const int64_t d_vec_end = pack_q ? D / W * W : 0;
  for (int64_t i0 = 0; i0 < R; i0 += W) {
    for (int64_t d = 0; d < d_vec_end; d += W) {
      V block[W];
      for (int r = 0; r < W; ++r) {
        const int64_t row = i0 + r - first;
        block[r] = row >= 0 ? load_any<Arch>(q_row(row), a.q_dtype, d) * V(scale) : V(0.0f);
      }
      transpose_square<Arch>(block);
      for (int t = 0; t < W; ++t) block[t].store_aligned(b.qt + (d + t) * R + i0);
    }
  }
  for (int64_t d = d_vec_end; d < D && pack_q; ++d) {
    for (int64_t i = 0; i < R; ++i) {
      b.qt[d * R + i] = i >= first ? dtype::element<Arch>(q_row(i - first), a.q_dtype, d) * scale : 0.0f;
    }
  }
  // Scores of the skipped vectors are never computed; the softmax still reads them (it runs on
  // every vector), so they hold zeros rather than whatever the workspace held.
  for (int i = 0; i < first / W * W; i += W) {
    for (int64_t j = 0; j < Blocking<Arch>::kTileKeys; ++j) V(0.0f).store_aligned(b.st + j * R + i);
  }
  for (int i = 0; i < R; ++i) {
    b.m[i] = -__builtin_inff();
    b.l[i] = 0.0f;
    b.lane_index[i] = static_cast<float>(i);
  }
}

// What stays the same for every tile a block walks.
template <class Arch>
struct BlockWalk {
  BlockState<Arch> b;
  int64_t head_dim, head_dim_v;
  // Keys in [unmasked_begin, unmasked_end) are seen by every valid lane.
  int64_t unmasked_begin, unmasked_end;
  float window;      // +inf without one
  int first;         // lane i holds query a.q_begin + i - first
  int first_vector;  // vectors below it hold no query
  int64_t first_tile;

  explicit BlockWalk(const RowBlockArgs& a)
      : b(a.workspace, a.head_dim, a.head_dim_v),
        head_dim(a.head_dim),
        head_dim_v(a.head_dim_v),
        unmasked_begin(a.window > 0 ? a.q_begin + a.q_count + a.diagonal - a.window : 0),
        unmasked_end(a.causal ? a.q_begin + a.diagonal + 1 : a.kv_len),
        window(a.window > 0 ? static_cast<float>(a.window) : __builtin_inff()),
        first(first_lane<Arch>(a)),
        first_vector(first / Blocking<Arch>::kLanes),
        first_tile(block_first_tile<Arch>(a)) {}
};

// One tile of n keys from key j0, as its steps compute it (its maxima in TileMaxima).
template <class Arch>
struct TileStep {
  static constexpr int QV = Blocking<Arch>::kQueryVectors;
  int64_t j0, n;
  // Query vector qv sees no key of the tile from vector_end[qv] on (its last lane's diagonal):
  // on a diagonal tile, keys [vector_end[qv - 1], vector_end[qv]) are scored and added for
  // vectors qv and up only. That skips the lane-vector-by-key squares wholly above the
  // diagonal: a third of the diagonal's kRows x kRows square on AVX-512, a quarter on AVX2 and
  // SSE2. (A vector without queries, below first_vector, sees none.)
  int64_t vector_end[QV];
  // The tile's keys in three runs: [0, n_low) and [n_high, n) masked, [n_low, n_high) not.
  int64_t n_low, n_high;
  DiagonalMask<Arch> mask;
};

// A tile's running maxima before and after it and the accumulator's rescale: apart from
// TileStep, whose scalars then stay in registers while the score pass writes m_new.
template <class Arch>
struct TileMaxima {
  static constexpr int QV = Blocking<Arch>::kQueryVectors;
  Vec<Arch> m_old[QV], m_new[QV], alpha[QV];
};

// The last key lane i may see, less j0: its ALiBi reference (see transform_scores).
template <class Arch>
inline Vec<Arch> last_visible_from(const RowBlockArgs& a, const BlockWalk<Arch>& w, int qv, int64_t j0, int64_t shift) {
  using V = Vec<Arch>;
  const V last_key(static_cast<float>(a.kv_len - 1 - j0));
  if (!a.causal) return last_key;
  return xsimd::min(V::load_aligned(w.b.lane_index + qv * Blocking<Arch>::kLanes) - V(static_cast<float>(shift)), last_key);
}

// Step 1b, with a softcap or ALiBi: the scores that score_keys left in the tile (vector qv's keys
// below vector_end[qv]) become softcap · tanh(s / softcap) - slope · (top_i - j), and the running
// maximum is taken again over them. ALiBi's bias is -slope · (i + diagonal - j); taken from the
// row's last visible key top_i instead, the biases of the keys near it, which carry the softmax's
// weight, stay small and exact in f32 however far the positions go, and the constant rest,
// -slope · (i + diagonal - top_i), joins the LSE in finish_block (0 wherever the diagonal is in
// the keys, as in every bottom-right causal call).
template <class Arch, bool kSoftcap, bool kAlibi>
inline void transform_scores(const RowBlockArgs& a, const BlockWalk<Arch>& w, const TileStep<Arch>& t,
                             TileMaxima<Arch>& mx, int64_t shift) {
  using V = Vec<Arch>;
  using B = Blocking<Arch>;
  constexpr int W = B::kLanes;
  constexpr int R = B::kRows;
  const V cap(a.softcap), inv_cap(kSoftcap ? 1.0f / a.softcap : 0.0f), slope(a.alibi_slope);
  for (int qv = w.first_vector; qv < B::kQueryVectors; ++qv) {
    const V top = kAlibi ? last_visible_from<Arch>(a, w, qv, t.j0, shift) : V(0.0f);
    V m = mx.m_old[qv];
    float* const st = w.b.st + qv * W;
    // NJ keys at a time, their tanh in lock step.
    auto keys = [&](int64_t j, auto nj) {
      constexpr int NJ = nj();
      V x[NJ];
      for (int k = 0; k < NJ; ++k) x[k] = V::load_aligned(st + (j + k) * R);
      if constexpr (kSoftcap) softcap<Arch, NJ>(x, cap, inv_cap);
      for (int k = 0; k < NJ; ++k) {
        if constexpr (kAlibi) x[k] = fmadd<Arch>(slope, V(static_cast<float>(j + k)) - top, x[k]);
        x[k].store_aligned(st + (j + k) * R);
        m = xsimd::max(m, x[k]);
      }
    };
    int64_t j = 0;
    for (; j + 4 <= t.vector_end[qv]; j += 4) keys(j, std::integral_constant<int, 4>{});
    for (; j < t.vector_end[qv]; ++j) keys(j, std::integral_constant<int, 1>{});
    mx.m_new[qv] = m;
  }
}

// Step 1: the scores of the keys each vector sees, and the running maximum taken over them as
// they leave the registers. score_keys(qv0, from, count, m_new) scores keys [from, from + count)
// of the tile for query vectors qv0 and up (qv0 a compile-time constant), into st and m_new.
template <class Arch, class ScoreKeys>
[[gnu::always_inline]] inline void score_tile(const RowBlockArgs& a, const BlockWalk<Arch>& w, ScoreKeys&& score_keys,
                                              TileStep<Arch>& t, TileMaxima<Arch>& mx) {
  using V = Vec<Arch>;
  using B = Blocking<Arch>;
  constexpr int W = B::kLanes;
  for (int qv = 0; qv < B::kQueryVectors; ++qv) mx.m_old[qv] = mx.m_new[qv] = V::load_aligned(w.b.m + qv * W);
  const int64_t shift = t.j0 - (a.q_begin - w.first) - a.diagonal;  // key j is on lane j + shift's diagonal
  for (int qv = 0; qv < B::kQueryVectors; ++qv) {
    t.vector_end[qv] = qv < w.first_vector ? 0 : a.causal ? std::clamp<int64_t>(W * (qv + 1) - shift, 0, t.n) : t.n;
  }
  for_each_index<B::kQueryVectors>([&](auto qv0) {
    const int64_t from = qv0() == 0 ? 0 : t.vector_end[qv0() - 1];
    if (from < t.vector_end[qv0()]) score_keys(qv0, from, t.vector_end[qv0()] - from, mx.m_new);
  });
  if (a.softcap != 0.0f && a.alibi_slope != 0.0f) {
    transform_scores<Arch, true, true>(a, w, t, mx, shift);
  } else if (a.softcap != 0.0f) {
    transform_scores<Arch, true, false>(a, w, t, mx, shift);
  } else if (a.alibi_slope != 0.0f) {
    transform_scores<Arch, false, true>(a, w, t, mx, shift);
  }
  t.n_low = std::clamp<int64_t>(w.unmasked_begin - t.j0, 0, t.n);
  t.n_high = std::clamp<int64_t>(w.unmasked_end - t.j0, t.n_low, t.n);
  for (int qv = 0; qv < B::kQueryVectors; ++qv) t.mask.lanes[qv] = V::load_aligned(w.b.lane_index + qv * W);
  t.mask.shift = static_cast<float>(shift);
  t.mask.window = w.window;
}

// Step 2, on edge tiles only: scores of keys a lane must not see become -inf (those of the
// vectors left out are not there), and the maximum is taken again over what masking left.
template <class Arch>
[[gnu::always_inline]] inline void mask_tile(const BlockWalk<Arch>& w, const TileStep<Arch>& t, TileMaxima<Arch>& mx) {
  using V = Vec<Arch>;
  using B = Blocking<Arch>;
  constexpr int W = B::kLanes;
  constexpr int R = B::kRows;
  constexpr float kNegInf = -__builtin_inff();
  if (t.n_low == 0 && t.n_high == t.n) return;
  float* const st = w.b.st;
  auto mask_scores = [&](int64_t j_from, int64_t j_to) {
    for (int64_t j = j_from; j < j_to; ++j) {
      for (int qv = 0; qv < B::kQueryVectors; ++qv) {
        float* sj = st + j * R + qv * W;
        const V s = j < t.vector_end[qv] ? V::load_aligned(sj) : V(kNegInf);
        xsimd::select(t.mask.sees(qv, static_cast<float>(j)), s, V(kNegInf)).store_aligned(sj);
      }
    }
  };
  mask_scores(0, t.n_low);
  mask_scores(t.n_high, t.n);
  for (int qv = 0; qv < B::kQueryVectors; ++qv) {
    mx.m_new[qv] = mx.m_old[qv];
    for (int64_t j = 0; j < t.n; ++j) mx.m_new[qv] = xsimd::max(mx.m_new[qv], V::load_aligned(st + j * R + qv * W));
  }
}

// Step 3: the online softmax of all query vectors in one pass over the keys: the scores become
// exp(s - m), the running sum and maximum move on, and alpha is the old accumulator's rescale.
// Scores stay in natural units and the softmax takes exp(s - max) of s - max <= 0: scores up to
// FLT_MAX cannot overflow on the way, as they would if scaled by log2(e) first.
// With a slack (the AMX kernel's kRescaleSlack), a lane keeps its old maximum while the tile's
// stays within the slack of it: its alpha is then exactly 1 and the accumulator needs no rescale,
// which most tiles after the first few of a row do not; weights reach e^slack instead of 1.
template <class Arch, int kSlackLog2 = 0>
[[gnu::always_inline]] inline void softmax_tile(const BlockWalk<Arch>& w, const TileStep<Arch>& t, TileMaxima<Arch>& mx) {
  using V = Vec<Arch>;
  using B = Blocking<Arch>;
  constexpr int W = B::kLanes;
  constexpr int R = B::kRows;
  constexpr float kNegInf = -__builtin_inff();
  float* const st = w.b.st;
  V m_ref[B::kQueryVectors], sum[B::kQueryVectors];
  for (int qv = 0; qv < B::kQueryVectors; ++qv) {
    if constexpr (kSlackLog2 > 0) {
      // (m_old = -inf keeps nothing: -inf + slack is -inf. A NaN maximum fails the test and moves on.)
      const V slack(static_cast<float>(kSlackLog2) * 0.693147180559945f);
      mx.m_new[qv] = xsimd::select(mx.m_new[qv] <= mx.m_old[qv] + slack, mx.m_old[qv], mx.m_new[qv]);
    }
    // A lane that has seen only masked keys keeps m = -inf; subtracting 0 instead keeps
    // exp at exactly 0 there rather than NaN from (-inf) - (-inf).
    m_ref[qv] = xsimd::select(mx.m_new[qv] == V(kNegInf), V(0.0f), mx.m_new[qv]);
    sum[qv] = V(0.0f);
  }
  // NJ keys at a time: their NJ · kQueryVectors exponentials advance in lock step.
  auto softmax_keys = [&](int64_t j, auto nj) {
    constexpr int NJ = nj(), QV = B::kQueryVectors;
    V p[NJ * QV];
    for (int k = 0; k < NJ; ++k)
      for (int qv = 0; qv < QV; ++qv) p[k * QV + qv] = V::load_aligned(st + (j + k) * R + qv * W) - m_ref[qv];
    exp_nonpositive<Arch, NJ * QV>(p);
    for (int k = 0; k < NJ; ++k)
      for (int qv = 0; qv < QV; ++qv) {
        p[k * QV + qv].store_aligned(st + (j + k) * R + qv * W);
        sum[qv] += p[k * QV + qv];
      }
  };
  int64_t j = 0;
  for (; j + 2 <= t.n; j += 2) softmax_keys(j, std::integral_constant<int, 2>{});
  if (j < t.n) softmax_keys(j, std::integral_constant<int, 1>{});
  for (int qv = 0; qv < B::kQueryVectors; ++qv) {
    mx.alpha[qv] = exp_nonpositive<Arch>(mx.m_old[qv] - m_ref[qv]);
    fmadd<Arch>(V::load_aligned(w.b.l + qv * W), mx.alpha[qv], sum[qv]).store_aligned(w.b.l + qv * W);
    mx.m_new[qv].store_aligned(w.b.m + qv * W);
  }
}

// Step 4: Ot += P · V in runs: the masked lower edge, the unmasked middle, the diagonal's end.
// The rescale by alpha rides along with the first run (the unmasked one when there is no lower
// edge, as on every tile without a window), which on the block's first tile writes Ot afresh;
// the others are added at scale 1. unmasked(qv0, from, to, scale) adds keys [from, to) of the
// tile for query vectors qv0 and up (the f32 kernels: output_dims without masking).
template <class Arch, class UnmaskedRun>
[[gnu::always_inline]] inline void accumulate_tile(const RowBlockArgs& a, const BlockWalk<Arch>& w,
                                                   const TileRows<Arch, Blocking<Arch>::kTileKeys>& tile,
                                                   UnmaskedRun&& unmasked, const TileStep<Arch>& t,
                                                   const TileMaxima<Arch>& mx) {
  using V = Vec<Arch>;
  using B = Blocking<Arch>;
  constexpr int R = B::kRows;
  const int64_t D = w.head_dim_v;
  const float* const st = w.b.st;
  // Runs fn(qv0) with qv0 = first_vector as a compile-time constant: the output runs in which
  // every vector takes part take vectors first_vector and up.
  auto from_first_vector = [&](auto fn) {
    for_each_index<B::kQueryVectors>([&](auto qv0) {
      if (qv0() == w.first_vector) fn(qv0);
    });
  };
  const bool low_first = t.n_low > 0;
  const V* first_scale = t.j0 == w.first_tile ? nullptr : mx.alpha;
  V ones[B::kQueryVectors];
  for (V& one : ones) one = V(1.0f);
  from_first_vector([&](auto qv0) {
    if (low_first) {
      output_dims<Arch, B::kDimBlock, Masking::kEveryVector, qv0()>(st, t.n_low, tile.v, D, first_scale, t.mask, w.b.ot);
    }
    if (t.n_high > t.n_low || !low_first) unmasked(qv0, t.n_low, t.n_high, low_first ? ones : first_scale);
  });
  auto diagonal_run = [&](auto masking, auto qv0, int64_t from, int64_t to) {
    if (from >= to) return;
    DiagonalMask<Arch> rest = t.mask;
    rest.shift += static_cast<float>(from);
    output_dims<Arch, B::kDimBlock, masking(), qv0()>(st + from * R, to - from, tile.v + from, D, ones, rest, w.b.ot);
  };
  if (a.window > 0) {
    // A lane of any vector may be past the window's edge too.
    from_first_vector([&](auto qv0) {
      diagonal_run(std::integral_constant<Masking, Masking::kEveryVector>{}, qv0, t.n_high, t.n);
    });
  } else {
    // The diagonal's run, cut where query vectors drop out: in each part only the lowest
    // vector still there meets its diagonal.
    for_each_index<B::kQueryVectors>([&](auto qv0) {
      diagonal_run(std::integral_constant<Masking, Masking::kFirstVector>{}, qv0,
                   std::max(t.n_high, qv0() == 0 ? int64_t{0} : t.vector_end[qv0() - 1]), t.vector_end[qv0()]);
    });
  }
}

// Walks the KV tiles that start in [j_begin, j_end), left to right, with an online softmax:
// each tile is scored, masked (edge tiles only), put through the softmax update, dropped out
// (with dropout) and accumulated. j_begin is a multiple of kTileKeys, so tiles are the same
// however the range is cut. Tiles outside the block's band are never reached: above the
// diagonal (the loop stops at the last key the block's last query sees) and, with a window,
// below its first query's lower edge. Only keys that some lane must not see take the masked
// paths: the end of a diagonal tile (fewer than kRows keys) and, with a window, the start of the
// tiles on the lower edge. Meanwhile it prefetches the K and V rows of keys
// [prefetch_begin, prefetch_end).
template <class Arch>
void block_tiles(const RowBlockArgs& a, int64_t j_begin, int64_t j_end, int64_t prefetch_begin,
                 int64_t prefetch_end) {
  using B = Blocking<Arch>;
  const BlockWalk<Arch> w(a);
  const int64_t kv_end = block_kv_end<Arch>(a);
  TileRows<Arch, B::kTileKeys> tile;
  // One prefetch step per score block, about (keys in the range) / kKeyBlock of them.
  const int64_t steps = std::max<int64_t>(1, block_keys_in<Arch>(a, j_begin, j_end) / B::kKeyBlock);
  KeyPrefetch<Arch> prefetch(a, prefetch_begin, prefetch_end, steps);
  for (int64_t j0 = std::max(j_begin, w.first_tile); j0 < std::min(j_end, kv_end); j0 += B::kTileKeys) {
    TileStep<Arch> t;
    TileMaxima<Arch> mx;
    t.j0 = j0;
    t.n = std::min<int64_t>(kv_end - j0, B::kTileKeys);
    tile.fill(a.k, a.v, j0, t.n);
    auto score_keys_f32 = [&](auto qv0, int64_t from, int64_t count, Vec<Arch>* m_new) {
      score_keys<Arch, B::kKeyBlock, qv0()>(w.b.qt, w.head_dim, tile.k + from, count, w.b.st + from * B::kRows, prefetch,
                                            m_new);
    };
    auto unmasked_f32 = [&](auto qv0, int64_t from, int64_t to, const Vec<Arch>* scale) {
      output_dims<Arch, B::kDimBlock, Masking::kNone, qv0()>(w.b.st + from * B::kRows, to - from, tile.v + from,
                                                             w.head_dim_v, scale, t.mask, w.b.ot);
    };
    score_tile<Arch>(a, w, score_keys_f32, t, mx);
    mask_tile<Arch>(w, t, mx);
    softmax_tile<Arch>(w, t, mx);
    if (a.dropout_threshold != 0) drop_weights<Arch>(a, j0, t.n, w.b.st);
    accumulate_tile<Arch>(a, w, tile, unmasked_f32, t, mx);
  }
  prefetch.rest();
}

// The row's LSE over its keys, its natural-log sum (m + log l, the keys' scores as the tiles
// hold them) plus ALiBi's constant rest for the row (transform_scores): -inf for a row that saw
// no key.
template <class Arch>
inline float keys_lse(const RowBlockArgs& a, float m, float l, int64_t query) {
  if (l == 0.0f) return -__builtin_inff();
  float lse = m + __builtin_logf(l);
  if (a.alibi_slope != 0.0f) {
    const int64_t position = query + a.diagonal, top = a.causal ? std::min(position, a.kv_len - 1) : a.kv_len - 1;
    lse -= static_cast<float>(static_cast<double>(a.alibi_slope) * static_cast<double>(position - top));
  }
  return lse;
}

// Normalizes and transposes back: each W x W block of Ot becomes W dims of W output rows,
// rounded to the output's type. With a sink the row's weights are e^s / (e^sink + Σ e^s): its
// output is scaled by e^(lse_keys - lse), lse = log(e^sink + e^lse_keys), and a row that saw no key
// gets 0 (its Ot is 0) and lse = sink.
template <class Arch>
void finish_block(const RowBlockArgs& a) {
  using V = Vec<Arch>;
  constexpr int W = Blocking<Arch>::kLanes;
  constexpr int R = Blocking<Arch>::kRows;
  const BlockState<Arch> b(a.workspace, a.head_dim, a.head_dim_v);
  const int64_t Dv = a.head_dim_v;
  const int first = first_lane<Arch>(a);  // lane i holds query i - first
  auto out_row = [&](int64_t row) { return a.out + row * a.out_stride; };
  float inv_l[R], lse[R];
  for (int i = first; i < R; ++i) {
    inv_l[i] = 1.0f / b.l[i];
    // (A log per row: only where the caller asks for the LSE or a sink needs it.)
    if (a.lse == nullptr && !a.has_sink) continue;
    lse[i] = keys_lse<Arch>(a, b.m[i], b.l[i], a.q_begin + i - first);
    if (a.has_sink) {
      const float keys = lse[i], top = std::fmax(keys, a.sink);
      lse[i] = top + __builtin_logf(__builtin_expf(keys - top) + __builtin_expf(a.sink - top));
      inv_l[i] = b.l[i] == 0.0f ? 0.0f : inv_l[i] * __builtin_expf(keys - lse[i]);
    }
  }
  // W dims by W queries at a time, as begin_block packs them.
  const int64_t d_vec_end = Dv / W * W;
  for (int i0 = first / W * W; i0 < R; i0 += W) {
    for (int64_t d = 0; d < d_vec_end; d += W) {
      V block[W];
      for (int t = 0; t < W; ++t) block[t] = V::load_aligned(b.ot + (d + t) * R + i0);
      transpose_square<Arch>(block);
      for (int r = std::max(0, first - i0); r < W; ++r) {
        store_any<Arch>(block[r] * V(inv_l[i0 + r]), out_row(i0 + r - first), a.out_dtype, d);
      }
    }
  }
  for (int i = first; i < R; ++i) {
    for (int64_t d = d_vec_end; d < Dv; ++d) dtype::store_element<Arch>(out_row(i - first), a.out_dtype, d, b.ot[d * R + i] * inv_l[i]);
    if (a.lse != nullptr) a.lse[i - first] = lse[i];
  }
}

template <class Arch>
constexpr std::size_t workspace_floats(int64_t head_dim, int64_t head_dim_v) {
  using B = Blocking<Arch>;
  // Qt: [head_dim][rows]; Ot: [head_dim_v][rows]; scores: [tile keys][rows]; running max, sum,
  // lane indices; with the BF16 dot product the weights as key pairs, [tile keys / 2][rows]
  // (attention_bf16.hpp).
  const int64_t pairs = IsaTraits<Arch>::kDotBf16 ? B::kTileKeys / 2 : 0;
  return static_cast<std::size_t>(head_dim + head_dim_v + B::kTileKeys + 3 + pairs) * B::kRows;
}

}  // namespace causalattn::kernels
