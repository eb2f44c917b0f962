// The C ABI (include/causalattn/causalattn.h), every entry point in one place: each forwards to
// the C++ that implements it.
#include <cstddef>
#include <cstdint>
#include <string>

#include "attention/attend.hpp"
#include "attention/validate.hpp"
#include "causalattn/causalattn.h"
#include "common/dtype.hpp"
#include "common/errors.hpp"
#include "dispatch/kernels.hpp"
#include "kernels/philox.hpp"
#include "linear/linear.hpp"

using causalattn::detail::report;

extern "C" {

int causalattn_attend(const causalattn_attend_args* args) { return causalattn::attention::attend(args); }

int causalattn_attend_f32(const causalattn_attend_args* args) { return causalattn::attention::attend_f32(args); }

int causalattn_attend_validate(const causalattn_attend_args* args) {
  return causalattn::attention::attend_validate(args);
}

int causalattn_attend_workspace_size(const causalattn_attend_args* args, size_t* bytes) {
  return causalattn::attention::attend_workspace_size(args, bytes);
}

int causalattn_forward_f32(const causalattn_shape* shape, const float* q, causalattn_layout q_layout,
                           const float* k, causalattn_layout k_layout, const float* v,
                           causalattn_layout v_layout, float* out, causalattn_layout out_layout,
                           const causalattn_options* options) {
  if (shape == nullptr) return causalattn::detail::report(CAUSALATTN_ERROR_NULL_POINTER, "shape is NULL");
  const causalattn_attend_args args =
      causalattn::attention::forward_args(shape, q, q_layout, k, k_layout, v, v_layout, out, out_layout, options);
  return causalattn::attention::attend(&args);
}

int causalattn_forward_f32_with_workspace(const causalattn_shape* shape, const float* q,
                                          causalattn_layout q_layout, const float* k, causalattn_layout k_layout,
                                          const float* v, causalattn_layout v_layout, float* out,
                                          causalattn_layout out_layout, const causalattn_options* options,
                                          void* workspace, size_t workspace_size) {
  using namespace causalattn;
  if (shape == nullptr) return detail::report(CAUSALATTN_ERROR_NULL_POINTER, "shape is NULL");
  if (workspace == nullptr) return detail::report(CAUSALATTN_ERROR_NULL_POINTER, "workspace is NULL");
  causalattn_attend_args args =
      attention::forward_args(shape, q, q_layout, k, k_layout, v, v_layout, out, out_layout, options);
  args.workspace = workspace;
  args.workspace_size = workspace_size;
  return attention::attend(&args);
}

int causalattn_workspace_size(const causalattn_shape* shape, const causalattn_options* options, size_t* bytes) {
  using namespace causalattn;
  if (shape == nullptr) return detail::report(CAUSALATTN_ERROR_NULL_POINTER, "shape is NULL");
  causalattn_attend_args args{};
  args.shape = *shape;
  if (options != nullptr) args.options = *options;
  return attention::attend_workspace_size(&args, bytes);
}

int causalattn_dropout_keep(float p, uint64_t seed, int64_t sequence, int64_t head, int64_t query, int64_t key) {
  constexpr int64_t kWord = int64_t{1} << 32;
  if (!(p >= 0.0f && p < 1.0f) || sequence < 0 || head < 0 || query < 0 || key < 0 || sequence >= kWord ||
      head >= kWord || query >= kWord || key >= 4 * kWord) {
    return 0;
  }
  const causalattn::kernels::Philox4x32 words = causalattn::kernels::dropout_words<void>(
      seed, static_cast<uint32_t>(sequence), static_cast<uint32_t>(head), static_cast<uint32_t>(query),
      static_cast<uint32_t>(key / 4));
  return words.v[key % 4] >= causalattn::detail::dropout_rule(p).threshold ? 1 : 0;
}

const char* causalattn_isa(void) { return causalattn::dispatch::kernel_table().isa; }

int causalattn_set_isa(const char* name) {
  using namespace causalattn;
  if (name == nullptr || name[0] == '\0') {
    dispatch::select(nullptr);
    return CAUSALATTN_OK;
  }
  const kernels::KernelTable* kernels = dispatch::find_supported(name);
  if (kernels == nullptr) {
    std::string known;
    for (int i = 0; dispatch::known_isa(i) != nullptr; ++i) known += (i > 0 ? ", " : "") + std::string(dispatch::known_isa(i));
    return report(CAUSALATTN_ERROR_UNSUPPORTED,
                  std::string("ISA \"") + name + "\" is unknown or not supported by this CPU (known: " + known + ")");
  }
  dispatch::select(kernels);
  return CAUSALATTN_OK;
}

const char* causalattn_known_isa(int32_t index) { return causalattn::dispatch::known_isa(index); }

int32_t causalattn_prefill_block_queries(void) { return causalattn::dispatch::kernel_table().rows; }

const char* causalattn_version(void) { return CAUSALATTN_VERSION_STRING; }

int causalattn_merge(const causalattn_shape* shape, const causalattn_partial* parts, int32_t count, void* out,
                     causalattn_layout out_layout, causalattn_dtype out_dtype, float* lse) {
  return causalattn::attention::merge(shape, parts, count, out, out_layout, causalattn::raw_dtype(out_dtype), lse);
}

int causalattn_merge_f32(const causalattn_shape* shape, const causalattn_partial_f32* parts, int32_t count,
                         float* out, causalattn_layout out_layout, float* lse) {
  return causalattn::attention::merge_f32(shape, parts, count, out, out_layout, lse);
}

int causalattn_convert(const void* src, causalattn_dtype src_dtype, void* dst, causalattn_dtype dst_dtype, int64_t n) {
  return causalattn::convert(src, causalattn::raw_dtype(src_dtype), dst, causalattn::raw_dtype(dst_dtype), n);
}

int causalattn_linear_f32(int64_t m, int64_t n, int64_t k, const float* x, int64_t x_stride, const float* weight,
                          int64_t weight_stride, const float* bias, float* y, int64_t y_stride, int32_t num_threads) {
  return causalattn::linear::linear_f32(m, n, k, x, x_stride, weight, weight_stride, bias, y, y_stride, num_threads);
}

int causalattn_linear_bf16(int64_t m, int64_t n, int64_t k, const void* x, int64_t x_stride, const void* weight,
                           int64_t weight_stride, const void* bias, void* y, int64_t y_stride, int32_t num_threads) {
  return causalattn::linear::linear_bf16(m, n, k, x, x_stride, weight, weight_stride, bias, y, y_stride, num_threads);
}

const char* causalattn_last_error(void) { return causalattn::detail::last_error(); }

}  // extern "C"
