#include "parallel/parallel.hpp"

namespace causalattn::parallel {

tbb::task_arena& arena_of(int num_threads) {
  thread_local std::unique_ptr<tbb::task_arena> arena;
  thread_local int arena_threads = 0;
  if (arena == nullptr || arena_threads != num_threads) {
    arena = std::make_unique<tbb::task_arena>(num_threads);
    arena_threads = num_threads;
  }
  return *arena;
}

}  // namespace causalattn::parallel
