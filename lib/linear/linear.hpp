// Projections y = x · Wᵀ + b (nn.Linear) on the dispatched ISA's microkernels: W packed once
// into panels, y cut into tasks of rows × features run on oneTBB.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "dispatch/kernels.hpp"

namespace causalattn::linear {

// W ([n][k]) packed for one kernel family; a module packs its weights once and reuses them.
class PackedWeights {
 public:
  // Packs W, rows at w_stride, for `kernel`; panels are packed in parallel on num_threads.
  void pack(const kernels::KernelTable& kernel, const float* w, int64_t w_stride, int64_t n, int64_t k,
            int num_threads);
  bool packed_for(const kernels::KernelTable& kernel) const { return kernel_ == &kernel; }
  const float* data() const { return data_.get(); }

 private:
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  const kernels::KernelTable* kernel_ = nullptr;
  std::unique_ptr<float, Free> data_;
};

// Floats W takes once packed for `kernel`.
std::size_t packed_floats(const kernels::KernelTable& kernel, int64_t n, int64_t k);

// Packs W into `packed` (packed_floats, 64-byte aligned), panels in parallel.
void pack(const kernels::KernelTable& kernel, const float* w, int64_t w_stride, int64_t n, int64_t k,
          int num_threads, float* packed);

// y[i][f] = Σ_j x[i][j] · W[f][j] + bias[f] for i < m, f < n, with W packed for `kernel`.
// Bits do not depend on num_threads. Arguments are trusted: callers validate.
void apply(const kernels::KernelTable& kernel, const float* packed, int64_t n, int64_t k, const float* bias,
           const float* x, int64_t x_stride, int64_t m, float* y, int64_t y_stride, int num_threads);

// causalattn_linear_f32: validates, packs W, applies.
int linear_f32(int64_t m, int64_t n, int64_t k, const float* x, int64_t x_stride, const float* weight,
               int64_t weight_stride, const float* bias, float* y, int64_t y_stride, int32_t num_threads);

// bf16 W ([n][k]) packed for one kernel family: in AMX's pair layout where the kernel has the
// tiles, else widened (exactly) into the f32 panels.
class PackedBf16Weights {
 public:
  void pack(const kernels::KernelTable& kernel, const uint16_t* w, int64_t w_stride, int64_t n, int64_t k, int num_threads);
  bool packed_for(const kernels::KernelTable& kernel) const { return kernel_ == &kernel; }
  const void* data() const { return data_.get(); }

 private:
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  const kernels::KernelTable* kernel_ = nullptr;
  std::unique_ptr<void, Free> data_;
};

// y = x · Wᵀ + b, all bf16 ([m][k] x, [m][n] y, bias nullptr or [n]) with W packed for `kernel`
// (PackedBf16Weights::data): on AMX tiles, or x and b widened for the f32 kernels and y rounded.
// Bits do not depend on num_threads. Arguments are trusted: callers validate.
void apply_bf16(const kernels::KernelTable& kernel, const void* packed, int64_t n, int64_t k, const uint16_t* bias,
                const uint16_t* x, int64_t x_stride, int64_t m, uint16_t* y, int64_t y_stride, int num_threads);

// causalattn_linear_bf16: validates, then on AMX tiles (the amx ISA) or widened to f32 elsewhere.
int linear_bf16(int64_t m, int64_t n, int64_t k, const void* x, int64_t x_stride, const void* weight,
                int64_t weight_stride, const void* bias, void* y, int64_t y_stride, int32_t num_threads);

}  // namespace causalattn::linear
