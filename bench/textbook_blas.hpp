// The textbook algorithm as a C++ user would write it with the best matrix product at hand
// (OpenBLAS): per (batch, head) a full T×T score matrix S = scale·Q·Kᵀ, the causal mask written
// as −∞ above the diagonal, a row softmax, then O = P·V. It costs O(T²) memory and does the
// work of the upper triangle that the mask throws away: the baseline our kernel is set against.
// Bench only: the library never links a BLAS.
#pragma once

#include <cstdint>
#include <vector>

namespace causalattn::bench {

class TextbookBlasAttention {
 public:
  // Q, K, V and out are [heads][t][d] contiguous (batch folded into heads). threads ≥ 1 sets
  // OpenBLAS's threads and the softmax's.
  void run(int64_t heads, int64_t t, int64_t d, const float* q, const float* k, const float* v, float* out,
           int threads);

 private:
  std::vector<float> scores_;  // t × t, reused across heads and calls, as a cached buffer would be
};

// y = x · Wᵀ + b with cblas_sgemm on `threads` threads: the projection baseline.
// x [m][k], w [n][k], bias [n] or nullptr, y [m][n], all contiguous.
void blas_linear(int64_t m, int64_t n, int64_t k, const float* x, const float* w, const float* bias, float* y,
                 int threads);

}  // namespace causalattn::bench
