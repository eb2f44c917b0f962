// The projection (causalattn_linear_f32) against the double-precision oracle, on every ISA this
// CPU runs: odd sizes around the microkernel's blocks, strided rows, bias on and off, the same
// bits on any thread count, and bad arguments.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "attention_tester.hpp"
#include "causalattn/causalattn.h"
#include "reference/reference.hpp"

namespace {

using causalattn::testing::known_isas;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kSentinel = -12345.0f;

struct LinearCase {
  int64_t m, n, k;
  int64_t x_pad = 0, w_pad = 0, y_pad = 0;  // extra elements per row
  bool bias = true;
  int threads = 1;
};

// Random x and W with NaN in their row padding (which must never be read), y padding holding a
// sentinel (which must never be written).
struct LinearProblem {
  LinearCase c;
  std::vector<float> x, w, bias, y;
  std::vector<float> x_dense, w_dense;  // the same values without padding, for the oracle

  explicit LinearProblem(const LinearCase& lc, uint32_t seed = 7) : c(lc) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    const int64_t xs = c.k + c.x_pad, ws = c.k + c.w_pad, ys = c.n + c.y_pad;
    x.assign(c.m * xs, kNaN);
    w.assign(c.n * ws, kNaN);
    for (int64_t i = 0; i < c.m; ++i) {
      for (int64_t j = 0; j < c.k; ++j) x_dense.push_back(x[i * xs + j] = dist(rng));
    }
    for (int64_t f = 0; f < c.n; ++f) {
      for (int64_t j = 0; j < c.k; ++j) w_dense.push_back(w[f * ws + j] = dist(rng));
    }
    if (c.bias) {
      for (int64_t f = 0; f < c.n; ++f) bias.push_back(dist(rng));
    }
    y.assign(c.m * ys, kSentinel);
  }

  int run() {
    return causalattn_linear_f32(c.m, c.n, c.k, x.data(), c.k + c.x_pad, w.data(), c.k + c.w_pad,
                                 c.bias ? bias.data() : nullptr, y.data(), c.n + c.y_pad, c.threads);
  }
};

// fp32 sums k products (and the bias) with at most one rounding per step: the error is at most
// (k + 1) · 2^-24 · Σ|terms| (Higham's γ bound for recursive summation, FMA or not). A wrong
// index or a dropped block misses by O(1), far outside it.
void expect_matches_oracle(const LinearProblem& p) {
  const causalattn::reference::LinearResult ref = causalattn::reference::linear(
      p.x_dense.data(), p.c.m, p.c.k, p.w_dense.data(), p.c.n, p.c.bias ? p.bias.data() : nullptr);
  const int64_t ys = p.c.n + p.c.y_pad;
  const double unit = std::ldexp(1.0, -24);
  int64_t bad = 0;
  for (int64_t i = 0; i < p.c.m; ++i) {
    for (int64_t f = 0; f < ys; ++f) {
      const float got = p.y[i * ys + f];
      if (f >= p.c.n) {
        if (got != kSentinel && ++bad < 5) ADD_FAILURE() << "padding of y row " << i << " written at " << f;
        continue;
      }
      const double want = ref.y[i * p.c.n + f];
      const double tol = (p.c.k + 2) * unit * ref.magnitude[i * p.c.n + f] + 1e-30;
      if (!(std::fabs(got - want) <= tol) && ++bad < 5) {
        ADD_FAILURE() << "y[" << i << "][" << f << "] = " << got << ", oracle " << want << " (tolerance " << tol << ")";
      }
    }
  }
  EXPECT_EQ(bad, 0);
}

class Linear : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!causalattn::testing::select_isa_or_skip(GetParam())) GTEST_SKIP() << "this CPU does not run " << GetParam();
  }
  void TearDown() override { causalattn_set_isa(nullptr); }
};

TEST_P(Linear, MatchesOracleAroundBlockEdges) {
  // m around the row micro-panels (6, 14) and blocks (144, 168); n around the panels (8, 16,
  // 32) and the 8-panel tasks; k around the 256-deep passes.
  for (int64_t m : {1, 5, 13, 15, 170, 337}) {
    for (int64_t n : {1, 17, 31, 33, 300}) {
      for (int64_t k : {1, 7, 255, 257, 530}) {
        LinearProblem p({m, n, k, 0, 0, 0, (m + n) % 2 == 0});
        ASSERT_EQ(p.run(), CAUSALATTN_OK) << causalattn_last_error();
        SCOPED_TRACE("m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k));
        expect_matches_oracle(p);
      }
    }
  }
}

TEST_P(Linear, StridedRowsAreReadAndWrittenOnlyWithinTheirLength) {
  LinearProblem p({45, 70, 129, 3, 5, 11, true});
  ASSERT_EQ(p.run(), CAUSALATTN_OK) << causalattn_last_error();
  expect_matches_oracle(p);
}

TEST_P(Linear, SameBitsForAnyThreadCount) {
  LinearCase c{400, 600, 300, 1, 0, 2, true, 1};
  LinearProblem one(c);
  ASSERT_EQ(one.run(), CAUSALATTN_OK);
  for (int threads : {2, 3, 0}) {
    c.threads = threads;
    LinearProblem many(c);
    ASSERT_EQ(many.run(), CAUSALATTN_OK);
    EXPECT_EQ(std::memcmp(one.y.data(), many.y.data(), one.y.size() * sizeof(float)), 0) << threads << " threads";
  }
}

// causalattn_linear_bf16: the same problem with x, W and b stored in bf16 (padding NaN), y in bf16
// (padding a sentinel), against the oracle on the stored values: the f32 sums' bound, then y's
// rounding to bf16 (half an ulp of 8 significant bits: 2^-8 relative). On the amx ISA this is the AMX kernel,
// on avx512bf16 the dot-product one (vdpbf16ps).
struct LinearBf16Problem {
  LinearCase c;
  LinearProblem values;
  std::vector<uint16_t> x, w, bias, y;
  static constexpr uint16_t kYSentinel = 0x7bad;

  static std::vector<uint16_t> stored(std::vector<float>* v) {
    std::vector<uint16_t> out(v->size());
    if (v->empty()) return out;
    EXPECT_EQ(causalattn_convert(v->data(), CAUSALATTN_DTYPE_F32, out.data(), CAUSALATTN_DTYPE_BF16,
                                 static_cast<int64_t>(v->size())), CAUSALATTN_OK);
    EXPECT_EQ(causalattn_convert(out.data(), CAUSALATTN_DTYPE_BF16, v->data(), CAUSALATTN_DTYPE_F32,
                                 static_cast<int64_t>(v->size())), CAUSALATTN_OK);
    return out;
  }

  explicit LinearBf16Problem(const LinearCase& lc) : c(lc), values(lc) {
    x = stored(&values.x);
    w = stored(&values.w);
    bias = stored(&values.bias);
    stored(&values.x_dense);
    stored(&values.w_dense);
    y.assign(values.y.size(), kYSentinel);
  }

  int run() {
    return causalattn_linear_bf16(c.m, c.n, c.k, x.data(), c.k + c.x_pad, w.data(), c.k + c.w_pad,
                                  c.bias ? bias.data() : nullptr, y.data(), c.n + c.y_pad, c.threads);
  }

  void expect_matches_oracle() const {
    const causalattn::reference::LinearResult ref = causalattn::reference::linear(
        values.x_dense.data(), c.m, c.k, values.w_dense.data(), c.n, c.bias ? values.bias.data() : nullptr);
    const int64_t ys = c.n + c.y_pad;
    int64_t bad = 0;
    for (int64_t i = 0; i < c.m; ++i) {
      for (int64_t f = 0; f < ys; ++f) {
        const uint16_t got_bits = y[i * ys + f];
        if (f >= c.n) {
          if (got_bits != kYSentinel && ++bad < 5) ADD_FAILURE() << "padding of y row " << i << " written at " << f;
          continue;
        }
        float got = 0.0f;
        causalattn_convert(&got_bits, CAUSALATTN_DTYPE_BF16, &got, CAUSALATTN_DTYPE_F32, 1);
        const double want = ref.y[i * c.n + f];
        const double sums = (c.k + 2) * std::ldexp(1.0, -24) * ref.magnitude[i * c.n + f] + 1e-30;
        const double tol = std::ldexp(1.0, -8) * (std::fabs(want) + sums) + sums;
        if (!(std::fabs(got - want) <= tol) && ++bad < 5) {
          ADD_FAILURE() << "y[" << i << "][" << f << "] = " << got << ", oracle " << want << " (tolerance " << tol << ")";
        }
      }
    }
    EXPECT_EQ(bad, 0);
  }
};

TEST_P(Linear, Bf16MatchesOracleAroundBlockEdges) {
  // m around the AMX kernel's 16- and 32-row steps and 128-row tasks (and the dot-product
  // kernel's 12-row steps), n around its 16- and 32-feature tiles, k around its 32-deep products
  // (odd k: the dot product's last pair half x, half zero; and the f32 kernels' blocks elsewhere).
  for (int64_t m : {1, 15, 32, 33, 130}) {
    for (int64_t n : {1, 17, 32, 33, 300}) {
      for (int64_t k : {1, 31, 32, 33, 64, 100}) {
        LinearBf16Problem p({m, n, k, 0, 0, 0, (m + n) % 2 == 0});
        ASSERT_EQ(p.run(), CAUSALATTN_OK) << causalattn_last_error();
        SCOPED_TRACE("m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k));
        p.expect_matches_oracle();
      }
    }
  }
  LinearBf16Problem strided({45, 70, 96, 3, 5, 11, true});
  ASSERT_EQ(strided.run(), CAUSALATTN_OK) << causalattn_last_error();
  strided.expect_matches_oracle();
}

TEST_P(Linear, Bf16SameBitsForAnyThreadCount) {
  LinearCase c{400, 600, 320, 1, 0, 2, true, 1};
  LinearBf16Problem one(c);
  ASSERT_EQ(one.run(), CAUSALATTN_OK);
  for (int threads : {2, 3, 0}) {
    c.threads = threads;
    LinearBf16Problem many(c);
    ASSERT_EQ(many.run(), CAUSALATTN_OK);
    EXPECT_EQ(one.y, many.y) << threads << " threads";
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, Linear, ::testing::ValuesIn(known_isas()),
                         [](const auto& info) { return info.param; });

TEST(LinearErrors, Bf16BadArgumentsLeaveYUntouched) {
  LinearBf16Problem p({4, 8, 16, 0, 0, 0, true});
  const std::vector<uint16_t> before = p.y;
  const auto* odd = reinterpret_cast<const uint16_t*>(reinterpret_cast<const char*>(p.x.data()) + 1);
  EXPECT_EQ(causalattn_linear_bf16(4, 8, 16, odd, 16, p.w.data(), 16, nullptr, p.y.data(), 8, 1),
            CAUSALATTN_ERROR_INVALID_LAYOUT);
  EXPECT_NE(std::string(causalattn_last_error()).find("x is not aligned"), std::string::npos) << causalattn_last_error();
  EXPECT_EQ(causalattn_linear_bf16(4, 8, 16, p.x.data(), 16, p.w.data(), 16, nullptr, nullptr, 8, 1),
            CAUSALATTN_ERROR_NULL_POINTER);
  EXPECT_EQ(causalattn_linear_bf16(4, 8, 16, p.x.data(), 15, p.w.data(), 16, nullptr, p.y.data(), 8, 1),
            CAUSALATTN_ERROR_INVALID_LAYOUT);
  EXPECT_EQ(causalattn_linear_bf16(4, 8, 16, p.y.data(), 16, p.w.data(), 16, nullptr, p.y.data(), 8, 1),
            CAUSALATTN_ERROR_ALIASING);
  EXPECT_EQ(causalattn_linear_bf16(0, 8, 16, p.x.data(), 16, p.w.data(), 16, nullptr, p.y.data(), 8, 1),
            CAUSALATTN_ERROR_INVALID_SHAPE);
  EXPECT_EQ(p.y, before);
}

TEST(LinearErrors, BadArgumentsLeaveYUntouched) {
  LinearProblem p({4, 8, 16, 0, 0, 0, true});
  const std::vector<float> before = p.y;
  auto call = [&](int64_t m, int64_t n, int64_t k, const float* x, int64_t xs, const float* w, int64_t ws,
                  const float* b, float* y, int64_t ys, int threads) {
    return causalattn_linear_f32(m, n, k, x, xs, w, ws, b, y, ys, threads);
  };
  const float* x = p.x.data();
  const float* w = p.w.data();
  const float* b = p.bias.data();
  float* y = p.y.data();
  EXPECT_EQ(call(4, 8, 16, nullptr, 16, w, 16, b, y, 8, 1), CAUSALATTN_ERROR_NULL_POINTER);
  EXPECT_EQ(call(4, 8, 16, x, 16, nullptr, 16, b, y, 8, 1), CAUSALATTN_ERROR_NULL_POINTER);
  EXPECT_EQ(call(4, 8, 16, x, 16, w, 16, b, nullptr, 8, 1), CAUSALATTN_ERROR_NULL_POINTER);
  EXPECT_EQ(call(0, 8, 16, x, 16, w, 16, b, y, 8, 1), CAUSALATTN_ERROR_INVALID_SHAPE);
  EXPECT_EQ(call(4, -1, 16, x, 16, w, 16, b, y, 8, 1), CAUSALATTN_ERROR_INVALID_SHAPE);
  EXPECT_EQ(call(4, 8, 16, x, 15, w, 16, b, y, 8, 1), CAUSALATTN_ERROR_INVALID_LAYOUT);
  EXPECT_EQ(call(4, 8, 16, x, 16, w, 15, b, y, 8, 1), CAUSALATTN_ERROR_INVALID_LAYOUT);
  EXPECT_EQ(call(4, 8, 16, x, 16, w, 16, b, y, 7, 1), CAUSALATTN_ERROR_INVALID_LAYOUT);
  EXPECT_EQ(call(4, 8, 16, x, 16, w, 16, b, y, 8, -2), CAUSALATTN_ERROR_INVALID_OPTION);
  EXPECT_EQ(call(INT64_MAX / 2, 8, 16, x, INT64_MAX / 4, w, 16, b, y, 8, 1), CAUSALATTN_ERROR_INVALID_SHAPE);
  EXPECT_EQ(p.y, before);
  // y over an input: the input would change under the product.
  std::vector<float> shared(64 * 64, 1.0f);
  EXPECT_EQ(call(4, 8, 16, shared.data(), 16, w, 16, b, shared.data() + 32, 8, 1), CAUSALATTN_ERROR_ALIASING);
  EXPECT_EQ(call(4, 8, 16, x, 16, shared.data(), 16, b, shared.data() + 100, 8, 1), CAUSALATTN_ERROR_ALIASING);
  EXPECT_EQ(call(4, 8, 16, x, 16, w, 16, shared.data() + 3, shared.data(), 8, 1), CAUSALATTN_ERROR_ALIASING);
  EXPECT_NE(std::string(causalattn_last_error()).find("bias"), std::string::npos);
  EXPECT_EQ(shared, std::vector<float>(64 * 64, 1.0f));
}

}  // namespace
