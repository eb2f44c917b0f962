// x86 CPU features that __builtin_cpu_supports does not name on every compiler (clang 14 knows
// neither "f16c" nor every AVX-512 extension): read from CPUID. The OS's register state for AVX and
// AVX-512 is what __builtin_cpu_supports("avx2") / ("avx512f") check beside these.
#pragma once

#include <cpuid.h>

namespace causalattn::dispatch {

// CPUID.1:ECX bit 29.
inline bool cpu_has_f16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & (1u << 29)) != 0;
}

// CPUID.(EAX=7, ECX=1):EAX bit 5.
inline bool cpu_has_avx512_bf16() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) != 0 && (eax & (1u << 5)) != 0;
}

}  // namespace causalattn::dispatch
