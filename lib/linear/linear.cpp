#include "linear/linear.hpp"

#include <algorithm>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "common/dtype.hpp"

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
int64_t span_elements(int64_t rows, int64_t stride, int64_t cols, int64_t element_bytes) {
  return detail::span_elements({{rows, stride}}, cols, element_bytes);
}

// Every check of a projection's arguments (elements of element_bytes bytes), before anything is
// written: CAUSALATTN_OK, or the status with its message reported.
int validate(int64_t m, int64_t n, int64_t k, const void* x, int64_t x_stride, const void* weight, int64_t weight_stride,
             const void* bias, const void* y, int64_t y_stride, int32_t num_threads, std::size_t element_bytes) {
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
  for (const auto& [name, p] : {std::pair<const char*, const void*>{"x", x}, {"weight", weight}, {"bias", bias}, {"y", y}}) {
    if (reinterpret_cast<uintptr_t>(p) % element_bytes != 0) {
      return report(CAUSALATTN_ERROR_INVALID_LAYOUT, std::string(name) + " is not aligned to its element");
    }
  }
  const auto bytes = static_cast<int64_t>(element_bytes);
  const int64_t x_span = span_elements(m, x_stride, k, bytes), w_span = span_elements(n, weight_stride, k, bytes),
                y_span = span_elements(m, y_stride, n, bytes);
  if (x_span < 0 || w_span < 0 || y_span < 0) {
    return report(CAUSALATTN_ERROR_INVALID_SHAPE, "the sizes and strides overflow 64-bit addressing");
  }
  using detail::overlap, detail::range_of;
  const detail::Range out = range_of(y, y_span, element_bytes);
  if (overlap(out, range_of(x, x_span, element_bytes))) return report(CAUSALATTN_ERROR_ALIASING, "y overlaps x");
  if (overlap(out, range_of(weight, w_span, element_bytes))) return report(CAUSALATTN_ERROR_ALIASING, "y overlaps weight");
  if (bias != nullptr && overlap(out, range_of(bias, n, element_bytes))) {
    return report(CAUSALATTN_ERROR_ALIASING, "y overlaps bias");
  }
  return CAUSALATTN_OK;
}

}  // namespace

int linear_f32(int64_t m, int64_t n, int64_t k, const float* x, int64_t x_stride, const float* weight,
               int64_t weight_stride, const float* bias, float* y, int64_t y_stride, int32_t num_threads) {
  if (const int status = validate(m, n, k, x, x_stride, weight, weight_stride, bias, y, y_stride, num_threads, sizeof(float));
      status != CAUSALATTN_OK) {
    return status;
  }
  return detail::guarded([&] {
    const kernels::KernelTable& kernel = dispatch::kernel_table();
    float* w = parallel::thread_buffer<struct PackedWeightsOfCall>(packed_floats(kernel, n, k));
    pack(kernel, weight, weight_stride, n, k, num_threads, w);
    apply(kernel, w, n, k, bias, x, x_stride, m, y, y_stride, num_threads);
    return static_cast<int>(CAUSALATTN_OK);
  });
}

namespace {

std::size_t bf16_packed_bytes(const kernels::KernelTable& kernel, int64_t n, int64_t k) {
  return kernel.gemm_bf16_block != nullptr ? static_cast<std::size_t>(kernels::gemm_bf16_packed_elements(n, k)) * 2
                                           : packed_floats(kernel, n, k) * sizeof(float);
}

// Packs bf16 W into `packed` (bf16_packed_bytes, 64-byte aligned).
void pack_bf16(const kernels::KernelTable& kernel, const uint16_t* w, int64_t w_stride, int64_t n, int64_t k,
               int num_threads, void* packed) {
  if (kernel.gemm_bf16_block != nullptr) {
    parallel::for_each_task(num_threads, 0, (n + kernel.gemm_bf16_features - 1) / kernel.gemm_bf16_features,
                            [&](int, int64_t panel) {
                              kernel.gemm_bf16_pack_panel(w, w_stride, n, k, panel, static_cast<uint16_t*>(packed));
                            });
    return;
  }
  std::vector<float> widened(static_cast<std::size_t>(n * k));
  for (int64_t f = 0; f < n; ++f)
    for (int64_t j = 0; j < k; ++j) widened[f * k + j] = dtype::bf16_to_f32<void>(w[f * w_stride + j]);
  pack(kernel, widened.data(), k, n, k, num_threads, static_cast<float*>(packed));
}

}  // namespace

void PackedBf16Weights::pack(const kernels::KernelTable& kernel, const uint16_t* w, int64_t w_stride, int64_t n,
                             int64_t k, int num_threads) {
  const std::size_t bytes = (bf16_packed_bytes(kernel, n, k) + 63) / 64 * 64;
  std::unique_ptr<void, Free> data(std::aligned_alloc(64, bytes));
  if (!data) throw std::bad_alloc();
  pack_bf16(kernel, w, w_stride, n, k, num_threads, data.get());
  data_ = std::move(data);
  kernel_ = &kernel;
}

void apply_bf16(const kernels::KernelTable& kernel, const void* packed, int64_t n, int64_t k, const uint16_t* bias,
                const uint16_t* x, int64_t x_stride, int64_t m, uint16_t* y, int64_t y_stride, int num_threads) {
  auto ceil_div = [](int64_t a, int64_t b) { return (a + b - 1) / b; };
  if (kernel.gemm_bf16_block == nullptr) {
    // x and b widened exactly, the f32 projection, y rounded to nearest even (per-thread buffers
    // kept across calls, as the f32 path's).
    float* const wx = parallel::thread_buffer<struct WidenedRows>(static_cast<std::size_t>(m * k));
    float* const wy = parallel::thread_buffer<struct WidenedProducts>(static_cast<std::size_t>(m * n));
    float* const wb = bias != nullptr ? parallel::thread_buffer<struct WidenedBias>(static_cast<std::size_t>(n)) : nullptr;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < k; ++j) wx[i * k + j] = dtype::bf16_to_f32<void>(x[i * x_stride + j]);
    for (int64_t f = 0; wb != nullptr && f < n; ++f) wb[f] = dtype::bf16_to_f32<void>(bias[f]);
    apply(kernel, static_cast<const float*>(packed), n, k, wb, wx, k, m, wy, n, num_threads);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t f = 0; f < n; ++f) y[i * y_stride + f] = dtype::f32_to_bf16<void>(wy[i * n + f]);
    return;
  }
  // On the tiles or the dot product: tasks of 128 rows by 256 features, fewer features when there
  // are few rows.
  const int64_t features = kernel.gemm_bf16_features, panels = ceil_div(n, features);
  constexpr int64_t kTaskRows = 128;
  const int64_t row_tasks = ceil_div(m, kTaskRows);
  int64_t task_panels = 8;
  while (task_panels > 1 && row_tasks * ceil_div(panels, task_panels) < 4 * parallel::call_threads(num_threads)) {
    task_panels /= 2;
  }
  const int64_t feature_tasks = ceil_div(panels, task_panels);
  const std::size_t workspace_floats = (kernel.gemm_bf16_workspace_bytes(k) + 3) / 4;
  parallel::for_each_task(num_threads, 0, row_tasks * feature_tasks, [&](int, int64_t task) {
    kernels::GemmBf16Args g{};
    g.x = x;
    g.x_stride = x_stride;
    g.packed_w = static_cast<const uint16_t*>(packed);
    g.bias = bias;
    g.y = y;
    g.y_stride = y_stride;
    g.k = k;
    g.m_begin = task / feature_tasks * kTaskRows;
    g.m_end = std::min(m, g.m_begin + kTaskRows);
    g.n_begin = task % feature_tasks * task_panels * features;
    g.n_end = std::min(n, g.n_begin + task_panels * features);
    g.workspace = parallel::thread_buffer<struct GemmBf16Tile>(workspace_floats);
    kernel.gemm_bf16_block(g);
  });
}

int linear_bf16(int64_t m, int64_t n, int64_t k, const void* x, int64_t x_stride, const void* weight,
                int64_t weight_stride, const void* bias, void* y, int64_t y_stride, int32_t num_threads) {
  if (const int status = validate(m, n, k, x, x_stride, weight, weight_stride, bias, y, y_stride, num_threads, 2);
      status != CAUSALATTN_OK) {
    return status;
  }
  return detail::guarded([&] {
    const kernels::KernelTable& kernel = dispatch::kernel_table();
    void* w = parallel::thread_buffer<struct PackedWeightsOfCall>((bf16_packed_bytes(kernel, n, k) + 3) / 4);
    pack_bf16(kernel, static_cast<const uint16_t*>(weight), weight_stride, n, k, num_threads, w);
    apply_bf16(kernel, w, n, k, static_cast<const uint16_t*>(bias), static_cast<const uint16_t*>(x), x_stride, m,
               static_cast<uint16_t*>(y), y_stride, num_threads);
    return static_cast<int>(CAUSALATTN_OK);
  });
}

}  // namespace causalattn::linear
