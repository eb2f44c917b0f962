// Numerical edge cases, on every ISA: huge logits, all-equal scores, -inf keys, a query that sees
// one key, extreme scales, and NaN that reaches exactly the rows that attend to it.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <limits>
#include <random>
#include <string>

#include "attention_tester.hpp"

namespace causalattn::testing {
namespace {

class Numerics : public PerIsaTest {};

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// Where every score gap is enormous the softmax is one-hot in double and fp32 alike: outputs are
// a value row exactly, so the bound is only the reference's rounding of 1·v.
Tolerance one_hot_tolerance() { return {1e-6, 1e-6}; }

// Scores up to 0.95·FLT_MAX after scaling (D = 1, |q|, |k| up to 1.8e19): they reach the softmax
// without overflow (a kernel that multiplied scores by log2(e) first would make them inf).
TEST_P(Numerics, HugeLogits) {
  const causalattn_shape shape{1, 2, 1, 45, 45, 1};
  for (bool causal : {true, false}) {
    Problem p(shape, Layout::kBHTD, 11);
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> magnitude(0.9f, 1.8f);
    std::bernoulli_distribution negative(0.5);
    for (auto* t : {&p.q, &p.k})
      for (float& x : *t) x = (negative(rng) ? -1e19f : 1e19f) * magnitude(rng);
    ASSERT_EQ(p.run(causal ? 0u : CAUSALATTN_NON_CAUSAL, 0.0f, 0, true), CAUSALATTN_OK);
    const Tolerance tol = one_hot_tolerance();
    expect_matches_reference(p, causal, 0.0f, true, &tol);
  }
}

// Scale 1e30 makes the softmax one-hot; 1e-30 makes it uniform. Both match the reference.
TEST_P(Numerics, ExtremeScales) {
  const causalattn_shape shape{1, 2, 2, 70, 70, 24};
  for (float scale : {1e30f, 1e-30f}) {
    Problem p(shape, Layout::kBHTD, 12);
    ASSERT_EQ(p.run(0, scale, 0, true), CAUSALATTN_OK);
    const Tolerance tol = scale > 1.0f ? one_hot_tolerance() : Tolerance{std::ldexp(1.0, -16) * 5, std::ldexp(1.0, -16)};
    expect_matches_reference(p, true, scale, true, &tol);
  }
}

// Q = 0: every score is 0, every row the mean of the values it sees.
TEST_P(Numerics, AllEqualScores) {
  const causalattn_shape shape{1, 1, 1, 130, 130, 33};
  Problem p(shape, Layout::kBHTD, 13);
  std::fill(p.q.begin(), p.q.end(), 0.0f);
  ASSERT_EQ(p.run(0, 0.0f, 0, true), CAUSALATTN_OK);
  expect_matches_reference(p, true, 0.0f, true);
  EXPECT_NEAR(p.lse[129], std::log(130.0), 1e-5);  // log of the number of keys seen
}

// Keys whose scores are -inf get weight 0; a row that sees only such keys has no softmax (0/0):
// its output is NaN and its LSE -inf, as documented.
TEST_P(Numerics, NegativeInfinityKeys) {
  const causalattn_shape shape{1, 1, 1, 50, 50, 8};
  Problem p(shape, Layout::kBHTD, 14);
  for (float& x : p.q) x = std::fabs(x) + 0.1f;  // q > 0: -inf·q is -inf, never NaN
  for (int64_t j : {0, 1, 2, 20, 33, 49})
    for (int64_t d = 0; d < shape.head_dim; ++d) p.k[j * shape.head_dim + d] = -kInf;
  ASSERT_EQ(p.run(0, 0.0f, 0, true), CAUSALATTN_OK);
  expect_matches_reference(p, true, 0.0f, true);
  for (int64_t i : {0, 1, 2}) {  // rows that see only -inf keys
    EXPECT_TRUE(std::isnan(p.out_at(0, 0, i, 0))) << i;
    EXPECT_EQ(p.lse[i], -kInf) << i;
  }
  EXPECT_TRUE(std::isfinite(p.out_at(0, 0, 3, 0)));
}

// One NaN score among keys whose scores are all -inf, anywhere in the row (the fuzzer found the
// decode kernel's vector maximum losing it on AVX, whose x != x is an ordered compare): the row's
// output and LSE are NaN, on the decode kernel (1 query) and the row-block kernel (50 queries).
TEST_P(Numerics, NanScoreAmongNegativeInfinities) {
  for (const int64_t q_len : {1, 50}) {
    for (const int64_t nan_key : {0, 5, 17, 40, 99}) {
      const causalattn_shape shape{1, 1, 1, q_len, 100, 8};
      Problem p(shape, Layout::kBHTD, 15);
      for (float& x : p.q) x = 1.0f;
      for (float& x : p.k) x = -kInf;  // q·k = -inf for every key but one
      p.k[nan_key * shape.head_dim + 3] = kNaN;
      ASSERT_EQ(p.run(CAUSALATTN_NON_CAUSAL, 0.0f, 0, true), CAUSALATTN_OK);
      for (int64_t i = 0; i < q_len; ++i) {
        EXPECT_TRUE(std::isnan(p.lse[i])) << "q_len " << q_len << " NaN at key " << nan_key << ": lse " << p.lse[i];
        EXPECT_TRUE(std::isnan(p.out_at(0, 0, i, 0))) << "q_len " << q_len << " NaN at key " << nan_key;
      }
    }
  }
}

// A query that sees a single key returns that key's value row exactly.
TEST_P(Numerics, SingleVisibleKey) {
  for (const causalattn_shape shape : {causalattn_shape{1, 1, 1, 40, 40, 19}, causalattn_shape{2, 3, 1, 1, 1, 64}}) {
    Problem p(shape, Layout::kBHTD, 15);
    ASSERT_EQ(p.run(0, 0.0f, 0, true), CAUSALATTN_OK);
    for (int64_t b = 0; b < shape.batch; ++b)
      for (int64_t h = 0; h < shape.q_heads; ++h)
        for (int64_t d = 0; d < shape.head_dim; ++d)
          ASSERT_TRUE(same_bits(p.out_at(b, h, 0, d), p.v[b * p.v_layout.batch + d])) << d;
    expect_matches_reference(p, true, 0.0f, true);
  }
}

// A NaN reaches exactly the rows that attend to it; every other output keeps its bits.
// Q at row i: row i only. K at key j: rows that see j (all of them non-causal), all columns.
// V at (j, d): those rows, column d only. Only the query heads of that KV head are touched.
TEST_P(Numerics, NanSpreadsOnlyToRowsThatAttendToIt) {
  const causalattn_shape shape{1, 4, 2, 90, 90, 20};
  constexpr int64_t kPos = 37, kDim = 6;
  for (bool causal : {true, false}) {
    const uint32_t flags = causal ? 0u : CAUSALATTN_NON_CAUSAL;
    Problem clean(shape, Layout::kBHTD, 16);
    ASSERT_EQ(clean.run(flags, 0.0f, 0, true), CAUSALATTN_OK);
    for (int tensor = 0; tensor < 3; ++tensor) {
      Problem p = clean;
      std::vector<float>& t = tensor == 0 ? p.q : tensor == 1 ? p.k : p.v;
      t[kPos * shape.head_dim + kDim] = kNaN;  // head 0 of Q, or KV head 0 (query heads 0, 1)
      ASSERT_EQ(p.run(flags, 0.0f, 0, true), CAUSALATTN_OK);
      for (int64_t h = 0; h < shape.q_heads; ++h)
        for (int64_t i = 0; i < shape.q_len; ++i)
          for (int64_t d = 0; d < shape.head_dim; ++d) {
            const bool head_reached = tensor == 0 ? h == 0 : h < 2;
            const bool row_reached = tensor == 0 ? i == kPos : (!causal || i >= kPos);
            const bool column_reached = tensor != 2 || d == kDim;
            const float got = p.out_at(0, h, i, d);
            if (head_reached && row_reached && column_reached) {
              ASSERT_TRUE(std::isnan(got)) << tensor << " h" << h << " i" << i << " d" << d;
            } else {
              ASSERT_TRUE(same_bits(got, clean.out_at(0, h, i, d))) << tensor << " h" << h << " i" << i << " d" << d;
            }
          }
    }
  }
}

// The softmax's exponential, read through the kernel: query i's two scores are y_i <= 0 and 0
// (D = 1, q = y_i, K = [1, 0], V = [1, 0]), so its output is e^y / (1 + e^y), computed as
// p · (1 / (p + 1)) from p = exp(y): three roundings of at most u = 2^-24 each beside the error
// of exp. The kernel's exp is within 2 ulp (4u) where the ISA has FMA; without FMA it rounds
// y·log2(e) once more, which costs up to |y|·u. Below e^y = 2^-126 the result is subnormal
// (relative accuracy ends) and from y = -127·ln(2) on it is exactly 0.
TEST_P(Numerics, ExponentialAccuracy) {
  constexpr int64_t kQueries = 20000;
  const causalattn_shape shape{1, 1, 1, kQueries, 2, 1};
  Problem p(shape, Layout::kBHTD, 17);
  std::mt19937 rng(18);
  std::uniform_real_distribution<float> uniform(-90.0f, 0.0f);
  for (int64_t i = 0; i < kQueries; ++i) p.q[i] = uniform(rng);
  const float special[] = {0.0f, -1e-30f, -1e-7f, -0.34657359f, -0.34657360f, -1.0f, -87.33f, -88.02f, -88.0296919f};
  std::copy(std::begin(special), std::end(special), p.q.begin());
  p.k = {1.0f, 0.0f};
  p.v = {1.0f, 0.0f};
  ASSERT_EQ(p.run(CAUSALATTN_NON_CAUSAL, 1.0f, 0, false), CAUSALATTN_OK);
  const bool fused = GetParam() != "sse2";
  const double u = std::ldexp(1.0, -24);
  double worst = 0.0;  // in units of u, over the normal range
  for (int64_t i = 0; i < kQueries; ++i) {
    const double y = p.q[i], e = std::exp(y), ref = e / (1.0 + e), got = p.out[i];
    if (y > -87.33) {
      const double error = std::fabs(got - ref) / ref / u;
      worst = std::max(worst, error);
      ASSERT_LE(error, 7.0 + (fused ? 0.0 : std::fabs(y))) << "y = " << y << ", got " << got << ", expected " << ref;
    } else if (y <= -88.0296919) {
      ASSERT_EQ(got, 0.0f) << "y = " << y;
    } else {
      ASSERT_TRUE(got >= 0.0f && got <= std::ldexp(1.0, -125)) << "y = " << y << ", got " << got;
    }
  }
  RecordProperty("worst_error_in_u", std::to_string(worst));
  std::printf("%s: worst relative error %.2f u\n", GetParam().c_str(), worst);
}

INSTANTIATE_TEST_SUITE_P(Isa, Numerics, ::testing::ValuesIn(known_isas()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace causalattn::testing
