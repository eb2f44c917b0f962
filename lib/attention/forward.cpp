// causalattn_forward_f32: validation, work decomposition over (batch, head, row block) and
// oneTBB scheduling. The only threaded layer; the kernels below it are single-threaded.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "attention/errors.hpp"
#include "attention/merge_row.hpp"
#include "attention/validate.hpp"
#include "causalattn/causalattn.h"
#include "dispatch/kernels.hpp"
#include "kernels/philox.hpp"
#include "parallel/parallel.hpp"

namespace causalattn {
namespace {

using detail::report;

using parallel::call_threads;

// One validated call: the arguments the tasks read.
struct Call {
  causalattn_attend_args args;
  const detail::SequenceLengths* lengths;
  bool causal;
  float scale;
  int64_t group;  // query heads per KV head
  uint32_t dropout_threshold;  // 0: no dropout; else p · 2^32
  float dropout_scale;         // 1 / (1 - p)
};

// Where sequence s's tensors start, resolved from the packed or padded forms.
struct Sequence {
  int64_t q_len, kv_len;
  int64_t window;      // 0 when the window hides nothing (window >= kv_len)
  int64_t q_batch;     // batch index of its queries in q and out, and their first token
  int64_t q_token;
  int64_t lse_offset;  // index of (head 0, query 0) in lse; heads are shape.q_len apart
  int64_t kv_batch, kv_token;  // its keys in k and v when contiguous
  const int32_t* pages;        // its block table row when paged
};

Sequence sequence(const Call& c, int64_t s) {
  const causalattn_attend_args& a = c.args;
  const causalattn_seq_lens* seq = a.seq_lens;
  Sequence r{};
  r.q_len = c.lengths->q[s];
  r.kv_len = c.lengths->kv[s];
  r.window = a.window < r.kv_len ? a.window : 0;
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

const float* query_row(const Call& c, const Sequence& q, int64_t head, int64_t t) {
  const causalattn_layout& l = c.args.q_layout;
  return c.args.q + q.q_batch * l.batch + head * l.head + (q.q_token + t) * l.token;
}

float* out_row(const Call& c, const Sequence& q, int64_t head, int64_t t) {
  const causalattn_layout& l = c.args.out_layout;
  return c.args.out + q.q_batch * l.batch + head * l.head + (q.q_token + t) * l.token;
}

float* lse_at(const Call& c, const Sequence& q, int64_t head, int64_t t) {
  return c.args.options.lse != nullptr ? c.args.options.lse + q.lse_offset + head * c.args.shape.q_len + t : nullptr;
}

kernels::KvRows kv_rows(const Call& c, const Sequence& q, int64_t kv_head, const float* data,
                        const causalattn_layout& l) {
  if (q.pages != nullptr) return {data + kv_head * l.head, l.token, q.pages, c.args.pages->page_tokens, l.batch};
  return {data + q.kv_batch * l.batch + kv_head * l.head + q.kv_token * l.token, l.token, nullptr, 0, 0};
}

// Decode (few queries per KV head): a unit is up to kDecodeRows rows, the queries of `heads`
// consecutive query heads of one KV head; its keys are cut into chunks of kDecodeChunkKeys at
// fixed positions (multiples of the chunk size: sizes alone decide them), computed in parallel
// into partial results, then merged in chunk order.
constexpr int64_t kDecodeChunkKeys = 1024;

// (The decode kernel has no dropout: with it, short sequences take the row-block kernel.)
bool is_decode(const Call& c, const Sequence& q) {
  return q.q_len >= 1 && q.q_len <= kernels::kDecodeRows && c.dropout_threshold == 0;
}

struct DecodeSpan {
  int64_t first_key;    // the lowest key any row sees
  int64_t first_chunk;  // first_key / kDecodeChunkKeys
  int64_t chunks;
};

// (A window implies causal masking: validation refuses it otherwise.)
DecodeSpan decode_span(const Sequence& q) {
  DecodeSpan d{};
  d.first_key = q.window > 0 ? std::max<int64_t>(0, q.kv_len - q.q_len - q.window + 1) : 0;
  d.first_chunk = d.first_key / kDecodeChunkKeys;
  d.chunks = q.kv_len > d.first_key ? (q.kv_len + kDecodeChunkKeys - 1) / kDecodeChunkKeys - d.first_chunk : 0;
  return d;
}

// Query heads per decode unit.
int64_t decode_unit_heads(const Call& c, const Sequence& q) {
  return std::min<int64_t>(c.group, kernels::kDecodeRows / q.q_len);
}

// A piece of work. Phase 1 runs row groups and decode chunks; phase 2 merges decode chunks.
struct Task {
  enum Kind : int32_t { kRowGroups, kDecodeChunk, kDecodeMerge };
  Kind kind;
  int64_t seq;
  int64_t head;     // kRowGroups: the query head; decode: the unit's first query head
  int64_t heads;    // decode: query heads in the unit (they share one KV head)
  int64_t index;    // kRowGroups: the group pair; kDecodeChunk: the chunk, from the span's first
  int64_t scratch;  // decode: float offset of the unit's partials in the scratch buffer
};

// How row blocks become tasks: groups of consecutive row blocks of one (sequence, query head),
// and a task takes groups g and n-1-g. Causal row block r costs r + 1 tiles, so pairing makes
// every task cost about the same. Larger groups reuse each K/V chunk more; smaller ones give more
// tasks: aim for 8 tasks per thread. The grouping never changes the bits (each block walks its
// tiles in the same order).
constexpr int64_t kMaxGroup = 8;

struct Plan {
  std::vector<Task>* tasks;  // phase 1 in [0, phase1_end), phase 2 after
  int64_t phase1_end;
  int64_t blocks_per_group;
  int64_t scratch_floats;
};

int64_t row_blocks(const Sequence& q, int rows) { return (q.q_len + rows - 1) / rows; }

Plan make_plan(const Call& c, int rows, int threads) {
  thread_local std::vector<Task> tasks;  // reused: a steady stream of calls does not allocate
  tasks.clear();
  const causalattn_shape& s = c.args.shape;
  int64_t blocks = 0;
  for (int64_t b = 0; b < s.batch; ++b) {
    const Sequence q = sequence(c, b);
    if (!is_decode(c, q)) blocks += s.q_heads * row_blocks(q, rows);
  }
  Plan plan{&tasks, 0, std::clamp<int64_t>(blocks / (8 * static_cast<int64_t>(threads)), 1, kMaxGroup), 0};
  for (int64_t b = 0; b < s.batch; ++b) {
    const Sequence q = sequence(c, b);
    if (q.q_len == 0 || is_decode(c, q)) continue;
    const int64_t groups = (row_blocks(q, rows) + plan.blocks_per_group - 1) / plan.blocks_per_group;
    for (int64_t h = 0; h < s.q_heads; ++h)
      for (int64_t pair = 0; pair < (groups + 1) / 2; ++pair) tasks.push_back({Task::kRowGroups, b, h, 1, pair, 0});
  }
  // Decode units: their chunks in phase 1, their merges (one per unit, also for a unit with no
  // keys, whose rows still get a result) in phase 2.
  thread_local std::vector<Task> merges;
  merges.clear();
  for (int64_t b = 0; b < s.batch; ++b) {
    const Sequence q = sequence(c, b);
    if (!is_decode(c, q)) continue;
    const DecodeSpan span = decode_span(q);
    const int64_t unit_heads = decode_unit_heads(c, q);
    // Units never cross a KV head: each group is cut on its own, its last unit maybe shorter.
    for (int64_t h = 0, heads = 0; h < s.q_heads; h += heads) {
      const int64_t group_end = (h / c.group + 1) * c.group;
      heads = std::min(unit_heads, group_end - h);
      for (int64_t chunk = 0; chunk < span.chunks; ++chunk) {
        tasks.push_back({Task::kDecodeChunk, b, h, heads, chunk, plan.scratch_floats});
      }
      merges.push_back({Task::kDecodeMerge, b, h, heads, 0, plan.scratch_floats});
      plan.scratch_floats += span.chunks * heads * q.q_len * (s.head_dim + 1);
    }
  }
  plan.phase1_end = static_cast<int64_t>(tasks.size());
  tasks.insert(tasks.end(), merges.begin(), merges.end());
  return plan;
}

// Where a task's kernel workspace lives: one slot per thread that can run tasks of the call, in
// the caller's buffer, or else in the thread's own buffer.
struct Workspace {
  std::byte* base = nullptr;  // 64-byte aligned, slots × slot_bytes; nullptr: the thread's own buffer
  std::size_t slot_bytes = 0;
  int slots = 0;
  float* scratch = nullptr;   // decode partials

  float* slot(int index, std::size_t floats) const {
    if (base == nullptr) return parallel::thread_buffer<struct KernelWorkspace>(floats);
    if (index < 0 || index >= slots) throw std::logic_error("workspace slot out of range");
    return reinterpret_cast<float*>(base + index * slot_bytes);
  }
};

std::size_t slot_floats(const kernels::KernelInfo& kernel, int64_t head_dim) {
  return std::max(kMaxGroup * kernel.workspace_floats(head_dim), kernel.decode_workspace_floats(head_dim));
}

std::size_t slot_bytes(const kernels::KernelInfo& kernel, int64_t head_dim) {
  return (slot_floats(kernel, head_dim) * sizeof(float) + 63) / 64 * 64;
}

// The bytes a caller's workspace needs: a slot per thread, the decode partials, room to align.
std::size_t workspace_bytes(const kernels::KernelInfo& kernel, int64_t head_dim, int threads, int64_t scratch_floats) {
  return static_cast<std::size_t>(threads) * slot_bytes(kernel, head_dim) +
         static_cast<std::size_t>(scratch_floats) * sizeof(float) + 63;
}

void run_row_groups(const kernels::KernelInfo& kernel, const Call& c, const Plan& plan, const Task& task,
                    float* workspace) {
  const causalattn_shape& s = c.args.shape;
  const Sequence q = sequence(c, task.seq);
  const int64_t head = task.head, kv_head = head / c.group;
  const std::size_t block_floats = kernel.workspace_floats(s.head_dim);
  const int64_t blocks = row_blocks(q, kernel.rows);
  const int64_t groups = (blocks + plan.blocks_per_group - 1) / plan.blocks_per_group;

  kernels::RowBlockArgs common{};
  common.q_stride = c.args.q_layout.token;
  common.k = kv_rows(c, q, kv_head, c.args.k, c.args.k_layout);
  common.v = kv_rows(c, q, kv_head, c.args.v, c.args.v_layout);
  common.out_stride = c.args.out_layout.token;
  common.kv_len = q.kv_len;
  common.causal_offset = q.kv_len - q.q_len;
  common.causal = c.causal;
  common.window = q.window;
  common.head_dim = s.head_dim;
  common.scale = c.scale;
  common.dropout_threshold = c.dropout_threshold;
  common.dropout_scale = c.dropout_scale;
  common.dropout_seed = c.args.dropout.seed;
  common.sequence = static_cast<uint32_t>(task.seq);
  common.head = static_cast<uint32_t>(head);

  const int64_t group_ids[2] = {task.index, groups - 1 - task.index};
  for (int g = 0; g < (group_ids[0] == group_ids[1] ? 1 : 2); ++g) {
    kernels::RowBlockArgs block_args[kMaxGroup];
    int count = 0;
    const int64_t first = group_ids[g] * plan.blocks_per_group;
    for (int64_t block = first; block < std::min(first + plan.blocks_per_group, blocks); ++block) {
      kernels::RowBlockArgs& a = block_args[count];
      a = common;
      a.q_begin = block * kernel.rows;
      a.q_count = std::min<int64_t>(q.q_len - a.q_begin, kernel.rows);
      a.q = query_row(c, q, head, a.q_begin);
      a.out = out_row(c, q, head, a.q_begin);
      a.lse = lse_at(c, q, head, a.q_begin);
      a.workspace = workspace + count * block_floats;
      ++count;
    }
    kernel.row_blocks(block_args, count);
  }
}

// Row r of a decode unit is query t = r % q_len of query head task.head + r / q_len.
void run_decode_chunk(const kernels::KernelInfo& kernel, const Call& c, const Task& task, float* workspace,
                      float* scratch) {
  const Sequence q = sequence(c, task.seq);
  const DecodeSpan span = decode_span(q);
  const int64_t D = c.args.shape.head_dim, rows = task.heads * q.q_len;
  kernels::DecodeArgs a{};
  a.rows = static_cast<int>(rows);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t t = r % q.q_len, position = t + q.kv_len - q.q_len;
    a.q[r] = query_row(c, q, task.head + r / q.q_len, t);
    a.last_key[r] = c.causal ? position : q.kv_len - 1;
    a.first_key[r] = q.window > 0 ? position - q.window + 1 : 0;
  }
  const int64_t kv_head = task.head / c.group;
  a.k = kv_rows(c, q, kv_head, c.args.k, c.args.k_layout);
  a.v = kv_rows(c, q, kv_head, c.args.v, c.args.v_layout);
  a.j_begin = std::max(span.first_key, (span.first_chunk + task.index) * kDecodeChunkKeys);
  a.j_end = std::min(q.kv_len, (span.first_chunk + task.index + 1) * kDecodeChunkKeys);
  a.head_dim = D;
  a.scale = c.scale;
  a.out = scratch + task.scratch + task.index * rows * D;
  a.lse = scratch + task.scratch + span.chunks * rows * D + task.index * rows;
  a.workspace = workspace;
  kernel.decode_chunk(a);
}

void run_decode_merge(const Call& c, const Task& task, const float* scratch) {
  const Sequence q = sequence(c, task.seq);
  const int64_t chunks = decode_span(q).chunks;
  const int64_t D = c.args.shape.head_dim, rows = task.heads * q.q_len;
  const float* outs = scratch + task.scratch;
  const float* lses = outs + chunks * rows * D;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t head = task.head + r / q.q_len, t = r % q.q_len;
    detail::merge_row(
        chunks, [&](int64_t p) { return lses[p * rows + r]; }, [&](int64_t p) { return outs + (p * rows + r) * D; },
        D, out_row(c, q, head, t), lse_at(c, q, head, t));
  }
}

void run_task(const kernels::KernelInfo& kernel, const Call& c, const Plan& plan, const Workspace& ws, int slot,
              const Task& task) {
  switch (task.kind) {
    case Task::kRowGroups:
      return run_row_groups(kernel, c, plan, task, ws.slot(slot, slot_floats(kernel, c.args.shape.head_dim)));
    case Task::kDecodeChunk:
      return run_decode_chunk(kernel, c, task, ws.slot(slot, slot_floats(kernel, c.args.shape.head_dim)), ws.scratch);
    case Task::kDecodeMerge:
      return run_decode_merge(c, task, ws.scratch);
  }
}

// Runs tasks [begin, end) of the plan, in parallel when there are threads and tasks for it.
void run_tasks(const kernels::KernelInfo& kernel, const Call& c, const Plan& plan, const Workspace& ws,
               int num_threads, int64_t begin, int64_t end) {
  const std::vector<Task>& tasks = *plan.tasks;
  parallel::for_each_task(num_threads, begin, end,
                          [&](int slot, int64_t i) { run_task(kernel, c, plan, ws, slot, tasks[i]); });
}

// The call's tasks: row groups and decode chunks, then the merges of the decode chunks.
// user_workspace: nullptr, or workspace_bytes(...) bytes for this plan.
void run(const Call& c, const Plan& plan, int num_threads, void* user_workspace) {
  const kernels::KernelInfo& kernel = dispatch::attention_kernel();
  const int threads = call_threads(num_threads);
  Workspace ws;
  if (user_workspace != nullptr) {
    const auto address = reinterpret_cast<std::uintptr_t>(user_workspace);
    ws.base = static_cast<std::byte*>(user_workspace) + ((64 - address % 64) % 64);
    ws.slot_bytes = slot_bytes(kernel, c.args.shape.head_dim);
    ws.slots = threads;
    ws.scratch = reinterpret_cast<float*>(ws.base + threads * ws.slot_bytes);
  } else if (plan.scratch_floats > 0) {
    ws.scratch = parallel::thread_buffer<struct DecodePartials>(static_cast<std::size_t>(plan.scratch_floats));
  }
  run_tasks(kernel, c, plan, ws, num_threads, 0, plan.phase1_end);
  run_tasks(kernel, c, plan, ws, num_threads, plan.phase1_end, static_cast<int64_t>(plan.tasks->size()));
}

// Validates and resolves a call: the sequence lengths (kept per thread, reused) and the plan.
int prepare(const causalattn_attend_args& args, bool with_tensors, Call* call, Plan* plan) {
  thread_local detail::SequenceLengths lengths;
  if (detail::Problem problem = detail::validate_attend(args, with_tensors, &lengths)) {
    return report(problem.status, std::move(problem.message));
  }
  const float scale = args.options.scale != 0.0f ? args.options.scale
                                                 : 1.0f / std::sqrt(static_cast<float>(args.shape.head_dim));
  const detail::DropoutRule dropout = detail::dropout_rule(args.dropout.p);
  *call = Call{args, &lengths, (args.options.flags & CAUSALATTN_NON_CAUSAL) == 0, scale,
               args.shape.q_heads / args.shape.kv_heads, dropout.threshold, dropout.scale};
  *plan = make_plan(*call, dispatch::attention_kernel().rows, call_threads(args.options.num_threads));
  return CAUSALATTN_OK;
}

int attend(const causalattn_attend_args* args) {
  if (args == nullptr) return report(CAUSALATTN_ERROR_NULL_POINTER, "args is NULL");
  return detail::guarded([&] {
    Call call{};
    Plan plan{};
    if (int status = prepare(*args, true, &call, &plan)) return status;
    if (args->workspace != nullptr) {
      const std::size_t needed = workspace_bytes(dispatch::attention_kernel(), args->shape.head_dim,
                                                 call_threads(args->options.num_threads), plan.scratch_floats);
      if (args->workspace_size < needed) {
        return report(CAUSALATTN_ERROR_INVALID_OPTION,
                      "workspace of " + std::to_string(args->workspace_size) + " bytes is smaller than the " +
                          std::to_string(needed) + " this call needs (causalattn_attend_workspace_size)");
      }
    }
    run(call, plan, args->options.num_threads, args->workspace);
    return static_cast<int>(CAUSALATTN_OK);
  });
}

int attend_workspace_size(const causalattn_attend_args* args, size_t* bytes) {
  if (args == nullptr) return report(CAUSALATTN_ERROR_NULL_POINTER, "args is NULL");
  if (bytes == nullptr) return report(CAUSALATTN_ERROR_NULL_POINTER, "bytes is NULL");
  return detail::guarded([&] {
    Call call{};
    Plan plan{};
    if (int status = prepare(*args, false, &call, &plan)) return status;
    *bytes = workspace_bytes(dispatch::attention_kernel(), args->shape.head_dim,
                             call_threads(args->options.num_threads), plan.scratch_floats);
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

}  // namespace
}  // namespace causalattn

extern "C" {

int causalattn_attend_f32(const causalattn_attend_args* args) { return causalattn::attend(args); }

int causalattn_attend_workspace_size(const causalattn_attend_args* args, size_t* bytes) {
  return causalattn::attend_workspace_size(args, bytes);
}

int causalattn_forward_f32(const causalattn_shape* shape, const float* q, causalattn_layout q_layout,
                           const float* k, causalattn_layout k_layout, const float* v,
                           causalattn_layout v_layout, float* out, causalattn_layout out_layout,
                           const causalattn_options* options) {
  if (shape == nullptr) return causalattn::detail::report(CAUSALATTN_ERROR_NULL_POINTER, "shape is NULL");
  const causalattn_attend_args args =
      causalattn::forward_args(shape, q, q_layout, k, k_layout, v, v_layout, out, out_layout, options);
  return causalattn::attend(&args);
}

int causalattn_forward_f32_with_workspace(const causalattn_shape* shape, const float* q,
                                          causalattn_layout q_layout, const float* k, causalattn_layout k_layout,
                                          const float* v, causalattn_layout v_layout, float* out,
                                          causalattn_layout out_layout, const causalattn_options* options,
                                          void* workspace, size_t workspace_size) {
  using namespace causalattn;
  if (shape == nullptr) return detail::report(CAUSALATTN_ERROR_NULL_POINTER, "shape is NULL");
  if (workspace == nullptr) return detail::report(CAUSALATTN_ERROR_NULL_POINTER, "workspace is NULL");
  causalattn_attend_args args = forward_args(shape, q, q_layout, k, k_layout, v, v_layout, out, out_layout, options);
  args.workspace = workspace;
  args.workspace_size = workspace_size;
  return attend(&args);
}

int causalattn_workspace_size(const causalattn_shape* shape, const causalattn_options* options, size_t* bytes) {
  using namespace causalattn;
  if (shape == nullptr) return detail::report(CAUSALATTN_ERROR_NULL_POINTER, "shape is NULL");
  causalattn_attend_args args{};
  args.shape = *shape;
  if (options != nullptr) args.options = *options;
  return attend_workspace_size(&args, bytes);
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

const char* causalattn_isa(void) { return causalattn::dispatch::attention_kernel().isa; }

int causalattn_set_isa(const char* name) {
  using namespace causalattn;
  if (name == nullptr || name[0] == '\0') {
    dispatch::select(nullptr);
    return CAUSALATTN_OK;
  }
  const kernels::KernelInfo* kernel = dispatch::find_supported(name);
  if (kernel == nullptr) {
    return report(CAUSALATTN_ERROR_UNSUPPORTED,
                  std::string("ISA \"") + name + "\" is unknown or not supported by this CPU (known: avx512, avx2, sse2)");
  }
  dispatch::select(kernel);
  return CAUSALATTN_OK;
}

const char* causalattn_version(void) { return CAUSALATTN_VERSION_STRING; }

}  // extern "C"
