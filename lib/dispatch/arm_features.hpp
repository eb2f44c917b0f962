// aarch64 CPU features, from the hardware capabilities Linux gives every process (getauxval):
// they say what the CPU has and the kernel lets user code run.
#pragma once

#include <sys/auxv.h>

namespace causalattn::dispatch {

// AT_HWCAP2's HWCAP2_BF16 (bit 14): BFDOT, BFMMLA, BFCVT and the other FEAT_BF16 instructions.
inline bool cpu_has_bf16() {
  constexpr unsigned long kBf16 = 1ul << 14;
  return (getauxval(AT_HWCAP2) & kBf16) != 0;
}

}  // namespace causalattn::dispatch
