// The C++ API: views, options and exceptions over the same kernel.
#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <string>
#include <vector>

#include "causalattn/causalattn.hpp"
#include "reference/reference.hpp"
#if defined(__x86_64__)
#include "dispatch/x86_features.hpp"
#endif

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

// The model variants through Options, with V's head size apart from K's and the top-left
// alignment (more queries than keys).
TEST(CppApi, VariantsThroughOptions) {
  const int64_t H = 4, Hkv = 2, T = 29, S = 17, D = 32, Dv = 20;
  std::vector<float> q(H * T * D), k(Hkv * S * D), v(Hkv * S * Dv), out(H * T * Dv);
  for (size_t i = 0; i < q.size(); ++i) q[i] = std::sin(0.37f * i);
  for (size_t i = 0; i < k.size(); ++i) k[i] = std::cos(0.11f * i);
  for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(0.05f * i + 1.0f);
  const std::vector<float> sinks = {0.5f, -1.0f, 2.0f, 0.0f}, slopes = {0.25f, 0.0625f, 0.015625f, 0.00390625f};
  causalattn::Options options;
  options.alignment = causalattn::Alignment::kTopLeft;
  options.window = 9;
  options.sinks = sinks.data();
  options.softcap = 3.0f;
  options.alibi_slopes = slopes.data();
  const auto qv = causalattn::ConstTensor::bhtd(q.data(), 1, H, T, D);
  const auto kv = causalattn::ConstTensor::bhtd(k.data(), 1, Hkv, S, D);
  const auto vv = causalattn::ConstTensor::bhtd(v.data(), 1, Hkv, S, Dv);
  causalattn::forward(qv, kv, vv, causalattn::Tensor::bhtd(out.data(), 1, H, T, Dv), options);
  causalattn::reference::Variant variant;
  variant.alignment = causalattn::reference::Alignment::kTopLeft;
  variant.window = options.window;
  variant.sinks = sinks.data();
  variant.softcap = options.softcap;
  variant.alibi_slopes = slopes.data();
  variant.head_dim_v = Dv;
  const auto ref = causalattn::reference::attention({1, H, Hkv, T, S, D}, q.data(), qv.strides, k.data(), kv.strides,
                                                    v.data(), vv.strides, variant);
  for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], ref.out[i], 2e-6) << i;
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

#if defined(__x86_64__)
// The default row: amx where the OS grants it, else avx512bf16 exactly where the CPU runs it and its
// dot product outpaces the FMA (cmake/isas.cmake's PREFERRED_WHEN), never avx512bf16 elsewhere.
TEST(CppApi, PrefersTheBf16DotProductRowOnlyWhereItOutpacesTheFma) {
  if (std::getenv("CAUSALATTN_ISA") != nullptr) GTEST_SKIP() << "CAUSALATTN_ISA overrides the default";
  const bool amx = causalattn_set_isa("amx") == CAUSALATTN_OK;
  const bool bf16_row = causalattn_set_isa("avx512bf16") == CAUSALATTN_OK;
  ASSERT_EQ(causalattn_set_isa(nullptr), CAUSALATTN_OK);
  const std::string chosen = causalattn::isa();
  if (amx) {
    EXPECT_EQ(chosen, "amx");
  } else if (bf16_row && causalattn::dispatch::cpu_bf16_dot_outpaces_fma()) {
    EXPECT_EQ(chosen, "avx512bf16");
  } else {
    EXPECT_NE(chosen, "avx512bf16");
  }
}
#endif

}  // namespace

// Typed views: bf16 Q, q8_0 K, f16 V, a bf16 or f32 out. Widening is exact, so the result is the
// f32 call's on the widened values bit for bit (decode and prefill shapes; the default ISA, whose
// f32 kernels also run 16-bit data), and a bf16 out is that result rounded.
TEST(CppApi, TypedViewsGiveTheBitsOfF32OnTheWidenedValues) {
  for (const int64_t tq : {3, 70}) {
    const int64_t B = 2, Hq = 4, Hkv = 2, Tk = 90, D = 64;
    std::vector<float> q(B * Hq * tq * D), k(B * Hkv * Tk * D), v(k.size());
    for (size_t i = 0; i < q.size(); ++i) q[i] = std::sin(0.37f * i);
    for (size_t i = 0; i < k.size(); ++i) k[i] = std::cos(0.21f * i), v[i] = std::sin(0.11f * i + 1.0f);
    std::vector<causalattn::bf16> q16(q.size());
    std::vector<causalattn::q8_0> k8(k.size() / 32);
    std::vector<causalattn::f16> v16(v.size());
    ASSERT_EQ(causalattn_convert(q.data(), CAUSALATTN_DTYPE_F32, q16.data(), CAUSALATTN_DTYPE_BF16, q.size()), 0);
    ASSERT_EQ(causalattn_convert(k.data(), CAUSALATTN_DTYPE_F32, k8.data(), CAUSALATTN_DTYPE_Q8_0, k.size()), 0);
    ASSERT_EQ(causalattn_convert(v.data(), CAUSALATTN_DTYPE_F32, v16.data(), CAUSALATTN_DTYPE_F16, v.size()), 0);
    // The values the library sees, as f32.
    ASSERT_EQ(causalattn_convert(q16.data(), CAUSALATTN_DTYPE_BF16, q.data(), CAUSALATTN_DTYPE_F32, q.size()), 0);
    ASSERT_EQ(causalattn_convert(k8.data(), CAUSALATTN_DTYPE_Q8_0, k.data(), CAUSALATTN_DTYPE_F32, k.size()), 0);
    ASSERT_EQ(causalattn_convert(v16.data(), CAUSALATTN_DTYPE_F16, v.data(), CAUSALATTN_DTYPE_F32, v.size()), 0);
    using causalattn::TensorView;
    std::vector<float> expected(q.size()), got(q.size());
    causalattn::forward(causalattn::ConstTensor::bthd(q.data(), B, tq, Hq, D), causalattn::ConstTensor::bthd(k.data(), B, Tk, Hkv, D),
                        causalattn::ConstTensor::bthd(v.data(), B, Tk, Hkv, D), causalattn::Tensor::bthd(expected.data(), B, tq, Hq, D));
    const auto qv = TensorView<const causalattn::bf16>::bthd(q16.data(), B, tq, Hq, D);
    const auto kv = TensorView<const causalattn::q8_0>::bthd(k8.data(), B, Tk, Hkv, D);
    const auto vv = TensorView<const causalattn::f16>::bthd(v16.data(), B, Tk, Hkv, D);
    causalattn::forward(qv, kv, vv, TensorView<float>::bthd(got.data(), B, tq, Hq, D));
    for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], expected[i]) << "tq " << tq << " element " << i;
    std::vector<causalattn::bf16> out16(q.size()), rounded(q.size());
    causalattn::forward(qv, kv, vv, TensorView<causalattn::bf16>::bthd(out16.data(), B, tq, Hq, D));
    ASSERT_EQ(causalattn_convert(expected.data(), CAUSALATTN_DTYPE_F32, rounded.data(), CAUSALATTN_DTYPE_BF16, q.size()), 0);
    for (size_t i = 0; i < out16.size(); ++i) ASSERT_EQ(out16[i].bits, rounded[i].bits) << "tq " << tq << " element " << i;
  }
  static_assert(causalattn::dtype_of<const causalattn::q8_0> == CAUSALATTN_DTYPE_Q8_0);
}
