// The exact merge of partial softmax results over disjoint key ranges, one output row at a time:
// shared by causalattn_merge_f32 and the split decode chunks; and the batch-invariant mode's.
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

// The batch-invariant mode's merge (CAUSALATTN_BATCH_INVARIANT): the parts folded in one at a
// time, in key order, into a running maximum, sum and weighted output, so that a task that
// computes a row's splits one after another and a merge of splits computed in parallel do the
// same operations. A single part that saw keys comes out bitwise as it went in (its weight is
// exactly 1); a part with lse -inf saw no key and is skipped (its row may be NaN); a NaN lse
// makes the row NaN; the sink joins at the end, as in merge_row.
class RunningMerge {
 public:
  RunningMerge() = default;
  RunningMerge(float* acc, int64_t head_dim) : acc_(acc), head_dim_(head_dim) {
    for (int64_t d = 0; d < head_dim; ++d) acc_[d] = 0.0f;
  }

  void add(float lse, const float* part) {
    if (std::isnan(lse)) nan_ = true;
    if (nan_ || lse == -std::numeric_limits<float>::infinity()) return;
    const float max = std::fmax(max_, lse);
    const float old_scale = std::exp(max_ - max), weight = std::exp(lse - max);  // exp(-inf) = 0 at the first part
    for (int64_t d = 0; d < head_dim_; ++d) acc_[d] = acc_[d] * old_scale + weight * part[d];
    sum_ = sum_ * old_scale + weight;
    max_ = max;
  }

  // The merged row (and lse, when not nullptr), with the sink's logit (-inf: none): NaN and lse
  // -inf for a row no part saw, or with a sink 0 and lse sink.
  void finish(float sink, float* out, float* lse) const {
    constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
    const float max = std::fmax(max_, sink);
    if (nan_ || max == -std::numeric_limits<float>::infinity()) {
      for (int64_t d = 0; d < head_dim_; ++d) out[d] = kNaN;
      if (lse != nullptr) *lse = nan_ ? kNaN : max;
      return;
    }
    const float old_scale = std::exp(max_ - max);
    const float sum = sum_ * old_scale + std::exp(sink - max);
    const float w = old_scale / sum;
    for (int64_t d = 0; d < head_dim_; ++d) out[d] = acc_[d] * w;
    if (lse != nullptr) *lse = max + std::log(sum);
  }

 private:
  float* acc_ = nullptr;
  int64_t head_dim_ = 0;
  float max_ = -std::numeric_limits<float>::infinity(), sum_ = 0.0f;
  bool nan_ = false;
};

}  // namespace causalattn::detail
