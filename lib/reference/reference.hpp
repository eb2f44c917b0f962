// The oracle: the textbook algorithm written plainly, in double. Obviously correct, not fast.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "causalattn/causalattn.h"

namespace causalattn::reference {

struct Result {
  std::vector<double> out;  // [batch][q_heads][q_len][head_dim], contiguous
  std::vector<double> lse;  // [batch][q_heads][q_len]
  double max_abs_score = 0.0;  // largest |scale · q·k| over visible pairs: sets fp32's error scale
};

// Materializes the q_len × kv_len score matrix and an explicit causal mask (bottom-right
// aligned, as the library's), then softmax and the product with V, all in double.
// scale = 0 means 1/sqrt(head_dim). Inputs are read through the same layouts as the library's.
// window > 0 (causal) also masks keys j <= i + kv_len - q_len - window.
// dropout, when given, multiplies softmax weight (batch, head, i, j) before the product with V
// (0 for a dropped weight, 1/(1 - p) for a kept one); the lse stays that of the softmax.
using WeightMultiplier = std::function<double(int64_t batch, int64_t head, int64_t query, int64_t key)>;
Result attention(const causalattn_shape& shape, const float* q, causalattn_layout q_layout,
                 const float* k, causalattn_layout k_layout, const float* v,
                 causalattn_layout v_layout, bool causal, double scale, int64_t window = 0,
                 const WeightMultiplier* dropout = nullptr);

// y = x · Wᵀ + b in double, and beside each element the sum of |x·w| terms (plus |b|) that
// bounds fp32's rounding error: x [m][k], w [n][k], bias nullptr or [n], all contiguous.
struct LinearResult {
  std::vector<double> y;          // [m][n]
  std::vector<double> magnitude;  // [m][n]
};
LinearResult linear(const float* x, int64_t m, int64_t k, const float* w, int64_t n, const float* bias);

}  // namespace causalattn::reference
