// The attention and projection kernels of one ISA: explicit instantiations only. CMake compiles this file once
// per ISA, defining CAUSALATTN_ARCH (an xsimd arch), CAUSALATTN_ISA_NAME and CAUSALATTN_KERNEL
// (the KernelInfo's name) and that ISA's flags: avx512bw with -mavx512f -mavx512cd -mavx512dq
// -mavx512bw -mavx512vl -mfma, fma3<avx2> with -mavx2 -mfma, sse2 with the x86-64 baseline.
#include "dispatch/kernels.hpp"
#include "kernels/attention_tile.hpp"
#include "kernels/decode_tile.hpp"
#include "kernels/gemm.hpp"

namespace causalattn::kernels {

extern const KernelInfo CAUSALATTN_KERNEL = {
    CAUSALATTN_ISA_NAME,
    Blocking<CAUSALATTN_ARCH>::kRows,
    workspace_floats<CAUSALATTN_ARCH>,
    attention_row_blocks<CAUSALATTN_ARCH>,
    decode_workspace_floats<CAUSALATTN_ARCH>,
    decode_chunk<CAUSALATTN_ARCH>,
    GemmBlocking<CAUSALATTN_ARCH>::kNr,
    GemmBlocking<CAUSALATTN_ARCH>::kMc,
    GemmBlocking<CAUSALATTN_ARCH>::kMr,
    gemm_pack_panel<CAUSALATTN_ARCH>,
    gemm_pack_rows<CAUSALATTN_ARCH>,
    gemm_workspace_floats<CAUSALATTN_ARCH>,
    gemm_block<CAUSALATTN_ARCH>,
};

}  // namespace causalattn::kernels
