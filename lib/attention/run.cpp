#include "attention/run.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "attention/invariant.hpp"
#include "attention/merge_row.hpp"
#include "parallel/parallel.hpp"

namespace causalattn::attention {
namespace {

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

// Rows of a contiguous f32 K or V whose token stride is a multiple of 2 KiB (and not the row
// itself): a score block's 8 rows then fall into the same few L1 sets ([B, T, H, D] at H·D = 512
// or 1024 floats), and a contiguous copy of each chunk is faster (docs/performance.md).
bool aliases_in_l1(const causalattn_layout& l, int64_t head_dim, bool paged) {
  const int64_t stride = l.token * static_cast<int64_t>(sizeof(float));
  return !paged && stride % 2048 == 0 && stride != head_dim * static_cast<int64_t>(sizeof(float));
}

// Row groups copy K and V a chunk at a time into a group workspace: widened when not f32, or
// f32 rows that alias in L1.
bool copies_kv(const Call& c) {
  if (c.k_dtype != Dtype::kF32 || c.v_dtype != Dtype::kF32) return true;
  const bool paged = c.args.pages != nullptr;
  return aliases_in_l1(c.args.k_layout, c.args.shape.head_dim, paged) || aliases_in_l1(c.args.v_layout, c.head_dim_v, paged);
}

// A slot: the row blocks' workspaces (and the group's, with_group) or a decode chunk's; in the
// batch-invariant mode always the group's, then the split partials and merges of a row group.
std::size_t slot_floats(const Call& c, bool with_group) {
  const kernels::KernelTable& kernel = *c.kernel;
  const int64_t D = c.args.shape.head_dim, Dv = c.head_dim_v;
  if (c.invariant) {
    return std::max(kMaxGroup * kernel.workspace_floats(D, Dv) + kernel.group_workspace_floats(D, Dv) + invariant_merge_floats(c),
                    kernel.invariant_decode_workspace_floats(D, Dv));
  }
  const std::size_t group = with_group ? kernel.group_workspace_floats(D, Dv) : 0;
  return std::max(kMaxGroup * kernel.workspace_floats(D, Dv) + group, kernel.decode_workspace_floats(D, Dv));
}

// A caller's workspace is sized without the layouts (causalattn_attend_workspace_size does not
// read them), so its slots hold a group workspace whenever the call has row groups; a thread's
// own buffer only when the group copies K and V.
bool caller_slots_have_group(const Plan& plan) { return plan.row_tasks > 0; }

std::size_t slot_bytes(const Call& c, bool with_group) { return (slot_floats(c, with_group) * sizeof(float) + 63) / 64 * 64; }

// What every row block of (sequence seq, resolved as q, query head `head`) shares: its tensors' K
// and V rows, strides, dtypes, mask, variants (the block's rows, q, out, lse and workspace are left).
kernels::RowBlockArgs row_block_args(const Call& c, int64_t seq, const Sequence& q, int64_t head) {
  const causalattn_shape& s = c.args.shape;
  const int64_t kv_head = head / c.group;
  kernels::RowBlockArgs common{};
  common.q_stride = c.args.q_layout.token * unit_bytes(c.q_dtype);
  common.q_dtype = c.q_dtype;
  common.k = kv_rows(c, q, kv_head, c.args.k, c.args.k_layout, c.k_dtype);
  common.v = kv_rows(c, q, kv_head, c.args.v, c.args.v_layout, c.v_dtype);
  common.out_stride = c.args.out_layout.token * unit_bytes(c.out_dtype);
  common.out_dtype = c.out_dtype;
  common.kv_len = q.kv_len;
  common.diagonal = q.diagonal;
  common.causal = c.causal;
  common.window = q.window;
  common.head_dim = s.head_dim;
  common.head_dim_v = c.head_dim_v;
  common.scale = c.scale;
  common.copy_kv = copies_kv(c);
  common.dropout_threshold = c.dropout_threshold;
  common.dropout_scale = c.dropout_scale;
  common.dropout_seed = c.args.dropout.seed;
  common.sequence = static_cast<uint32_t>(seq);
  common.head = static_cast<uint32_t>(head);
  common.softcap = c.args.softcap;
  common.alibi_slope = alibi_slope_of(c, head);
  common.sink = sink_of(c, q, head);
  common.has_sink = common.sink != -__builtin_inff();  // (a sink of -inf is none)
  common.f32_products = c.invariant;
  return common;
}

void run_row_groups(const kernels::KernelTable& kernel, const Call& c, const Plan& plan, const Task& task,
                    float* workspace) {
  const causalattn_shape& s = c.args.shape;
  const Sequence q = sequence(c, task.seq);
  const int64_t head = task.head;
  const std::size_t block_floats = kernel.workspace_floats(s.head_dim, c.head_dim_v);
  float* const group_workspace = workspace + kMaxGroup * block_floats;
  const int64_t blocks = row_blocks(q, kernel.rows);
  const int64_t groups = row_groups(q, kernel.rows, plan.blocks_per_group);
  const kernels::RowBlockArgs common = row_block_args(c, task.seq, q, head);

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
    if (c.invariant) {
      run_invariant_blocks(c, q, block_args, count, group_workspace);
    } else {
      kernel.row_blocks(block_args, count, group_workspace);
    }
  }
}

// Row r of a decode unit is query t = r % q_len of query head task.head + r / q_len.
void run_decode_chunk(const kernels::KernelTable& kernel, const Call& c, const Task& task, float* workspace,
                      float* scratch) {
  const Sequence q = sequence(c, task.seq);
  const DecodeSpan span = decode_span(c, q);
  const int64_t D = c.args.shape.head_dim, Dv = c.head_dim_v, rows = task.heads * q.q_len;
  kernels::DecodeArgs a{};
  a.rows = static_cast<int>(rows);
  a.q_dtype = c.q_dtype;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t t = r % q.q_len, position = t + q.diagonal, head = task.head + r / q.q_len;
    a.q[r] = query_row(c, q, head, t);
    a.last_key[r] = c.causal ? std::min(position, q.kv_len - 1) : q.kv_len - 1;
    a.first_key[r] = q.window > 0 ? std::max<int64_t>(0, position - q.window + 1) : 0;
    a.position[r] = position;
    a.alibi_slope[r] = alibi_slope_of(c, head);
  }
  const int64_t kv_head = task.head / c.group;
  a.k = kv_rows(c, q, kv_head, c.args.k, c.args.k_layout, c.k_dtype);
  a.v = kv_rows(c, q, kv_head, c.args.v, c.args.v_layout, c.v_dtype);
  a.j_begin = std::max(span.first_key, (span.first_chunk + task.index) * chunk_keys(c));
  a.j_end = std::min(span.end_key, (span.first_chunk + task.index + 1) * chunk_keys(c));
  a.head_dim = D;
  a.head_dim_v = Dv;
  a.scale = c.scale;
  a.softcap = c.args.softcap;
  a.out = scratch + task.scratch + task.index * rows * Dv;
  a.lse = scratch + task.scratch + span.chunks * rows * Dv + task.index * rows;
  a.workspace = workspace;
  if (c.invariant) return kernel.invariant_decode_chunk(a);
  kernel.decode_chunk(a);
}

void run_decode_merge(const Call& c, const Task& task, const float* scratch) {
  const Sequence q = sequence(c, task.seq);
  const int64_t chunks = decode_span(c, q).chunks;
  const int64_t Dv = c.head_dim_v, rows = task.heads * q.q_len;
  const float* outs = scratch + task.scratch;
  const float* lses = outs + chunks * rows * Dv;
  float merged[CAUSALATTN_MAX_HEAD_DIM];
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t head = task.head + r / q.q_len, t = r % q.q_len;
    std::byte* out = out_row(c, q, head, t);
    float* merged_out = c.out_dtype == Dtype::kF32 ? reinterpret_cast<float*>(out) : merged;
    // The sink joins the merge of the row's chunks: once, however many there are.
    if (c.invariant) {
      float acc[CAUSALATTN_MAX_HEAD_DIM];
      detail::RunningMerge merge(acc, Dv);
      for (int64_t p = 0; p < chunks; ++p) merge.add(lses[p * rows + r], outs + (p * rows + r) * Dv);
      merge.finish(sink_of(c, q, head), merged_out, lse_at(c, q, head, t));
    } else {
      detail::merge_row(
          chunks, [&](int64_t p) { return lses[p * rows + r]; }, [&](int64_t p) { return outs + (p * rows + r) * Dv; },
          Dv, merged_out, lse_at(c, q, head, t), sink_of(c, q, head));
    }
    if (merged_out == merged) {
      for (int64_t d = 0; d < Dv; ++d) dtype::store_element<void>(out, c.out_dtype, d, merged[d]);
    }
  }
}

// A phase-1 task: a row group or a decode chunk.
void run_task(const kernels::KernelTable& kernel, const Call& c, const Plan& plan, const Workspace& ws, int slot,
              const Task& task) {
  float* const workspace = ws.slot(slot, slot_floats(c, plan.row_tasks > 0 && copies_kv(c)));
  if (task.kind == Task::kRowGroups) return run_row_groups(kernel, c, plan, task, workspace);
  run_decode_chunk(kernel, c, task, workspace, ws.scratch);
}

// Phase 1 ordinal i: a row-group task, or a decode chunk. A sequence's units hold the ordinals
// [base, base + units · chunks) (their `index`es, base the first's), which run chunk-major:
// ordinal base + c · units + u is chunk c of unit u. A thread then reads the KV heads of one
// stretch of keys close together in time, as a paged cache stores them ([page][head][token][D]);
// unit after unit, it read each head's rows across the whole cache (8 KiB runs 64 KiB apart in
// vLLM's 16-token pages), which memory serves more slowly (docs/performance.md, "Decode: the
// chunks of a sequence chunk-major"). The order never changes the bits: each chunk writes its
// own partial, and phase 2 merges them in chunk order.
Task phase1_task(const Plan& plan, int64_t i) {
  const std::vector<Task>& tasks = *plan.tasks;
  if (i < plan.row_tasks) return tasks[static_cast<std::size_t>(i)];
  const auto units_begin = tasks.begin() + plan.row_tasks, units_end = units_begin + plan.units;
  // The unit whose index range (unit-major) holds i is one of its sequence's, which has chunks.
  const auto unit = std::upper_bound(units_begin, units_end, i, [](int64_t x, const Task& u) { return x < u.index; }) - 1;
  const auto first = std::lower_bound(units_begin, unit, unit->seq, [](const Task& u, int64_t s) { return u.seq < s; });
  const auto end = std::upper_bound(unit, units_end, unit->seq, [](int64_t s, const Task& u) { return s < u.seq; });
  const int64_t units = end - first, local = i - first->index;
  Task chunk = first[local % units];
  chunk.index = local / units;
  return chunk;
}

// Runs phase 1 (row groups and decode chunks), then phase 2 (each decode unit's merge), each
// in parallel when there are threads and tasks for it.
void run_tasks(const Call& c, const Plan& plan, const Workspace& ws) {
  parallel::for_each_task(c.num_threads, 0, plan.phase1_count, [&](int slot, int64_t i) {
    run_task(*c.kernel, c, plan, ws, slot, phase1_task(plan, i));
  });
  const Task* units = plan.tasks->data() + plan.row_tasks;
  parallel::for_each_task(c.num_threads, 0, plan.units, [&](int, int64_t u) { run_decode_merge(c, units[u], ws.scratch); });
}

}  // namespace

void run(const Call& c, const Plan& plan, void* user_workspace) {
  Workspace ws;
  if (user_workspace != nullptr) {
    const auto address = reinterpret_cast<std::uintptr_t>(user_workspace);
    ws.base = static_cast<std::byte*>(user_workspace) + ((64 - address % 64) % 64);
    ws.slot_bytes = slot_bytes(c, caller_slots_have_group(plan));
    ws.slots = c.threads;
    ws.scratch = reinterpret_cast<float*>(ws.base + c.threads * ws.slot_bytes);
  } else if (plan.scratch_floats > 0) {
    ws.scratch = parallel::thread_buffer<struct DecodePartials>(static_cast<std::size_t>(plan.scratch_floats));
  }
  run_tasks(c, plan, ws);
}


std::size_t workspace_bytes(const Call& c, const Plan& plan) {
  return static_cast<std::size_t>(c.threads) * slot_bytes(c, caller_slots_have_group(plan)) +
         static_cast<std::size_t>(plan.scratch_floats) * sizeof(float) + 63;
}

}  // namespace causalattn::attention
