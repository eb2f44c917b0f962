// The dispatcher: which ISA's kernel table a call uses.
#pragma once

#include "kernels/kernel_table.hpp"

namespace causalattn::dispatch {

// The kernel table in use: the best ISA the CPU runs, or what CAUSALATTN_ISA /
// causalattn_set_isa chose. A call reads it once and keeps it for the whole call.
const kernels::KernelTable& kernel_table();

// The kernel table of an ISA name, or nullptr when the name is unknown or the CPU cannot run it.
const kernels::KernelTable* find_supported(const char* isa);

// Makes `kernels` the table kernel_table() returns; nullptr restores the best.
void select(const kernels::KernelTable* kernels);

// The name of ISA `index` of this build, best first (the ISA table's rows); nullptr past the last.
const char* known_isa(int index);

}  // namespace causalattn::dispatch
