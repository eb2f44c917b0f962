#include "textbook_blas.hpp"

#include <cblas.h>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace causalattn::bench {
namespace {

// Row i of a causal T×T score matrix: mask the keys after i, then softmax in place. A fair
// baseline is a fast one: cloned per ISA and vectorized with glibc's vector expf (libmvec).
__attribute__((target_clones("avx512f", "avx2", "default"))) void masked_softmax_row(float* row, int64_t i,
                                                                                      int64_t t) {
  for (int64_t j = i + 1; j < t; ++j) row[j] = -std::numeric_limits<float>::infinity();
  float max = row[0];
#pragma omp simd reduction(max : max)
  for (int64_t j = 1; j <= i; ++j) max = std::max(max, row[j]);
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < t; ++j) {
    row[j] = std::exp(row[j] - max);
    sum += row[j];
  }
  const float inv = 1.0f / sum;
#pragma omp simd
  for (int64_t j = 0; j < t; ++j) row[j] *= inv;
}

}  // namespace

void TextbookBlasAttention::run(int64_t heads, int64_t t, int64_t d, const float* q, const float* k,
                                const float* v, float* out, int threads) {
  scores_.resize(static_cast<size_t>(t * t));
  float* s = scores_.data();
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  openblas_set_num_threads(threads);
  tbb::task_arena arena(threads);
  for (int64_t h = 0; h < heads; ++h) {
    const int64_t offset = h * t * d;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(t), static_cast<int>(t),
                static_cast<int>(d), scale, q + offset, static_cast<int>(d), k + offset, static_cast<int>(d), 0.0f,
                s, static_cast<int>(t));
    arena.execute([&] {
      tbb::parallel_for(tbb::blocked_range<int64_t>(0, t), [&](const tbb::blocked_range<int64_t>& rows) {
        for (int64_t i = rows.begin(); i < rows.end(); ++i) masked_softmax_row(s + i * t, i, t);
      });
    });
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(t), static_cast<int>(d),
                static_cast<int>(t), 1.0f, s, static_cast<int>(t), v + offset, static_cast<int>(d), 0.0f,
                out + offset, static_cast<int>(d));
  }
}

void blas_linear(int64_t m, int64_t n, int64_t k, const float* x, const float* w, const float* bias, float* y,
                 int threads) {
  openblas_set_num_threads(threads);
  // y starts as the bias rows, then sgemm adds x · Wᵀ (beta = 1), as torch.addmm does.
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t f = 0; f < n; ++f) y[i * n + f] = bias != nullptr ? bias[f] : 0.0f;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k),
              1.0f, x, static_cast<int>(k), w, static_cast<int>(k), 1.0f, y, static_cast<int>(n));
}

}  // namespace causalattn::bench
