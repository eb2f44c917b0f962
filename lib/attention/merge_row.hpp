// The exact merge of partial softmax results over disjoint key ranges, one output row at a time:
// shared by causalattn_merge_f32 and the split decode chunks.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

namespace causalattn::detail {

// out = Σ_p exp(lse_p - lse) · out_p over the `count` parts, lse = log(exp(sink) + Σ_p exp(lse_p)),
// with lse_of(p) and out_of(p) (a row of head_dim floats) naming part p; sink (-inf: none) is a
// part of logit `sink` whose output is 0 (an attention sink). A part with lse -inf saw no key and
// is skipped (its row may be NaN); a row no part saw gets NaN and lse -inf, or with a sink 0 and
// lse sink; a NaN lse makes the row NaN. Parts are read in order. lse may be nullptr.
template <class LseOf, class OutOf>
void merge_row(int64_t count, LseOf lse_of, OutOf out_of, int64_t head_dim, float* out, float* lse,
               float sink = -std::numeric_limits<float>::infinity()) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
  float max = sink;
  bool nan = false;
  for (int64_t p = 0; p < count; ++p) {
    max = std::fmax(max, lse_of(p));
    nan |= std::isnan(lse_of(p));
  }
  if (nan || max == kNegInf) {  // a NaN part, or no part saw a key: no softmax
    for (int64_t d = 0; d < head_dim; ++d) out[d] = kNaN;
    if (lse != nullptr) *lse = nan ? kNaN : kNegInf;
    return;
  }
  // Weights relative to the largest part: 1 for it, exactly 0 for parts that saw no key.
  float sum = std::exp(sink - max);
  for (int64_t p = 0; p < count; ++p) sum += std::exp(lse_of(p) - max);
  const float inv_sum = 1.0f / sum;
  for (int64_t d = 0; d < head_dim; ++d) out[d] = 0.0f;
  for (int64_t p = 0; p < count; ++p) {
    const float weight = std::exp(lse_of(p) - max);
    if (weight == 0.0f) continue;  // its output row may be NaN (it saw no key)
    const float w = weight * inv_sum;
    const float* part = out_of(p);
    for (int64_t d = 0; d < head_dim; ++d) out[d] += w * part[d];
  }
  if (lse != nullptr) *lse = max + std::log(sum);
}

}  // namespace causalattn::detail
