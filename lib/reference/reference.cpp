// The double-precision textbook attention: scores, masked_fill(-inf), softmax, then · V.
#include "reference/reference.hpp"

#include <cmath>
#include <limits>

namespace causalattn::reference {

Result attention(const causalattn_shape& s, const float* q, causalattn_layout ql, const float* k,
                 causalattn_layout kl, const float* v, causalattn_layout vl, bool causal, double scale,
                 int64_t window, const WeightMultiplier* dropout) {
  if (scale == 0.0) scale = 1.0 / std::sqrt(static_cast<double>(s.head_dim));
  const int64_t T = s.q_len, S = s.kv_len, D = s.head_dim;
  const double neg_inf = -std::numeric_limits<double>::infinity();

  // The textbook's mask buffer: true above the (bottom-right aligned) diagonal, and with a
  // window, true at or below the diagonal shifted down by window.
  std::vector<char> mask(T * S, 0);
  for (int64_t i = 0; i < T; ++i)
    for (int64_t j = 0; j < S; ++j)
      mask[i * S + j] = causal && (j > i + (S - T) || (window > 0 && j <= i + (S - T) - window));

  Result r;
  r.out.assign(s.batch * s.q_heads * T * D, 0.0);
  r.lse.assign(s.batch * s.q_heads * T, 0.0);
  std::vector<double> scores(T * S);
  for (int64_t b = 0; b < s.batch; ++b) {
    for (int64_t h = 0; h < s.q_heads; ++h) {
      const int64_t g = h / (s.q_heads / s.kv_heads);
      const float* qh = q + b * ql.batch + h * ql.head;
      const float* kh = k + b * kl.batch + g * kl.head;
      const float* vh = v + b * vl.batch + g * vl.head;
      for (int64_t i = 0; i < T; ++i) {
        for (int64_t j = 0; j < S; ++j) {
          double dot = 0.0;
          for (int64_t d = 0; d < D; ++d) dot += double(qh[i * ql.token + d]) * double(kh[j * kl.token + d]);
          scores[i * S + j] = mask[i * S + j] ? neg_inf : dot * scale;
          if (!mask[i * S + j]) r.max_abs_score = std::fmax(r.max_abs_score, std::fabs(dot * scale));
        }
      }
      for (int64_t i = 0; i < T; ++i) {
        double* row = scores.data() + i * S;  // S may be 0: a row that sees no key
        double max = neg_inf;
        bool has_nan = false;
        for (int64_t j = 0; j < S; ++j) {
          has_nan |= std::isnan(row[j]);
          max = std::fmax(max, row[j]);
        }
        double* o = &r.out[((b * s.q_heads + h) * T + i) * D];
        double& lse = r.lse[(b * s.q_heads + h) * T + i];
        if (has_nan) {  // a NaN score makes the whole softmax NaN
          for (int64_t d = 0; d < D; ++d) o[d] = std::numeric_limits<double>::quiet_NaN();
          lse = std::numeric_limits<double>::quiet_NaN();
          continue;
        }
        if (max == neg_inf) {  // no key with a score above -inf: the softmax is 0/0
          for (int64_t d = 0; d < D; ++d) o[d] = std::numeric_limits<double>::quiet_NaN();
          lse = neg_inf;
          continue;
        }
        double sum = 0.0;
        for (int64_t j = 0; j < S; ++j) sum += std::exp(row[j] - max);
        for (int64_t j = 0; j < S; ++j) {
          if (mask[i * S + j]) continue;  // a masked key contributes nothing, even a NaN value
          double p = std::exp(row[j] - max) / sum;
          if (dropout != nullptr) p *= (*dropout)(b, h, i, j);  // after the softmax, as nn.Dropout
          for (int64_t d = 0; d < D; ++d) o[d] += p * double(vh[j * vl.token + d]);
        }
        lse = max + std::log(sum);
      }
    }
  }
  return r;
}

LinearResult linear(const float* x, int64_t m, int64_t k, const float* w, int64_t n, const float* bias) {
  LinearResult r;
  r.y.assign(static_cast<std::size_t>(m * n), 0.0);
  r.magnitude.assign(static_cast<std::size_t>(m * n), 0.0);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t f = 0; f < n; ++f) {
      double sum = bias != nullptr ? bias[f] : 0.0;
      double magnitude = bias != nullptr ? std::fabs(bias[f]) : 0.0;
      for (int64_t j = 0; j < k; ++j) {
        const double term = static_cast<double>(x[i * k + j]) * w[f * k + j];
        sum += term;
        magnitude += std::fabs(term);
      }
      r.y[i * n + f] = sum;
      r.magnitude[i * n + f] = magnitude;
    }
  }
  return r;
}

}  // namespace causalattn::reference
