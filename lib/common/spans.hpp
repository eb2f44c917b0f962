// The memory a strided tensor spans, and whether two spans overlap: the size and aliasing checks
// of every entry point, in integer arithmetic (no pointer is formed past a tensor).
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <utility>

namespace causalattn::detail {

// Elements (units of unit_bytes bytes) from a tensor's first to one past its last: `dims` are
// (size, stride) pairs, all sizes >= 1 and strides >= 0, around a contiguous innermost run of
// `contiguous` units. -1 when that overflows int64 or its byte offsets would not fit.
inline int64_t span_elements(std::initializer_list<std::pair<int64_t, int64_t>> dims, int64_t contiguous,
                             int64_t unit_bytes = sizeof(float)) {
  int64_t span = contiguous;
  for (const auto& [size, stride] : dims) {
    int64_t reach = 0;
    if (__builtin_mul_overflow(size - 1, stride, &reach) || __builtin_add_overflow(span, reach, &span)) return -1;
  }
  return span <= INT64_MAX / unit_bytes ? span : -1;
}

// [begin, end) in addresses; saturates at the top of the address space.
struct Range {
  uintptr_t begin = 0, end = 0;
};

inline Range range_of(const void* data, int64_t elements, std::size_t element_bytes) {
  const auto begin = reinterpret_cast<uintptr_t>(data);
  uintptr_t end = 0;
  if (__builtin_mul_overflow(static_cast<uintptr_t>(elements), element_bytes, &end) ||
      __builtin_add_overflow(begin, end, &end)) {
    end = UINTPTR_MAX;
  }
  return {begin, end};
}

inline Range range_of(const float* data, int64_t elements) { return range_of(data, elements, sizeof(float)); }

inline bool overlap(Range a, Range b) { return a.begin < b.end && b.begin < a.end; }

}  // namespace causalattn::detail
