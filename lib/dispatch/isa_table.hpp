// The ISAs this build has, best first, as the ISA table (cmake/isas.cmake) lists them; the
// definition is generated from it (lib/dispatch/isa_table.cpp.in).
#pragma once

#include "kernels/kernel_table.hpp"

namespace causalattn::dispatch {

struct Isa {
  const char* name;                     // "avx512", ...: the public name
  const kernels::KernelTable* kernels;  // its kernels, compiled with its flags alone
  bool (*cpu_runs)();                   // this CPU and OS run it (call __builtin_cpu_init first)
  bool (*preferred)();                  // where it runs, the default over the rows below it
};

extern const Isa kIsas[];
extern const int kIsaCount;  // the last row runs on every CPU of the target

}  // namespace causalattn::dispatch
