// One version of the row-block kernel of one ISA row (CAUSALATTN_ARCH, defined by the build: AVX-512
// by default, tools/kernel-ab.sh --isa), built into a shared object of its own with hidden symbols,
// so that two versions of the same inline templates never merge.
#include <algorithm>

#include "kernels/attention_row_group.hpp"

namespace {
using Arch = CAUSALATTN_ARCH;
}

extern "C" __attribute__((visibility("default"))) int variant_rows() {
  return causalattn::kernels::Blocking<Arch>::kRows;
}

extern "C" __attribute__((visibility("default"))) size_t variant_workspace_floats(int64_t head_dim) {
  return causalattn::kernels::workspace_floats<Arch>(head_dim, head_dim);
}

// Runs the row blocks in groups of 8 consecutive blocks, as the library's plan does at T=4096.
extern "C" __attribute__((visibility("default"))) void variant_run(const causalattn::kernels::RowBlockArgs* blocks,
                                                                    int64_t count) {
  for (int64_t b = 0; b < count; b += 8) {
    // f32 K and V: no group workspace is needed.
    causalattn::kernels::attention_row_blocks<Arch>(blocks + b, static_cast<int>(std::min<int64_t>(8, count - b)),
                                                    nullptr);
  }
}
