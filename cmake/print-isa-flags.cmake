# Prints the compile flags of one row of the ISA table, one per line, for scripts outside CMake:
#   cmake -DISA=avx512 -P cmake/print-isa-flags.cmake
cmake_minimum_required(VERSION 3.20)
include(${CMAKE_CURRENT_LIST_DIR}/isas.cmake)
if(NOT ISA IN_LIST CAUSALATTN_ISAS)
  message(FATAL_ERROR "unknown ISA '${ISA}' (the table has: ${CAUSALATTN_ISAS})")
endif()
foreach(flag IN LISTS CAUSALATTN_ISA_FLAGS_${ISA})
  execute_process(COMMAND ${CMAKE_COMMAND} -E echo "${flag}")
endforeach()
