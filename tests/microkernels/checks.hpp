// The microkernel checks one ISA's object provides (checks_of_isa.cpp), as plain data and
// function pointers: the driver (test_microkernels.cpp) is built without the ISA's flags and
// calls them only when the CPU runs the ISA. Each check returns false and writes why.
#pragma once

namespace causalattn::testing {

struct MicrokernelChecks {
  const char* isa;
  bool (*exp)(char* why, int size, double* worst_ulp);  // exp_nonpositive over its range
  bool (*softcap)(char* why, int size, double* worst);  // softcap's tanh over its range, error in caps
  bool (*transpose)(char* why, int size);              // transpose_square
  bool (*blocks)(char* why, int size);                 // score_block and output_block
};

// Every ISA's checks, in the ISA table's order, then nullptr (generated: checks_table.cpp.in).
extern const MicrokernelChecks* const kMicrokernelChecks[];

}  // namespace causalattn::testing
