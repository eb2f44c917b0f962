#include "attention/invariant.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>

#include "attention/merge_row.hpp"

namespace causalattn::attention {
namespace {

using detail::RunningMerge;

constexpr int64_t kSplitKeys = CAUSALATTN_INVARIANT_SPLIT_KEYS;
constexpr int64_t kMaxBlockRows = 64;  // rows of any ISA's row block (48 on AVX-512)

// Keys [begin, end) that the queries [q_begin, q_begin + positions) of q may see.
struct KeyRange {
  int64_t begin, end;
};

KeyRange visible_keys(const Call& c, const Sequence& q, int64_t q_begin, int64_t positions) {
  KeyRange r{};
  r.end = c.causal ? std::clamp<int64_t>(q_begin + positions + q.diagonal, 0, q.kv_len) : q.kv_len;
  r.begin = q.window > 0 ? std::clamp<int64_t>(q_begin + q.diagonal - q.window + 1, 0, r.end) : 0;
  return r;
}

// Limits a block to split s: keys [s·kSplitKeys, (s + 1)·kSplitKeys), its output the split's f32
// partial (rows Dv floats apart) and its lse, the sink left to the merge.
void limit_to_split(const Call& c, const Sequence& q, int64_t s, float* out, float* lse, kernels::RowBlockArgs* a) {
  a->key_begin = s * kSplitKeys;
  a->key_end = std::min((s + 1) * kSplitKeys, q.kv_len);
  a->out = reinterpret_cast<std::byte*>(out);
  a->out_stride = c.head_dim_v * static_cast<int64_t>(sizeof(float));
  a->out_dtype = Dtype::kF32;
  a->lse = lse;
  a->has_sink = false;
}

// The merged row into out (of the call's out dtype) and lse.
void finish_row(const Call& c, const RunningMerge& merge, float sink, std::byte* out, float* lse) {
  float merged[CAUSALATTN_MAX_HEAD_DIM];
  merge.finish(sink, merged, lse);
  if (c.out_dtype == Dtype::kF32) {
    std::memcpy(out, merged, static_cast<std::size_t>(c.head_dim_v) * sizeof(float));
    return;
  }
  for (int64_t d = 0; d < c.head_dim_v; ++d) dtype::store_element<void>(out, c.out_dtype, d, merged[d]);
}

}  // namespace

std::size_t invariant_merge_floats(const Call& c) {
  // Per row of kMaxGroup blocks: the split's partial (Dv + 1) and the running merge's acc (Dv).
  return static_cast<std::size_t>(kMaxGroup * c.kernel->rows * (2 * c.head_dim_v + 1));
}

void run_invariant_blocks(const Call& c, const Sequence& q, const kernels::RowBlockArgs* blocks, int count,
                          float* group_workspace) {
  const kernels::KernelTable& kernel = *c.kernel;
  const int64_t rows = kernel.rows, Dv = c.head_dim_v;
  const float sink = blocks[0].has_sink ? blocks[0].sink : -__builtin_inff();
  int64_t first_split = INT64_MAX, last_split = -1;
  KeyRange keys[kMaxGroup];
  for (int i = 0; i < count; ++i) {
    keys[i] = visible_keys(c, q, blocks[i].q_begin, blocks[i].q_count);
    if (keys[i].end > keys[i].begin) {
      first_split = std::min(first_split, keys[i].begin / kSplitKeys);
      last_split = std::max(last_split, (keys[i].end - 1) / kSplitKeys);
    }
  }
  // Keys in one split and no sink: the merge of one part gives the part's bits, so the blocks
  // write their outputs themselves.
  if (sink == -__builtin_inff() && first_split >= last_split) {
    return kernel.row_blocks(blocks, count, group_workspace);
  }
  float* const parts = group_workspace + kernel.group_workspace_floats(c.args.shape.head_dim, Dv);  // [count·rows][Dv]
  float* const part_lse = parts + kMaxGroup * rows * Dv;                                            // [count·rows]
  float* const accs = part_lse + kMaxGroup * rows;                                                  // [count·rows][Dv]
  if (rows > kMaxBlockRows) throw std::logic_error("row blocks of more rows than kMaxBlockRows");
  RunningMerge merges[kMaxGroup * kMaxBlockRows];
  for (int i = 0; i < count; ++i)
    for (int64_t r = 0; r < blocks[i].q_count; ++r) merges[i * rows + r] = RunningMerge(accs + (i * rows + r) * Dv, Dv);
  for (int64_t s = first_split; s <= last_split; ++s) {
    kernels::RowBlockArgs split_blocks[kMaxGroup];
    int in_split[kMaxGroup], n = 0;
    for (int i = 0; i < count; ++i) {
      if (keys[i].end <= std::max(keys[i].begin, s * kSplitKeys) || keys[i].begin >= (s + 1) * kSplitKeys) continue;
      split_blocks[n] = blocks[i];
      limit_to_split(c, q, s, parts + i * rows * Dv, part_lse + i * rows, &split_blocks[n]);
      in_split[n++] = i;
    }
    if (n == 0) continue;
    kernel.row_blocks(split_blocks, n, group_workspace);
    for (int b = 0; b < n; ++b) {
      const int i = in_split[b];
      for (int64_t r = 0; r < blocks[i].q_count; ++r) merges[i * rows + r].add(part_lse[i * rows + r], parts + (i * rows + r) * Dv);
    }
  }
  for (int i = 0; i < count; ++i) {
    const kernels::RowBlockArgs& a = blocks[i];
    for (int64_t r = 0; r < a.q_count; ++r) {
      finish_row(c, merges[i * rows + r], sink, a.out + r * a.out_stride, a.lse != nullptr ? a.lse + r : nullptr);
    }
  }
}

}  // namespace causalattn::attention
