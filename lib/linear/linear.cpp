#include "linear/linear.hpp"

#include <algorithm>
#include <new>
#include <string>

#include "common/errors.hpp"
#include "common/spans.hpp"
#include "causalattn/causalattn.h"
#include "parallel/parallel.hpp"

namespace causalattn::linear {
namespace {


int64_t panels(const kernels::KernelTable& kernel, int64_t n) {
  return (n + kernel.gemm_features - 1) / kernel.gemm_features;
}

// Micro-panels of x packed per task.
constexpr int64_t kPackPanels = 16;

}  // namespace

std::size_t packed_floats(const kernels::KernelTable& kernel, int64_t n, int64_t k) {
  return static_cast<std::size_t>(panels(kernel, n) * kernel.gemm_features * k);
}

void pack(const kernels::KernelTable& kernel, const float* w, int64_t w_stride, int64_t n, int64_t k,
          int num_threads, float* packed) {
  const int64_t panel_floats = kernel.gemm_features * k;
  parallel::for_each_task(num_threads, 0, panels(kernel, n), [&](int, int64_t panel) {
    kernel.gemm_pack_panel(w, w_stride, n, k, panel, packed + panel * panel_floats);
  });
}

void PackedWeights::pack(const kernels::KernelTable& kernel, const float* w, int64_t w_stride, int64_t n, int64_t k,
                         int num_threads) {
  const std::size_t bytes = (packed_floats(kernel, n, k) * sizeof(float) + 63) / 64 * 64;
  std::unique_ptr<float, Free> data(static_cast<float*>(std::aligned_alloc(64, bytes)));
  if (!data) throw std::bad_alloc();
  linear::pack(kernel, w, w_stride, n, k, num_threads, data.get());
  data_ = std::move(data);
  kernel_ = &kernel;
}

void apply(const kernels::KernelTable& kernel, const float* packed, int64_t n, int64_t k, const float* bias,
           const float* x, int64_t x_stride, int64_t m, float* y, int64_t y_stride, int num_threads) {
  // Rows in equal shares of at most gemm_rows, each a multiple of the microkernel's rows.
  auto ceil_div = [](int64_t a, int64_t b) { return (a + b - 1) / b; };
  const int64_t panel = kernel.gemm_row_panel;
  const int64_t task_rows = ceil_div(ceil_div(m, ceil_div(m, kernel.gemm_rows)), panel) * panel;
  const int64_t row_tasks = ceil_div(m, task_rows);
  // Whole 1024-feature blocks when there are rows enough to share out; narrower ones (never
  // under a panel) when there are few rows, as for a short prompt or a decode step.
  const int threads = parallel::call_threads(num_threads);
  int64_t task_features = kernels::kGemmTaskFeatures;
  while (task_features > kernel.gemm_features && row_tasks * ceil_div(n, task_features) < 4 * threads) {
    task_features /= 2;
  }
  const int64_t feature_tasks = ceil_div(n, task_features);
  // x is packed once into micro-panels [k][panel rows], which every feature task then shares.
  const int64_t row_panels = ceil_div(m, panel);
  float* const packed_x = parallel::thread_buffer<struct PackedRows>(static_cast<std::size_t>(row_panels * panel * k));
  parallel::for_each_task(num_threads, 0, ceil_div(row_panels, kPackPanels), [&](int, int64_t task) {
    for (int64_t p = task * kPackPanels; p < std::min(row_panels, (task + 1) * kPackPanels); ++p) {
      kernel.gemm_pack_rows(x + p * panel * x_stride, x_stride, std::min(panel, m - p * panel), k,
                            packed_x + p * panel * k);
    }
  });
  const std::size_t workspace_floats = kernel.gemm_workspace_floats();
  parallel::for_each_task(num_threads, 0, row_tasks * feature_tasks, [&](int, int64_t task) {
    const int64_t rows = task / feature_tasks, features = task % feature_tasks;
    kernels::GemmArgs g{};
    g.packed_w = packed;
    g.bias = bias;
    g.y = y;
    g.y_stride = y_stride;
    g.k = k;
    g.m_begin = rows * task_rows;
    g.m_end = std::min(m, g.m_begin + task_rows);
    g.packed_x = packed_x + g.m_begin * k;
    g.n_begin = features * task_features;
    g.n_end = std::min(n, g.n_begin + task_features);
    g.workspace = parallel::thread_buffer<struct GemmTile>(workspace_floats);
    kernel.gemm_block(g);
  });
}

namespace {

// Elements a [rows][cols] matrix at `stride` spans, or -1.
int64_t span_elements(int64_t rows, int64_t stride, int64_t cols) { return detail::span_elements({{rows, stride}}, cols); }

}  // namespace

int linear_f32(int64_t m, int64_t n, int64_t k, const float* x, int64_t x_stride, const float* weight,
               int64_t weight_stride, const float* bias, float* y, int64_t y_stride, int32_t num_threads) {
  using detail::report;
  if (x == nullptr) return report(CAUSALATTN_ERROR_NULL_POINTER, "x is NULL");
  if (weight == nullptr) return report(CAUSALATTN_ERROR_NULL_POINTER, "weight is NULL");
  if (y == nullptr) return report(CAUSALATTN_ERROR_NULL_POINTER, "y is NULL");
  if (m <= 0 || n <= 0 || k <= 0) {
    return report(CAUSALATTN_ERROR_INVALID_SHAPE, "m, n and k must be positive (got m=" + std::to_string(m) +
                                                      ", n=" + std::to_string(n) + ", k=" + std::to_string(k) + ")");
  }
  if (x_stride < k) return report(CAUSALATTN_ERROR_INVALID_LAYOUT, "x_stride must be at least k");
  if (weight_stride < k) return report(CAUSALATTN_ERROR_INVALID_LAYOUT, "weight_stride must be at least k");
  if (y_stride < n) return report(CAUSALATTN_ERROR_INVALID_LAYOUT, "y_stride must be at least n (rows of y must not overlap)");
  if (num_threads < 0) return report(CAUSALATTN_ERROR_INVALID_OPTION, "num_threads must not be negative");
  const int64_t x_span = span_elements(m, x_stride, k), w_span = span_elements(n, weight_stride, k),
                y_span = span_elements(m, y_stride, n);
  if (x_span < 0 || w_span < 0 || y_span < 0) {
    return report(CAUSALATTN_ERROR_INVALID_SHAPE, "the sizes and strides overflow 64-bit addressing");
  }
  using detail::overlap, detail::range_of;
  const detail::Range out = range_of(y, y_span);
  if (overlap(out, range_of(x, x_span))) return report(CAUSALATTN_ERROR_ALIASING, "y overlaps x");
  if (overlap(out, range_of(weight, w_span))) return report(CAUSALATTN_ERROR_ALIASING, "y overlaps weight");
  if (bias != nullptr && overlap(out, range_of(bias, n))) return report(CAUSALATTN_ERROR_ALIASING, "y overlaps bias");
  return detail::guarded([&] {
    const kernels::KernelTable& kernel = dispatch::kernel_table();
    float* w = parallel::thread_buffer<struct PackedWeightsOfCall>(packed_floats(kernel, n, k));
    pack(kernel, weight, weight_stride, n, k, num_threads, w);
    apply(kernel, w, n, k, bias, x, x_stride, m, y, y_stride, num_threads);
    return static_cast<int>(CAUSALATTN_OK);
  });
}

}  // namespace causalattn::linear
