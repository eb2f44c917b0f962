// Dropout inside the fused kernel: the generator against the published Philox4x32-10 answers,
// the library's keep rule against this file's own Philox, the kernel against the reference given
// that keep-mask (every ISA, odd sizes, GQA, packed sequences, windows, decode-sized chunks), the
// same bits on any thread count, and the kept fraction and the 1/(1 - p) scaling statistically.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <array>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "attention_tester.hpp"
#include "causalattn/causalattn.h"
#include "reference/reference.hpp"

namespace {

using causalattn::testing::Layout;
using causalattn::testing::PerIsaTest;
using causalattn::testing::Problem;
using causalattn::testing::known_isas;

// Philox4x32-10 written here from the paper (Salmon et al., SC'11), independently of the library.
std::array<uint32_t, 4> philox(std::array<uint32_t, 4> x, uint32_t k0, uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    const uint64_t a = uint64_t{0xD2511F53} * x[0];
    const uint64_t b = uint64_t{0xCD9E8D57} * x[2];
    x = {uint32_t(b >> 32) ^ x[1] ^ k0, uint32_t(b), uint32_t(a >> 32) ^ x[3] ^ k1, uint32_t(a)};
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return x;
}

// The rule causalattn.h documents, from this file's Philox.
bool kept(float p, uint64_t seed, int64_t seq, int64_t head, int64_t i, int64_t j) {
  const auto words = philox({uint32_t(j / 4), uint32_t(i), uint32_t(head), uint32_t(seq)}, uint32_t(seed),
                            uint32_t(seed >> 32));
  return words[j % 4] >= uint32_t(std::floor(double(p) * 4294967296.0));
}

TEST(Philox, MatchesThePublishedKnownAnswers) {
  // Random123's kat_vectors for philox4x32 with 10 rounds.
  EXPECT_EQ(philox({0, 0, 0, 0}, 0, 0), (std::array<uint32_t, 4>{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}));
  EXPECT_EQ(philox({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, 0xffffffff, 0xffffffff),
            (std::array<uint32_t, 4>{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}));
  EXPECT_EQ(philox({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, 0xa4093822, 0x299f31d0),
            (std::array<uint32_t, 4>{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}));
}

TEST(Philox, LibraryKeepRuleIsTheDocumentedOne) {
  std::mt19937_64 rng(3);
  for (int n = 0; n < 20000; ++n) {
    const float p = std::uniform_real_distribution<float>(0.0f, 0.99f)(rng);
    const uint64_t seed = rng();
    const int64_t seq = rng() % 1000, head = rng() % 64, i = rng() % 100000, j = rng() % 100000;
    ASSERT_EQ(causalattn_dropout_keep(p, seed, seq, head, i, j), kept(p, seed, seq, head, i, j) ? 1 : 0)
        << "p=" << p << " seed=" << seed << " (" << seq << ", " << head << ", " << i << ", " << j << ")";
  }
  EXPECT_EQ(causalattn_dropout_keep(1.0f, 0, 0, 0, 0, 0), 0);
  EXPECT_EQ(causalattn_dropout_keep(0.5f, 0, -1, 0, 0, 0), 0);
  EXPECT_EQ(causalattn_dropout_keep(0.0f, 9, 1, 2, 3, 4), 1);  // p = 0 keeps everything
}

struct DropoutCase {
  causalattn_shape shape;
  float p;
  uint64_t seed;
  int64_t window = 0;
  bool causal = true;
};

causalattn_attend_args attend_args(Problem& pr, const DropoutCase& c, int threads) {
  causalattn_attend_args a{};
  a.shape = pr.shape;
  a.q = pr.q.data();
  a.q_layout = pr.q_layout;
  a.k = pr.k.data();
  a.k_layout = pr.k_layout;
  a.v = pr.v.data();
  a.v_layout = pr.v_layout;
  a.out = pr.out.data();
  a.out_layout = pr.out_layout;
  a.options.flags = c.causal ? 0u : CAUSALATTN_NON_CAUSAL;
  a.options.num_threads = threads;
  a.options.lse = pr.lse.data();
  a.window = c.window;
  a.dropout = {c.p, c.seed};
  return a;
}

// The kernel with dropout against the reference multiplied by the same keep-mask. Weights are
// scaled by up to 1/(1 - p), so the stated attention tolerance (attention_tester.hpp) is too.
void expect_matches_masked_reference(const DropoutCase& c, Layout layout) {
  Problem pr(c.shape, layout, uint32_t(c.seed));
  causalattn_attend_args a = attend_args(pr, c, 0);
  ASSERT_EQ(causalattn_attend_f32(&a), CAUSALATTN_OK) << causalattn_last_error();
  const double scale = 1.0 / (1.0 - double(c.p));
  const causalattn::reference::WeightMultiplier mask = [&](int64_t b, int64_t h, int64_t i, int64_t j) {
    return kept(c.p, c.seed, b, h, i, j) ? scale : 0.0;
  };
  const auto ref = causalattn::reference::attention(pr.shape, pr.q.data(), pr.q_layout, pr.k.data(), pr.k_layout,
                                                    pr.v.data(), pr.v_layout, c.causal, 0.0, c.window, &mask);
  causalattn::testing::Tolerance tol = causalattn::testing::tolerance_for(pr.v, ref);
  tol.out *= scale;
  causalattn::testing::expect_matches(pr, ref, tol, true);  // the lse is the softmax's, before dropout
}

class Dropout : public PerIsaTest {};

TEST_P(Dropout, MatchesTheReferenceGivenTheSameKeepMask) {
  const DropoutCase cases[] = {
      {{1, 1, 1, 1, 1, 64}, 0.5f, 1},
      {{2, 3, 3, 77, 77, 40}, 0.1f, 2},
      {{1, 4, 2, 130, 130, 64}, 0.5f, 3},      // GQA, several row blocks
      {{2, 2, 1, 37, 300, 33}, 0.9f, 4},       // a chunk at the end of a longer cache
      {{1, 2, 2, 5, 900, 128}, 0.3f, 5},       // decode-sized: runs row blocks with dropout
      {{1, 2, 2, 200, 200, 16}, 0.2f, 6, 50},  // sliding window
      {{2, 2, 2, 45, 70, 24}, 0.4f, 7, 0, false},
  };
  for (const DropoutCase& c : cases) {
    for (Layout layout : {Layout::kBHTD, Layout::kPadded}) {
      SCOPED_TRACE("Tq=" + std::to_string(c.shape.q_len) + " Tk=" + std::to_string(c.shape.kv_len) +
                   " p=" + std::to_string(c.p) + " " + causalattn::testing::layout_name(layout));
      expect_matches_masked_reference(c, layout);
    }
  }
}

TEST_P(Dropout, SameBitsForAnyThreadCount) {
  const DropoutCase c{{2, 4, 2, 300, 300, 64}, 0.25f, 11};
  Problem one(c.shape, Layout::kBHTD, 5);
  causalattn_attend_args a = attend_args(one, c, 1);
  ASSERT_EQ(causalattn_attend_f32(&a), CAUSALATTN_OK);
  for (int threads : {2, 3, 0}) {
    Problem many(c.shape, Layout::kBHTD, 5);
    causalattn_attend_args b = attend_args(many, c, threads);
    ASSERT_EQ(causalattn_attend_f32(&b), CAUSALATTN_OK);
    EXPECT_EQ(std::memcmp(one.out.data(), many.out.data(), one.out.size() * sizeof(float)), 0) << threads;
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, Dropout, ::testing::ValuesIn(known_isas()),
                         [](const auto& info) { return info.param; });

// With q = 0 every visible weight is 1/S, so with V = 1 an output is (kept keys) / (S (1 - p)):
// the kept fraction and the scaling both show. Over R rows of S keys the mean output is 1 with
// standard deviation sqrt(p / ((1 - p) R S)); 5 deviations bound a false alarm by 6e-7.
TEST(DropoutStatistics, KeptFractionAndScaling) {
  for (float p : {0.1f, 0.5f, 0.8f}) {
    const int64_t R = 256, S = 512, D = 16;
    const causalattn_shape shape{1, 2, 2, R, S, D};
    std::vector<float> q(2 * R * D, 0.0f), kv(2 * S * D, 1.0f), out(2 * R * D);
    causalattn_attend_args a{};
    a.shape = shape;
    a.q = q.data();
    a.q_layout = {2 * R * D, R * D, D};
    a.k = a.v = kv.data();
    a.k_layout = a.v_layout = {2 * S * D, S * D, D};
    a.out = out.data();
    a.out_layout = a.q_layout;
    a.options.flags = CAUSALATTN_NON_CAUSAL;
    a.dropout = {p, 42};
    ASSERT_EQ(causalattn_attend_f32(&a), CAUSALATTN_OK) << causalattn_last_error();
    double mean = 0.0;
    for (int64_t row = 0; row < 2 * R; ++row) mean += out[row * D];
    mean /= double(2 * R);
    const double sigma = std::sqrt(p / ((1.0 - p) * 2 * R * S));
    EXPECT_NEAR(mean, 1.0, 5 * sigma) << "p=" << p;
    // Every element of a row is the same (V's columns are equal), and is a multiple of
    // 1/(S (1 - p)): kept weights are scaled, dropped ones are exactly zero. fp32 sums of S
    // terms put kept_keys within S · 2^-24 · S = 0.016 of an integer; a half-kept weight would
    // miss by 0.5.
    for (int64_t row = 0; row < 2 * R; ++row) {
      const double kept_keys = out[row * D] * S * (1.0 - p);
      ASSERT_NEAR(kept_keys, std::round(kept_keys), 0.05) << "row " << row;
      for (int64_t d = 1; d < D; ++d) ASSERT_EQ(out[row * D + d], out[row * D]);
    }
  }
}

TEST(DropoutErrors, ProbabilityOutsideZeroToOneIsRefused) {
  Problem pr({1, 1, 1, 4, 4, 8}, Layout::kBHTD, 1);
  const std::vector<float> before = pr.out;
  for (float p : {1.0f, -0.1f, 1.5f, std::numeric_limits<float>::quiet_NaN()}) {
    causalattn_attend_args a = attend_args(pr, {pr.shape, p, 1}, 1);
    EXPECT_EQ(causalattn_attend_f32(&a), CAUSALATTN_ERROR_INVALID_OPTION) << p;
    EXPECT_NE(std::string(causalattn_last_error()).find("dropout.p"), std::string::npos);
  }
  EXPECT_EQ(pr.out, before);
}

}  // namespace
