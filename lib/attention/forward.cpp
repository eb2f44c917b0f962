// causalattn_forward_f32: validation, work decomposition over (batch, head, row block) and
// oneTBB scheduling. The only threaded layer; the kernels below it are single-threaded.
#include <cmath>
#include <cstdlib>
#include <exception>
#include <memory>
#include <new>
#include <string>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include "attention/validate.hpp"
#include "causalattn/causalattn.h"
#include "dispatch/kernels.hpp"

namespace causalattn {
namespace {

thread_local std::string g_last_error;

int report(causalattn_status status, std::string message) {
  g_last_error = std::move(message);
  return status;
}

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

struct Problem {
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
  float score_scale;
};

// Runs row blocks `first` and (when different) `last` of one (batch, query head). Causal row
// block r costs r + 1 tiles, so pairing r with n-1-r makes every task cost about the same.
void run_task(const kernels::KernelInfo& kernel, const Problem& p, int64_t task, int64_t pairs) {
  const causalattn_shape& s = p.shape;
  const int64_t pair = task % pairs;
  const int64_t head = (task / pairs) % s.q_heads;
  const int64_t batch = task / pairs / s.q_heads;
  const int64_t kv_head = head / (s.q_heads / s.kv_heads);
  const int64_t blocks = (s.q_len + kernel.rows - 1) / kernel.rows;

  kernels::RowBlockArgs a;
  a.q_stride = p.q_layout.token;
  a.k = p.k + batch * p.k_layout.batch + kv_head * p.k_layout.head;
  a.k_stride = p.k_layout.token;
  a.v = p.v + batch * p.v_layout.batch + kv_head * p.v_layout.head;
  a.v_stride = p.v_layout.token;
  a.out_stride = p.out_layout.token;
  a.kv_len = s.kv_len;
  a.causal_offset = s.kv_len - s.q_len;
  a.causal = p.causal;
  a.head_dim = s.head_dim;
  a.score_scale = p.score_scale;
  a.workspace = thread_workspace(kernel.workspace_floats(s.head_dim));

  const int64_t block_ids[2] = {pair, blocks - 1 - pair};
  for (int64_t i = 0; i < (block_ids[0] == block_ids[1] ? 1 : 2); ++i) {
    const int64_t q_begin = block_ids[i] * kernel.rows;
    a.q_begin = q_begin;
    a.q_count = s.q_len - q_begin < kernel.rows ? s.q_len - q_begin : kernel.rows;
    a.q = p.q + batch * p.q_layout.batch + head * p.q_layout.head + q_begin * p.q_layout.token;
    a.out = p.out + batch * p.out_layout.batch + head * p.out_layout.head + q_begin * p.out_layout.token;
    a.lse = p.lse != nullptr ? p.lse + (batch * s.q_heads + head) * s.q_len + q_begin : nullptr;
    kernel.row_block(a);
  }
}

void run(const Problem& p, int num_threads) {
  const kernels::KernelInfo& kernel = dispatch::attention_kernel();
  const causalattn_shape& s = p.shape;
  const int64_t blocks = (s.q_len + kernel.rows - 1) / kernel.rows;
  const int64_t pairs = (blocks + 1) / 2;
  const int64_t tasks = s.batch * s.q_heads * pairs;
  // Each row block is computed whole by one task in a fixed tile order, so the bits do not
  // depend on how tasks land on threads.
  auto body = [&](const tbb::blocked_range<int64_t>& range) {
    for (int64_t task = range.begin(); task != range.end(); ++task) run_task(kernel, p, task, pairs);
  };
  if (num_threads == 1 || tasks == 1) {
    body(tbb::blocked_range<int64_t>(0, tasks));
  } else if (num_threads > 1) {
    tbb::task_arena arena(num_threads);
    arena.execute([&] { tbb::parallel_for(tbb::blocked_range<int64_t>(0, tasks), body); });
  } else {
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, tasks), body);
  }
}

}  // namespace
}  // namespace causalattn

extern "C" {

int causalattn_forward_f32(const causalattn_shape* shape, const float* q, causalattn_layout q_layout,
                           const float* k, causalattn_layout k_layout, const float* v,
                           causalattn_layout v_layout, float* out, causalattn_layout out_layout,
                           const causalattn_options* options) {
  using namespace causalattn;
  try {
    const causalattn_options opts = options != nullptr ? *options : causalattn_options{};
    if (detail::Problem problem = detail::validate_forward(shape, q, q_layout, k, k_layout, v, v_layout,
                                                           out, out_layout, opts)) {
      return report(problem.status, std::move(problem.message));
    }
    const float scale = opts.scale != 0.0f ? opts.scale : 1.0f / std::sqrt(static_cast<float>(shape->head_dim));
    constexpr float kLog2e = 1.44269504088896341f;
    const Problem problem{*shape, q, q_layout, k, k_layout, v, v_layout, out, out_layout, opts.lse,
                          (opts.flags & CAUSALATTN_NON_CAUSAL) == 0, scale * kLog2e};
    run(problem, opts.num_threads);
    return CAUSALATTN_OK;
  } catch (const std::bad_alloc&) {
    return report(CAUSALATTN_ERROR_INTERNAL, "out of memory");
  } catch (const std::exception& e) {
    return report(CAUSALATTN_ERROR_INTERNAL, std::string("internal error: ") + e.what());
  } catch (...) {
    return report(CAUSALATTN_ERROR_INTERNAL, "internal error");
  }
}

const char* causalattn_last_error(void) { return causalattn::g_last_error.c_str(); }

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
