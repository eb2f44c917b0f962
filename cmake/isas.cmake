# The ISA table: every ISA the library can be built with, best first, one row each. Everything
# else comes from here: the per-ISA kernel objects (lib/CMakeLists.txt), the dispatcher's table
# and CPU checks (lib/dispatch/isa_table.hpp.in, generated), the names causalattn_known_isa()
# lists (and so the tests and benchmarks), tools/kernel-ab.sh's flags.
#
#   causalattn_isa(NAME ARCH <xsimd arch> FLAGS <compile flags...> CPU_CHECK <C++ expression>
#                  [CPU_CHECK_INCLUDES <headers the expression needs...>])
#
# NAME is the public name (causalattn_isa, causalattn_set_isa, CAUSALATTN_ISA); ARCH the xsimd
# architecture the kernels are instantiated for; FLAGS what the kernel object is compiled with
# (and nothing else is); CPU_CHECK a C++ expression, evaluated by code built without FLAGS, that is
# true when this CPU and its OS run the ISA (libgcc's __builtin_cpu_supports checks the OS's XCR0
# state for AVX and AVX-512 too). A new ISA is a row here, its CPU check, and its intrinsics in
# lib/kernels/ (see lib/kernels/x86.hpp).
set(CAUSALATTN_ISAS "")
macro(causalattn_isa name)
  cmake_parse_arguments(isa "" "ARCH;CPU_CHECK" "FLAGS;CPU_CHECK_INCLUDES" ${ARGN})
  list(APPEND CAUSALATTN_ISAS ${name})
  set(CAUSALATTN_ISA_ARCH_${name} "${isa_ARCH}")
  set(CAUSALATTN_ISA_FLAGS_${name} ${isa_FLAGS})
  set(CAUSALATTN_ISA_CPU_CHECK_${name} "${isa_CPU_CHECK}")
  set(CAUSALATTN_ISA_CPU_CHECK_INCLUDES_${name} ${isa_CPU_CHECK_INCLUDES})
endmacro()

causalattn_isa(avx512 ARCH "xsimd::avx512bw"
  FLAGS -mavx512f -mavx512cd -mavx512dq -mavx512bw -mavx512vl -mfma
  CPU_CHECK "__builtin_cpu_supports(\"avx512f\") && __builtin_cpu_supports(\"avx512cd\") && __builtin_cpu_supports(\"avx512dq\") && __builtin_cpu_supports(\"avx512bw\") && __builtin_cpu_supports(\"avx512vl\") && __builtin_cpu_supports(\"fma\")")
causalattn_isa(avx2 ARCH "xsimd::fma3<xsimd::avx2>"
  FLAGS -mavx2 -mfma
  CPU_CHECK "__builtin_cpu_supports(\"avx2\") && __builtin_cpu_supports(\"fma\")")
causalattn_isa(sse2 ARCH "xsimd::sse2"
  FLAGS
  CPU_CHECK "true")  # the x86-64 baseline: the last row must run on every CPU of the target
