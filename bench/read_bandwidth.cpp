#include "read_bandwidth.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_reduce.h>
#include <tbb/partitioner.h>
#include <tbb/task_arena.h>

#include <functional>

namespace causalattn::bench {
namespace {

// Eight independent sums of 16-byte vectors: enough loads in flight that memory, not the add
// latency, is the limit.
float sum_range(const float* data, size_t begin, size_t end) {
  constexpr size_t kLanes = 32;
  float acc[kLanes] = {};
  size_t i = begin;
  for (; i + kLanes <= end; i += kLanes)
    for (size_t l = 0; l < kLanes; ++l) acc[l] += data[i + l];
  float total = 0.0f;
  for (; i < end; ++i) total += data[i];
  for (float a : acc) total += a;
  return total;
}

}  // namespace

float read_all(const float* data, size_t count, int threads) {
  if (threads <= 1) return sum_range(data, 0, count);
  tbb::task_arena arena(threads);
  return arena.execute([&] {
    return tbb::parallel_reduce(
        tbb::blocked_range<size_t>(0, count, 1 << 16), 0.0f,
        [&](const tbb::blocked_range<size_t>& r, float acc) { return acc + sum_range(data, r.begin(), r.end()); },
        std::plus<float>(), tbb::static_partitioner());
  });
}

}  // namespace causalattn::bench
