// causalattn_merge and causalattn_merge_f32: partial attention results over disjoint key ranges,
// combined exactly through their log-sum-exps, in f32 on the widened partials. Memory-bound and
// small beside the attention itself: plain loops.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "attention/attend.hpp"
#include "attention/merge_row.hpp"
#include "attention/validate.hpp"
#include "causalattn/causalattn.h"
#include "common/dtype.hpp"
#include "common/errors.hpp"

namespace causalattn::attention {
namespace {

int merge_parts(const causalattn_shape* shape, const detail::PartOf& part_of, int32_t count, void* out,
                causalattn_layout out_layout, int32_t out_dtype, float* lse) {
  return detail::guarded([&] {
    if (detail::Problem problem = detail::validate_merge(shape, part_of, count, out, out_layout, out_dtype, lse)) {
      return detail::report(problem.status, std::move(problem.message));
    }
    const causalattn_shape& s = *shape;
    const auto out_type = static_cast<Dtype>(out_dtype);
    auto row_of = [&](const void* data, const causalattn_layout& l, Dtype t, int64_t b, int64_t h, int64_t i) {
      return static_cast<const std::byte*>(data) + (b * l.batch + h * l.head + i * l.token) * unit_bytes(t);
    };
    // Each part's row widened to f32, and the merged row before it is rounded to out_dtype.
    std::vector<float> widened(static_cast<std::size_t>(s.head_dim));
    float merged[CAUSALATTN_MAX_HEAD_DIM];
    for (int64_t b = 0; b < s.batch; ++b) {
      for (int64_t h = 0; h < s.q_heads; ++h) {
        for (int64_t i = 0; i < s.q_len; ++i) {
          const int64_t row = (b * s.q_heads + h) * s.q_len + i;
          detail::merge_row(
              count, [&](int64_t p) { return part_of(static_cast<int32_t>(p)).lse[row]; },
              [&](int64_t p) -> const float* {
                const causalattn_partial part = part_of(static_cast<int32_t>(p));
                const auto part_type = static_cast<Dtype>(raw_dtype(part.out_dtype));
                const std::byte* data = row_of(part.out, part.out_layout, part_type, b, h, i);
                if (part_type == Dtype::kF32) return reinterpret_cast<const float*>(data);
                for (int64_t d = 0; d < s.head_dim; ++d) widened[d] = dtype::element<void>(data, part_type, d);
                return widened.data();
              },
              s.head_dim, merged, lse != nullptr ? lse + row : nullptr);
          auto* out_row = const_cast<std::byte*>(row_of(out, out_layout, out_type, b, h, i));
          for (int64_t d = 0; d < s.head_dim; ++d) dtype::store_element<void>(out_row, out_type, d, merged[d]);
        }
      }
    }
    return static_cast<int>(CAUSALATTN_OK);
  });
}

}  // namespace

int merge(const causalattn_shape* shape, const causalattn_partial* parts, int32_t count, void* out,
          causalattn_layout out_layout, int32_t out_dtype, float* lse) {
  if (parts == nullptr) return detail::report(CAUSALATTN_ERROR_NULL_POINTER, "parts is NULL");
  return merge_parts(shape, [parts](int32_t p) { return parts[p]; }, count, out, out_layout, out_dtype, lse);
}

int merge_f32(const causalattn_shape* shape, const causalattn_partial_f32* parts, int32_t count, float* out,
              causalattn_layout out_layout, float* lse) {
  if (parts == nullptr) return detail::report(CAUSALATTN_ERROR_NULL_POINTER, "parts is NULL");
  return merge_parts(
      shape,
      [parts](int32_t p) {
        return causalattn_partial{parts[p].out, parts[p].out_layout, parts[p].lse, CAUSALATTN_DTYPE_F32};
      },
      count, out, out_layout, CAUSALATTN_DTYPE_F32, lse);
}

}  // namespace causalattn::attention
