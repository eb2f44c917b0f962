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

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

// ThreadSanitizer is on: g++ says so with __SANITIZE_THREAD__, clang with __has_feature.
#if defined(__SANITIZE_THREAD__)
#define CAUSALATTN_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CAUSALATTN_TSAN 1
#endif
#endif
#if defined(CAUSALATTN_TSAN)
#include <sanitizer/tsan_interface.h>
#endif

#include "attention/errors.hpp"
#include "attention/validate.hpp"
#include "causalattn/causalattn.h"
#include "dispatch/kernels.hpp"

namespace causalattn {
namespace {

using detail::report;

// Per-thread kernel workspace, kept for the thread's lifetime and grown only when a larger
// head_dim arrives: fresh pages cost ~11 µs each to fault in here, so reuse beats reallocation.
float* thread_workspace(std::size_t floats) {
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  thread_local std::unique_ptr<float, Free> buffer;
  thread_local std::size_t capacity = 0;
  if (capacity < floats) {
    const std::size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
    buffer.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
    if (!buffer) throw std::bad_alloc();
    capacity = floats;
  }
  return buffer.get();
}

// One validated call: the arguments the tasks read.
struct Call {
  causalattn_shape shape;
  const float* q;
  causalattn_layout q_layout;
  const float* k;
  causalattn_layout k_layout;
  const float* v;
  causalattn_layout v_layout;
  float* out;
  causalattn_layout out_layout;
  float* lse;
  bool causal;
  float scale;
};

// How row blocks become tasks: groups of consecutive row blocks of one (batch, query head), and
// a task takes groups g and n-1-g. Causal row block r costs r + 1 tiles, so pairing makes every
// task cost about the same.
struct Decomposition {
  int64_t blocks;            // row blocks per (batch, head)
  int64_t blocks_per_group;  // at most kMaxGroup
  int64_t groups;
  int64_t pairs;             // tasks per (batch, head)
};

constexpr int64_t kMaxGroup = 8;

// Larger groups reuse each K/V chunk more; smaller ones give more tasks. Aim for 8 tasks per
// thread. The grouping never changes the bits (each block walks its tiles in the same order).
Decomposition decompose(const causalattn_shape& s, int rows, int threads) {
  Decomposition d{};
  d.blocks = (s.q_len + rows - 1) / rows;
  const int64_t wanted_tasks = 8 * static_cast<int64_t>(threads);
  d.blocks_per_group = std::clamp<int64_t>(s.batch * s.q_heads * d.blocks / wanted_tasks, 1, kMaxGroup);
  d.groups = (d.blocks + d.blocks_per_group - 1) / d.blocks_per_group;
  d.pairs = (d.groups + 1) / 2;
  return d;
}

// Where a task's kernel workspace lives: one slot per thread that can run tasks of the call, in
// the caller's buffer, or else in the thread's own thread_workspace.
struct Workspace {
  std::byte* base = nullptr;  // 64-byte aligned, slots × slot_bytes; nullptr: thread_workspace
  std::size_t slot_bytes = 0;
  int slots = 0;

  float* slot(int index, std::size_t floats) const {
    if (base == nullptr) return thread_workspace(floats);
    if (index < 0 || index >= slots) throw std::logic_error("workspace slot out of range");
    return reinterpret_cast<float*>(base + index * slot_bytes);
  }
};

std::size_t slot_bytes(const kernels::KernelInfo& kernel, int64_t head_dim) {
  return (kMaxGroup * kernel.workspace_floats(head_dim) * sizeof(float) + 63) / 64 * 64;
}

// The threads a call runs on: num_threads, or what the calling arena allows.
int call_threads(int num_threads) {
  return num_threads > 0 ? num_threads : tbb::this_task_arena::max_concurrency();
}

// The bytes causalattn_forward_f32_with_workspace needs: a slot per thread, and room to align.
std::size_t workspace_bytes(const kernels::KernelInfo& kernel, int64_t head_dim, int threads) {
  return static_cast<std::size_t>(threads) * slot_bytes(kernel, head_dim) + 63;
}

void run_task(const kernels::KernelInfo& kernel, const Call& p, const Decomposition& dec, const Workspace& ws,
              int slot, int64_t task) {
  const causalattn_shape& s = p.shape;
  const int64_t pair = task % dec.pairs;
  const int64_t head = (task / dec.pairs) % s.q_heads;
  const int64_t batch = task / dec.pairs / s.q_heads;
  const int64_t kv_head = head / (s.q_heads / s.kv_heads);
  const std::size_t block_floats = kernel.workspace_floats(s.head_dim);
  float* workspace = ws.slot(slot, kMaxGroup * block_floats);

  kernels::RowBlockArgs common{};
  common.q_stride = p.q_layout.token;
  common.k = p.k + batch * p.k_layout.batch + kv_head * p.k_layout.head;
  common.k_stride = p.k_layout.token;
  common.v = p.v + batch * p.v_layout.batch + kv_head * p.v_layout.head;
  common.v_stride = p.v_layout.token;
  common.out_stride = p.out_layout.token;
  common.kv_len = s.kv_len;
  common.causal_offset = s.kv_len - s.q_len;
  common.causal = p.causal;
  common.head_dim = s.head_dim;
  common.scale = p.scale;

  const int64_t group_ids[2] = {pair, dec.groups - 1 - pair};
  for (int g = 0; g < (group_ids[0] == group_ids[1] ? 1 : 2); ++g) {
    kernels::RowBlockArgs blocks[kMaxGroup];
    int count = 0;
    const int64_t first = group_ids[g] * dec.blocks_per_group;
    for (int64_t block = first; block < std::min(first + dec.blocks_per_group, dec.blocks); ++block) {
      kernels::RowBlockArgs& a = blocks[count];
      a = common;
      a.q_begin = block * kernel.rows;
      a.q_count = std::min<int64_t>(s.q_len - a.q_begin, kernel.rows);
      a.q = p.q + batch * p.q_layout.batch + head * p.q_layout.head + a.q_begin * p.q_layout.token;
      a.out = p.out + batch * p.out_layout.batch + head * p.out_layout.head + a.q_begin * p.out_layout.token;
      a.lse = p.lse != nullptr ? p.lse + (batch * s.q_heads + head) * s.q_len + a.q_begin : nullptr;
      a.workspace = workspace + count * block_floats;
      ++count;
    }
    kernel.row_blocks(blocks, count);
  }
}

// oneTBB forks tasks and joins them inside libtbb, which ThreadSanitizer cannot see when libtbb
// is not instrumented (Debian's is not): these two edges tell it what the fork and the join
// guarantee. Tasks of one call are not ordered with each other, so a race between them still shows.
struct ForkJoinEdges {
#if defined(CAUSALATTN_TSAN)
  char fork = 0, join = 0;
  void before_fork() { __tsan_release(&fork); }
  void task_begins() { __tsan_acquire(&fork); }
  void task_ends() { __tsan_release(&join); }
  void after_join() { __tsan_acquire(&join); }
#else
  void before_fork() {}
  void task_begins() {}
  void task_ends() {}
  void after_join() {}
#endif
};

// The arena of num_threads > 0 threads, kept per calling thread so that repeated calls with the
// same count do not create (and allocate) an arena each time.
tbb::task_arena& arena_of(int num_threads) {
  thread_local std::unique_ptr<tbb::task_arena> arena;
  thread_local int arena_threads = 0;
  if (arena == nullptr || arena_threads != num_threads) {
    arena = std::make_unique<tbb::task_arena>(num_threads);
    arena_threads = num_threads;
  }
  return *arena;
}

// user_workspace: nullptr, or workspace_bytes(kernel, head_dim, call_threads(num_threads)) bytes.
void run(const Call& p, int num_threads, void* user_workspace) {
  const kernels::KernelInfo& kernel = dispatch::attention_kernel();
  const int threads = call_threads(num_threads);
  const Decomposition dec = decompose(p.shape, kernel.rows, threads);
  const int64_t tasks = p.shape.batch * p.shape.q_heads * dec.pairs;
  Workspace ws;
  if (user_workspace != nullptr) {
    const auto address = reinterpret_cast<std::uintptr_t>(user_workspace);
    ws.base = static_cast<std::byte*>(user_workspace) + ((64 - address % 64) % 64);
    ws.slot_bytes = slot_bytes(kernel, p.shape.head_dim);
    ws.slots = threads;
  }
  if (threads == 1 || tasks == 1) {
    for (int64_t task = 0; task < tasks; ++task) run_task(kernel, p, dec, ws, 0, task);
    return;
  }
  // Inside the arena a thread's index is below its concurrency: it names the thread's slot.
  ForkJoinEdges edges;
  auto parallel = [&] {
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, tasks), [&](const tbb::blocked_range<int64_t>& range) {
      edges.task_begins();
      const int slot = tbb::this_task_arena::current_thread_index();
      for (int64_t task = range.begin(); task != range.end(); ++task) run_task(kernel, p, dec, ws, slot, task);
      edges.task_ends();
    });
  };
  edges.before_fork();
  if (num_threads > 0) {
    arena_of(num_threads).execute(parallel);
  } else {
    parallel();
  }
  edges.after_join();
}

// The C entry points' shared body: validation, then the kernel.
int forward(const causalattn_shape* shape, const float* q, causalattn_layout q_layout, const float* k,
            causalattn_layout k_layout, const float* v, causalattn_layout v_layout, float* out,
            causalattn_layout out_layout, const causalattn_options* options, void* workspace,
            std::size_t workspace_size) {
  return detail::guarded([&] {
    const causalattn_options opts = options != nullptr ? *options : causalattn_options{};
    if (detail::Problem problem = detail::validate_forward(shape, q, q_layout, k, k_layout, v, v_layout,
                                                           out, out_layout, opts)) {
      return report(problem.status, std::move(problem.message));
    }
    if (workspace != nullptr) {
      const std::size_t needed =
          workspace_bytes(dispatch::attention_kernel(), shape->head_dim, call_threads(opts.num_threads));
      if (workspace_size < needed) {
        return report(CAUSALATTN_ERROR_INVALID_OPTION,
                      "workspace of " + std::to_string(workspace_size) + " bytes is smaller than the " +
                          std::to_string(needed) + " this call needs (causalattn_workspace_size)");
      }
    }
    const float scale = opts.scale != 0.0f ? opts.scale : 1.0f / std::sqrt(static_cast<float>(shape->head_dim));
    const Call call{*shape, q, q_layout, k, k_layout, v, v_layout, out, out_layout, opts.lse,
                    (opts.flags & CAUSALATTN_NON_CAUSAL) == 0, scale};
    run(call, opts.num_threads, workspace);
    return static_cast<int>(CAUSALATTN_OK);
  });
}

}  // namespace
}  // namespace causalattn

extern "C" {

int causalattn_forward_f32(const causalattn_shape* shape, const float* q, causalattn_layout q_layout,
                           const float* k, causalattn_layout k_layout, const float* v,
                           causalattn_layout v_layout, float* out, causalattn_layout out_layout,
                           const causalattn_options* options) {
  return causalattn::forward(shape, q, q_layout, k, k_layout, v, v_layout, out, out_layout, options, nullptr, 0);
}

int causalattn_forward_f32_with_workspace(const causalattn_shape* shape, const float* q,
                                          causalattn_layout q_layout, const float* k, causalattn_layout k_layout,
                                          const float* v, causalattn_layout v_layout, float* out,
                                          causalattn_layout out_layout, const causalattn_options* options,
                                          void* workspace, size_t workspace_size) {
  if (workspace == nullptr) return causalattn::detail::report(CAUSALATTN_ERROR_NULL_POINTER, "workspace is NULL");
  return causalattn::forward(shape, q, q_layout, k, k_layout, v, v_layout, out, out_layout, options, workspace,
                             workspace_size);
}

int causalattn_workspace_size(const causalattn_shape* shape, const causalattn_options* options, size_t* bytes) {
  using namespace causalattn;
  if (shape == nullptr) return report(CAUSALATTN_ERROR_NULL_POINTER, "shape is NULL");
  if (bytes == nullptr) return report(CAUSALATTN_ERROR_NULL_POINTER, "bytes is NULL");
  const int64_t num_threads = options != nullptr ? options->num_threads : 0;
  if (num_threads < 0) return report(CAUSALATTN_ERROR_INVALID_OPTION, "options->num_threads is negative");
  if (shape->head_dim <= 0 || shape->head_dim > CAUSALATTN_MAX_HEAD_DIM) {
    return report(CAUSALATTN_ERROR_INVALID_SHAPE,
                  "head_dim " + std::to_string(shape->head_dim) + " is outside [1, " +
                      std::to_string(CAUSALATTN_MAX_HEAD_DIM) + "]");
  }
  *bytes = workspace_bytes(dispatch::attention_kernel(), shape->head_dim, call_threads(static_cast<int>(num_threads)));
  return CAUSALATTN_OK;
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
