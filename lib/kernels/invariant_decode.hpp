// The batch-invariant mode's decode kernel (CAUSALATTN_BATCH_INVARIANT): a KV head's few query
// rows (DecodeArgs) against one key split, with the row-block kernel's arithmetic for every
// (query, key), so that a decoded token gets the bits of the same token prefilled
// (docs/batch-invariance.md), but laid out for few queries: the tile's K is transposed in registers for
// all rows and the scores take keys in lanes, the output takes head_dim in lanes; K and V are
// read in their stored types (KT, VT), widened exactly as they load. What must match
// the row block, and does:
// - a score is the FMA chain over d = 0, 1, ... of (q_d · scale) · k_d from 0, then the softcap,
//   then ALiBi's fma(slope, j - top, s) with both relative to the tile's first key;
// - tiles of kTileKeys keys at multiples of kTileKeys; per tile the maximum over the row's visible
//   scores, m_ref = m (or 0 while it is -inf), the weights exp(s - m_ref), their sum added key by
//   key from 0 in key order, alpha = exp(m_old - m_ref) and l = fma(l, alpha, sum);
// - an output dim is acc = acc · alpha, then the FMA chain over the row's visible keys in order;
// - finally out = acc · (1 / l) and lse = m + log(l) less ALiBi's constant rest.
// A tile a row sees no key of leaves its state as the row block's masked tile does: unchanged.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "kernels/attention_microkernels.hpp"
#include "kernels/decode_tile.hpp"
#include "kernels/kv_rows.hpp"
#include "kernels/widen.hpp"

namespace causalattn::kernels {

template <class Arch>
struct InvariantDecode {
  static constexpr int64_t W = Vec<Arch>::size;
  static constexpr int64_t kTile = Blocking<Arch>::kTileKeys;
  static constexpr int kRowGroup = kManyRegisters<Arch> ? 4 : 2;  // rows sharing each K or V load
  static constexpr int kDimVectors = 4;                             // output vectors per row in registers
  static_assert(kTile % W == 0, "a tile is whole key vectors");

  static constexpr int64_t padded(int64_t n) { return (n + W - 1) / W * W; }

  // Workspace: scaled queries [rows][padded D], scores then weights [rows][kTile], output accumulators
  // [rows][padded Dv], max and sum [rows], lane indices.
  static constexpr std::size_t workspace_floats(int64_t head_dim, int64_t head_dim_v) {
    return static_cast<std::size_t>(kDecodeRows * padded(head_dim) + kDecodeRows * kTile + kDecodeRows * padded(head_dim_v) +
                                    2 * kDecodeRows + W);
  }
};

template <class Arch>
constexpr std::size_t invariant_decode_workspace_floats(int64_t head_dim, int64_t head_dim_v) {
  return InvariantDecode<Arch>::workspace_floats(head_dim, head_dim_v);
}

// Prefetch into L2, which a paged cache needs (its rows jump between pages, where the hardware's
// prefetch starts over): the next tile's K and V rows, W keys of them per key block of this tile's
// score pass, so the requests stream out at the pace of the work, a whole tile ahead; the first
// tile of a chunk has its V asked for at its start. (Measured on Sapphire Rapids and Zen 4
// against the other placements tried: docs/performance.md, "Batch invariance".)
struct AheadRows {
  const std::byte* const* k;
  const std::byte* const* v;
  int64_t n, k_bytes, v_bytes;
};

template <class Arch>
inline void prefetch_ahead(const AheadRows& ahead, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < std::min(end, ahead.n); ++i) {
    prefetch_row<Arch>(ahead.k[i], ahead.k_bytes);
    prefetch_row<Arch>(ahead.v[i], ahead.v_bytes);
  }
}

// Scores of the NR rows for the tile's n keys, keys in lanes: W keys' rows are loaded a block of W
// dims at a time and transposed in registers, each transposed vector (one dim of W keys) then
// feeds every row's FMA chain, d in order: s[r][i] = Σ_d qs[r][d] · k_i[d].
template <class Arch, int NR, Dtype KT>
void score_keys_in_lanes(const std::byte* const* krows, int64_t n, const float* qs, int64_t head_dim, int64_t qs_stride,
                         float* s, const AheadRows& ahead) {
  using V = Vec<Arch>;
  using P = InvariantDecode<Arch>;
  constexpr int64_t W = P::W, T = P::kTile;
  const int64_t d_vec_end = head_dim / W * W;
  for (int64_t i0 = 0; i0 < n; i0 += W) {
    const int64_t keys = std::min(W, n - i0);
    prefetch_ahead<Arch>(ahead, i0, i0 + W);
    V acc[NR];
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) acc[r] = V(0.0f);
    for (int64_t d0 = 0; d0 < d_vec_end; d0 += W) {
      V block[W];
#pragma GCC unroll 16
      for (int64_t k = 0; k < W; ++k) block[k] = k < keys ? load_as<Arch, KT>(krows[i0 + k], d0) : V(0.0f);
      transpose_square<Arch>(block);
#pragma GCC unroll 16
      for (int64_t t = 0; t < W; ++t)
#pragma GCC unroll 8
        for (int r = 0; r < NR; ++r) acc[r] = fmadd<Arch>(V(qs[r * qs_stride + d0 + t]), block[t], acc[r]);
    }
    for (int64_t d = d_vec_end; d < head_dim; ++d) {
      alignas(64) float column[W];
      for (int64_t k = 0; k < W; ++k) column[k] = k < keys ? dtype::element<Arch>(krows[i0 + k], KT, d) : 0.0f;
      const V x = V::load_aligned(column);
#pragma GCC unroll 8
      for (int r = 0; r < NR; ++r) acc[r] = fmadd<Arch>(V(qs[r * qs_stride + d]), x, acc[r]);
    }
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) acc[r].store_aligned(s + r * T + i0);
  }
}

template <class Arch, int NR, int ND, Dtype VT>
void output_rows(const float* p, const std::byte* const* vrows, const int64_t* from, const int64_t* to, const float* alpha,
                 int64_t d0, int64_t dpv, float* ot) {
  using V = Vec<Arch>;
  using P = InvariantDecode<Arch>;
  constexpr int64_t W = P::W, T = P::kTile;
  V acc[NR][ND];
#pragma GCC unroll 8
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 4
    for (int k = 0; k < ND; ++k) acc[r][k] = V::load_aligned(ot + r * dpv + d0 + k * W) * V(alpha[r]);
  int64_t lo = from[0], hi = to[0], common_lo = from[0], common_hi = to[0];
  for (int r = 1; r < NR; ++r) {
    lo = std::min(lo, from[r]), hi = std::max(hi, to[r]);
    common_lo = std::max(common_lo, from[r]), common_hi = std::min(common_hi, to[r]);
  }
  // Keys every row sees, without a test; the rest, row by row.
  auto keys = [&](int64_t begin, int64_t end, auto all_rows) {
    for (int64_t i = begin; i < end; ++i) {
      V values[ND];
      load_vectors<Arch, VT, ND>(vrows[i], d0, values);
#pragma GCC unroll 8
      for (int r = 0; r < NR; ++r) {
        if (!all_rows() && (i < from[r] || i >= to[r])) continue;
        const V w(p[r * T + i]);
#pragma GCC unroll 4
        for (int k = 0; k < ND; ++k) acc[r][k] = fmadd<Arch>(w, values[k], acc[r][k]);
      }
    }
  };
  if (common_lo < common_hi) {
    keys(lo, common_lo, std::false_type{});
    keys(common_lo, common_hi, std::true_type{});
    keys(common_hi, hi, std::false_type{});
  } else {
    keys(lo, hi, std::false_type{});
  }
#pragma GCC unroll 8
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 4
    for (int k = 0; k < ND; ++k) acc[r][k].store_aligned(ot + r * dpv + d0 + k * W);
}

template <class Arch, Dtype KT, Dtype VT>
void invariant_decode_chunk_typed(const DecodeArgs& a) {
  using V = Vec<Arch>;
  using P = InvariantDecode<Arch>;
  constexpr int64_t W = P::W, T = P::kTile;
  constexpr float kNegInf = -__builtin_inff();
  const int rows = a.rows;
  const int64_t D = a.head_dim, dp = P::padded(D), Dv = a.head_dim_v, dpv = P::padded(Dv);
  float* const qs = a.workspace;
  float* const s = qs + kDecodeRows * dp;  // 64-byte aligned: rows of qs are padded
  float* const ot = s + kDecodeRows * T;
  float* const m = ot + kDecodeRows * dpv;
  float* const l = m + kDecodeRows;
  float* const iota = l + kDecodeRows;  // 0, 1, ..., W - 1
  for (int64_t i = 0; i < W; ++i) iota[i] = static_cast<float>(i);
  // The queries as begin_block packs them: widened, times the scale.
  for (int r = 0; r < rows; ++r) {
    const int64_t d_vec_end = D / W * W;
    for (int64_t d = 0; d < d_vec_end; d += W) (load_any<Arch>(a.q[r], a.q_dtype, d) * V(a.scale)).store_unaligned(qs + r * dp + d);
    for (int64_t d = d_vec_end; d < D; ++d) qs[r * dp + d] = dtype::element<Arch>(a.q[r], a.q_dtype, d) * a.scale;
    for (int64_t d = 0; d < dpv; ++d) ot[r * dpv + d] = 0.0f;
    m[r] = kNegInf;
    l[r] = 0.0f;
  }
  const int64_t dv_vec_end = Dv / W * W;
  const bool softcapped = a.softcap != 0.0f;
  const V cap(a.softcap), inv_cap(softcapped ? 1.0f / a.softcap : 0.0f);
  const std::byte* krows[T];
  const std::byte* vrows[T];
  const std::byte* ahead_k[T];
  const std::byte* ahead_v[T];
  const int64_t k_bytes = row_bytes<Arch>(KT, D), v_bytes = row_bytes<Arch>(VT, Dv);
  for (int64_t j0 = a.j_begin / T * T; j0 < a.j_end; j0 += T) {
    const int64_t lo = std::max(j0, a.j_begin), n = std::min(j0 + T, a.j_end) - lo;  // keys [lo, lo + n)
    // Local index i is key lo + i; each row's visible keys [from, to) of them.
    int64_t from[kDecodeRows], to[kDecodeRows];
    bool any = false;
    for (int r = 0; r < rows; ++r) {
      from[r] = std::clamp<int64_t>(a.first_key[r] - lo, 0, n);
      to[r] = std::clamp<int64_t>(a.last_key[r] + 1 - lo, from[r], n);
      any |= to[r] > from[r];
    }
    if (!any) continue;
    const int64_t next = j0 + T, next_n = std::max<int64_t>(0, std::min(next + T, a.j_end) - next);
    fill_rows<Arch>(a.k, next, next_n, ahead_k);
    fill_rows<Arch>(a.v, next, next_n, ahead_v);
    const AheadRows ahead{ahead_k, ahead_v, next_n, k_bytes, v_bytes};
    fill_rows<Arch>(a.k, lo, n, krows);
    fill_rows<Arch>(a.v, lo, n, vrows);
    if (j0 == a.j_begin / T * T) {
      for (int64_t i = 0; i < n; ++i) prefetch_row<Arch>(vrows[i], v_bytes);
    }
    with_block_size<kDecodeRows>(rows, [&](auto nr) { score_keys_in_lanes<Arch, nr(), KT>(krows, n, qs, D, dp, s, ahead); });
    prefetch_ahead<Arch>(ahead, P::padded(n), T);  // a short first tile: the next tile's rest
    float alpha[kDecodeRows];
    for (int r = 0; r < rows; ++r) {
      alpha[r] = 1.0f;
      if (to[r] == from[r]) continue;  // as a masked tile: nothing changes
      float* const sr = s + r * T;
      // Local key indices, and for ALiBi the key and the row's last visible key relative to the
      // tile's first key, as the row block takes them (exact integers in f32).
      const V key_lanes = V::load_aligned(iota), first(static_cast<float>(lo - j0)), top(static_cast<float>(a.last_key[r] - j0));
      const V from_key(static_cast<float>(from[r])), to_key(static_cast<float>(to[r])), slope(a.alibi_slope[r]);
      const bool alibi = a.alibi_slope[r] != 0.0f;
      V mx(kNegInf);
      for (int64_t i = 0; i < n; i += W) {
        const V index = key_lanes + V(static_cast<float>(i));
        V x = V::load_aligned(sr + i);
        if (softcapped) x = softcap<Arch>(x, cap, inv_cap);
        if (alibi) x = fmadd<Arch>(slope, (index + first) - top, x);
        x = xsimd::select((index >= from_key) & (index < to_key), x, V(kNegInf));
        x.store_aligned(sr + i);
        mx = xsimd::max(mx, x);
      }
      alignas(64) float lanes[W];
      mx.store_aligned(lanes);
      float m_new = m[r];
      for (int64_t i = 0; i < W; ++i) m_new = std::max(m_new, lanes[i]);
      const float m_ref = m_new == kNegInf ? 0.0f : m_new;
      for (int64_t i = 0; i < n; i += W) {
        V y = V::load_aligned(sr + i) - V(m_ref);
        exp_nonpositive<Arch, 1>(&y);
        y.store_aligned(sr + i);
      }
      alpha[r] = exp_nonpositive<Arch>(V(m[r] - m_ref)).get(0);
      m[r] = m_new;
    }
    // Each row's weights summed key by key; the rows' chains interleaved.
    float sum[kDecodeRows] = {};
    for (int64_t i = 0; i < n; ++i)
      for (int r = 0; r < rows; ++r) sum[r] += s[r * T + i];
    for (int r = 0; r < rows; ++r) {
      if (to[r] > from[r]) l[r] = fmadd<Arch>(V(l[r]), V(alpha[r]), V(sum[r])).get(0);
    }
    // The output: rows in groups sharing each V load, dims in vectors of W, the dims past the
    // last multiple of W one by one (each through the same vector fmadd, so SSE2's unfused one too).
    for (int r0 = 0; r0 < rows; r0 += P::kRowGroup) {
      with_block_size<P::kRowGroup>(std::min(P::kRowGroup, rows - r0), [&](auto nr) {
        int64_t d0 = 0;
        for (; d0 + P::kDimVectors * W <= dv_vec_end; d0 += P::kDimVectors * W) {
          output_rows<Arch, nr(), P::kDimVectors, VT>(s + r0 * T, vrows, from + r0, to + r0, alpha + r0, d0, dpv,
                                                      ot + r0 * dpv);
        }
        for (; d0 < dv_vec_end; d0 += W) {
          output_rows<Arch, nr(), 1, VT>(s + r0 * T, vrows, from + r0, to + r0, alpha + r0, d0, dpv, ot + r0 * dpv);
        }
      });
    }
    for (int r = 0; r < rows; ++r) {
      for (int64_t d = dv_vec_end; d < Dv; ++d) {
        V acc = V(ot[r * dpv + d]) * V(alpha[r]);
        for (int64_t i = from[r]; i < to[r]; ++i) acc = fmadd<Arch>(V(s[r * T + i]), V(dtype::element<Arch>(vrows[i], VT, d)), acc);
        ot[r * dpv + d] = acc.get(0);
      }
    }
  }
  for (int r = 0; r < rows; ++r) {
    const float inv_l = 1.0f / l[r];
    for (int64_t d = 0; d < Dv; ++d) a.out[r * Dv + d] = ot[r * dpv + d] * inv_l;
    float lse = l[r] == 0.0f ? kNegInf : m[r] + __builtin_logf(l[r]);
    if (l[r] != 0.0f && a.alibi_slope[r] != 0.0f) {
      lse -= static_cast<float>(static_cast<double>(a.alibi_slope[r]) * static_cast<double>(a.position[r] - a.last_key[r]));
    }
    a.lse[r] = lse;
  }
}

template <class Arch>
void invariant_decode_chunk(const DecodeArgs& a) {
  with_dtype(a.k.dtype, [&](auto kt) {
    with_dtype(a.v.dtype, [&](auto vt) { invariant_decode_chunk_typed<Arch, kt(), vt()>(a); });
  });
}

}  // namespace causalattn::kernels
