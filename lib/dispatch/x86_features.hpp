// x86 CPU features that __builtin_cpu_supports does not name on every compiler (clang 14 knows
// neither "f16c" nor every AVX-512 extension): read from CPUID. The OS's register state for AVX and
// AVX-512 is what __builtin_cpu_supports("avx2") / ("avx512f") check beside these.
#pragma once

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

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

// Whether vdpbf16ps outpaces the FMA in flops, so that the BF16 dot-product kernel beats the f32
// one: no CPUID bit says it, so this names the CPUs measured (docs/performance.md). AMD family 1Ah
// (Zen 5): 1.9-2.0x the FMA's flops, the kernel 1.75x the f32 one. Not Intel's Sapphire Rapids
// (half the FMA's flops). Zen 4 (family 19h) is not measured yet.
inline bool cpu_bf16_dot_outpaces_fma() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(0, &eax, &ebx, &ecx, &edx) == 0) return false;
  const bool amd = ebx == 0x68747541u && edx == 0x69746e65u && ecx == 0x444d4163u;  // "AuthenticAMD"
  if (!amd || __get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0) return false;
  const unsigned base_family = (eax >> 8) & 0xfu, extended_family = (eax >> 20) & 0xffu;
  const unsigned family = base_family == 0xfu ? base_family + extended_family : base_family;
  return family >= 0x1au;
}

// CPUID.(EAX=7, ECX=0):EDX bits 22 (AMX-BF16) and 24 (AMX-TILE), and the OS's permission to use
// the tile data (Linux 5.16 and later grant it on request, per process, with
// arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA); a kernel that does not know the request, or
// a process whose signal stacks are too small for the tile state, is refused). Asking is
// idempotent: the first check makes the request, later ones see it granted.
inline bool cpu_runs_amx_bf16() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) == 0) return false;
  if ((edx & (1u << 22)) == 0 || (edx & (1u << 24)) == 0) return false;
#if defined(__linux__) && defined(SYS_arch_prctl)
  constexpr long kGetPermission = 0x1022, kRequestPermission = 0x1023, kTileData = 18;
  unsigned long granted = 0;
  if (syscall(SYS_arch_prctl, kGetPermission, &granted) != 0) return false;
  if ((granted & (1ul << kTileData)) == 0 && syscall(SYS_arch_prctl, kRequestPermission, kTileData) != 0) return false;
  return syscall(SYS_arch_prctl, kGetPermission, &granted) == 0 && (granted & (1ul << kTileData)) != 0;
#else
  return false;
#endif
}

}  // namespace causalattn::dispatch
