// causalattn_attend_f32 and the entry points built on it (causalattn_forward_f32, the workspace
// queries): each sequence resolved from its lengths and layouts, the plan (row-group tasks over
// (sequence, head, row blocks), decode chunks and their merges), the workspaces, and the oneTBB
// run of the plan. The only threaded layer; the kernels below it are single-threaded.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <memory>
#include <new>
#include <stdexcept>
#include <initializer_list>
#include <string>
#include <vector>

#include <unistd.h>

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
  r.q_len = c.lengths->q_of(s);
  r.kv_len = c.lengths->kv_of(s);
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
// phase-1 ordinal of its first chunk), then the units' merges. Phase 1 runs ordinals
// [0, phase1_count): the row-group tasks, then every chunk of every unit, found from its
// ordinal; a unit's chunks are not listed one by one, so the plan stays as small as the call's
// rows however many keys it has.
struct Plan {
  std::vector<Task>* tasks;
  int64_t row_tasks, units, phase1_count;
  int64_t blocks_per_group;
  int64_t scratch_floats;
};

int64_t row_blocks(const Sequence& q, int rows) { return (q.q_len + rows - 1) / rows; }

// The machine's memory (read once: it is a system call): no plan may need half of it.
std::size_t physical_memory_bytes() {
  static const std::size_t bytes = [] {
    const long pages = sysconf(_SC_PHYS_PAGES), page_bytes = sysconf(_SC_PAGESIZE);
    return pages > 0 && page_bytes > 0 ? static_cast<std::size_t>(pages) * static_cast<std::size_t>(page_bytes)
                                       : SIZE_MAX;
  }();
  return bytes;
}

// *sum += the product of factors; false on int64 overflow.
bool add_product(int64_t* sum, std::initializer_list<int64_t> factors) {
  int64_t product = 1;
  for (int64_t f : factors) {
    if (__builtin_mul_overflow(product, f, &product)) return false;
  }
  return !__builtin_add_overflow(*sum, product, sum);
}

// Builds the plan. Its task list and decode partials are counted first: a plan that would not
// fit in the machine's memory is refused before anything is allocated (only sizes far past any
// real tensor get there, such as a stride-0 K standing for billions of keys).
// build = false sizes the plan without listing its tasks (for causalattn_attend_workspace_size).
detail::Problem make_plan(const Call& c, bool build, Plan* plan) {
  const int rows = c.kernel->rows;
  const causalattn_shape& s = c.args.shape;
  // Uniform sequences are all alike: the first one counts for all of them.
  const bool uniform = c.lengths->uniform();
  const int64_t counted = uniform ? 1 : s.batch, times = uniform ? s.batch : 1;
  int64_t blocks = 0, decode_tasks = 0, units = 0, scratch_floats = 0;
  bool fits = true;
  for (int64_t b = 0; b < counted && fits; ++b) {
    const Sequence q = sequence(c, b);
    if (!is_decode(c, q)) {
      fits = add_product(&blocks, {times, s.q_heads, row_blocks(q, rows)});
      continue;
    }
    const int64_t unit_heads = decode_unit_heads(c, q), chunks = decode_span(q).chunks;
    const int64_t sequence_units = s.kv_heads * ((c.group + unit_heads - 1) / unit_heads);
    fits = add_product(&units, {times, sequence_units}) && add_product(&decode_tasks, {times, sequence_units, chunks}) &&
           add_product(&scratch_floats, {times, s.q_heads, chunks, q.q_len, s.head_dim + 1});
  }
  const int64_t blocks_per_group = std::clamp<int64_t>(blocks / (8 * static_cast<int64_t>(c.threads)), 1, kMaxGroup);
  int64_t row_tasks = 0;
  for (int64_t b = 0; b < counted && fits; ++b) {
    const Sequence q = sequence(c, b);
    if (q.q_len == 0 || is_decode(c, q)) continue;
    const int64_t groups = (row_blocks(q, rows) + blocks_per_group - 1) / blocks_per_group;
    fits = add_product(&row_tasks, {times, s.q_heads, (groups + 1) / 2});
  }
  int64_t task_count = row_tasks, bytes = 0, phase1_count = row_tasks;
  fits = fits && !__builtin_add_overflow(task_count, 2 * units, &task_count) &&
         !__builtin_add_overflow(phase1_count, decode_tasks, &phase1_count) &&
         add_product(&bytes, {task_count, static_cast<int64_t>(sizeof(Task))}) &&
         add_product(&bytes, {scratch_floats, static_cast<int64_t>(sizeof(float))});
  if (!fits || static_cast<std::size_t>(bytes) > physical_memory_bytes() / 2) {
    return {CAUSALATTN_ERROR_INVALID_SHAPE,
            "the call's plan (its tasks and the partial results of its decode chunks) needs " +
                (fits ? std::to_string(bytes) + " bytes, more than half of this machine's memory"
                      : std::string("more than 2^63 bytes")) +
                ": the sizes ask for more keys than any tensor holds"};
  }

  thread_local std::vector<Task> tasks;  // reused: a steady stream of calls does not allocate
  *plan = Plan{&tasks, row_tasks, units, phase1_count, blocks_per_group, scratch_floats};
  // (Reserved also when only sized: a call with the caller's workspace on this thread then
  // allocates nothing.)
  tasks.clear();
  tasks.reserve(static_cast<std::size_t>(task_count));
  if (!build) return {};
  plan->scratch_floats = 0;
  for (int64_t b = 0; b < s.batch; ++b) {
    const Sequence q = sequence(c, b);
    if (q.q_len == 0 || is_decode(c, q)) continue;
    const int64_t groups = (row_blocks(q, rows) + blocks_per_group - 1) / blocks_per_group;
    for (int64_t h = 0; h < s.q_heads; ++h)
      for (int64_t pair = 0; pair < (groups + 1) / 2; ++pair) tasks.push_back({Task::kRowGroups, b, h, 1, pair, 0});
  }
  // Decode units: their chunks in phase 1, their merges (one per unit, also for a unit with no
  // keys, whose rows still get a result) in phase 2.
  int64_t first_chunk = row_tasks;
  for (int64_t b = 0; b < s.batch; ++b) {
    const Sequence q = sequence(c, b);
    if (!is_decode(c, q)) continue;
    const DecodeSpan span = decode_span(q);
    const int64_t unit_heads = decode_unit_heads(c, q);
    // Units never cross a KV head: each group is cut on its own, its last unit maybe shorter.
    for (int64_t h = 0, heads = 0; h < s.q_heads; h += heads) {
      const int64_t group_end = (h / c.group + 1) * c.group;
      heads = std::min(unit_heads, group_end - h);
      tasks.push_back({Task::kDecodeChunk, b, h, heads, first_chunk, plan->scratch_floats});
      first_chunk += span.chunks;
      plan->scratch_floats += span.chunks * heads * q.q_len * (s.head_dim + 1);
    }
  }
  for (int64_t u = 0; u < units; ++u) {
    Task merge = tasks[static_cast<std::size_t>(row_tasks + u)];
    merge.kind = Task::kDecodeMerge;
    tasks.push_back(merge);
  }
  return {};
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

std::size_t slot_floats(const kernels::KernelTable& kernel, int64_t head_dim) {
  return std::max(kMaxGroup * kernel.workspace_floats(head_dim), kernel.decode_workspace_floats(head_dim));
}

std::size_t slot_bytes(const kernels::KernelTable& kernel, int64_t head_dim) {
  return (slot_floats(kernel, head_dim) * sizeof(float) + 63) / 64 * 64;
}

// The bytes a caller's workspace needs: a slot per thread, the decode partials, room to align.
std::size_t workspace_bytes(const kernels::KernelTable& kernel, int64_t head_dim, int threads, int64_t scratch_floats) {
  return static_cast<std::size_t>(threads) * slot_bytes(kernel, head_dim) +
         static_cast<std::size_t>(scratch_floats) * sizeof(float) + 63;
}

void run_row_groups(const kernels::KernelTable& kernel, const Call& c, const Plan& plan, const Task& task,
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
void run_decode_chunk(const kernels::KernelTable& kernel, const Call& c, const Task& task, float* workspace,
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

void run_task(const kernels::KernelTable& kernel, const Call& c, const Plan& plan, const Workspace& ws, int slot,
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

// Phase 1 ordinal i: a row-group task, or chunk i - unit.index of the unit whose chunks hold i.
Task phase1_task(const Plan& plan, int64_t i) {
  const std::vector<Task>& tasks = *plan.tasks;
  if (i < plan.row_tasks) return tasks[static_cast<std::size_t>(i)];
  const auto units_begin = tasks.begin() + plan.row_tasks, units_end = units_begin + plan.units;
  Task chunk = *(std::upper_bound(units_begin, units_end, i, [](int64_t x, const Task& u) { return x < u.index; }) - 1);
  chunk.index = i - chunk.index;
  return chunk;
}

// Runs phase 1 (row groups and decode chunks), then phase 2 (the decode merges), each in
// parallel when there are threads and tasks for it.
void run_tasks(const Call& c, const Plan& plan, const Workspace& ws) {
  parallel::for_each_task(c.num_threads, 0, plan.phase1_count, [&](int slot, int64_t i) {
    run_task(*c.kernel, c, plan, ws, slot, phase1_task(plan, i));
  });
  const Task* merges = plan.tasks->data() + plan.row_tasks + plan.units;
  parallel::for_each_task(c.num_threads, 0, plan.units,
                          [&](int slot, int64_t u) { run_task(*c.kernel, c, plan, ws, slot, merges[u]); });
}

// The call's tasks: row groups and decode chunks, then the merges of the decode chunks.
// user_workspace: nullptr, or workspace_bytes(...) bytes for this plan.
void run(const Call& c, const Plan& plan, void* user_workspace) {
  Workspace ws;
  if (user_workspace != nullptr) {
    const auto address = reinterpret_cast<std::uintptr_t>(user_workspace);
    ws.base = static_cast<std::byte*>(user_workspace) + ((64 - address % 64) % 64);
    ws.slot_bytes = slot_bytes(*c.kernel, c.args.shape.head_dim);
    ws.slots = c.threads;
    ws.scratch = reinterpret_cast<float*>(ws.base + c.threads * ws.slot_bytes);
  } else if (plan.scratch_floats > 0) {
    ws.scratch = parallel::thread_buffer<struct DecodePartials>(static_cast<std::size_t>(plan.scratch_floats));
  }
  run_tasks(c, plan, ws);
}

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
               dropout.threshold, dropout.scale};
  if (detail::Problem problem = make_plan(*call, with_tensors, plan)) {
    return report(problem.status, std::move(problem.message));
  }
  return CAUSALATTN_OK;
}

// The bytes a caller's workspace needs for this call.
std::size_t workspace_bytes(const Call& c, const Plan& plan) {
  return workspace_bytes(*c.kernel, c.args.shape.head_dim, c.threads, plan.scratch_floats);
}

int attend(const causalattn_attend_args* args) {
  if (args == nullptr) return report(CAUSALATTN_ERROR_NULL_POINTER, "args is NULL");
  return detail::guarded([&] {
    Call call{};
    Plan plan{};
    if (int status = prepare(*args, true, &call, &plan)) return status;
    if (args->workspace != nullptr) {
      const std::size_t needed = workspace_bytes(call, plan);
      if (args->workspace_size < needed) {
        return report(CAUSALATTN_ERROR_INVALID_OPTION,
                      "workspace of " + std::to_string(args->workspace_size) + " bytes is smaller than the " +
                          std::to_string(needed) + " this call needs (causalattn_attend_workspace_size)");
      }
    }
    run(call, plan, args->workspace);
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

const char* causalattn_version(void) { return CAUSALATTN_VERSION_STRING; }

}  // extern "C"
