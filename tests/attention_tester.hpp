// A builder-style tester: random inputs in a chosen layout, the library against the
// double-precision reference, with a stated tolerance.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "causalattn/causalattn.h"
#include "reference/reference.hpp"

namespace causalattn::testing {

enum class Layout { kBHTD, kBTHD, kPadded };

inline const char* layout_name(Layout layout) {
  switch (layout) {
    case Layout::kBHTD: return "BHTD";
    case Layout::kBTHD: return "BTHD";
    case Layout::kPadded: return "padded";
  }
  return "?";
}

// Strides of a [batch][heads][tokens][head_dim] tensor stored in `layout`, and the elements to
// allocate. kPadded pads every stride so no two dimensions are packed.
inline causalattn_layout make_layout(Layout layout, int64_t batch, int64_t heads, int64_t tokens,
                                     int64_t head_dim, int64_t* elements) {
  causalattn_layout l{};
  switch (layout) {
    case Layout::kBHTD:
      l = {heads * tokens * head_dim, tokens * head_dim, head_dim};
      break;
    case Layout::kBTHD:
      l = {tokens * heads * head_dim, head_dim, heads * head_dim};
      break;
    case Layout::kPadded:
      l.token = head_dim + 5;
      l.head = tokens * l.token + 3;
      l.batch = heads * l.head + 7;
      break;
  }
  *elements = (batch - 1) * l.batch + (heads - 1) * l.head + (tokens - 1) * l.token + head_dim;
  return l;
}

// Every ISA this build has, best first (causalattn_known_isa): the per-ISA suites run each one
// this CPU runs and show the others as skipped.
inline std::vector<std::string> known_isas() {
  std::vector<std::string> isas;
  for (int32_t i = 0; causalattn_known_isa(i) != nullptr; ++i) isas.push_back(causalattn_known_isa(i));
  return isas;
}

// Selects `isa` for a test; false (and the test skipped) when this CPU does not run it.
inline bool select_isa_or_skip(const std::string& isa) {
  if (causalattn_set_isa(isa.c_str()) == CAUSALATTN_OK) return true;
  causalattn_set_isa(nullptr);
  return false;
}

// A test case's tensors: Q, K, V filled with N(0, 1) values, the output with a sentinel.
struct Problem {
  causalattn_shape shape{};
  causalattn_layout q_layout{}, k_layout{}, v_layout{}, out_layout{};
  std::vector<float> q, k, v, out, lse;

  Problem(causalattn_shape s, Layout layout, uint32_t seed) : shape(s) {
    int64_t nq = 0, nk = 0, no = 0;
    q_layout = make_layout(layout, s.batch, s.q_heads, s.q_len, s.head_dim, &nq);
    k_layout = make_layout(layout, s.batch, s.kv_heads, s.kv_len, s.head_dim, &nk);
    v_layout = k_layout;
    out_layout = make_layout(layout, s.batch, s.q_heads, s.q_len, s.head_dim, &no);
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal;
    q.resize(nq);
    k.resize(nk);
    v.resize(nk);
    for (auto* t : {&q, &k, &v})
      for (float& x : *t) x = normal(rng);
    out.assign(no, -12345.0f);
    lse.assign(s.batch * s.q_heads * s.q_len, -12345.0f);
  }

  int run(uint32_t flags, float scale, int threads, bool with_lse) {
    causalattn_options options{};
    options.flags = flags;
    options.scale = scale;
    options.num_threads = threads;
    options.lse = with_lse ? lse.data() : nullptr;
    return causalattn_forward_f32(&shape, q.data(), q_layout, k.data(), k_layout, v.data(), v_layout,
                                  out.data(), out_layout, &options);
  }

  // The call with a caller-owned workspace (causalattn_forward_f32_with_workspace).
  int run_with_workspace(const causalattn_options& options, void* workspace, size_t bytes) {
    return causalattn_forward_f32_with_workspace(&shape, q.data(), q_layout, k.data(), k_layout, v.data(), v_layout,
                                                 out.data(), out_layout, &options, workspace, bytes);
  }

  // Element d of output row (b, h, i).
  float out_at(int64_t b, int64_t h, int64_t i, int64_t d) const {
    return out[b * out_layout.batch + h * out_layout.head + i * out_layout.token + d];
  }
};

// |out - ref| <= 2^-16 · max|v| · max(1, S/16), S the largest |scale|·Σ_d|q_d·k_d| (about 256
// ulp at magnitude 1). fp32 scores carry an absolute error proportional to the terms they sum,
// not to the score (terms of 1e31 that cancel to 0 leave ~1e24): a dot product of D <= 256 terms
// is off by ~sqrt(D)·u·Σ|terms| (u = 2^-24) typically and several times that at the tails, and
// an output moves by about that error times |v|. With N(0, 1) inputs and scale 1/sqrt(D), S is
// about 0.64·sqrt(D), under 16; exp2 adds <= 2 ulp and the running sums over Tk <= 1031 keys add
// ~sqrt(Tk)·u. Measured worst cases are ~1e-6 (about 2^-20): the bound keeps a 4-16× margin yet
// sits far below real defects (a key dropped or masked wrongly among a thousand moves outputs by
// ~1e-3). LSE: |lse - ref| <= 2^-16 · max(1, S/16) · (1 + |ref|).
struct Tolerance {
  double out;        // absolute, on outputs
  double lse_factor; // relative to 1 + |lse|
};

inline Tolerance tolerance_for(const std::vector<float>& v, const reference::Result& ref) {
  float v_max = 0.0f;
  for (float x : v)
    if (std::isfinite(x)) v_max = std::fmax(v_max, std::fabs(x));
  const double score_factor = std::fmax(1.0, ref.score_magnitude / 16.0);
  return {std::ldexp(1.0, -16) * v_max * score_factor, std::ldexp(1.0, -16) * score_factor};
}

inline Tolerance default_tolerance(const Problem& p, const reference::Result& ref) { return tolerance_for(p.v, ref); }

// One element against the reference: NaN where the reference is NaN, the same infinity where it
// is infinite, within `tolerance` where it is finite.
inline bool matches(double got, double expected, double tolerance) {
  if (std::isnan(expected)) return std::isnan(got);
  if (std::isinf(expected)) return got == expected;
  return std::fabs(got - expected) <= tolerance;
}

// p's output (and LSE) against a reference result, within tol.
inline void expect_matches(const Problem& p, const reference::Result& ref, const Tolerance& tol, bool with_lse) {
  double worst = 0.0;
  const causalattn_shape& s = p.shape;
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t h = 0; h < s.q_heads; ++h)
      for (int64_t i = 0; i < s.q_len; ++i)
        for (int64_t d = 0; d < s.head_dim; ++d) {
          const double expected = ref.out[((b * s.q_heads + h) * s.q_len + i) * s.head_dim + d];
          const double got = p.out_at(b, h, i, d);
          if (!matches(got, expected, tol.out)) {
            FAIL() << "out[" << b << "][" << h << "][" << i << "][" << d << "] = " << got << ", reference "
                   << expected << ", tolerance " << tol.out;
          }
          if (std::isfinite(expected)) worst = std::fmax(worst, std::fabs(got - expected));
        }
  if (with_lse) {
    for (size_t i = 0; i < ref.lse.size(); ++i) {
      if (!matches(p.lse[i], ref.lse[i], tol.lse_factor * (1.0 + std::fabs(ref.lse[i])))) {
        FAIL() << "lse[" << i << "] = " << p.lse[i] << ", reference " << ref.lse[i];
      }
    }
  }
  ::testing::Test::RecordProperty("max_abs_error", std::to_string(worst));
}

// p's output (and LSE) against the double reference on the same inputs.
inline void expect_matches_reference(const Problem& p, bool causal, float scale, bool with_lse,
                                     const Tolerance* tolerance = nullptr) {
  const reference::Result ref = reference::attention(p.shape, p.q.data(), p.q_layout, p.k.data(), p.k_layout,
                                                     p.v.data(), p.v_layout, causal, scale);
  expect_matches(p, ref, tolerance != nullptr ? *tolerance : default_tolerance(p, ref), with_lse);
}

class AttnTester {
 public:
  AttnTester& batch(int64_t n) { shape_.batch = n; return *this; }
  AttnTester& heads(int64_t q, int64_t kv) { shape_.q_heads = q; shape_.kv_heads = kv; return *this; }
  AttnTester& q_len(int64_t n) { shape_.q_len = n; return *this; }
  AttnTester& kv_len(int64_t n) { shape_.kv_len = n; return *this; }
  AttnTester& seq_len(int64_t n) { shape_.q_len = shape_.kv_len = n; return *this; }
  AttnTester& head_dim(int64_t n) { shape_.head_dim = n; return *this; }
  AttnTester& causal(bool c) { causal_ = c; return *this; }
  AttnTester& layout(Layout l) { layout_ = l; return *this; }
  AttnTester& scale(float s) { scale_ = s; return *this; }
  AttnTester& lse(bool with) { with_lse_ = with; return *this; }
  AttnTester& threads(int n) { threads_ = n; return *this; }

  // Runs the library and compares every output (and LSE) with the reference, within
  // default_tolerance.
  void Test() const {
    SCOPED_TRACE(describe());
    Problem p(shape_, layout_, seed());
    const int status = p.run(causal_ ? 0u : CAUSALATTN_NON_CAUSAL, scale_, threads_, with_lse_);
    ASSERT_EQ(status, CAUSALATTN_OK) << causalattn_last_error();
    expect_matches_reference(p, causal_, scale_, with_lse_);
  }

 private:
  std::string describe() const {
    const causalattn_shape& s = shape_;
    return "B=" + std::to_string(s.batch) + " Hq=" + std::to_string(s.q_heads) + " Hkv=" +
           std::to_string(s.kv_heads) + " Tq=" + std::to_string(s.q_len) + " Tk=" + std::to_string(s.kv_len) +
           " D=" + std::to_string(s.head_dim) + (causal_ ? " causal" : " non-causal") + " " +
           layout_name(layout_) + " isa=" + causalattn_isa();
  }
  uint32_t seed() const {
    const causalattn_shape& s = shape_;
    return static_cast<uint32_t>(s.batch * 1000003 + s.q_heads * 10007 + s.q_len * 101 + s.kv_len * 7 + s.head_dim);
  }

  causalattn_shape shape_{1, 1, 1, 1, 1, 64};
  bool causal_ = true;
  Layout layout_ = Layout::kBHTD;
  float scale_ = 0.0f;
  bool with_lse_ = true;
  int threads_ = 0;
};

// Runs a test body once per ISA the CPU has, selecting it first.
class PerIsaTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!select_isa_or_skip(GetParam())) GTEST_SKIP() << "this CPU does not run " << GetParam();
  }
  void TearDown() override { causalattn_set_isa(nullptr); }
};

}  // namespace causalattn::testing
