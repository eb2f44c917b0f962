// Memory read bandwidth: what bounds work that streams a KV cache once (decode), measured in the
// same run as the kernels so that decode figures can be read as a fraction of it.
#pragma once

#include <cstddef>

namespace causalattn::bench {

// Sums `count` floats with `threads` threads (one pass, every byte read once); returns the sum
// so that the reads cannot be optimized away.
float read_all(const float* data, size_t count, int threads);

}  // namespace causalattn::bench
