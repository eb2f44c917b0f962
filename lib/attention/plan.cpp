#include "attention/plan.hpp"

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <string>

#include <unistd.h>

namespace causalattn::attention {
namespace {

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

}  // namespace

detail::Problem make_plan(const Call& c, bool build, Plan* plan) {
  const int rows = c.kernel->rows;
  const causalattn_shape& s = c.args.shape;
  // Uniform sequences are all alike: the first one counts for all of them.
  const bool uniform = c.uniform;
  const int64_t counted = uniform ? 1 : s.batch, times = uniform ? s.batch : 1;
  int64_t blocks = 0, decode_tasks = 0, units = 0, scratch_floats = 0;
  bool fits = true;
  for (int64_t b = 0; b < counted && fits; ++b) {
    const Sequence q = sequence(c, b);
    if (!is_decode(c, q)) {
      fits = add_product(&blocks, {times, s.q_heads, row_blocks(q, rows)});
      continue;
    }
    const int64_t unit_heads = decode_unit_heads(c, q), chunks = decode_span(c, q).chunks;
    const int64_t sequence_units = s.kv_heads * ((c.group + unit_heads - 1) / unit_heads);
    fits = add_product(&units, {times, sequence_units}) && add_product(&decode_tasks, {times, sequence_units, chunks}) &&
           add_product(&scratch_floats, {times, s.q_heads, chunks, q.q_len, c.head_dim_v + 1});
  }
  const int64_t blocks_per_group = std::clamp<int64_t>(blocks / (8 * static_cast<int64_t>(c.threads)), 1, kMaxGroup);
  int64_t row_tasks = 0;
  for (int64_t b = 0; b < counted && fits; ++b) {
    const Sequence q = sequence(c, b);
    if (q.q_len == 0 || is_decode(c, q)) continue;
    fits = add_product(&row_tasks, {times, s.q_heads, (row_groups(q, rows, blocks_per_group) + 1) / 2});
  }
  int64_t task_count = row_tasks, bytes = 0, phase1_count = row_tasks;
  fits = fits && !__builtin_add_overflow(task_count, units, &task_count) &&
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
    const int64_t groups = row_groups(q, rows, blocks_per_group);
    for (int64_t h = 0; h < s.q_heads; ++h)
      for (int64_t pair = 0; pair < (groups + 1) / 2; ++pair) tasks.push_back({Task::kRowGroups, b, h, 1, pair, 0});
  }
  // Decode units: their chunks in phase 1, their merges in phase 2.
  int64_t first_chunk = row_tasks;
  for (int64_t b = 0; b < s.batch; ++b) {
    const Sequence q = sequence(c, b);
    if (!is_decode(c, q)) continue;
    const DecodeSpan span = decode_span(c, q);
    const int64_t unit_heads = decode_unit_heads(c, q);
    // Units never cross a KV head: each group is cut on its own, its last unit maybe shorter.
    for (int64_t h = 0, heads = 0; h < s.q_heads; h += heads) {
      const int64_t group_end = (h / c.group + 1) * c.group;
      heads = std::min(unit_heads, group_end - h);
      tasks.push_back({Task::kDecodeChunk, b, h, heads, first_chunk, plan->scratch_floats});
      first_chunk += span.chunks;
      plan->scratch_floats += span.chunks * heads * q.q_len * (c.head_dim_v + 1);
    }
  }
  return {};
}

}  // namespace causalattn::attention
