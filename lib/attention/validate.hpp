// Argument checks of the public entry points: each failure names the problem.
#pragma once

#include <cstdint>
#include <string>

#include "causalattn/causalattn.h"

namespace causalattn::detail {

// A failed check: the status to return and the message for causalattn_last_error().
struct Problem {
  causalattn_status status = CAUSALATTN_OK;
  std::string message;
  explicit operator bool() const { return status != CAUSALATTN_OK; }
};

// Checks every argument of causalattn_forward_f32 before anything is written.
Problem validate_forward(const causalattn_shape* shape, const float* q, causalattn_layout q_layout,
                         const float* k, causalattn_layout k_layout, const float* v,
                         causalattn_layout v_layout, const float* out,
                         causalattn_layout out_layout, const causalattn_options& options);

// Checks every argument of causalattn_merge_f32 before anything is written.
Problem validate_merge(const causalattn_shape* shape, const causalattn_partial_f32* parts, int32_t count,
                       const float* out, causalattn_layout out_layout, const float* lse);

}  // namespace causalattn::detail
