// ISA dispatch: CPU detection, the CAUSALATTN_ISA override and the resolved kernel.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "dispatch/kernels.hpp"

namespace causalattn::dispatch {
namespace {

using kernels::KernelInfo;

// Best first; the last one is the x86-64 baseline every CPU has.
const KernelInfo* const kByPreference[] = {
    &kernels::f32_attn_rowblock__avx512,
    &kernels::f32_attn_rowblock__avx2,
    &kernels::f32_attn_rowblock__sse2,
};

// libgcc's checks include the OS's XCR0 support for AVX and AVX-512 state, not CPUID alone.
bool cpu_runs(const KernelInfo& kernel) {
  __builtin_cpu_init();
  if (&kernel == &kernels::f32_attn_rowblock__avx512) {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma");
  }
  if (&kernel == &kernels::f32_attn_rowblock__avx2) {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }
  return true;
}

const KernelInfo* best_supported() {
  for (const KernelInfo* kernel : kByPreference) {
    if (cpu_runs(*kernel)) return kernel;
  }
  return kByPreference[std::size(kByPreference) - 1];
}

const KernelInfo* from_environment() {
  const char* forced = std::getenv("CAUSALATTN_ISA");
  if (forced == nullptr || forced[0] == '\0') return best_supported();
  if (const KernelInfo* kernel = find_supported(forced)) return kernel;
  std::fprintf(stderr, "causalattn: CAUSALATTN_ISA=%s is unknown or not supported by this CPU; using %s\n",
               forced, best_supported()->isa);
  return best_supported();
}

std::atomic<const KernelInfo*> g_selected{nullptr};

}  // namespace

const KernelInfo* find_supported(const char* isa) {
  if (isa == nullptr) return nullptr;
  for (const KernelInfo* kernel : kByPreference) {
    if (std::strcmp(kernel->isa, isa) == 0) return cpu_runs(*kernel) ? kernel : nullptr;
  }
  return nullptr;
}

const KernelInfo& attention_kernel() {
  const KernelInfo* kernel = g_selected.load(std::memory_order_acquire);
  if (kernel == nullptr) {
    const KernelInfo* resolved = from_environment();
    // Another thread may have resolved it first; both got the same answer, keep the first.
    if (g_selected.compare_exchange_strong(kernel, resolved, std::memory_order_acq_rel)) kernel = resolved;
  }
  return *kernel;
}

void select(const KernelInfo* kernel) {
  g_selected.store(kernel != nullptr ? kernel : best_supported(), std::memory_order_release);
}

}  // namespace causalattn::dispatch
