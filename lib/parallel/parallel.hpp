// The threading layer shared by attention and the projections: per-thread buffers, per-call
// arenas and a parallel loop whose tasks know their thread's slot.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>

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

namespace causalattn::parallel {

// A 64-byte aligned buffer kept for a thread's lifetime and grown only when a call needs more:
// fresh pages cost ~11 µs each to fault in here, so reuse beats reallocation.
class ThreadBuffer {
 public:
  float* get(std::size_t floats) {
    if (capacity_ < floats) {
      const std::size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
      buffer_.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
      if (!buffer_) {
        capacity_ = 0;
        throw std::bad_alloc();
      }
      capacity_ = floats;
    }
    return buffer_.get();
  }

 private:
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float, Free> buffer_;
  std::size_t capacity_ = 0;
};

// The calling thread's buffer for one purpose, named by a tag type: thread_buffer<struct
// PackedRows>(floats). Kept for the thread's lifetime, grown when a call needs more.
template <class Purpose>
float* thread_buffer(std::size_t floats) {
  thread_local ThreadBuffer buffer;
  return buffer.get(floats);
}

// The most threads a call runs on: what oneTBB may run at once (tbb::global_control's
// max_allowed_parallelism, by default the cores this process may use), at most kMaxThreads.
constexpr int kMaxThreads = 4096;
int max_threads();

// The threads a call runs on: num_threads clamped to max_threads(), or for 0 what the calling
// arena allows. A count above what oneTBB can run would only queue work behind the same cores
// (and oneTBB fails to build an arena of millions of slots).
int call_threads(int num_threads);

// The arena of `threads` threads (a call_threads result), kept per calling thread.
tbb::task_arena& arena_of(int threads);

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

// Calls task(slot, i) for i in [begin, end): serially on the calling thread (slot 0) when one
// thread or one task, else in parallel on call_threads(num_threads) threads. A thread's slot is
// below call_threads(num_threads): it names the thread's share of a workspace.
// The parallel region is isolated: a thread waiting in it runs only this call's tasks, never a
// task of the caller's (which could enter the library again on this thread, over the call's
// per-thread plan and buffers, while the call is still using them).
template <class Task>
void for_each_task(int num_threads, int64_t begin, int64_t end, const Task& task) {
  const int threads = call_threads(num_threads);
  if (threads == 1 || end - begin <= 1) {
    for (int64_t i = begin; i < end; ++i) task(0, i);
    return;
  }
  ForkJoinEdges edges;
  auto run = [&] {
    tbb::this_task_arena::isolate([&] {
      tbb::parallel_for(tbb::blocked_range<int64_t>(begin, end), [&](const tbb::blocked_range<int64_t>& range) {
        edges.task_begins();
        const int slot = tbb::this_task_arena::current_thread_index();
        for (int64_t i = range.begin(); i != range.end(); ++i) task(slot, i);
        edges.task_ends();
      });
    });
  };
  edges.before_fork();
  if (num_threads > 0) {
    arena_of(threads).execute(run);
  } else {
    run();
  }
  edges.after_join();
}

}  // namespace causalattn::parallel
