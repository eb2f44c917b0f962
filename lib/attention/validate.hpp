// Argument checks of the public entry points: each failure names the problem.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "causalattn/causalattn.h"

namespace causalattn::detail {

// A failed check: the status to return and the message for causalattn_last_error().
struct Problem {
  causalattn_status status = CAUSALATTN_OK;
  std::string message;
  explicit operator bool() const { return status != CAUSALATTN_OK; }
};

// Each sequence's query and key counts, resolved from causalattn_seq_lens. A side given by the
// shape alone is not spelled out per sequence: a batch of any size costs no memory here.
struct SequenceLengths {
  std::vector<int64_t> q, kv;  // empty: every sequence has uniform_q (uniform_kv)
  int64_t uniform_q = 0, uniform_kv = 0;
  int64_t q_of(int64_t s) const { return q.empty() ? uniform_q : q[static_cast<std::size_t>(s)]; }
  int64_t kv_of(int64_t s) const { return kv.empty() ? uniform_kv : kv[static_cast<std::size_t>(s)]; }
  bool uniform() const { return q.empty() && kv.empty(); }
};

// The alignment flags of options.flags: 0 (bottom-right), CAUSALATTN_TOP_LEFT or
// CAUSALATTN_EXPLICIT_POSITIONS.
constexpr uint32_t kAlignmentFlags = CAUSALATTN_TOP_LEFT | CAUSALATTN_EXPLICIT_POSITIONS;

// Query i of a sequence is at the position of its key i + diagonal (causal: it sees keys
// j <= i + diagonal), for the alignment and, with explicit positions, the offsets.
inline int64_t diagonal_of(uint32_t alignment, int64_t q_len, int64_t kv_len, int64_t q_pos, int64_t kv_pos) {
  if (alignment == CAUSALATTN_EXPLICIT_POSITIONS) return q_pos - kv_pos;
  return alignment == CAUSALATTN_TOP_LEFT ? 0 : kv_len - q_len;
}

// Whether a window hides some key from some query: the last query's window starts past key 0.
inline bool window_hides(int64_t window, int64_t q_len, int64_t kv_len, int64_t diagonal) {
  return window > 0 && kv_len > 0 && q_len - 1 + diagonal - window >= 0;
}

// Whether seq_lens gives per-sequence offsets (then sequences of equal lengths still differ).
inline bool has_sequence_offsets(const causalattn_attend_args& a) {
  return a.seq_lens != nullptr && (a.seq_lens->q_pos_offsets != nullptr || a.seq_lens->kv_pos_offsets != nullptr);
}

// Sequence s's explicit offsets: its own in seq_lens, else the call's.
inline int64_t q_pos_of(const causalattn_attend_args& a, int64_t s) {
  return a.seq_lens != nullptr && a.seq_lens->q_pos_offsets != nullptr ? a.seq_lens->q_pos_offsets[s] : a.q_pos_offset;
}
inline int64_t kv_pos_of(const causalattn_attend_args& a, int64_t s) {
  return a.seq_lens != nullptr && a.seq_lens->kv_pos_offsets != nullptr ? a.seq_lens->kv_pos_offsets[s] : a.kv_pos_offset;
}

// Checks every argument of causalattn_attend_f32 before anything is written, and resolves the
// sequence lengths. with_tensors = false skips the tensors: pointers, layouts and aliasing (causalattn_attend_workspace_size).
Problem validate_attend(const causalattn_attend_args& args, bool with_tensors, SequenceLengths* lengths);

// Checks every argument of causalattn_merge_f32 before anything is written.
// part_of(p): part p, for p < count.
using PartOf = std::function<causalattn_partial(int32_t)>;
Problem validate_merge(const causalattn_shape* shape, const PartOf& part_of, int32_t count, const void* out,
                       causalattn_layout out_layout, int32_t out_dtype /* raw_dtype */, const float* lse);

// Dropout with probability p (validated: in [0, 1)) as the kernels apply it: a weight is kept
// iff its 32-bit Philox word is >= threshold = floor(p · 2^32), and then scaled by 1 / (1 - p).
struct DropoutRule {
  uint32_t threshold;
  float scale;
};

inline DropoutRule dropout_rule(float p) {
  const double threshold = std::floor(static_cast<double>(p) * 4294967296.0);
  return {static_cast<uint32_t>(std::min(threshold, 4294967295.0)), static_cast<float>(1.0 / (1.0 - p))};
}

}  // namespace causalattn::detail
