// causalattn_merge_f32: partial attention results over disjoint key ranges, combined exactly
// through their log-sum-exps. Memory-bound and small beside the attention itself: plain loops.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "attention/errors.hpp"
#include "attention/validate.hpp"
#include "causalattn/causalattn.h"

extern "C" int causalattn_merge_f32(const causalattn_shape* shape, const causalattn_partial_f32* parts,
                                    int32_t count, float* out, causalattn_layout out_layout, float* lse) {
  using namespace causalattn;
  return detail::guarded([&] {
    if (detail::Problem problem = detail::validate_merge(shape, parts, count, out, out_layout, lse)) {
      return detail::report(problem.status, std::move(problem.message));
    }
    const causalattn_shape& s = *shape;
    constexpr float kNegInf = -std::numeric_limits<float>::infinity();
    std::vector<float> weights(static_cast<size_t>(count));
    for (int64_t b = 0; b < s.batch; ++b) {
      for (int64_t h = 0; h < s.q_heads; ++h) {
        for (int64_t i = 0; i < s.q_len; ++i) {
          const int64_t row = (b * s.q_heads + h) * s.q_len + i;
          float max = kNegInf;
          bool nan = false;
          for (int32_t p = 0; p < count; ++p) {
            max = std::fmax(max, parts[p].lse[row]);
            nan |= std::isnan(parts[p].lse[row]);
          }
          float* o = out + b * out_layout.batch + h * out_layout.head + i * out_layout.token;
          if (nan || max == kNegInf) {  // a NaN part, or no part saw a key: no softmax
            for (int64_t d = 0; d < s.head_dim; ++d) o[d] = std::numeric_limits<float>::quiet_NaN();
            if (lse != nullptr) lse[row] = nan ? std::numeric_limits<float>::quiet_NaN() : kNegInf;
            continue;
          }
          // Weights relative to the largest part: 1 for it, exactly 0 for parts that saw no key.
          float sum = 0.0f;
          for (int32_t p = 0; p < count; ++p) {
            weights[p] = std::exp(parts[p].lse[row] - max);
            sum += weights[p];
          }
          const float inv_sum = 1.0f / sum;
          for (int64_t d = 0; d < s.head_dim; ++d) o[d] = 0.0f;
          for (int32_t p = 0; p < count; ++p) {
            if (weights[p] == 0.0f) continue;  // its output row may be NaN (it saw no key)
            const float w = weights[p] * inv_sum;
            const causalattn_layout& l = parts[p].out_layout;
            const float* po = parts[p].out + b * l.batch + h * l.head + i * l.token;
            for (int64_t d = 0; d < s.head_dim; ++d) o[d] += w * po[d];
          }
          if (lse != nullptr) lse[row] = max + std::log(sum);
        }
      }
    }
    return static_cast<int>(CAUSALATTN_OK);
  });
}
