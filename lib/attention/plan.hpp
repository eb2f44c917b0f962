// The plan of one attend call: the call resolved once (kernel table, threads, scale, lengths),
// where each sequence's tensors start, and the tasks that compute it: row groups over
// (sequence, query head, row blocks), decode chunks and their merges. Sizes alone decide the plan,
// never the thread count, so its results are the same bits for every thread count.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "attention/validate.hpp"
#include "causalattn/causalattn.h"
#include "common/dtype.hpp"
#include "kernels/kernel_table.hpp"

namespace causalattn::attention {

// One validated call: the arguments the tasks read, and the kernel and thread count resolved
// once for the whole call (a causalattn_set_isa meanwhile does not mix two ISAs' blockings).
struct Call {
  const kernels::KernelTable* kernel;
  int num_threads;  // 0: the calling arena's; else the clamped count of options.num_threads
  int threads;      // call_threads(num_threads): the workspace slots
  causalattn_attend_args args;
  const detail::SequenceLengths* lengths;
  bool causal;
  float scale;
  int64_t group;  // query heads per KV head
  uint32_t dropout_threshold;  // 0: no dropout; else p · 2^32
  float dropout_scale;         // 1 / (1 - p)
  Dtype q_dtype, k_dtype, v_dtype, out_dtype;
  uint32_t alignment;  // 0 (bottom-right), CAUSALATTN_TOP_LEFT or CAUSALATTN_EXPLICIT_POSITIONS
  bool uniform;        // every sequence alike: uniform lengths, no per-sequence offsets
  int64_t head_dim_v;  // V's and out's head size (head_dim_v, or head_dim when 0)
  bool invariant;      // CAUSALATTN_BATCH_INVARIANT (docs/batch-invariance.md)
};

// Where sequence s's tensors start, resolved from the packed or padded forms.
struct Sequence {
  int64_t q_len, kv_len;
  int64_t diagonal;    // query i is at the position of key i + diagonal: causal, it sees keys
                       // j <= i + diagonal (kv_len - q_len bottom-right, 0 top-left, or the
                       // difference of the explicit offsets)
  bool adds_sink;      // its keys start at position 0, so the sink joins its rows' softmax
  int64_t window;      // 0 when the window hides no key from any query
  int64_t q_batch;     // batch index of its queries in q and out, and their first token
  int64_t q_token;
  int64_t lse_offset;  // index of (head 0, query 0) in lse; heads are shape.q_len apart
  int64_t kv_batch, kv_token;  // its keys in k and v when contiguous
  const int32_t* pages;        // its block table row when paged
};

inline Sequence sequence(const Call& c, int64_t s) {
  const causalattn_attend_args& a = c.args;
  const causalattn_seq_lens* seq = a.seq_lens;
  Sequence r{};
  r.q_len = c.lengths->q_of(s);
  r.kv_len = c.lengths->kv_of(s);
  r.diagonal = detail::diagonal_of(c.alignment, r.q_len, r.kv_len, detail::q_pos_of(a, s), detail::kv_pos_of(a, s));
  r.adds_sink = a.sinks != nullptr && (c.alignment != CAUSALATTN_EXPLICIT_POSITIONS || detail::kv_pos_of(a, s) == 0);
  r.window = detail::window_hides(a.window, r.q_len, r.kv_len, r.diagonal) ? a.window : 0;
  const bool packed_q = seq != nullptr && seq->cu_q_lens != nullptr;
  r.q_batch = packed_q ? 0 : s;
  r.q_token = packed_q ? seq->cu_q_lens[s] : 0;
  r.lse_offset = packed_q ? seq->cu_q_lens[s] : s * a.shape.q_heads * a.shape.q_len;
  const bool packed_kv = seq != nullptr && seq->cu_kv_lens != nullptr;
  r.kv_batch = packed_kv ? 0 : s;
  r.kv_token = packed_kv ? seq->cu_kv_lens[s] : 0;
  r.pages = a.pages != nullptr ? a.pages->block_table + s * a.pages->block_table_stride : nullptr;
  return r;
}

// Bytes from a tensor's start to row (batch, head, token), its strides counting units of t
// (validation checked that this fits int64).
inline int64_t row_offset(const causalattn_layout& l, Dtype t, int64_t batch, int64_t head, int64_t token) {
  return (batch * l.batch + head * l.head + token * l.token) * unit_bytes(t);
}

inline const std::byte* query_row(const Call& c, const Sequence& q, int64_t head, int64_t t) {
  return static_cast<const std::byte*>(c.args.q) + row_offset(c.args.q_layout, c.q_dtype, q.q_batch, head, q.q_token + t);
}

inline std::byte* out_row(const Call& c, const Sequence& q, int64_t head, int64_t t) {
  return static_cast<std::byte*>(c.args.out) + row_offset(c.args.out_layout, c.out_dtype, q.q_batch, head, q.q_token + t);
}

inline float* lse_at(const Call& c, const Sequence& q, int64_t head, int64_t t) {
  return c.args.options.lse != nullptr ? c.args.options.lse + q.lse_offset + head * c.args.shape.q_len + t : nullptr;
}

// Query head `head`'s sink logit where the sequence adds it, else -inf (none); its ALiBi slope, or 0.
inline float sink_of(const Call& c, const Sequence& q, int64_t head) {
  return q.adds_sink ? c.args.sinks[head] : -__builtin_inff();
}
inline float alibi_slope_of(const Call& c, int64_t head) {
  return c.args.alibi_slopes != nullptr ? c.args.alibi_slopes[head] : 0.0f;
}

inline kernels::KvRows kv_rows(const Call& c, const Sequence& q, int64_t kv_head, const void* data,
                               const causalattn_layout& l, Dtype t) {
  const auto* bytes = static_cast<const std::byte*>(data);
  const int64_t unit = unit_bytes(t);
  if (q.pages != nullptr) {
    return {bytes + row_offset(l, t, 0, kv_head, 0), l.token * unit, q.pages, c.args.pages->page_tokens,
            l.batch * unit, t, 0};
  }
  return {bytes + row_offset(l, t, q.kv_batch, kv_head, q.kv_token), l.token * unit, nullptr, 0, 0, t, 0};
}

// Decode (few queries per KV head): a unit is up to kDecodeRows rows, the queries of `heads`
// consecutive query heads of one KV head; its keys are cut into chunks of kDecodeChunkKeys at
// fixed positions (multiples of the chunk size: sizes alone decide them), computed in parallel
// into partial results, then merged in chunk order.
// In the batch-invariant mode the chunks are the mode's key splits, and the decode kernel is its
// own, with the row blocks' arithmetic (kernels/invariant_decode.hpp).
constexpr int64_t kDecodeChunkKeys = 1024;

inline int64_t chunk_keys(const Call& c) { return c.invariant ? CAUSALATTN_INVARIANT_SPLIT_KEYS : kDecodeChunkKeys; }

// (The decode kernel has no dropout: with it, short sequences take the row-block kernel.)
inline bool is_decode(const Call& c, const Sequence& q) {
  return q.q_len >= 1 && q.q_len <= kernels::kDecodeRows && c.dropout_threshold == 0;
}

struct DecodeSpan {
  int64_t first_key;    // the lowest key any row sees
  int64_t end_key;      // past the highest key any row sees
  int64_t first_chunk;  // first_key / chunk_keys(c)
  int64_t chunks;
};

// The keys a decode sequence's rows see, from its first query's window start to its last query's
// diagonal: chunks outside are never read. (A window implies causal masking.)
inline DecodeSpan decode_span(const Call& c, const Sequence& q) {
  DecodeSpan d{};
  d.end_key = c.causal ? std::clamp<int64_t>(q.q_len + q.diagonal, 0, q.kv_len) : q.kv_len;
  d.first_key = q.window > 0 ? std::clamp<int64_t>(q.diagonal - q.window + 1, 0, d.end_key) : 0;
  const int64_t n = chunk_keys(c);
  d.first_chunk = d.first_key / n;
  d.chunks = d.end_key > d.first_key ? (d.end_key + n - 1) / n - d.first_chunk : 0;
  return d;
}

// Query heads per decode unit.
inline int64_t decode_unit_heads(const Call& c, const Sequence& q) {
  return std::min<int64_t>(c.group, kernels::kDecodeRows / q.q_len);
}

// A piece of work. Phase 1 runs row groups and decode chunks; phase 2 merges each decode unit's
// chunks.
struct Task {
  enum Kind : int32_t { kRowGroups, kDecodeChunk };
  Kind kind;
  int64_t seq;
  int64_t head;     // kRowGroups: the query head; decode: the unit's first query head
  int64_t heads;    // decode: query heads in the unit (they share one KV head)
  int64_t index;    // kRowGroups: the group pair; kDecodeChunk: the chunk, from the span's first
                    // (in the plan's list: the phase-1 ordinal of the unit's first chunk)
  int64_t scratch;  // decode: float offset of the unit's partials in the scratch buffer
};

// How row blocks become tasks: groups of consecutive row blocks of one (sequence, query head),
// and a task takes groups g and n-1-g. Causal row block r costs r + 1 tiles, so pairing makes
// every task cost about the same. Larger groups reuse each K/V chunk more; smaller ones give more
// tasks: aim for 8 tasks per thread. The grouping never changes the bits (each block walks its
// tiles in the same order).
constexpr int64_t kMaxGroup = 8;

// tasks holds the row-group tasks, then one kDecodeChunk entry per decode unit (its `index` the
// phase-1 ordinal of its first chunk, counted unit after unit). Phase 1 runs ordinals [0,
// phase1_count): the row-group tasks, then every chunk of every unit, found from its ordinal (a
// sequence's chunks run chunk-major: run.cpp, phase1_task); a unit's chunks are not listed
// one by one, so the plan stays as small as the call's rows however many keys it has. Phase 2
// merges each unit (also a unit with no keys, whose rows still get a result).
struct Plan {
  std::vector<Task>* tasks;
  int64_t row_tasks, units, phase1_count;
  int64_t blocks_per_group;
  int64_t scratch_floats;
};

inline int64_t row_blocks(const Sequence& q, int rows) { return (q.q_len + rows - 1) / rows; }

// Groups of blocks_per_group row blocks in a (sequence, query head); a task takes two of them.
inline int64_t row_groups(const Sequence& q, int rows, int64_t blocks_per_group) {
  return (row_blocks(q, rows) + blocks_per_group - 1) / blocks_per_group;
}

// Builds the plan (build = false only sizes it, for causalattn_attend_workspace_size). Its tasks
// and decode partials are counted first, in overflow-checked arithmetic: a plan that would need
// more than half of the machine's memory is refused before anything is allocated (only sizes far
// past any real tensor get there, such as a stride-0 K standing for billions of keys). The task
// list is this thread's, reused from call to call.
detail::Problem make_plan(const Call& c, bool build, Plan* plan);

}  // namespace causalattn::attention
