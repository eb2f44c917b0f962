// Properties that need no oracle: causality, determinism across thread counts, layout
// independence, and NaN/Inf inputs that must neither crash nor hang.
#include <cmath>
#include <cstring>
#include <limits>

#include "attention_tester.hpp"

namespace causalattn::testing {
namespace {

class Properties : public PerIsaTest {};

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// Changing Q, K or V at positions after i never changes row i's output, bit for bit.
TEST_P(Properties, FutureNeverChangesThePast) {
  const causalattn_shape shape{2, 4, 2, 97, 97, 40};
  Problem base(shape, Layout::kBHTD, 1);
  ASSERT_EQ(base.run(0, 0.0f, 0, false), CAUSALATTN_OK);
  for (int64_t cut : {0, 31, 32, 50, 96}) {
    for (int tensor = 0; tensor < 3; ++tensor) {
      Problem changed = base;
      std::vector<float>& t = tensor == 0 ? changed.q : tensor == 1 ? changed.k : changed.v;
      const causalattn_layout l = tensor == 0 ? changed.q_layout : changed.k_layout;
      const int64_t heads = tensor == 0 ? shape.q_heads : shape.kv_heads;
      for (int64_t b = 0; b < shape.batch; ++b)
        for (int64_t h = 0; h < heads; ++h)
          for (int64_t j = cut + 1; j < shape.q_len; ++j)
            for (int64_t d = 0; d < shape.head_dim; ++d) t[b * l.batch + h * l.head + j * l.token + d] += 1.5f;
      ASSERT_EQ(changed.run(0, 0.0f, 0, false), CAUSALATTN_OK);
      for (int64_t b = 0; b < shape.batch; ++b)
        for (int64_t h = 0; h < shape.q_heads; ++h)
          for (int64_t i = 0; i <= cut; ++i)
            for (int64_t d = 0; d < shape.head_dim; ++d)
              ASSERT_TRUE(same_bits(changed.out_at(b, h, i, d), base.out_at(b, h, i, d)))
                  << "tensor " << tensor << " changed after " << cut << " moved row " << i;
    }
  }
}

void expect_same_bits_for_any_thread_count(const causalattn_shape& shape) {
  Problem one(shape, Layout::kBHTD, 2);
  ASSERT_EQ(one.run(0, 0.0f, 1, true), CAUSALATTN_OK);
  for (int threads : {2, 7, 0}) {
    Problem many(shape, Layout::kBHTD, 2);
    ASSERT_EQ(many.run(0, 0.0f, threads, true), CAUSALATTN_OK);
    ASSERT_EQ(std::memcmp(one.out.data(), many.out.data(), one.out.size() * sizeof(float)), 0) << threads;
    ASSERT_EQ(std::memcmp(one.lse.data(), many.lse.data(), one.lse.size() * sizeof(float)), 0) << threads;
  }
}

// Each row block is computed whole by one task in a fixed order, and decode's split chunks are
// cut by sizes alone and merged in order: the same bits for any threads.
TEST_P(Properties, SameBitsForAnyThreadCount) {
  expect_same_bits_for_any_thread_count({3, 8, 2, 300, 300, 64});
  expect_same_bits_for_any_thread_count({2, 8, 2, 2, 3000, 64});  // decode: 3 chunks per unit
}

// Chunked prefill: rows computed in chunks of more than 8 queries (fewer take the decode kernel),
// each chunk against the keys so far, have the bits of the same rows computed in one call, with
// and without a window. A row's lanes do the same work wherever its block starts, and tiles start
// at fixed keys; a short chunk fills the top lanes of its block.
TEST_P(Properties, ChunksGiveTheBitsOfOneCall) {
  const causalattn_shape shape{1, 4, 2, 200, 200, 40};
  for (int64_t window : {0, 37}) {
    Problem whole(shape, Layout::kBTHD, 5);
    causalattn_attend_args a{};
    a.shape = shape;
    a.q = whole.q.data();
    a.k = whole.k.data();
    a.v = whole.v.data();
    a.out = whole.out.data();
    a.q_layout = whole.q_layout;
    a.k_layout = a.v_layout = whole.k_layout;
    a.out_layout = whole.out_layout;
    a.options.lse = whole.lse.data();
    a.window = window;
    ASSERT_EQ(causalattn_attend_f32(&a), CAUSALATTN_OK);
    std::vector<float> chunked(whole.out.size(), -12345.0f), chunk_lse;
    int64_t begin = 0;
    for (int64_t n : {9, 16, 40, 48, 17, 70}) {
      causalattn_attend_args c = a;
      c.shape.q_len = n;
      c.shape.kv_len = begin + n;
      c.q = whole.q.data() + begin * whole.q_layout.token;
      c.out = chunked.data() + begin * whole.out_layout.token;
      chunk_lse.assign(shape.q_heads * n, -12345.0f);  // [head][query of the chunk]
      c.options.lse = chunk_lse.data();
      ASSERT_EQ(causalattn_attend_f32(&c), CAUSALATTN_OK) << causalattn_last_error();
      for (int64_t h = 0; h < shape.q_heads; ++h)
        for (int64_t i = 0; i < n; ++i)
          ASSERT_TRUE(same_bits(chunk_lse[h * n + i], whole.lse[h * shape.q_len + begin + i])) << begin + i;
      begin += n;
    }
    ASSERT_EQ(begin, shape.q_len);
    ASSERT_EQ(std::memcmp(chunked.data(), whole.out.data(), chunked.size() * sizeof(float)), 0) << "window " << window;
  }
}

// Strides change where values live, not how they are computed.
TEST_P(Properties, SameBitsForAnyLayout) {
  const causalattn_shape shape{2, 4, 2, 70, 90, 48};
  Problem bhtd(shape, Layout::kBHTD, 3);
  for (Layout layout : {Layout::kBTHD, Layout::kPadded}) {
    Problem other(shape, layout, 3);
    // Same values, other layout.
    for (int64_t b = 0; b < shape.batch; ++b)
      for (int64_t h = 0; h < shape.q_heads; ++h)
        for (int64_t i = 0; i < shape.q_len; ++i)
          for (int64_t d = 0; d < shape.head_dim; ++d)
            other.q[b * other.q_layout.batch + h * other.q_layout.head + i * other.q_layout.token + d] =
                bhtd.q[b * bhtd.q_layout.batch + h * bhtd.q_layout.head + i * bhtd.q_layout.token + d];
    for (int64_t b = 0; b < shape.batch; ++b)
      for (int64_t h = 0; h < shape.kv_heads; ++h)
        for (int64_t j = 0; j < shape.kv_len; ++j)
          for (int64_t d = 0; d < shape.head_dim; ++d) {
            const int64_t src = b * bhtd.k_layout.batch + h * bhtd.k_layout.head + j * bhtd.k_layout.token + d;
            const int64_t dst = b * other.k_layout.batch + h * other.k_layout.head + j * other.k_layout.token + d;
            other.k[dst] = bhtd.k[src];
            other.v[dst] = bhtd.v[src];
          }
    ASSERT_EQ(bhtd.run(0, 0.0f, 0, false), CAUSALATTN_OK);
    ASSERT_EQ(other.run(0, 0.0f, 0, false), CAUSALATTN_OK);
    for (int64_t b = 0; b < shape.batch; ++b)
      for (int64_t h = 0; h < shape.q_heads; ++h)
        for (int64_t i = 0; i < shape.q_len; ++i)
          for (int64_t d = 0; d < shape.head_dim; ++d)
            ASSERT_TRUE(same_bits(other.out_at(b, h, i, d), bhtd.out_at(b, h, i, d))) << layout_name(layout);
  }
}

// NaN and Inf inputs: the call returns, with NaN where a row attends to a NaN.
TEST_P(Properties, NanAndInfInputsNeitherCrashNorHang) {
  const causalattn_shape shape{1, 2, 1, 100, 100, 32};
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  for (float bad : {nan, inf, -inf}) {
    for (int tensor = 0; tensor < 3; ++tensor) {
      Problem p(shape, Layout::kBHTD, 4);
      std::vector<float>& t = tensor == 0 ? p.q : tensor == 1 ? p.k : p.v;
      t[40 * shape.head_dim + 5] = bad;
      ASSERT_EQ(p.run(0, 0.0f, 0, true), CAUSALATTN_OK);
      // Rows before position 40 of a K or V change are untouched by it.
      if (tensor > 0) {
        for (int64_t i = 0; i < 40; ++i)
          for (int64_t d = 0; d < shape.head_dim; ++d) ASSERT_TRUE(std::isfinite(p.out_at(0, 0, i, d))) << i << " " << d;
      }
      if (std::isnan(bad)) {
        // A NaN query, key or value reaches the rows that attend to it.
        const int64_t row = tensor == 0 ? 40 : 99;
        EXPECT_TRUE(std::isnan(p.out_at(0, 0, row, tensor == 2 ? 5 : 0)));
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, Properties, ::testing::ValuesIn(known_isas()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace causalattn::testing
