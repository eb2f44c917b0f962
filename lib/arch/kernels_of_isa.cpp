// The kernel table of one ISA: explicit instantiations only. lib/CMakeLists.txt compiles this file
// once per row of the ISA table (cmake/isas.cmake) with that row's flags alone, defining
// CAUSALATTN_ARCH (its xsimd arch), CAUSALATTN_ISA_NAME and CAUSALATTN_KERNELS (the table's name,
// kernels__<name>, which the generated dispatch table lists).
#include "kernels/attention_row_group.hpp"
#include "kernels/decode_tile.hpp"
#include "kernels/gemm.hpp"
#include "kernels/gemm_amx.hpp"
#include "kernels/gemm_bf16_dot.hpp"
#include "kernels/invariant_decode.hpp"

namespace causalattn::kernels {

extern const KernelTable CAUSALATTN_KERNELS;
const KernelTable CAUSALATTN_KERNELS = {
    CAUSALATTN_ISA_NAME,
    Blocking<CAUSALATTN_ARCH>::kRows,
    workspace_floats<CAUSALATTN_ARCH>,
    attention_row_blocks<CAUSALATTN_ARCH>,
    group_workspace_floats<CAUSALATTN_ARCH>,
    decode_workspace_floats<CAUSALATTN_ARCH>,
    decode_chunk<CAUSALATTN_ARCH>,
    invariant_decode_workspace_floats<CAUSALATTN_ARCH>,
    invariant_decode_chunk<CAUSALATTN_ARCH>,
    GemmBlocking<CAUSALATTN_ARCH>::kNr,
    GemmBlocking<CAUSALATTN_ARCH>::kMc,
    GemmBlocking<CAUSALATTN_ARCH>::kMr,
    gemm_pack_panel<CAUSALATTN_ARCH>,
    gemm_pack_rows<CAUSALATTN_ARCH>,
    gemm_workspace_floats<CAUSALATTN_ARCH>,
    gemm_block<CAUSALATTN_ARCH>,
    // The bf16 projection: on AMX tiles, else on the dot product, else (0, nullptr) widened to f32.
    IsaTraits<CAUSALATTN_ARCH>::kAmx || kDotGemmBf16<CAUSALATTN_ARCH> ? static_cast<int>(kAmxGemmFeatures) : 0,
    IsaTraits<CAUSALATTN_ARCH>::kAmx || kDotGemmBf16<CAUSALATTN_ARCH> ? gemm_bf16_pack_panel<CAUSALATTN_ARCH> : nullptr,
    IsaTraits<CAUSALATTN_ARCH>::kAmx ? gemm_bf16_workspace_bytes<CAUSALATTN_ARCH>
    : kDotGemmBf16<CAUSALATTN_ARCH>  ? gemm_bf16_dot_workspace_bytes<CAUSALATTN_ARCH>
                                     : nullptr,
    IsaTraits<CAUSALATTN_ARCH>::kAmx ? gemm_bf16_block<CAUSALATTN_ARCH>
    : kDotGemmBf16<CAUSALATTN_ARCH>  ? gemm_bf16_dot_block<CAUSALATTN_ARCH>
                                     : nullptr,
};

}  // namespace causalattn::kernels
