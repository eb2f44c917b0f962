// causalattn_merge_f32: partial attention results over disjoint key ranges, combined exactly
// through their log-sum-exps. Memory-bound and small beside the attention itself: plain loops.
#include <cstdint>
#include <string>

#include "attention/attend.hpp"
#include "attention/merge_row.hpp"
#include "attention/validate.hpp"
#include "causalattn/causalattn.h"
#include "common/errors.hpp"

namespace causalattn::attention {

int merge(const causalattn_shape* shape, const causalattn_partial_f32* parts, int32_t count, float* out,
          causalattn_layout out_layout, float* lse) {
  return detail::guarded([&] {
    if (detail::Problem problem = detail::validate_merge(shape, parts, count, out, out_layout, lse)) {
      return detail::report(problem.status, std::move(problem.message));
    }
    const causalattn_shape& s = *shape;
    for (int64_t b = 0; b < s.batch; ++b) {
      for (int64_t h = 0; h < s.q_heads; ++h) {
        for (int64_t i = 0; i < s.q_len; ++i) {
          const int64_t row = (b * s.q_heads + h) * s.q_len + i;
          detail::merge_row(
              count, [&](int64_t p) { return parts[p].lse[row]; },
              [&](int64_t p) {
                const causalattn_layout& l = parts[p].out_layout;
                return parts[p].out + b * l.batch + h * l.head + i * l.token;
              },
              s.head_dim, out + b * out_layout.batch + h * out_layout.head + i * out_layout.token,
              lse != nullptr ? lse + row : nullptr);
        }
      }
    }
    return static_cast<int>(CAUSALATTN_OK);
  });
}

}  // namespace causalattn::attention
