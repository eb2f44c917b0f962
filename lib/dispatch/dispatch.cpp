// ISA dispatch over the ISA table (cmake/isas.cmake): the CPU's best, the CAUSALATTN_ISA
// override, causalattn_set_isa.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "dispatch/isa_table.hpp"
#include "dispatch/kernels.hpp"

namespace causalattn::dispatch {
namespace {

using kernels::KernelTable;

bool cpu_runs(const Isa& isa) {
#if defined(__x86_64__)
  __builtin_cpu_init();  // what the x86 rows' __builtin_cpu_supports checks read
#endif
  return isa.cpu_runs();
}

const KernelTable* best_supported() {
  for (int i = 0; i < kIsaCount; ++i) {
    if (cpu_runs(kIsas[i]) && kIsas[i].preferred()) return kIsas[i].kernels;
  }
  return kIsas[kIsaCount - 1].kernels;
}

const KernelTable* from_environment() {
  const char* forced = std::getenv("CAUSALATTN_ISA");
  if (forced == nullptr || forced[0] == '\0') return best_supported();
  if (const KernelTable* kernels = find_supported(forced)) return kernels;
  std::fprintf(stderr, "causalattn: CAUSALATTN_ISA=%s is unknown or not supported by this CPU; using %s\n",
               forced, best_supported()->isa);
  return best_supported();
}

std::atomic<const KernelTable*> g_selected{nullptr};

}  // namespace

const KernelTable* find_supported(const char* name) {
  if (name == nullptr) return nullptr;
  for (int i = 0; i < kIsaCount; ++i) {
    if (std::strcmp(kIsas[i].name, name) == 0) return cpu_runs(kIsas[i]) ? kIsas[i].kernels : nullptr;
  }
  return nullptr;
}

const KernelTable& kernel_table() {
  const KernelTable* kernels = g_selected.load(std::memory_order_acquire);
  if (kernels == nullptr) {
    const KernelTable* resolved = from_environment();
    // Another thread may have resolved it first; both got the same answer, keep the first.
    if (g_selected.compare_exchange_strong(kernels, resolved, std::memory_order_acq_rel)) kernels = resolved;
  }
  return *kernels;
}

void select(const KernelTable* kernels) {
  g_selected.store(kernels != nullptr ? kernels : best_supported(), std::memory_order_release);
}

const char* known_isa(int index) { return index >= 0 && index < kIsaCount ? kIsas[index].name : nullptr; }

}  // namespace causalattn::dispatch
