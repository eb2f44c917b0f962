// FMA-throughput loops, one per row of the ISA table (peak_fma_of_isa.cpp), for the peak that
// kernel figures are set against.
#pragma once

#include <cstdint>
#include <string>

namespace causalattn::bench {

struct PeakLoop {
  const char* isa;
  float (*run)(int64_t iterations);  // returns a value so the loop cannot be optimized away
  int64_t flops_per_iteration;
  // The BF16 dot product's loop (vdpbf16ps, 2 multiply-adds per lane), nullptr on ISAs without it.
  float (*run_dot_bf16)(int64_t iterations);
  int64_t dot_bf16_flops_per_iteration;
  // AMX's bf16 tile product's loop (tdpbf16ps, 16 x 16 x 32 multiply-adds), nullptr without AMX.
  float (*run_amx_bf16)(int64_t iterations);
  int64_t amx_bf16_flops_per_iteration;
};

// The loop for an ISA name as causalattn_isa() reports it (the last row's for an unknown name).
PeakLoop peak_loop(const std::string& isa);

// Every ISA's loop, in the ISA table's order, then {nullptr} (generated: peak_fma.cpp.in).
extern const PeakLoop* const kPeakLoops[];

}  // namespace causalattn::bench
