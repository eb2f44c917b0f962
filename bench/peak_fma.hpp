// FMA-throughput loops, one per ISA, for the peak that kernel figures are set against.
#pragma once

#include <cstdint>
#include <string>

namespace causalattn::bench {

struct PeakLoop {
  float (*run)(int64_t iterations);  // returns a value so the loop cannot be optimized away
  int64_t flops_per_iteration;
};

// The loop for an ISA name as causalattn_isa() reports it.
PeakLoop peak_loop(const std::string& isa);

}  // namespace causalattn::bench
