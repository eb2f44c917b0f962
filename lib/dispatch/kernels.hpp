// The kernel families compiled into the library, one per ISA, and the dispatcher over them.
#pragma once

#include "kernels/row_block.hpp"

namespace causalattn::kernels {

// Defined in lib/arch/attention_isa.cpp, compiled once per ISA.
extern const KernelInfo f32_attn_rowblock__avx512;
extern const KernelInfo f32_attn_rowblock__avx2;
extern const KernelInfo f32_attn_rowblock__sse2;

}  // namespace causalattn::kernels

namespace causalattn::dispatch {

// The kernel in use: the best the CPU runs, or what CAUSALATTN_ISA / causalattn_set_isa chose.
const kernels::KernelInfo& attention_kernel();

// The kernel for an ISA name, or nullptr when the name is unknown or the CPU cannot run it.
const kernels::KernelInfo* find_supported(const char* isa);

// Makes `kernel` the one attention_kernel() returns; nullptr restores the best.
void select(const kernels::KernelInfo* kernel);

}  // namespace causalattn::dispatch
