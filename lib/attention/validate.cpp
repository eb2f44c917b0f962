// Argument checks for causalattn_forward_f32: pointers, sizes, strides, overflow, aliasing.
#include "attention/validate.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>

namespace causalattn::detail {
namespace {

Problem fail(causalattn_status status, std::string message) { return {status, std::move(message)}; }

// Elements from a tensor's first element to one past its last, or -1 on int64 overflow.
// Byte offsets must fit too, so the span is capped at INT64_MAX / sizeof(float).
int64_t span_elements(int64_t batch, int64_t heads, int64_t tokens, int64_t head_dim,
                      causalattn_layout layout) {
  int64_t span = head_dim;
  const std::array<std::array<int64_t, 2>, 3> dims = {{{batch, layout.batch}, {heads, layout.head}, {tokens, layout.token}}};
  for (const auto& [size, stride] : dims) {
    int64_t reach = 0;
    if (__builtin_mul_overflow(size - 1, stride, &reach) || __builtin_add_overflow(span, reach, &span)) return -1;
  }
  return span <= INT64_MAX / static_cast<int64_t>(sizeof(float)) ? span : -1;
}

// True when distinct (batch, head, token) rows of head_dim elements never share an element.
// Sufficient test: with the dimensions sorted by stride, each stride clears the extent of all
// smaller ones. It accepts every nesting of [B,H,T,D] layouts with or without padding.
bool rows_disjoint(int64_t batch, int64_t heads, int64_t tokens, int64_t head_dim,
                   causalattn_layout layout) {
  std::array<std::array<int64_t, 2>, 3> dims = {{{layout.batch, batch}, {layout.head, heads}, {layout.token, tokens}}};
  std::sort(dims.begin(), dims.end());
  int64_t extent = head_dim;
  for (const auto& [stride, size] : dims) {
    if (size == 1) continue;
    if (stride < extent) return false;
    extent = stride * (size - 1) + extent;  // no overflow: the span check passed first
  }
  return true;
}

struct Range {
  const void* begin;
  const void* end;
};

Range range_of(const float* data, int64_t span) { return {data, data + span}; }

bool overlap(Range a, Range b) {
  const auto a0 = reinterpret_cast<uintptr_t>(a.begin), a1 = reinterpret_cast<uintptr_t>(a.end);
  const auto b0 = reinterpret_cast<uintptr_t>(b.begin), b1 = reinterpret_cast<uintptr_t>(b.end);
  return a0 < b1 && b0 < a1;
}

Problem check_layout(const char* name, int64_t batch, int64_t heads, int64_t tokens,
                     int64_t head_dim, causalattn_layout layout, int64_t* span) {
  if (layout.batch < 0 || layout.head < 0 || layout.token < 0) {
    return fail(CAUSALATTN_ERROR_INVALID_LAYOUT,
                std::string(name) + "_layout has a negative stride (batch " + std::to_string(layout.batch) +
                    ", head " + std::to_string(layout.head) + ", token " + std::to_string(layout.token) + ")");
  }
  *span = span_elements(batch, heads, tokens, head_dim, layout);
  if (*span < 0) {
    return fail(CAUSALATTN_ERROR_INVALID_LAYOUT,
                std::string(name) + "_layout: the offset of the last element overflows int64");
  }
  return {};
}

}  // namespace

Problem validate_forward(const causalattn_shape* shape, const float* q, causalattn_layout q_layout,
                         const float* k, causalattn_layout k_layout, const float* v,
                         causalattn_layout v_layout, const float* out,
                         causalattn_layout out_layout, const causalattn_options& options) {
  if (shape == nullptr) return fail(CAUSALATTN_ERROR_NULL_POINTER, "shape is NULL");
  if (q == nullptr) return fail(CAUSALATTN_ERROR_NULL_POINTER, "q is NULL");
  if (k == nullptr) return fail(CAUSALATTN_ERROR_NULL_POINTER, "k is NULL");
  if (v == nullptr) return fail(CAUSALATTN_ERROR_NULL_POINTER, "v is NULL");
  if (out == nullptr) return fail(CAUSALATTN_ERROR_NULL_POINTER, "out is NULL");

  const causalattn_shape& s = *shape;
  const std::array<std::pair<const char*, int64_t>, 6> sizes = {{{"batch", s.batch}, {"q_heads", s.q_heads},
      {"kv_heads", s.kv_heads}, {"q_len", s.q_len}, {"kv_len", s.kv_len}, {"head_dim", s.head_dim}}};
  for (const auto& [name, size] : sizes) {
    if (size <= 0) {
      return fail(CAUSALATTN_ERROR_INVALID_SHAPE,
                  std::string("shape.") + name + " must be positive, got " + std::to_string(size));
    }
  }
  if (s.head_dim > CAUSALATTN_MAX_HEAD_DIM) {
    return fail(CAUSALATTN_ERROR_INVALID_SHAPE, "shape.head_dim " + std::to_string(s.head_dim) +
                                                    " exceeds CAUSALATTN_MAX_HEAD_DIM (" +
                                                    std::to_string(CAUSALATTN_MAX_HEAD_DIM) + ")");
  }
  if (s.q_heads % s.kv_heads != 0) {
    return fail(CAUSALATTN_ERROR_INVALID_SHAPE, "shape.q_heads (" + std::to_string(s.q_heads) +
                                                    ") is not a multiple of shape.kv_heads (" +
                                                    std::to_string(s.kv_heads) + ")");
  }
  const std::array<std::pair<const char*, int64_t>, 2> token_counts = {{{"Q and out", s.q_len}, {"K and V", s.kv_len}}};
  for (const auto& [name, tokens] : token_counts) {
    int64_t count = 0;
    if (__builtin_mul_overflow(s.batch, s.q_heads > s.kv_heads ? s.q_heads : s.kv_heads, &count) ||
        __builtin_mul_overflow(count, tokens, &count) || __builtin_mul_overflow(count, s.head_dim, &count)) {
      return fail(CAUSALATTN_ERROR_INVALID_SHAPE,
                  std::string("the element count of ") + name + " overflows int64");
    }
  }

  if ((options.flags & ~CAUSALATTN_NON_CAUSAL) != 0) {
    return fail(CAUSALATTN_ERROR_INVALID_OPTION, "options.flags has unknown bits: " + std::to_string(options.flags));
  }
  const bool causal = (options.flags & CAUSALATTN_NON_CAUSAL) == 0;
  if (causal && s.q_len > s.kv_len) {
    return fail(CAUSALATTN_ERROR_INVALID_SHAPE, "causal attention needs q_len <= kv_len, got q_len " +
                                                    std::to_string(s.q_len) + " and kv_len " +
                                                    std::to_string(s.kv_len));
  }
  if (!std::isfinite(options.scale)) {
    return fail(CAUSALATTN_ERROR_INVALID_OPTION, "options.scale must be finite (0 for 1/sqrt(head_dim))");
  }
  if (options.num_threads < 0) {
    return fail(CAUSALATTN_ERROR_INVALID_OPTION,
                "options.num_threads must be >= 0, got " + std::to_string(options.num_threads));
  }

  int64_t q_span = 0, k_span = 0, v_span = 0, out_span = 0;
  if (Problem p = check_layout("q", s.batch, s.q_heads, s.q_len, s.head_dim, q_layout, &q_span)) return p;
  if (Problem p = check_layout("k", s.batch, s.kv_heads, s.kv_len, s.head_dim, k_layout, &k_span)) return p;
  if (Problem p = check_layout("v", s.batch, s.kv_heads, s.kv_len, s.head_dim, v_layout, &v_span)) return p;
  if (Problem p = check_layout("out", s.batch, s.q_heads, s.q_len, s.head_dim, out_layout, &out_span)) return p;
  if (!rows_disjoint(s.batch, s.q_heads, s.q_len, s.head_dim, out_layout)) {
    return fail(CAUSALATTN_ERROR_INVALID_LAYOUT,
                "out_layout: output rows overlap (strides batch " + std::to_string(out_layout.batch) +
                    ", head " + std::to_string(out_layout.head) + ", token " +
                    std::to_string(out_layout.token) + " with head_dim " + std::to_string(s.head_dim) + ")");
  }

  const Range out_range = range_of(out, out_span);
  const std::array<std::pair<const char*, Range>, 3> inputs = {{{"q", range_of(q, q_span)},
      {"k", range_of(k, k_span)}, {"v", range_of(v, v_span)}}};
  for (const auto& [name, range] : inputs) {
    if (overlap(out_range, range)) {
      return fail(CAUSALATTN_ERROR_ALIASING, std::string("out overlaps ") + name + " (outputs must not alias inputs)");
    }
  }
  if (options.lse != nullptr) {
    const Range lse_range = range_of(options.lse, s.batch * s.q_heads * s.q_len);
    if (overlap(lse_range, out_range)) return fail(CAUSALATTN_ERROR_ALIASING, "options.lse overlaps out");
    for (const auto& [name, range] : inputs) {
      if (overlap(lse_range, range)) return fail(CAUSALATTN_ERROR_ALIASING, std::string("options.lse overlaps ") + name);
    }
  }
  return {};
}

Problem validate_merge(const causalattn_shape* shape, const causalattn_partial_f32* parts, int32_t count,
                       const float* out, causalattn_layout out_layout, const float* lse) {
  if (shape == nullptr) return fail(CAUSALATTN_ERROR_NULL_POINTER, "shape is NULL");
  if (parts == nullptr) return fail(CAUSALATTN_ERROR_NULL_POINTER, "parts is NULL");
  if (out == nullptr) return fail(CAUSALATTN_ERROR_NULL_POINTER, "out is NULL");
  if (count <= 0) return fail(CAUSALATTN_ERROR_INVALID_SHAPE, "count must be positive, got " + std::to_string(count));
  const causalattn_shape& s = *shape;
  const std::array<std::pair<const char*, int64_t>, 4> sizes = {{{"batch", s.batch}, {"q_heads", s.q_heads},
      {"q_len", s.q_len}, {"head_dim", s.head_dim}}};
  for (const auto& [name, size] : sizes) {
    if (size <= 0) {
      return fail(CAUSALATTN_ERROR_INVALID_SHAPE,
                  std::string("shape.") + name + " must be positive, got " + std::to_string(size));
    }
  }
  int64_t rows = 0;
  if (__builtin_mul_overflow(s.batch, s.q_heads, &rows) || __builtin_mul_overflow(rows, s.q_len, &rows) ||
      rows > INT64_MAX / static_cast<int64_t>(sizeof(float))) {
    return fail(CAUSALATTN_ERROR_INVALID_SHAPE, "the row count batch · q_heads · q_len overflows int64");
  }
  int64_t out_span = 0;
  if (Problem p = check_layout("out", s.batch, s.q_heads, s.q_len, s.head_dim, out_layout, &out_span)) return p;
  if (!rows_disjoint(s.batch, s.q_heads, s.q_len, s.head_dim, out_layout)) {
    return fail(CAUSALATTN_ERROR_INVALID_LAYOUT, "out_layout: output rows overlap");
  }
  const Range out_range = range_of(out, out_span);
  const Range lse_range = lse != nullptr ? range_of(lse, rows) : Range{nullptr, nullptr};
  if (lse != nullptr && overlap(lse_range, out_range)) return fail(CAUSALATTN_ERROR_ALIASING, "lse overlaps out");
  for (int32_t p = 0; p < count; ++p) {
    const std::string name = "parts[" + std::to_string(p) + "]";
    if (parts[p].out == nullptr) return fail(CAUSALATTN_ERROR_NULL_POINTER, name + ".out is NULL");
    if (parts[p].lse == nullptr) return fail(CAUSALATTN_ERROR_NULL_POINTER, name + ".lse is NULL");
    int64_t span = 0;
    if (Problem problem = check_layout((name + ".out").c_str(), s.batch, s.q_heads, s.q_len, s.head_dim,
                                       parts[p].out_layout, &span)) {
      return problem;
    }
    for (const Range part : {range_of(parts[p].out, span), range_of(parts[p].lse, rows)}) {
      if (overlap(part, out_range)) return fail(CAUSALATTN_ERROR_ALIASING, "out overlaps " + name);
      if (lse != nullptr && overlap(part, lse_range)) return fail(CAUSALATTN_ERROR_ALIASING, "lse overlaps " + name);
    }
  }
  return {};
}

}  // namespace causalattn::detail
