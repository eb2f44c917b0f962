#include "common/dtype.hpp"

#include <cmath>
#include <cstring>
#include <string>
#include <utility>

#include "common/errors.hpp"
#include "common/spans.hpp"

namespace causalattn::dtype {

const char* name(Dtype t) {
  switch (t) {
    case Dtype::kF32: return "f32";
    case Dtype::kBf16: return "bf16";
    case Dtype::kF16: return "f16";
    case Dtype::kQ8_0: return "q8_0";
  }
  return "?";
}

}  // namespace causalattn::dtype

namespace causalattn {

int convert(const void* src, int32_t src_dtype, void* dst, int32_t dst_dtype, int64_t n) {
  using detail::report;
  if (src == nullptr) return report(CAUSALATTN_ERROR_NULL_POINTER, "src is NULL");
  if (dst == nullptr) return report(CAUSALATTN_ERROR_NULL_POINTER, "dst is NULL");
  for (const auto& [name, t] : {std::pair{"src_dtype", src_dtype}, std::pair{"dst_dtype", dst_dtype}}) {
    if (t < CAUSALATTN_DTYPE_F32 || t > CAUSALATTN_DTYPE_Q8_0) {
      return report(CAUSALATTN_ERROR_INVALID_OPTION, std::string(name) + " = " + std::to_string(t) +
                                                         " is not a causalattn_dtype");
    }
  }
  const auto from = static_cast<Dtype>(src_dtype), to = static_cast<Dtype>(dst_dtype);
  const bool quantized = from == Dtype::kQ8_0 || to == Dtype::kQ8_0;
  if (n < 0 || (quantized && n % kQ8Block != 0)) {
    return report(CAUSALATTN_ERROR_INVALID_SHAPE, "n = " + std::to_string(n) + " must be >= 0" +
                                                      (quantized ? " and a multiple of 32 (Q8_0 blocks)" : ""));
  }
  const int64_t src_bytes_max = INT64_MAX / unit_bytes(from) * unit_elements(from);
  const int64_t dst_bytes_max = INT64_MAX / unit_bytes(to) * unit_elements(to);
  if (n > src_bytes_max || n > dst_bytes_max) return report(CAUSALATTN_ERROR_INVALID_SHAPE, "n is too large");
  const detail::Range src_range = detail::range_of(src, n / unit_elements(from), static_cast<std::size_t>(unit_bytes(from)));
  const detail::Range dst_range = detail::range_of(dst, n / unit_elements(to), static_cast<std::size_t>(unit_bytes(to)));
  if (detail::overlap(src_range, dst_range)) return report(CAUSALATTN_ERROR_ALIASING, "src and dst overlap");
  if (to == Dtype::kQ8_0) {
    for (int64_t i = 0; i < n; ++i) {
      if (!std::isfinite(dtype::element<void>(src, from, i))) {
        return report(CAUSALATTN_ERROR_INVALID_SHAPE,
                      "src[" + std::to_string(i) + "] is not finite: Q8_0 cannot hold it (nothing was written)");
      }
    }
    auto* blocks = static_cast<unsigned char*>(dst);
    float block[kQ8Block];
    for (int64_t b = 0; b < n / kQ8Block; ++b) {
      for (int64_t i = 0; i < kQ8Block; ++i) block[i] = dtype::element<void>(src, from, b * kQ8Block + i);
      dtype::quantize_q8_0<void>(block, blocks + b * kQ8BlockBytes);
    }
    return CAUSALATTN_OK;
  }
  for (int64_t i = 0; i < n; ++i) dtype::store_element<void>(dst, to, i, dtype::element<void>(src, from, i));
  return CAUSALATTN_OK;
}

}  // namespace causalattn
