// Paired comparison of versions of the row-block kernel in one process (tools/kernel-ab.sh):
// the versions run alternately, trial by trial, on the same inputs (one sequence and head), so a
// noisy stretch of a shared machine slows them alike. Prints each version's best GFLOP/s, as a
// fraction of an FMA peak loop run before every trial, and the median over trials of its time
// ratio to the first version: the figure to read.
// Usage: kernel_ab D T causal trials variant1.so variant2.so ...
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernel_table.hpp"
#include "peak_fma.hpp"

// The peak loop of the row whose kernels are compared (bench/peak_fma_of_isa.cpp), named by the
// build: peak_loop__avx512, or another row's with tools/kernel-ab.sh --isa.
extern const causalattn::bench::PeakLoop CAUSALATTN_PEAK_LOOP;

namespace {

using causalattn::kernels::RowBlockArgs;

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Variant {
  std::string path;
  int (*rows)();
  size_t (*workspace_floats)(int64_t);
  void (*run)(const RowBlockArgs*, int64_t);
  std::vector<RowBlockArgs> blocks;
  std::vector<float> workspace;
  double best = 0.0;
  std::vector<double> ratios;
};

template <class Fn>
Fn symbol(void* library, const char* name) {
  void* address = dlsym(library, name);
  if (address == nullptr) {
    std::fprintf(stderr, "%s\n", dlerror());
    std::exit(1);
  }
  return reinterpret_cast<Fn>(address);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: %s D T causal trials variant.so...\n", argv[0]);
    return 2;
  }
  const int64_t D = std::atoll(argv[1]), T = std::atoll(argv[2]);
  const bool causal = std::atoi(argv[3]) != 0;
  const int trials = std::atoi(argv[4]);
  std::vector<float> q(T * D), k(T * D), v(T * D), out(T * D);
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  for (auto* tensor : {&q, &k, &v})
    for (float& x : *tensor) x = normal(rng);

  std::vector<Variant> variants;
  for (int i = 5; i < argc; ++i) {
    void* library = dlopen(argv[i], RTLD_NOW | RTLD_LOCAL);
    if (library == nullptr) {
      std::fprintf(stderr, "%s\n", dlerror());
      return 1;
    }
    Variant var;
    var.path = argv[i];
    var.rows = symbol<int (*)()>(library, "variant_rows");
    var.workspace_floats = symbol<size_t (*)(int64_t)>(library, "variant_workspace_floats");
    var.run = symbol<void (*)(const RowBlockArgs*, int64_t)>(library, "variant_run");
    const int rows = var.rows();
    const int64_t count = (T + rows - 1) / rows;
    const size_t floats = var.workspace_floats(D);
    var.workspace.resize(count * floats + 16);
    float* workspace = var.workspace.data();
    while (reinterpret_cast<uintptr_t>(workspace) % 64 != 0) ++workspace;
    for (int64_t b = 0; b < count; ++b) {
      RowBlockArgs a{};
      // f32 rows, strides in bytes.
      const int64_t row = D * static_cast<int64_t>(sizeof(float));
      a.q = reinterpret_cast<const std::byte*>(&q[b * rows * D]);
      a.q_stride = row;
      a.k = {reinterpret_cast<const std::byte*>(k.data()), row, nullptr, 0, 0, causalattn::Dtype::kF32, 0};
      a.v = {reinterpret_cast<const std::byte*>(v.data()), row, nullptr, 0, 0, causalattn::Dtype::kF32, 0};
      a.out = reinterpret_cast<std::byte*>(&out[b * rows * D]);
      a.out_stride = row;
      a.q_begin = b * rows;
      a.q_count = std::min<int64_t>(rows, T - b * rows);
      a.kv_len = T;
      a.causal = causal;
      a.head_dim = D;
      a.head_dim_v = D;
      a.scale = 1.0f / std::sqrt(static_cast<float>(D));
      a.workspace = workspace + b * floats;
      var.blocks.push_back(a);
    }
    variants.push_back(std::move(var));
  }

  const causalattn::bench::PeakLoop peak_loop = CAUSALATTN_PEAK_LOOP;
  const double flops = causal ? 2.0 * D * T * (T + 1) : 4.0 * D * T * T;
  // One untimed run each: first touches of the workspaces and of the outputs cost page faults.
  for (Variant& var : variants) var.run(var.blocks.data(), static_cast<int64_t>(var.blocks.size()));
  double best_peak = 0.0;
  volatile float sink = 0.0f;
  for (int trial = 0; trial < trials; ++trial) {
    constexpr int64_t kPeakIterations = 400000;
    double start = now();
    sink = sink + peak_loop.run(kPeakIterations);
    best_peak = std::max(best_peak, kPeakIterations * peak_loop.flops_per_iteration / (now() - start) / 1e9);
    std::vector<double> seconds(variants.size());
    for (size_t i = 0; i < variants.size(); ++i) {
      Variant& var = variants[trial % 2 == 0 ? i : variants.size() - 1 - i];  // alternate the order
      start = now();
      var.run(var.blocks.data(), static_cast<int64_t>(var.blocks.size()));
      const double elapsed = now() - start;
      var.best = std::max(var.best, flops / elapsed / 1e9);
      seconds[&var - variants.data()] = elapsed;
    }
    for (size_t i = 0; i < variants.size(); ++i) variants[i].ratios.push_back(seconds[0] / seconds[i]);
  }
  std::printf("D=%lld T=%lld %s, %d trials, FMA peak %.1f GFLOP/s\n", static_cast<long long>(D),
              static_cast<long long>(T), causal ? "causal" : "non-causal", trials, best_peak);
  for (Variant& var : variants) {
    std::sort(var.ratios.begin(), var.ratios.end());
    const std::string name = var.path.substr(var.path.rfind('/') + 1);
    std::printf("  %-24s best %6.1f GFLOP/s = %4.1f%% of peak; speed vs the first, median %.3f\n", name.c_str(),
                var.best, 100.0 * var.best / best_peak, var.ratios[var.ratios.size() / 2]);
  }
  return 0;
}
