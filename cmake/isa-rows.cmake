# CAUSALATTN_ISA_ROWS: which rows of the ISA table (cmake/isas.cmake) this tree builds, narrowing
# CAUSALATTN_ISAS for lib/, tests/ and bench/. Empty (the default): every row, as a library that
# runs on any CPU of its target needs. `native`: the row this CPU runs best, as the dispatcher
# would pick it. Or a list of the table's names. The table's last row, the baseline every CPU of
# the target runs, is always built, so the library runs anywhere.
#
# For trees that only ever run on the machine that builds them and compile slowly: the
# ThreadSanitizer and fuzz trees (tools/test.sh --sanitize, tools/fuzz.sh), where each row's
# kernels are one object that takes clang 80-190 s under the sanitizers and where the threading
# and the public entry points, not the other rows' kernels, are what is tested. The tests run the
# rows that are built.
set(CAUSALATTN_ISA_ROWS "" CACHE STRING
    "Rows of the ISA table to build: empty for all, 'native' for the one this CPU runs best, or a list of names")

if(CAUSALATTN_ISA_ROWS STREQUAL "native")
  if(CMAKE_CROSSCOMPILING)
    message(FATAL_ERROR "CAUSALATTN_ISA_ROWS=native needs to run a program on the target; name the rows instead")
  endif()
  # Each row's CPU check and preference, in the dispatcher's order, as lib/dispatch/dispatch.cpp
  # takes them.
  set(headers "")
  set(checks "")
  foreach(isa IN LISTS CAUSALATTN_ISAS)
    list(APPEND headers ${CAUSALATTN_ISA_CPU_CHECK_INCLUDES_${isa}})
    string(APPEND checks "  if ((${CAUSALATTN_ISA_CPU_CHECK_${isa}}) && (${CAUSALATTN_ISA_PREFERRED_WHEN_${isa}})) return \"${isa}\";\n")
  endforeach()
  list(REMOVE_DUPLICATES headers)
  set(includes "")
  foreach(header IN LISTS headers)
    string(APPEND includes "#include <${header}>\n")
  endforeach()
  set(dir ${CMAKE_BINARY_DIR}/isa-rows)
  file(WRITE ${dir}/native.cpp "#include <cstdio>\n${includes}
namespace causalattn::dispatch {
const char* best_row() {
  __builtin_cpu_init();
${checks}  return \"\";
}
}  // namespace causalattn::dispatch
int main() { std::puts(causalattn::dispatch::best_row()); }
")
  try_run(native_runs native_compiles ${dir} ${dir}/native.cpp
    CMAKE_FLAGS "-DINCLUDE_DIRECTORIES=${PROJECT_SOURCE_DIR}/lib"
    COMPILE_OUTPUT_VARIABLE native_compile_log RUN_OUTPUT_VARIABLE native_row)
  string(STRIP "${native_row}" native_row)
  if(NOT native_compiles OR NOT native_runs EQUAL 0 OR NOT native_row IN_LIST CAUSALATTN_ISAS)
    message(FATAL_ERROR "CAUSALATTN_ISA_ROWS=native: could not find this CPU's row (${native_row}):\n${native_compile_log}")
  endif()
  set(wanted_rows ${native_row})
else()
  set(wanted_rows ${CAUSALATTN_ISA_ROWS})
endif()

if(wanted_rows)
  foreach(isa IN LISTS wanted_rows)
    if(NOT isa IN_LIST CAUSALATTN_ISAS)
      message(FATAL_ERROR "CAUSALATTN_ISA_ROWS: '${isa}' is not a row of the ISA table (${CAUSALATTN_ISAS})")
    endif()
  endforeach()
  list(GET CAUSALATTN_ISAS -1 baseline_row)
  set(built_rows "")
  foreach(isa IN LISTS CAUSALATTN_ISAS)  # the table's order is the dispatcher's
    if(isa IN_LIST wanted_rows OR isa STREQUAL baseline_row)
      list(APPEND built_rows ${isa})
    endif()
  endforeach()
  set(CAUSALATTN_ISAS ${built_rows})
endif()
message(STATUS "causalattn: ISA rows ${CAUSALATTN_ISAS}")
