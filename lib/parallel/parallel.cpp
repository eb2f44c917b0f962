#include "parallel/parallel.hpp"

#include <tbb/global_control.h>

#include <algorithm>
#include <vector>

namespace causalattn::parallel {

int max_threads() {
  const std::size_t allowed = tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism);
  return static_cast<int>(std::clamp<std::size_t>(allowed, 1, kMaxThreads));
}

int call_threads(int num_threads) {
  if (num_threads <= 0) return std::max(1, tbb::this_task_arena::max_concurrency());
  return std::min(num_threads, max_threads());
}

tbb::task_arena& arena_of(int threads) {
  // One arena per count, never replaced: oneTBB keeps some memory of every arena it destroys,
  // so replacing a thread's arena at each change of count grew the process without bound.
  // call_threads bounds the counts, and so the arenas a thread can hold.
  thread_local std::vector<std::unique_ptr<tbb::task_arena>> arenas;
  if (arenas.size() <= static_cast<std::size_t>(threads)) arenas.resize(threads + 1);
  std::unique_ptr<tbb::task_arena>& arena = arenas[threads];
  if (arena == nullptr) arena = std::make_unique<tbb::task_arena>(threads);
  return *arena;
}

}  // namespace causalattn::parallel
