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
