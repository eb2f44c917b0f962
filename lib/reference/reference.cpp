// The double-precision textbook attention: scores, masked_fill(-inf), softmax, then · V.
#include "reference/reference.hpp"

#include <cmath>
#include <limits>

namespace causalattn::reference {

Result attention(const causalattn_shape& s, const float* q, causalattn_layout ql, const float* k,
                 causalattn_layout kl, const float* v, causalattn_layout vl, const Variant& variant) {
  const double scale = variant.scale != 0.0 ? variant.scale : 1.0 / std::sqrt(static_cast<double>(s.head_dim));
  const int64_t T = s.q_len, S = s.kv_len, D = s.head_dim;
  const int64_t Dv = variant.head_dim_v != 0 ? variant.head_dim_v : D;
  const double neg_inf = -std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();

  // Positions of queries and keys, and the textbook's mask buffer: true where query i must not
  // see key j (a later position, or with a window one at or before p_i - window).
  std::vector<int64_t> q_position(T), kv_position(S);
  for (int64_t i = 0; i < T; ++i) {
    q_position[i] = variant.alignment == Alignment::kExplicit ? variant.q_pos + i
                    : variant.alignment == Alignment::kTopLeft ? i
                                                                : i + S - T;
  }
  for (int64_t j = 0; j < S; ++j) kv_position[j] = (variant.alignment == Alignment::kExplicit ? variant.kv_pos : 0) + j;
  std::vector<char> mask(T * S, 0);
  for (int64_t i = 0; i < T; ++i)
    for (int64_t j = 0; j < S; ++j) {
      const int64_t p = q_position[i], key = kv_position[j];
      mask[i * S + j] = variant.causal && (key > p || (variant.window > 0 && key <= p - variant.window));
    }

  Result r;
  r.out.assign(s.batch * s.q_heads * T * Dv, 0.0);
  r.lse.assign(s.batch * s.q_heads * T, 0.0);
  std::vector<double> scores(T * S);
  for (int64_t b = 0; b < s.batch; ++b) {
    for (int64_t h = 0; h < s.q_heads; ++h) {
      const int64_t g = h / (s.q_heads / s.kv_heads);
      const float* qh = q + b * ql.batch + h * ql.head;
      const float* kh = k + b * kl.batch + g * kl.head;
      const float* vh = v + b * vl.batch + g * vl.head;
      const double sink = variant.sinks != nullptr ? variant.sinks[h] : neg_inf;
      for (int64_t i = 0; i < T; ++i) {
        for (int64_t j = 0; j < S; ++j) {
          double dot = 0.0, terms = 0.0;
          for (int64_t d = 0; d < D; ++d) {
            const double term = double(qh[i * ql.token + d]) * double(kh[j * kl.token + d]);
            dot += term;
            terms += std::fabs(term);
          }
          double score = dot * scale, magnitude = terms * std::fabs(scale);
          if (variant.softcap > 0.0) score = variant.softcap * std::tanh(score / variant.softcap);
          if (variant.alibi_slopes != nullptr) {
            const double bias = double(variant.alibi_slopes[h]) * double(q_position[i] - kv_position[j]);
            score -= bias;
            magnitude += std::fabs(bias);
          }
          scores[i * S + j] = mask[i * S + j] ? neg_inf : score;
          if (!mask[i * S + j]) r.score_magnitude = std::fmax(r.score_magnitude, magnitude);
        }
      }
      for (int64_t i = 0; i < T; ++i) {
        double* row = scores.data() + i * S;  // S may be 0: a row that sees no key
        double max = sink;                    // the sink is one more logit, with no value
        bool has_nan = false;
        for (int64_t j = 0; j < S; ++j) {
          has_nan |= std::isnan(row[j]);
          max = std::fmax(max, row[j]);
        }
        double* o = &r.out[((b * s.q_heads + h) * T + i) * Dv];
        double& lse = r.lse[(b * s.q_heads + h) * T + i];
        if (has_nan) {  // a NaN score makes the whole softmax NaN
          for (int64_t d = 0; d < Dv; ++d) o[d] = nan;
          lse = nan;
          continue;
        }
        if (max == neg_inf) {  // no key with a score above -inf, no sink: the softmax is 0/0
          for (int64_t d = 0; d < Dv; ++d) o[d] = nan;
          lse = neg_inf;
          continue;
        }
        double sum = std::exp(sink - max);
        for (int64_t j = 0; j < S; ++j) sum += std::exp(row[j] - max);
        for (int64_t j = 0; j < S; ++j) {
          if (mask[i * S + j]) continue;  // a masked key contributes nothing, even a NaN value
          double p = std::exp(row[j] - max) / sum;
          if (variant.dropout != nullptr) p *= (*variant.dropout)(b, h, i, j);  // after the softmax, as nn.Dropout
          for (int64_t d = 0; d < Dv; ++d) o[d] += p * double(vh[j * vl.token + d]);
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
