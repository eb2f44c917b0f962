# Prints the compile flags of one row of the ISA table, one per line, for scripts outside CMake,
# ending with the definitions its kernels are compiled with (CAUSALATTN_ARCH, CAUSALATTN_ISA_NAME,
# as lib/CMakeLists.txt sets them):
#   cmake -DISA=avx512 -P cmake/print-isa-flags.cmake
cmake_minimum_required(VERSION 3.20)
# Script mode (-P) knows no target processor: the table's rows are this host's.
if(NOT CMAKE_SYSTEM_PROCESSOR)
  cmake_host_system_information(RESULT CMAKE_SYSTEM_PROCESSOR QUERY OS_PLATFORM)
endif()
include(${CMAKE_CURRENT_LIST_DIR}/isas.cmake)
if(NOT ISA IN_LIST CAUSALATTN_ISAS)
  message(FATAL_ERROR "unknown ISA '${ISA}' (the table has: ${CAUSALATTN_ISAS})")
endif()
foreach(flag IN LISTS CAUSALATTN_ISA_FLAGS_${ISA})
  execute_process(COMMAND ${CMAKE_COMMAND} -E echo "${flag}")
endforeach()
execute_process(COMMAND ${CMAKE_COMMAND} -E echo "-DCAUSALATTN_ARCH=${CAUSALATTN_ISA_ARCH_${ISA}}")
execute_process(COMMAND ${CMAKE_COMMAND} -E echo "-DCAUSALATTN_ISA_NAME=\"${ISA}\"")
