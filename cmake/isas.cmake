# The ISA table: every ISA the library can be built with, in the dispatcher's order of preference
# (it picks the first the CPU runs), one row each. Everything
# else comes from here: the per-ISA kernel objects (lib/CMakeLists.txt), the dispatcher's table
# and CPU checks (lib/dispatch/isa_table.hpp.in, generated), the names causalattn_known_isa()
# lists (and so the tests and benchmarks), tools/kernel-ab.sh's flags. One table per processor family.
#
#   causalattn_isa(NAME ARCH <xsimd arch> FLAGS <compile flags...> CPU_CHECK <C++ expression>
#                  [PREFERRED_WHEN <C++ expression>] [CPU_CHECK_INCLUDES <headers the expressions need...>])
#
# NAME is the public name (causalattn_isa, causalattn_set_isa, CAUSALATTN_ISA); ARCH the xsimd
# architecture the kernels are instantiated for; FLAGS what the kernel object is compiled with
# (and nothing else is); CPU_CHECK a C++ expression, evaluated by code built without FLAGS, that is
# true when this CPU and its OS run the ISA (libgcc's __builtin_cpu_supports checks the OS's XCR0
# state for AVX and AVX-512 too); PREFERRED_WHEN (default true) a second expression, for a row
# that every CPU passing its check runs but only some run faster than the rows below it: the
# dispatcher's default is the first row whose two expressions hold, while CAUSALATTN_ISA,
# causalattn_set_isa and the tests take any row whose CPU_CHECK holds. A new ISA is a row here,
# its CPU check, and its intrinsics in lib/kernels/ (see lib/kernels/x86.hpp, arm.hpp).
set(CAUSALATTN_ISAS "")
macro(causalattn_isa name)
  cmake_parse_arguments(isa "" "ARCH;CPU_CHECK;PREFERRED_WHEN" "FLAGS;CPU_CHECK_INCLUDES" ${ARGN})
  list(APPEND CAUSALATTN_ISAS ${name})
  set(CAUSALATTN_ISA_ARCH_${name} "${isa_ARCH}")
  set(CAUSALATTN_ISA_FLAGS_${name} ${isa_FLAGS})
  set(CAUSALATTN_ISA_CPU_CHECK_${name} "${isa_CPU_CHECK}")
  if("${isa_PREFERRED_WHEN}" STREQUAL "")
    set(isa_PREFERRED_WHEN "true")
  endif()
  set(CAUSALATTN_ISA_PREFERRED_WHEN_${name} "${isa_PREFERRED_WHEN}")
  set(CAUSALATTN_ISA_CPU_CHECK_INCLUDES_${name} ${isa_CPU_CHECK_INCLUDES})
endmacro()

if(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64|ARM64")
  # neon: Advanced SIMD, the aarch64 baseline (lib/kernels/arm.hpp).
  causalattn_isa(neon ARCH "xsimd::neon64"
    FLAGS
    CPU_CHECK "true")
  # neonbf16: neon plus BFDOT, whose bf16 kernel runs all-bf16 prefill. Listed after neon, so it
  # runs only when asked for (CAUSALATTN_ISA, causalattn_set_isa) until it is measured on ARM
  # hardware: on x86 the same kernel on vdpbf16ps beat f32 on Zen 5 and lost on Sapphire Rapids (the
  # avx512bf16 row below).
  causalattn_isa(neonbf16 ARCH "causalattn::kernels::neonbf16"
    FLAGS -march=armv8.2-a+bf16
    CPU_CHECK "cpu_has_bf16()"
    CPU_CHECK_INCLUDES dispatch/arm_features.hpp)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64|amd64")
  # amx: avx512bf16 plus the AMX tile kernel for bf16 prefill (Q, K and V all bf16; attention_amx.hpp);
  # everything else runs the avx512 kernels. Picked only where the OS grants the tile state.
  causalattn_isa(amx ARCH "causalattn::kernels::amx"
    FLAGS -mavx512f -mavx512cd -mavx512dq -mavx512bw -mavx512vl -mfma -mf16c -mavx512bf16 -mamx-tile -mamx-bf16
    CPU_CHECK "__builtin_cpu_supports(\"avx512f\") && __builtin_cpu_supports(\"avx512cd\") && __builtin_cpu_supports(\"avx512dq\") && __builtin_cpu_supports(\"avx512bw\") && __builtin_cpu_supports(\"avx512vl\") && __builtin_cpu_supports(\"fma\") && cpu_has_f16c() && cpu_has_avx512_bf16() && cpu_runs_amx_bf16()"
    CPU_CHECK_INCLUDES dispatch/x86_features.hpp)
  # avx512bf16: avx512 plus the BF16 dot-product prefill kernel (vdpbf16ps) for all-bf16 Q, K and V;
  # every other call runs the avx512 kernels. The default only where vdpbf16ps outpaces the FMA:
  # on the AMD Zen 5 measured it reached 1.9-2.0x the FMA's flops (BM_PeakDotBf16 466-502 against
  # BM_PeakFma's 245-265 GFLOP/s on one core) and the kernel 1.75x the f32 one; on the Sapphire
  # Rapids measured, half the FMA's flops and 0.63x (docs/performance.md). Elsewhere it is taken
  # when asked for (CAUSALATTN_ISA, causalattn_set_isa).
  causalattn_isa(avx512bf16 ARCH "causalattn::kernels::avx512bf16"
    FLAGS -mavx512f -mavx512cd -mavx512dq -mavx512bw -mavx512vl -mfma -mf16c -mavx512bf16
    CPU_CHECK "__builtin_cpu_supports(\"avx512f\") && __builtin_cpu_supports(\"avx512cd\") && __builtin_cpu_supports(\"avx512dq\") && __builtin_cpu_supports(\"avx512bw\") && __builtin_cpu_supports(\"avx512vl\") && __builtin_cpu_supports(\"fma\") && cpu_has_f16c() && cpu_has_avx512_bf16()"
    PREFERRED_WHEN "cpu_bf16_dot_outpaces_fma()"
    CPU_CHECK_INCLUDES dispatch/x86_features.hpp)
  causalattn_isa(avx512 ARCH "xsimd::avx512bw"
    FLAGS -mavx512f -mavx512cd -mavx512dq -mavx512bw -mavx512vl -mfma -mf16c
    CPU_CHECK "__builtin_cpu_supports(\"avx512f\") && __builtin_cpu_supports(\"avx512cd\") && __builtin_cpu_supports(\"avx512dq\") && __builtin_cpu_supports(\"avx512bw\") && __builtin_cpu_supports(\"avx512vl\") && __builtin_cpu_supports(\"fma\") && cpu_has_f16c()"
    CPU_CHECK_INCLUDES dispatch/x86_features.hpp)
  causalattn_isa(avx2 ARCH "xsimd::fma3<xsimd::avx2>"
    FLAGS -mavx2 -mfma -mf16c
    CPU_CHECK "__builtin_cpu_supports(\"avx2\") && __builtin_cpu_supports(\"fma\") && cpu_has_f16c()"
    CPU_CHECK_INCLUDES dispatch/x86_features.hpp)
  causalattn_isa(sse2 ARCH "xsimd::sse2"
    FLAGS
    CPU_CHECK "true")  # the x86-64 baseline: the last row must run on every CPU of the target
else()
  message(FATAL_ERROR "causalattn has kernels for x86-64 and aarch64, not for ${CMAKE_SYSTEM_PROCESSOR}")
endif()

# causalattn_isa_object(TARGET ISA SOURCE SYMBOL): an object library that compiles SOURCE once for
# one row of the table, with that row's flags alone (and contraction off: FMAs are explicit),
# defining CAUSALATTN_ARCH (its xsimd arch), CAUSALATTN_ISA_NAME ("<name>") and SYMBOL_MACRO=SYMBOL
# given as SYMBOL (the name of what the object defines for this ISA). lib/, tests/ and bench/
# build their per-ISA code through it.
function(causalattn_isa_object target isa source symbol_macro symbol)
  add_library(${target} OBJECT ${source})
  target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR}/lib ${PROJECT_SOURCE_DIR}/include)
  target_link_libraries(${target} PRIVATE xsimd)
  target_compile_definitions(${target} PRIVATE "CAUSALATTN_ARCH=${CAUSALATTN_ISA_ARCH_${isa}}"
    "CAUSALATTN_ISA_NAME=\"${isa}\"" "${symbol_macro}=${symbol}")
  # g++ 12's AVX-512 headers give false uninitialized warnings.
  target_compile_options(${target} PRIVATE ${CAUSALATTN_ISA_FLAGS_${isa}} -ffp-contract=off -Wall -Wextra
    -Wno-uninitialized $<$<CXX_COMPILER_ID:GNU>:-Wno-maybe-uninitialized>)
  set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE ON)
endfunction()
