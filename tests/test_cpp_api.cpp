// The C++ API: views, options and exceptions over the same kernel.
#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <vector>

#include "causalattn/causalattn.hpp"
#include "reference/reference.hpp"

namespace {

TEST(CppApi, ForwardMatchesTheReferenceInBthdLayout) {
  const int64_t B = 2, T = 37, H = 4, Hkv = 2, D = 24;
  std::vector<float> q(B * T * H * D), k(B * T * Hkv * D), v(B * T * Hkv * D), out(B * T * H * D);
  for (size_t i = 0; i < q.size(); ++i) q[i] = std::sin(0.37f * i);
  for (size_t i = 0; i < k.size(); ++i) k[i] = std::cos(0.11f * i);
  for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(0.05f * i + 1.0f);
  const auto qv = causalattn::ConstTensor::bthd(q.data(), B, T, H, D);
  const auto kv = causalattn::ConstTensor::bthd(k.data(), B, T, Hkv, D);
  const auto vv = causalattn::ConstTensor::bthd(v.data(), B, T, Hkv, D);
  causalattn::forward(qv, kv, vv, causalattn::Tensor::bthd(out.data(), B, T, H, D));

  const auto ref = causalattn::reference::attention({B, H, Hkv, T, T, D}, q.data(), qv.strides, k.data(),
                                                    kv.strides, v.data(), vv.strides, true, 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t d = 0; d < D; ++d)
          ASSERT_NEAR(out[((b * T + t) * H + h) * D + d], ref.out[((b * H + h) * T + t) * D + d], 1.5e-5);
}

TEST(CppApi, ErrorsAreExceptionsWithStatusAndMessage) {
  std::vector<float> q(64), k(64), v(64), out(64, 3.0f);
  const auto qv = causalattn::ConstTensor::bhtd(q.data(), 1, 1, 4, 16);
  const auto kv = causalattn::ConstTensor::bhtd(k.data(), 1, 1, 2, 32);  // head_dim differs
  try {
    causalattn::forward(qv, kv, kv, causalattn::Tensor::bhtd(out.data(), 1, 1, 4, 16));
    FAIL() << "expected causalattn::Error";
  } catch (const causalattn::Error& e) {
    EXPECT_EQ(e.status(), CAUSALATTN_ERROR_INVALID_SHAPE);
    EXPECT_NE(std::string(e.what()).find("head_dim"), std::string::npos);
  }
  // Causal with more queries than keys: the C layer's check, raised as an exception.
  const auto short_kv = causalattn::ConstTensor::bhtd(k.data(), 1, 1, 2, 16);
  EXPECT_THROW(causalattn::forward(qv, short_kv, short_kv, causalattn::Tensor::bhtd(out.data(), 1, 1, 4, 16)),
               causalattn::Error);
  for (float x : out) EXPECT_EQ(x, 3.0f);
  causalattn::Options non_causal;
  non_causal.causal = false;
  EXPECT_NO_THROW(causalattn::forward(qv, short_kv, short_kv, causalattn::Tensor::bhtd(out.data(), 1, 1, 4, 16), non_causal));
}

// A caller's workspace gives the same bits; two halves of the keys merge into the whole.
TEST(CppApi, WorkspaceAndMerge) {
  const int64_t T = 50, H = 2, D = 16;
  std::vector<float> q(H * T * D), k(H * T * D), v(H * T * D), whole(H * T * D), lse(H * T);
  for (size_t i = 0; i < q.size(); ++i) q[i] = std::sin(0.3f * i), k[i] = std::cos(0.2f * i), v[i] = std::sin(0.1f * i);
  const auto qv = causalattn::ConstTensor::bhtd(q.data(), 1, H, T, D);
  const auto kv = causalattn::ConstTensor::bhtd(k.data(), 1, H, T, D);
  const auto vv = causalattn::ConstTensor::bhtd(v.data(), 1, H, T, D);
  causalattn::Options options;
  options.causal = false;
  options.lse = lse.data();
  causalattn::forward(qv, kv, vv, causalattn::Tensor::bhtd(whole.data(), 1, H, T, D), options);

  std::vector<float> with_workspace(whole.size());
  const auto wv = causalattn::Tensor::bhtd(with_workspace.data(), 1, H, T, D);
  std::vector<std::byte> workspace(causalattn::workspace_size(qv, kv, vv, wv, options));
  causalattn::forward(qv, kv, vv, wv, options, workspace.data(), workspace.size());
  EXPECT_EQ(with_workspace, whole);

  // Keys [0, 20) and [20, 50): views into the same K and V with fewer tokens.
  std::vector<float> first(whole.size()), second(whole.size()), lse1(H * T), lse2(H * T), merged(whole.size());
  auto keys = [&](const std::vector<float>& t, int64_t begin, int64_t n) {
    auto view = causalattn::ConstTensor::bhtd(t.data() + begin * D, 1, H, n, D);
    view.strides = kv.strides;  // the full tensor's head stride
    return view;
  };
  options.lse = lse1.data();
  causalattn::forward(qv, keys(k, 0, 20), keys(v, 0, 20), causalattn::Tensor::bhtd(first.data(), 1, H, T, D), options);
  options.lse = lse2.data();
  causalattn::forward(qv, keys(k, 20, 30), keys(v, 20, 30), causalattn::Tensor::bhtd(second.data(), 1, H, T, D), options);
  const std::vector<causalattn::Partial> parts = {{causalattn::ConstTensor::bhtd(first.data(), 1, H, T, D), lse1.data()},
                                       {causalattn::ConstTensor::bhtd(second.data(), 1, H, T, D), lse2.data()}};
  causalattn::merge(parts, causalattn::Tensor::bhtd(merged.data(), 1, H, T, D));
  // Both are fp32 runs over |v| <= 1: they differ by a few ulp of 1 at most.
  for (size_t i = 0; i < whole.size(); ++i) ASSERT_NEAR(merged[i], whole[i], 1e-5) << i;
  EXPECT_THROW(causalattn::merge({}, causalattn::Tensor::bhtd(merged.data(), 1, H, T, D)), causalattn::Error);
}

// The allocation-free path on decode shapes: a few queries against a long cache split into
// chunks whose partial results live in the workspace too.
TEST(CppApi, WorkspaceForDecodeShapes) {
  for (const int64_t q_len : {1, 4, 8}) {
    const int64_t H = 8, Hkv = 2, Tk = 2100, D = 64;
    std::vector<float> q(H * q_len * D), k(Hkv * Tk * D), v(Hkv * Tk * D), plain(q.size()), with(q.size());
    for (size_t i = 0; i < q.size(); ++i) q[i] = std::sin(0.3f * i);
    for (size_t i = 0; i < k.size(); ++i) k[i] = std::cos(0.2f * i), v[i] = std::sin(0.1f * i);
    const auto qv = causalattn::ConstTensor::bhtd(q.data(), 1, H, q_len, D);
    const auto kv = causalattn::ConstTensor::bhtd(k.data(), 1, Hkv, Tk, D);
    const auto vv = causalattn::ConstTensor::bhtd(v.data(), 1, Hkv, Tk, D);
    for (const int threads : {1, 2, 0}) {
      causalattn::Options options;
      options.num_threads = threads;
      causalattn::forward(qv, kv, vv, causalattn::Tensor::bhtd(plain.data(), 1, H, q_len, D), options);
      const auto out = causalattn::Tensor::bhtd(with.data(), 1, H, q_len, D);
      std::vector<std::byte> workspace(causalattn::workspace_size(qv, kv, vv, out, options));
      causalattn::forward(qv, kv, vv, out, options, workspace.data(), workspace.size());
      EXPECT_EQ(with, plain) << "q_len " << q_len << ", threads " << threads;
      EXPECT_THROW(causalattn::forward(qv, kv, vv, out, options, workspace.data(), workspace.size() - 1),
                   causalattn::Error);
    }
  }
}

TEST(CppApi, ReportsTheIsaAndVersion) {
  EXPECT_FALSE(causalattn::isa().empty());
  // The ISA in use is one the build knows, the last known one runs everywhere, and the row block
  // fills whole vectors.
  bool known = false;
  int32_t count = 0;
  for (; causalattn_known_isa(count) != nullptr; ++count) known |= causalattn::isa() == causalattn_known_isa(count);
  EXPECT_TRUE(known);
  ASSERT_GT(count, 0);
  EXPECT_EQ(causalattn_known_isa(-1), nullptr);
  EXPECT_EQ(causalattn_set_isa(causalattn_known_isa(count - 1)), CAUSALATTN_OK);
  causalattn_set_isa(nullptr);
  EXPECT_GT(causalattn_prefill_block_queries(), 0);
  EXPECT_EQ(causalattn_prefill_block_queries() % 4, 0);
  EXPECT_STREQ(causalattn_version(), CAUSALATTN_TEST_VERSION);
}

}  // namespace
