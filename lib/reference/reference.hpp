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
  // Largest |scale| · Σ_d |q_d·k_d| (plus |ALiBi's bias|) over visible pairs: fp32's rounding error
  // of a score is a few ulps of the terms it sums, not of the score, which cancellation can make 0.
  double score_magnitude = 0.0;
};

// Materializes the q_len × kv_len score matrix and an explicit mask, then softmax and the product
// with V, all in double, each model variant from its formula (causalattn.h):
//   s = scale · q·k; s = softcap · tanh(s / softcap); s -= slope_h · (p_i - P_j); masked;
//   O_i = Σ_j e^s_ij V_j / (e^sink_h + Σ_j e^s_ij), lse = log(e^sink_h + Σ_j e^s_ij),
// with positions p_i = q_pos + i, P_j = kv_pos + j (explicit), or bottom-right p_i = i + kv_len -
// q_len, P_j = j, or top-left. Causal: query i sees key j iff P_j <= p_i (and P_j > p_i - window).
// dropout, when given, multiplies softmax weight (batch, head, i, j) before the product with V
// (0 for a dropped weight, 1/(1 - p) for a kept one); the lse stays that of the softmax.
// Inputs are read through the same layouts as the library's; V and out have head_dim_v dims.
using WeightMultiplier = std::function<double(int64_t batch, int64_t head, int64_t query, int64_t key)>;
enum class Alignment { kBottomRight, kTopLeft, kExplicit };
struct Variant {
  bool causal = true;
  double scale = 0.0;  // 0: 1/sqrt(head_dim)
  int64_t window = 0;
  Alignment alignment = Alignment::kBottomRight;
  int64_t q_pos = 0, kv_pos = 0;  // kExplicit
  const float* sinks = nullptr;   // [q_heads]
  double softcap = 0.0;
  const float* alibi_slopes = nullptr;  // [q_heads]
  int64_t head_dim_v = 0;               // 0: head_dim
  const WeightMultiplier* dropout = nullptr;
};
Result attention(const causalattn_shape& shape, const float* q, causalattn_layout q_layout, const float* k,
                 causalattn_layout k_layout, const float* v, causalattn_layout v_layout, const Variant& variant);

// The plain variant: causal or not, a scale, a window, dropout.
inline Result attention(const causalattn_shape& shape, const float* q, causalattn_layout q_layout, const float* k,
                        causalattn_layout k_layout, const float* v, causalattn_layout v_layout, bool causal,
                        double scale, int64_t window = 0, const WeightMultiplier* dropout = nullptr) {
  Variant variant;
  variant.causal = causal;
  variant.scale = scale;
  variant.window = window;
  variant.dropout = dropout;
  return attention(shape, q, q_layout, k, k_layout, v, v_layout, variant);
}

// y = x · Wᵀ + b in double, and beside each element the sum of |x·w| terms (plus |b|) that
// bounds fp32's rounding error: x [m][k], w [n][k], bias nullptr or [n], all contiguous.
struct LinearResult {
  std::vector<double> y;          // [m][n]
  std::vector<double> magnitude;  // [m][n]
};
LinearResult linear(const float* x, int64_t m, int64_t k, const float* w, int64_t n, const float* bias);

}  // namespace causalattn::reference
