#include "attention/attend.hpp"

#include <cmath>
#include <cstddef>
#include <string>
#include <utility>

#include "attention/plan.hpp"
#include "attention/run.hpp"
#include "attention/validate.hpp"
#include "common/errors.hpp"
#include "dispatch/kernels.hpp"
#include "parallel/parallel.hpp"

namespace causalattn::attention {

namespace {

using detail::report;
using parallel::call_threads;

// Validates and resolves a call: the kernel, the threads, the sequence lengths (kept per
// thread, reused) and the plan (only sized without tensors).
int prepare(const causalattn_attend_args& args, bool with_tensors, Call* call, Plan* plan) {
  thread_local detail::SequenceLengths lengths;
  if (detail::Problem problem = detail::validate_attend(args, with_tensors, &lengths)) {
    return report(problem.status, std::move(problem.message));
  }
  const float scale = args.options.scale != 0.0f ? args.options.scale
                                                 : 1.0f / std::sqrt(static_cast<float>(args.shape.head_dim));
  const detail::DropoutRule dropout = detail::dropout_rule(args.dropout.p);
  const int num_threads = args.options.num_threads > 0 ? call_threads(args.options.num_threads) : 0;
  *call = Call{&dispatch::kernel_table(), num_threads, call_threads(num_threads), args, &lengths,
               (args.options.flags & CAUSALATTN_NON_CAUSAL) == 0, scale, args.shape.q_heads / args.shape.kv_heads,
               dropout.threshold, dropout.scale, static_cast<Dtype>(raw_dtype(args.q_dtype)),
               static_cast<Dtype>(raw_dtype(args.k_dtype)), static_cast<Dtype>(raw_dtype(args.v_dtype)),
               static_cast<Dtype>(raw_dtype(args.out_dtype)), args.options.flags & detail::kAlignmentFlags,
               lengths.uniform() && !detail::has_sequence_offsets(args),
               args.head_dim_v != 0 ? args.head_dim_v : args.shape.head_dim,
               (args.options.flags & CAUSALATTN_BATCH_INVARIANT) != 0};
  if (detail::Problem problem = make_plan(*call, with_tensors, plan)) {
    return report(problem.status, std::move(problem.message));
  }
  return CAUSALATTN_OK;
}

// prepare, and a caller's workspace checked against what the call needs.
int prepare_with_tensors(const causalattn_attend_args& args, Call* call, Plan* plan) {
  if (int status = prepare(args, true, call, plan)) return status;
  if (args.workspace != nullptr) {
    const std::size_t needed = workspace_bytes(*call, *plan);
    if (args.workspace_size < needed) {
      return report(CAUSALATTN_ERROR_INVALID_OPTION,
                    "workspace of " + std::to_string(args.workspace_size) + " bytes is smaller than the " +
                        std::to_string(needed) + " this call needs (causalattn_attend_workspace_size)");
    }
  }
  return CAUSALATTN_OK;
}

}  // namespace

int attend(const causalattn_attend_args* args) {
  if (args == nullptr) return report(CAUSALATTN_ERROR_NULL_POINTER, "args is NULL");
  return detail::guarded([&] {
    Call call{};
    Plan plan{};
    if (int status = prepare_with_tensors(*args, &call, &plan)) return status;
    run(call, plan, args->workspace);
    return static_cast<int>(CAUSALATTN_OK);
  });
}

int attend_f32(const causalattn_attend_args* args) {
  if (args == nullptr) return report(CAUSALATTN_ERROR_NULL_POINTER, "args is NULL");
  const std::pair<const char*, int32_t> dtypes[] = {{"q_dtype", raw_dtype(args->q_dtype)},
                                                     {"k_dtype", raw_dtype(args->k_dtype)},
                                                     {"v_dtype", raw_dtype(args->v_dtype)},
                                                     {"out_dtype", raw_dtype(args->out_dtype)}};
  for (const auto& [name, dtype] : dtypes) {
    if (dtype != CAUSALATTN_DTYPE_F32) {
      return report(CAUSALATTN_ERROR_UNSUPPORTED, std::string("causalattn_attend_f32 takes f32 tensors only, ") + name +
                                                      " is " + std::to_string(dtype) + ": call causalattn_attend");
    }
  }
  return attend(args);
}

int attend_validate(const causalattn_attend_args* args) {
  if (args == nullptr) return report(CAUSALATTN_ERROR_NULL_POINTER, "args is NULL");
  return detail::guarded([&] {
    Call call{};
    Plan plan{};
    return prepare_with_tensors(*args, &call, &plan);
  });
}

int attend_workspace_size(const causalattn_attend_args* args, size_t* bytes) {
  if (args == nullptr) return report(CAUSALATTN_ERROR_NULL_POINTER, "args is NULL");
  if (bytes == nullptr) return report(CAUSALATTN_ERROR_NULL_POINTER, "bytes is NULL");
  return detail::guarded([&] {
    Call call{};
    Plan plan{};
    if (int status = prepare(*args, false, &call, &plan)) return status;
    *bytes = workspace_bytes(call, plan);
    return static_cast<int>(CAUSALATTN_OK);
  });
}

// causalattn_forward_f32's arguments as causalattn_attend_f32's.
causalattn_attend_args forward_args(const causalattn_shape* shape, const float* q, causalattn_layout q_layout,
                                    const float* k, causalattn_layout k_layout, const float* v,
                                    causalattn_layout v_layout, float* out, causalattn_layout out_layout,
                                    const causalattn_options* options) {
  causalattn_attend_args a{};
  a.shape = *shape;
  a.q = q;
  a.q_layout = q_layout;
  a.k = k;
  a.k_layout = k_layout;
  a.v = v;
  a.v_layout = v_layout;
  a.out = out;
  a.out_layout = out_layout;
  if (options != nullptr) a.options = *options;
  return a;
}

}  // namespace causalattn::attention
