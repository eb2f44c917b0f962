// causalattn_attend_f32 and the calls built on it, as C++: validate, plan, run.
#pragma once

#include <cstddef>

#include "causalattn/causalattn.h"

namespace causalattn::attention {

// causalattn_attend, causalattn_attend_f32 (f32 tensors only), causalattn_attend_validate and
// causalattn_attend_workspace_size; statuses as the C API's.
int attend(const causalattn_attend_args* args);
int attend_f32(const causalattn_attend_args* args);
int attend_validate(const causalattn_attend_args* args);
int attend_workspace_size(const causalattn_attend_args* args, std::size_t* bytes);

// causalattn_forward_f32's arguments as causalattn_attend_f32's (shape not NULL).
causalattn_attend_args forward_args(const causalattn_shape* shape, const float* q, causalattn_layout q_layout,
                                    const float* k, causalattn_layout k_layout, const float* v,
                                    causalattn_layout v_layout, float* out, causalattn_layout out_layout,
                                    const causalattn_options* options);

// causalattn_merge (causalattn_merge_f32 is it with every dtype f32).
int merge(const causalattn_shape* shape, const causalattn_partial* parts, int32_t count, void* out,
          causalattn_layout out_layout, int32_t out_dtype /* raw_dtype */, float* lse);
int merge_f32(const causalattn_shape* shape, const causalattn_partial_f32* parts, int32_t count, float* out,
              causalattn_layout out_layout, float* lse);

}  // namespace causalattn::attention
