// Argument checks of causalattn_attend_f32 (and so causalattn_forward_f32) and causalattn_merge_f32:
// pointers, sizes, sequence lengths, block tables, strides, overflow, aliasing.
#include "attention/validate.hpp"

#include "common/dtype.hpp"
#include "common/spans.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

namespace causalattn::detail {
namespace {

Problem fail(causalattn_status status, std::string message) { return {status, std::move(message)}; }

// Units a [batch][heads][tokens][row_units] tensor spans through its layout, or -1.
int64_t span_elements(int64_t batch, int64_t heads, int64_t tokens, int64_t row_units, causalattn_layout layout,
                      int64_t unit_bytes) {
  return detail::span_elements({{batch, layout.batch}, {heads, layout.head}, {tokens, layout.token}}, row_units,
                               unit_bytes);
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

// A tensor's layout, in units of its dtype (row_units per head_dim row); *span gets its units.
Problem check_layout(const std::string& name, int64_t batch, int64_t heads, int64_t tokens, int64_t row_units,
                     causalattn_layout layout, int64_t* span, Dtype dtype = Dtype::kF32) {
  if (layout.batch < 0 || layout.head < 0 || layout.token < 0) {
    return fail(CAUSALATTN_ERROR_INVALID_LAYOUT,
                name + "_layout has a negative stride (batch " + std::to_string(layout.batch) +
                    ", head " + std::to_string(layout.head) + ", token " + std::to_string(layout.token) + ")");
  }
  for (const int64_t stride : {layout.batch, layout.head, layout.token}) {
    if (stride > INT64_MAX / unit_bytes(dtype)) {
      return fail(CAUSALATTN_ERROR_INVALID_LAYOUT, name + "_layout: a stride of " + std::to_string(stride) +
                                                       " overflows int64 in bytes");
    }
  }
  *span = span_elements(batch, heads, tokens, row_units, layout, unit_bytes(dtype));
  if (*span < 0) {
    return fail(CAUSALATTN_ERROR_INVALID_LAYOUT, name + "_layout: the offset of the last element overflows int64");
  }
  return {};
}

// The dtype of one tensor: in the enum, allowed for it, its head_dim whole blocks (q8_0).
Problem check_dtype(const char* name, int32_t dtype /* raw_dtype */, bool quantized_allowed, int64_t head_dim) {
  if (dtype < CAUSALATTN_DTYPE_F32 || dtype > CAUSALATTN_DTYPE_Q8_0) {
    return fail(CAUSALATTN_ERROR_INVALID_OPTION,
                std::string(name) + " = " + std::to_string(dtype) + " is not a causalattn_dtype");
  }
  if (dtype == CAUSALATTN_DTYPE_Q8_0 && !quantized_allowed) {
    return fail(CAUSALATTN_ERROR_UNSUPPORTED, std::string(name) + " is Q8_0, which only K and V take");
  }
  if (dtype == CAUSALATTN_DTYPE_Q8_0 && head_dim % kQ8Block != 0) {
    return fail(CAUSALATTN_ERROR_INVALID_SHAPE, std::string(name) + " is Q8_0, which needs head_dim a multiple of 32, got " +
                                                    std::to_string(head_dim));
  }
  return {};
}

// A tensor's address aligned for its dtype.
Problem check_alignment(const char* name, const void* data, Dtype dtype) {
  if (reinterpret_cast<uintptr_t>(data) % static_cast<uintptr_t>(dtype_alignment(dtype)) != 0) {
    return fail(CAUSALATTN_ERROR_INVALID_LAYOUT, std::string(name) + " is not aligned to " +
                                                     std::to_string(dtype_alignment(dtype)) + " bytes, as " +
                                                     dtype::name(dtype) + " needs");
  }
  return {};
}

// Each sequence's length from one of the three forms (packed cu_lens, padded lens, or `uniform`
// for every sequence), checked against the capacity; `what` names the side ("q" or "kv").
// A uniform side leaves `out` empty.
Problem sequence_lengths(const char* what, const int64_t* cu_lens, const int64_t* lens, int64_t uniform,
                         int64_t batch, int64_t capacity, std::vector<int64_t>* out) {
  const std::string side(what);
  if (cu_lens != nullptr && lens != nullptr) {
    return fail(CAUSALATTN_ERROR_INVALID_SHAPE, "seq_lens: set cu_" + side + "_lens or " + side + "_lens, not both");
  }
  out->clear();
  if (cu_lens == nullptr && lens == nullptr) {
    if (uniform > capacity) {
      return fail(CAUSALATTN_ERROR_INVALID_SHAPE, "shape." + side + "_len = " + std::to_string(uniform) +
                                                      " is outside [0, " + std::to_string(capacity) + "]");
    }
    return {};
  }
  out->resize(static_cast<std::size_t>(batch));
  if (cu_lens != nullptr) {
    if (cu_lens[0] != 0) {
      return fail(CAUSALATTN_ERROR_INVALID_SHAPE,
                  "seq_lens->cu_" + side + "_lens[0] must be 0, got " + std::to_string(cu_lens[0]));
    }
    for (int64_t b = 0; b < batch; ++b) {
      if (cu_lens[b + 1] < cu_lens[b]) {
        return fail(CAUSALATTN_ERROR_INVALID_SHAPE, "seq_lens->cu_" + side + "_lens is not increasing at " +
                                                        std::to_string(b + 1) + " (" + std::to_string(cu_lens[b]) +
                                                        " then " + std::to_string(cu_lens[b + 1]) + ")");
      }
      (*out)[b] = cu_lens[b + 1] - cu_lens[b];
    }
    if (cu_lens[batch] > capacity) {
      return fail(CAUSALATTN_ERROR_INVALID_SHAPE, "seq_lens->cu_" + side + "_lens[batch] = " +
                                                      std::to_string(cu_lens[batch]) + " exceeds shape." + side +
                                                      "_len (" + std::to_string(capacity) + ")");
    }
    return {};
  }
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t len = lens != nullptr ? lens[b] : uniform;
    if (len < 0 || len > capacity) {
      return fail(CAUSALATTN_ERROR_INVALID_SHAPE, "seq_lens->" + side + "_lens[" + std::to_string(b) + "] = " +
                                                      std::to_string(len) + " is outside [0, " +
                                                      std::to_string(capacity) + "]");
    }
    (*out)[b] = len;
  }
  return {};
}

Problem check_pages(const causalattn_kv_pages& pages, int64_t batch, const SequenceLengths& lengths) {
  if (pages.block_table == nullptr) return fail(CAUSALATTN_ERROR_NULL_POINTER, "pages->block_table is NULL");
  if (pages.page_tokens <= 0 || pages.num_pages <= 0 || pages.block_table_stride <= 0 ||
      pages.page_tokens > CAUSALATTN_MAX_TOKENS) {
    return fail(CAUSALATTN_ERROR_INVALID_SHAPE,
                "pages: page_tokens (" + std::to_string(pages.page_tokens) + "), num_pages (" +
                    std::to_string(pages.num_pages) + ") and block_table_stride (" +
                    std::to_string(pages.block_table_stride) + ") must be positive, page_tokens at most " +
                    "CAUSALATTN_MAX_TOKENS (2^32)");
  }
  int64_t capacity = 0, entries = 0;
  if (__builtin_mul_overflow(pages.block_table_stride, pages.page_tokens, &capacity) ||
      __builtin_mul_overflow(pages.block_table_stride, batch, &entries)) {
    return fail(CAUSALATTN_ERROR_INVALID_SHAPE, "pages: the block table's size overflows int64");
  }
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t kv_len = lengths.kv_of(b);
    if (kv_len > capacity) {
      return fail(CAUSALATTN_ERROR_INVALID_SHAPE,
                  "sequence " + std::to_string(b) + " has " + std::to_string(kv_len) +
                      " keys, beyond its block table row's capacity of " + std::to_string(capacity) + " (" +
                      std::to_string(pages.block_table_stride) + " pages of " + std::to_string(pages.page_tokens) +
                      " tokens)");
    }
    const int32_t* row = pages.block_table + b * pages.block_table_stride;
    const int64_t used = kv_len / pages.page_tokens + (kv_len % pages.page_tokens != 0 ? 1 : 0);
    for (int64_t i = 0; i < used; ++i) {
      if (row[i] < 0 || row[i] >= pages.num_pages) {
        return fail(CAUSALATTN_ERROR_INVALID_SHAPE,
                    "pages->block_table[" + std::to_string(b) + "][" + std::to_string(i) + "] = " +
                        std::to_string(row[i]) + " is outside [0, num_pages = " + std::to_string(pages.num_pages) + ")");
      }
    }
  }
  return {};
}

// The model variants: sinks, softcap, ALiBi slopes, and offsets only with explicit positions.
Problem check_variants(const causalattn_attend_args& a, bool explicit_positions) {
  if (!(a.softcap == 0.0f || (a.softcap > 0.0f && std::isfinite(a.softcap)))) {
    return fail(CAUSALATTN_ERROR_INVALID_OPTION,
                "softcap must be 0 (none) or finite and > 0, got " + std::to_string(a.softcap));
  }
  // (Read only when given: q_heads may be any size the other checks let through.)
  for (int64_t h = 0; (a.sinks != nullptr || a.alibi_slopes != nullptr) && h < a.shape.q_heads; ++h) {
    if (a.sinks != nullptr && (std::isnan(a.sinks[h]) || a.sinks[h] == __builtin_inff())) {
      return fail(CAUSALATTN_ERROR_INVALID_OPTION, "sinks[" + std::to_string(h) + "] = " + std::to_string(a.sinks[h]) +
                                                       ": a sink logit must be finite, or -inf for none");
    }
    if (a.alibi_slopes != nullptr && !std::isfinite(a.alibi_slopes[h])) {
      return fail(CAUSALATTN_ERROR_INVALID_OPTION, "alibi_slopes[" + std::to_string(h) + "] = " +
                                                       std::to_string(a.alibi_slopes[h]) + " is not finite");
    }
  }
  if (!explicit_positions && (a.q_pos_offset != 0 || a.kv_pos_offset != 0 || has_sequence_offsets(a))) {
    return fail(CAUSALATTN_ERROR_INVALID_OPTION,
                "position offsets are set but options.flags lacks CAUSALATTN_EXPLICIT_POSITIONS");
  }
  return {};
}

}  // namespace

Problem validate_attend(const causalattn_attend_args& a, bool with_tensors, SequenceLengths* lengths) {
  if (with_tensors) {
    if (a.q == nullptr) return fail(CAUSALATTN_ERROR_NULL_POINTER, "q is NULL");
    if (a.k == nullptr) return fail(CAUSALATTN_ERROR_NULL_POINTER, "k is NULL");
    if (a.v == nullptr) return fail(CAUSALATTN_ERROR_NULL_POINTER, "v is NULL");
    if (a.out == nullptr) return fail(CAUSALATTN_ERROR_NULL_POINTER, "out is NULL");
  }

  const causalattn_shape& s = a.shape;
  const std::array<std::pair<const char*, int64_t>, 6> sizes = {{{"batch", s.batch}, {"q_heads", s.q_heads},
      {"kv_heads", s.kv_heads}, {"q_len", s.q_len}, {"kv_len", s.kv_len}, {"head_dim", s.head_dim}}};
  for (const auto& [name, size] : sizes) {
    if (size <= 0) {
      return fail(CAUSALATTN_ERROR_INVALID_SHAPE,
                  std::string("shape.") + name + " must be positive, got " + std::to_string(size));
    }
  }
  for (const auto& [name, size] : {std::pair{"q_len", s.q_len}, std::pair{"kv_len", s.kv_len}}) {
    if (size > CAUSALATTN_MAX_TOKENS) {
      return fail(CAUSALATTN_ERROR_INVALID_SHAPE, std::string("shape.") + name + " " + std::to_string(size) +
                                                      " exceeds CAUSALATTN_MAX_TOKENS (2^32)");
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
  if (a.head_dim_v < 0 || a.head_dim_v > CAUSALATTN_MAX_HEAD_DIM) {
    return fail(CAUSALATTN_ERROR_INVALID_SHAPE, "head_dim_v " + std::to_string(a.head_dim_v) +
                                                    " is outside [0 (head_dim), CAUSALATTN_MAX_HEAD_DIM = " +
                                                    std::to_string(CAUSALATTN_MAX_HEAD_DIM) + "]");
  }
  const int64_t head_dim_v = a.head_dim_v != 0 ? a.head_dim_v : s.head_dim;
  if (Problem p = check_dtype("q_dtype", raw_dtype(a.q_dtype), false, s.head_dim)) return p;
  if (Problem p = check_dtype("k_dtype", raw_dtype(a.k_dtype), true, s.head_dim)) return p;
  if (Problem p = check_dtype("v_dtype", raw_dtype(a.v_dtype), true, head_dim_v)) return p;
  if (Problem p = check_dtype("out_dtype", raw_dtype(a.out_dtype), false, head_dim_v)) return p;
  const Dtype q_dtype = static_cast<Dtype>(raw_dtype(a.q_dtype)), k_dtype = static_cast<Dtype>(raw_dtype(a.k_dtype));
  const Dtype v_dtype = static_cast<Dtype>(raw_dtype(a.v_dtype)), out_dtype = static_cast<Dtype>(raw_dtype(a.out_dtype));

  // The extents of the tensors as [batches][heads][tokens][head_dim]: packed sequences live in
  // batch 0, pages are batches of page_tokens tokens.
  const causalattn_seq_lens no_lens{};
  const causalattn_seq_lens& seq = a.seq_lens != nullptr ? *a.seq_lens : no_lens;
  if (a.pages != nullptr && seq.cu_kv_lens != nullptr) {
    return fail(CAUSALATTN_ERROR_INVALID_SHAPE, "paged keys take seq_lens->kv_lens, not cu_kv_lens");
  }
  const int64_t q_batches = seq.cu_q_lens != nullptr ? 1 : s.batch;
  const int64_t kv_batches = a.pages != nullptr ? a.pages->num_pages : seq.cu_kv_lens != nullptr ? 1 : s.batch;
  const int64_t kv_tokens = a.pages != nullptr ? a.pages->page_tokens : s.kv_len;
  const std::array<std::tuple<const char*, int64_t, int64_t, int64_t>, 2> tensors = {{
      {"Q and out", q_batches, s.q_heads, s.q_len}, {"K and V", kv_batches, s.kv_heads, kv_tokens}}};
  for (const auto& [name, batches, heads, tokens] : tensors) {
    int64_t count = 0;
    if (__builtin_mul_overflow(batches, heads, &count) || __builtin_mul_overflow(count, tokens, &count) ||
        __builtin_mul_overflow(count, std::max(s.head_dim, head_dim_v), &count)) {
      return fail(CAUSALATTN_ERROR_INVALID_SHAPE, std::string("the element count of ") + name + " overflows int64");
    }
  }

  const causalattn_options& options = a.options;
  if ((options.flags & ~(CAUSALATTN_NON_CAUSAL | kAlignmentFlags | CAUSALATTN_BATCH_INVARIANT)) != 0) {
    return fail(CAUSALATTN_ERROR_INVALID_OPTION, "options.flags has unknown bits: " + std::to_string(options.flags));
  }
  const bool causal = (options.flags & CAUSALATTN_NON_CAUSAL) == 0;
  const uint32_t alignment = options.flags & kAlignmentFlags;
  if (alignment == kAlignmentFlags) {
    return fail(CAUSALATTN_ERROR_INVALID_OPTION,
                "options.flags: CAUSALATTN_TOP_LEFT and CAUSALATTN_EXPLICIT_POSITIONS exclude each other");
  }
  if (Problem p = check_variants(a, alignment == CAUSALATTN_EXPLICIT_POSITIONS)) return p;
  if (!std::isfinite(options.scale)) {
    return fail(CAUSALATTN_ERROR_INVALID_OPTION, "options.scale must be finite (0 for 1/sqrt(head_dim))");
  }
  if (options.num_threads < 0) {
    return fail(CAUSALATTN_ERROR_INVALID_OPTION,
                "options.num_threads must be >= 0, got " + std::to_string(options.num_threads));
  }
  if (a.window < 0) return fail(CAUSALATTN_ERROR_INVALID_OPTION, "window must be >= 0, got " + std::to_string(a.window));
  if (a.window > 0 && !causal) {
    return fail(CAUSALATTN_ERROR_INVALID_OPTION, "a sliding window needs causal attention (flags without CAUSALATTN_NON_CAUSAL)");
  }

  const float p_drop = a.dropout.p;
  if (!(p_drop >= 0.0f && p_drop < 1.0f)) {
    return fail(CAUSALATTN_ERROR_INVALID_OPTION, "dropout.p must be in [0, 1), got " + std::to_string(p_drop));
  }
  if (p_drop > 0.0f && (options.flags & CAUSALATTN_BATCH_INVARIANT) != 0) {
    return fail(CAUSALATTN_ERROR_UNSUPPORTED,
                "dropout with CAUSALATTN_BATCH_INVARIANT: dropout's mask is drawn per sequence index and query index "
                "of the call, so it cannot be the same however the queries are batched");
  }
  // Dropout's counter words are 32-bit: sequence, head and query index, and key / 4.
  constexpr int64_t kWord = int64_t{1} << 32;
  if (p_drop > 0.0f && (s.batch >= kWord || s.q_heads >= kWord || s.q_len >= kWord || s.kv_len >= 4 * kWord)) {
    return fail(CAUSALATTN_ERROR_UNSUPPORTED, "dropout needs fewer than 2^32 sequences, heads and queries per sequence");
  }

  if (Problem p = sequence_lengths("q", seq.cu_q_lens, seq.q_lens, s.q_len, s.batch, s.q_len, &lengths->q)) return p;
  // Paged keys are bounded by each sequence's block table row (check_pages), not by shape.kv_len.
  const int64_t kv_capacity = a.pages != nullptr ? CAUSALATTN_MAX_TOKENS : s.kv_len;
  if (Problem p = sequence_lengths("kv", seq.cu_kv_lens, seq.kv_lens, s.kv_len, s.batch, kv_capacity, &lengths->kv)) {
    return p;
  }
  lengths->uniform_q = s.q_len;
  lengths->uniform_kv = s.kv_len;
  // (Uniform sequences are all alike: one check covers them.)
  for (int64_t b = 0; b < (lengths->uniform() && !has_sequence_offsets(a) ? 1 : s.batch); ++b) {
    const int64_t q_len = lengths->q_of(b), kv_len = lengths->kv_of(b);
    const std::string which = s.batch > 1 ? "sequence " + std::to_string(b) + ": " : std::string();
    if (causal && alignment == 0 && q_len > kv_len) {
      return fail(CAUSALATTN_ERROR_INVALID_SHAPE,
                  which + "causal attention aligned bottom-right needs q_len <= kv_len, got q_len " +
                      std::to_string(q_len) + " and kv_len " + std::to_string(kv_len) +
                      " (CAUSALATTN_TOP_LEFT or CAUSALATTN_EXPLICIT_POSITIONS align it otherwise)");
    }
    if (alignment == CAUSALATTN_EXPLICIT_POSITIONS) {
      for (const auto& [name, offset] : {std::pair{"q_pos_offset", q_pos_of(a, b)}, std::pair{"kv_pos_offset", kv_pos_of(a, b)}}) {
        if (offset < 0 || offset > CAUSALATTN_MAX_TOKENS) {
          return fail(CAUSALATTN_ERROR_INVALID_SHAPE, which + name + " = " + std::to_string(offset) +
                                                          " is outside [0, CAUSALATTN_MAX_TOKENS = 2^32]");
        }
      }
    }
    // Edge masks compare positions in float: exact below 2^24.
    const int64_t diagonal = diagonal_of(alignment, q_len, kv_len, q_pos_of(a, b), kv_pos_of(a, b));
    if (window_hides(a.window, q_len, kv_len, diagonal) && std::max(kv_len, a.window) >= (int64_t{1} << 24)) {
      return fail(CAUSALATTN_ERROR_UNSUPPORTED, which + "a sliding window over 2^24 or more keys is not supported");
    }
  }
  if (a.pages != nullptr) {
    if (Problem p = check_pages(*a.pages, s.batch, *lengths)) return p;
  }

  if (!with_tensors) return {};  // the layouts describe the tensors

  if (Problem p = check_alignment("q", a.q, q_dtype)) return p;
  if (Problem p = check_alignment("k", a.k, k_dtype)) return p;
  if (Problem p = check_alignment("v", a.v, v_dtype)) return p;
  if (Problem p = check_alignment("out", a.out, out_dtype)) return p;
  // Strides and rows in units of each tensor's dtype: elements, or q8_0 blocks.
  auto row_units = [&](Dtype t, int64_t dims) { return dims / unit_elements(t); };
  int64_t q_span = 0, k_span = 0, v_span = 0, out_span = 0;
  if (Problem p = check_layout("q", q_batches, s.q_heads, s.q_len, row_units(q_dtype, s.head_dim), a.q_layout, &q_span, q_dtype)) {
    return p;
  }
  if (Problem p = check_layout("k", kv_batches, s.kv_heads, kv_tokens, row_units(k_dtype, s.head_dim), a.k_layout, &k_span, k_dtype)) {
    return p;
  }
  if (Problem p = check_layout("v", kv_batches, s.kv_heads, kv_tokens, row_units(v_dtype, head_dim_v), a.v_layout, &v_span, v_dtype)) {
    return p;
  }
  if (Problem p = check_layout("out", q_batches, s.q_heads, s.q_len, row_units(out_dtype, head_dim_v), a.out_layout, &out_span,
                               out_dtype)) {
    return p;
  }
  if (!rows_disjoint(q_batches, s.q_heads, s.q_len, row_units(out_dtype, head_dim_v), a.out_layout)) {
    const causalattn_layout& l = a.out_layout;
    return fail(CAUSALATTN_ERROR_INVALID_LAYOUT,
                "out_layout: output rows overlap (strides batch " + std::to_string(l.batch) + ", head " +
                    std::to_string(l.head) + ", token " + std::to_string(l.token) + " with head_dim_v " +
                    std::to_string(head_dim_v) + ")");
  }
  auto range = [](const void* data, int64_t span, Dtype t) {
    return range_of(data, span, static_cast<std::size_t>(unit_bytes(t)));
  };
  const Range out_range = range(a.out, out_span, out_dtype);
  const Range no_range{};
  const std::array<std::pair<const char*, Range>, 5> inputs = {{{"q", range(a.q, q_span, q_dtype)},
      {"k", range(a.k, k_span, k_dtype)}, {"v", range(a.v, v_span, v_dtype)},
      {"sinks", a.sinks != nullptr ? range_of(a.sinks, s.q_heads, sizeof(float)) : no_range},
      {"alibi_slopes", a.alibi_slopes != nullptr ? range_of(a.alibi_slopes, s.q_heads, sizeof(float)) : no_range}}};
  for (const auto& [name, range] : inputs) {
    if (overlap(out_range, range)) {
      return fail(CAUSALATTN_ERROR_ALIASING, std::string("out overlaps ") + name + " (outputs must not alias inputs)");
    }
  }
  const Range lse_range =
      options.lse != nullptr ? range_of(options.lse, q_batches * s.q_heads * s.q_len, sizeof(float)) : Range{};
  if (options.lse != nullptr) {
    if (overlap(lse_range, out_range)) return fail(CAUSALATTN_ERROR_ALIASING, "options.lse overlaps out");
    for (const auto& [name, range] : inputs) {
      if (overlap(lse_range, range)) return fail(CAUSALATTN_ERROR_ALIASING, std::string("options.lse overlaps ") + name);
    }
  }
  if (a.workspace != nullptr) {
    const Range workspace = range_of(a.workspace, static_cast<int64_t>(std::min<std::size_t>(a.workspace_size, INT64_MAX)), 1);
    if (overlap(workspace, out_range)) return fail(CAUSALATTN_ERROR_ALIASING, "workspace overlaps out");
    if (overlap(workspace, lse_range)) return fail(CAUSALATTN_ERROR_ALIASING, "workspace overlaps options.lse");
    for (const auto& [name, range] : inputs) {
      if (overlap(workspace, range)) return fail(CAUSALATTN_ERROR_ALIASING, std::string("workspace overlaps ") + name);
    }
  }
  return {};
}

Problem validate_merge(const causalattn_shape* shape, const PartOf& part_of, int32_t count, const void* out,
                       causalattn_layout out_layout, int32_t out_dtype, const float* lse) {
  if (shape == nullptr) return fail(CAUSALATTN_ERROR_NULL_POINTER, "shape is NULL");
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
  if (s.head_dim > CAUSALATTN_MAX_HEAD_DIM) {
    return fail(CAUSALATTN_ERROR_INVALID_SHAPE, "shape.head_dim " + std::to_string(s.head_dim) +
                                                    " exceeds CAUSALATTN_MAX_HEAD_DIM (" +
                                                    std::to_string(CAUSALATTN_MAX_HEAD_DIM) + ")");
  }
  int64_t rows = 0;
  if (__builtin_mul_overflow(s.batch, s.q_heads, &rows) || __builtin_mul_overflow(rows, s.q_len, &rows) ||
      rows > INT64_MAX / static_cast<int64_t>(sizeof(float))) {
    return fail(CAUSALATTN_ERROR_INVALID_SHAPE, "the row count batch · q_heads · q_len overflows int64");
  }
  if (Problem p = check_dtype("out_dtype", out_dtype, false, s.head_dim)) return p;
  const Dtype out_type = static_cast<Dtype>(out_dtype);
  if (Problem p = check_alignment("out", out, out_type)) return p;
  int64_t out_span = 0;
  if (Problem p = check_layout("out", s.batch, s.q_heads, s.q_len, s.head_dim, out_layout, &out_span, out_type)) return p;
  if (!rows_disjoint(s.batch, s.q_heads, s.q_len, s.head_dim, out_layout)) {
    return fail(CAUSALATTN_ERROR_INVALID_LAYOUT, "out_layout: output rows overlap");
  }
  const Range out_range = range_of(out, out_span, static_cast<std::size_t>(unit_bytes(out_type)));
  const Range lse_range = lse != nullptr ? range_of(lse, rows, sizeof(float)) : Range{};
  if (lse != nullptr && overlap(lse_range, out_range)) return fail(CAUSALATTN_ERROR_ALIASING, "lse overlaps out");
  for (int32_t p = 0; p < count; ++p) {
    const std::string name = "parts[" + std::to_string(p) + "]";
    const causalattn_partial part = part_of(p);
    if (part.out == nullptr) return fail(CAUSALATTN_ERROR_NULL_POINTER, name + ".out is NULL");
    if (part.lse == nullptr) return fail(CAUSALATTN_ERROR_NULL_POINTER, name + ".lse is NULL");
    if (Problem problem = check_dtype((name + ".out_dtype").c_str(), raw_dtype(part.out_dtype), false, s.head_dim)) {
      return problem;
    }
    const Dtype part_type = static_cast<Dtype>(raw_dtype(part.out_dtype));
    if (Problem problem = check_alignment((name + ".out").c_str(), part.out, part_type)) return problem;
    int64_t span = 0;
    if (Problem problem =
            check_layout(name + ".out", s.batch, s.q_heads, s.q_len, s.head_dim, part.out_layout, &span, part_type)) {
      return problem;
    }
    for (const Range read : {range_of(part.out, span, static_cast<std::size_t>(unit_bytes(part_type))),
                             range_of(part.lse, rows, sizeof(float))}) {
      if (overlap(read, out_range)) return fail(CAUSALATTN_ERROR_ALIASING, "out overlaps " + name);
      if (lse != nullptr && overlap(read, lse_range)) return fail(CAUSALATTN_ERROR_ALIASING, "lse overlaps " + name);
    }
  }
  return {};
}

}  // namespace causalattn::detail
