// End to end: one attention layer with random weights serves two prompts of different lengths as
// a packed prefill, then 64 decode steps against a paged KV cache that grows a page at a time.
// At every step the decoded token's output must equal recomputing its whole sequence from scratch
// with causalattn_forward_f32 on contiguous tensors (a different kernel: the row-block one).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "attention_tester.hpp"
#include "causalattn/causalattn.h"

namespace causalattn::testing {
namespace {

constexpr int64_t kModel = 96, kQHeads = 8, kKvHeads = 2, kHeadDim = 32, kPageTokens = 16;

// y[n][rows] = x[n][cols] · W[rows][cols]ᵀ (nn.Linear without bias), in double then rounded.
std::vector<float> linear(const std::vector<float>& x, const std::vector<float>& w, int64_t rows, int64_t cols) {
  const int64_t n = static_cast<int64_t>(x.size()) / cols;
  std::vector<float> y(n * rows);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t r = 0; r < rows; ++r) {
      double acc = 0.0;
      for (int64_t c = 0; c < cols; ++c) acc += double(x[i * cols + c]) * double(w[r * cols + c]);
      y[i * rows + r] = static_cast<float>(acc);
    }
  return y;
}

struct Layer {
  std::vector<float> wq, wk, wv, wo;
  explicit Layer(std::mt19937& rng) {
    std::normal_distribution<float> normal(0.0f, 1.0f / std::sqrt(static_cast<float>(kModel)));
    for (auto [w, size] : {std::pair{&wq, kQHeads * kHeadDim * kModel}, {&wk, kKvHeads * kHeadDim * kModel},
                           {&wv, kKvHeads * kHeadDim * kModel}, {&wo, kModel * kQHeads * kHeadDim}}) {
      w->resize(size);
      for (float& x : *w) x = normal(rng);
    }
  }
};

// The paged cache: a pool of pages [page][slot][kv head][head_dim] for K and for V, pages taken
// from a shuffled free list as sequences grow.
struct PagedCache {
  int64_t num_pages;
  std::vector<float> k, v;
  std::vector<int32_t> free_pages, block_table;
  int64_t table_stride;
  std::vector<int64_t> lens;

  PagedCache(int64_t pages, int64_t sequences, std::mt19937& rng)
      : num_pages(pages), k(pages * kPageTokens * kKvHeads * kHeadDim, std::numeric_limits<float>::quiet_NaN()),
        v(k), free_pages(pages), table_stride(pages), lens(sequences, 0) {
    std::iota(free_pages.begin(), free_pages.end(), 0);
    std::shuffle(free_pages.begin(), free_pages.end(), rng);
    block_table.assign(sequences * table_stride, -1);
  }
  causalattn_layout layout() const { return {kPageTokens * kKvHeads * kHeadDim, kHeadDim, kKvHeads * kHeadDim}; }
  // Appends one token's K and V rows ([kv head][head_dim]) to sequence s.
  void append(int64_t s, const float* k_row, const float* v_row) {
    const int64_t j = lens[s]++;
    int32_t& page = block_table[s * table_stride + j / kPageTokens];
    if (j % kPageTokens == 0) {
      ASSERT_FALSE(free_pages.empty());
      page = free_pages.back();
      free_pages.pop_back();
    }
    const int64_t at = (page * kPageTokens + j % kPageTokens) * kKvHeads * kHeadDim;
    std::memcpy(&k[at], k_row, kKvHeads * kHeadDim * sizeof(float));
    std::memcpy(&v[at], v_row, kKvHeads * kHeadDim * sizeof(float));
  }
  // Attention of packed queries q ([tokens][q heads][head_dim], sequence s's at cu_q[s] ..
  // cu_q[s+1]) against the cache as it stands; the output is laid out as q.
  std::vector<float> attend(const std::vector<float>& q, const std::vector<int64_t>& cu_q) const {
    std::vector<float> out(q.size());
    const causalattn_layout q_layout{0, kHeadDim, kQHeads * kHeadDim};
    causalattn_seq_lens seq_lens{};
    seq_lens.cu_q_lens = cu_q.data();
    seq_lens.kv_lens = lens.data();
    const causalattn_kv_pages pages{block_table.data(), table_stride, kPageTokens, num_pages};
    causalattn_attend_args a{};
    a.shape = {static_cast<int64_t>(lens.size()), kQHeads, kKvHeads, cu_q.back(), 1, kHeadDim};
    a.q = q.data();
    a.q_layout = q_layout;
    a.k = k.data();
    a.k_layout = layout();
    a.v = v.data();
    a.v_layout = layout();
    a.out = out.data();
    a.out_layout = q_layout;
    a.seq_lens = &seq_lens;
    a.pages = &pages;
    EXPECT_EQ(causalattn_attend_f32(&a), CAUSALATTN_OK) << causalattn_last_error();
    return out;
  }
};

// Attention over all of `tokens` ([n][kModel]) from scratch, contiguous [T][H][D] tensors, one
// sequence: the attention output of its last token ([Hq][D]).
std::vector<float> last_token_from_scratch(const Layer& layer, const std::vector<float>& tokens) {
  const int64_t n = static_cast<int64_t>(tokens.size()) / kModel;
  const std::vector<float> q = linear(tokens, layer.wq, kQHeads * kHeadDim, kModel);
  const std::vector<float> k = linear(tokens, layer.wk, kKvHeads * kHeadDim, kModel);
  const std::vector<float> v = linear(tokens, layer.wv, kKvHeads * kHeadDim, kModel);
  std::vector<float> out(q.size());
  const causalattn_shape shape{1, kQHeads, kKvHeads, n, n, kHeadDim};
  const causalattn_layout ql{n * kQHeads * kHeadDim, kHeadDim, kQHeads * kHeadDim};
  const causalattn_layout kl{n * kKvHeads * kHeadDim, kHeadDim, kKvHeads * kHeadDim};
  EXPECT_EQ(causalattn_forward_f32(&shape, q.data(), ql, k.data(), kl, v.data(), kl, out.data(), ql, nullptr),
            CAUSALATTN_OK)
      << causalattn_last_error();
  return std::vector<float>(out.end() - kQHeads * kHeadDim, out.end());
}

TEST(DecodeEndToEnd, PrefillThen64StepsMatchRecomputingFromScratch) {
  std::mt19937 rng(2024);
  const Layer layer(rng);
  std::normal_distribution<float> normal;
  const std::vector<int64_t> prompt_lens = {100, 37};
  const int64_t sequences = static_cast<int64_t>(prompt_lens.size()), steps = 64;
  std::vector<std::vector<float>> history(sequences);  // every token's input so far, [n][kModel]
  PagedCache cache(64, sequences, rng);

  // The tolerance: each side is within tolerance_for's bound of the exact attention (|v| here is
  // at most ~5, scores stay small: the bound is about 1e-4); their difference within twice it.
  // Measured differences are ~1e-7.
  constexpr double kTolerance = 2.0 * 5.0 * 0x1p-16;

  // Prefill: both prompts packed into one call.
  std::vector<float> prompt_tokens;
  std::vector<int64_t> cu_q{0};
  for (int64_t s = 0; s < sequences; ++s) {
    for (int64_t i = 0; i < prompt_lens[s] * kModel; ++i) history[s].push_back(normal(rng));
    prompt_tokens.insert(prompt_tokens.end(), history[s].begin(), history[s].end());
    cu_q.push_back(cu_q.back() + prompt_lens[s]);
  }
  {
    const std::vector<float> q = linear(prompt_tokens, layer.wq, kQHeads * kHeadDim, kModel);
    const std::vector<float> k = linear(prompt_tokens, layer.wk, kKvHeads * kHeadDim, kModel);
    const std::vector<float> v = linear(prompt_tokens, layer.wv, kKvHeads * kHeadDim, kModel);
    for (int64_t s = 0; s < sequences; ++s)
      for (int64_t t = cu_q[s]; t < cu_q[s + 1]; ++t)
        cache.append(s, &k[t * kKvHeads * kHeadDim], &v[t * kKvHeads * kHeadDim]);
    std::vector<float> out;
    ASSERT_NO_FATAL_FAILURE(out = cache.attend(q, cu_q));
    for (int64_t s = 0; s < sequences; ++s) {
      const std::vector<float> expected = last_token_from_scratch(layer, history[s]);
      for (int64_t i = 0; i < kQHeads * kHeadDim; ++i)
        ASSERT_NEAR(out[(cu_q[s + 1] - 1) * kQHeads * kHeadDim + i], expected[i], kTolerance) << "prefill, sequence " << s;
    }
  }

  // Decode: one new token per sequence per step, appended to the cache, then attended.
  double worst = 0.0;
  for (int64_t step = 0; step < steps; ++step) {
    std::vector<float> tokens;
    for (int64_t s = 0; s < sequences; ++s) {
      for (int64_t i = 0; i < kModel; ++i) history[s].push_back(normal(rng));
      tokens.insert(tokens.end(), history[s].end() - kModel, history[s].end());
    }
    const std::vector<float> q = linear(tokens, layer.wq, kQHeads * kHeadDim, kModel);
    const std::vector<float> k = linear(tokens, layer.wk, kKvHeads * kHeadDim, kModel);
    const std::vector<float> v = linear(tokens, layer.wv, kKvHeads * kHeadDim, kModel);
    for (int64_t s = 0; s < sequences; ++s) cache.append(s, &k[s * kKvHeads * kHeadDim], &v[s * kKvHeads * kHeadDim]);

    std::vector<float> out;
    ASSERT_NO_FATAL_FAILURE(out = cache.attend(q, {0, 1, 2}));

    // The layer's outputs (out_proj of the attention) from the cache and from scratch.
    const std::vector<float> y = linear(out, layer.wo, kModel, kQHeads * kHeadDim);
    for (int64_t s = 0; s < sequences; ++s) {
      const std::vector<float> expected = last_token_from_scratch(layer, history[s]);
      for (int64_t i = 0; i < kQHeads * kHeadDim; ++i) {
        ASSERT_NEAR(out[s * kQHeads * kHeadDim + i], expected[i], kTolerance)
            << "step " << step << ", sequence " << s << ", element " << i;
        worst = std::max(worst, std::fabs(double(out[s * kQHeads * kHeadDim + i]) - expected[i]));
      }
      const std::vector<float> y_expected = linear(expected, layer.wo, kModel, kQHeads * kHeadDim);
      for (int64_t i = 0; i < kModel; ++i) {
        // out_proj sums kQHeads·kHeadDim terms with weights ~N(0, 1/kModel): the difference
        // grows by at most Σ|w| ≈ 256 · 0.08 ≈ 20 times.
        ASSERT_NEAR(y[s * kModel + i], y_expected[i], 32 * kTolerance) << "step " << step << ", output " << i;
      }
    }
  }
  ::testing::Test::RecordProperty("max_abs_difference", std::to_string(worst));
}

}  // namespace
}  // namespace causalattn::testing
