// Bad input: a non-zero status, a message that names the problem, outputs untouched.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "causalattn/causalattn.h"

namespace {

constexpr float kSentinel = -777.0f;

// A valid call that each test breaks in one way.
struct Call {
  causalattn_shape shape{2, 4, 2, 8, 8, 16};
  std::vector<float> q = std::vector<float>(2 * 4 * 8 * 16, 0.5f);
  std::vector<float> k = std::vector<float>(2 * 2 * 8 * 16, 0.25f);
  std::vector<float> v = std::vector<float>(2 * 2 * 8 * 16, 1.0f);
  std::vector<float> out = std::vector<float>(2 * 4 * 8 * 16, kSentinel);
  std::vector<float> lse = std::vector<float>(2 * 4 * 8, kSentinel);
  causalattn_layout q_layout{4 * 8 * 16, 8 * 16, 16};
  causalattn_layout kv_layout{2 * 8 * 16, 8 * 16, 16};
  causalattn_layout out_layout{4 * 8 * 16, 8 * 16, 16};
  causalattn_options options{0, 0.0f, 0, nullptr};
  const float* q_ptr = q.data();
  const float* k_ptr = k.data();
  const float* v_ptr = v.data();
  float* out_ptr = out.data();
  const causalattn_shape* shape_ptr = &shape;

  Call() { options.lse = lse.data(); }

  // The same call through causalattn_attend_validate, which makes every check and computes nothing.
  int validate() const {
    causalattn_attend_args a{};
    a.shape = *shape_ptr;
    a.q = q_ptr;
    a.q_layout = q_layout;
    a.k = k_ptr;
    a.k_layout = kv_layout;
    a.v = v_ptr;
    a.v_layout = kv_layout;
    a.out = out_ptr;
    a.out_layout = out_layout;
    a.options = options;
    return causalattn_attend_validate(&a);
  }

  int run() {
    return causalattn_forward_f32(shape_ptr, q_ptr, q_layout, k_ptr, kv_layout, v_ptr, kv_layout, out_ptr,
                                  out_layout, &options);
  }
};

// Runs a broken call; expects `status`, a message containing `words`, and untouched outputs.
void expect_rejected(Call& call, int status, const std::string& words) {
  if (call.shape_ptr != nullptr) {
    EXPECT_EQ(call.validate(), status);
  }
  EXPECT_EQ(call.run(), status);
  EXPECT_NE(std::string(causalattn_last_error()).find(words), std::string::npos)
      << "message: " << causalattn_last_error();
  for (float x : call.out) ASSERT_EQ(x, kSentinel);
  for (float x : call.lse) ASSERT_EQ(x, kSentinel);
}

TEST(Errors, TheValidCallWorks) {
  Call call;
  ASSERT_EQ(call.validate(), CAUSALATTN_OK) << causalattn_last_error();
  for (float x : call.out) ASSERT_EQ(x, kSentinel);  // validating writes nothing
  ASSERT_EQ(call.run(), CAUSALATTN_OK) << causalattn_last_error();
  EXPECT_NEAR(call.out[0], 1.0f, 1e-6f);  // V is all ones
}

TEST(Errors, NullPointers) {
  { Call c; c.shape_ptr = nullptr; expect_rejected(c, CAUSALATTN_ERROR_NULL_POINTER, "shape"); }
  { Call c; c.q_ptr = nullptr; expect_rejected(c, CAUSALATTN_ERROR_NULL_POINTER, "q is NULL"); }
  { Call c; c.k_ptr = nullptr; expect_rejected(c, CAUSALATTN_ERROR_NULL_POINTER, "k is NULL"); }
  { Call c; c.v_ptr = nullptr; expect_rejected(c, CAUSALATTN_ERROR_NULL_POINTER, "v is NULL"); }
  Call c;
  c.out_ptr = nullptr;
  EXPECT_EQ(c.run(), CAUSALATTN_ERROR_NULL_POINTER);
  EXPECT_NE(std::string(causalattn_last_error()).find("out is NULL"), std::string::npos);
}

TEST(Errors, NonPositiveSizes) {
  for (int field = 0; field < 6; ++field) {
    for (int64_t bad : {int64_t{0}, int64_t{-3}}) {
      Call c;
      int64_t* sizes[] = {&c.shape.batch, &c.shape.q_heads, &c.shape.kv_heads, &c.shape.q_len, &c.shape.kv_len, &c.shape.head_dim};
      const char* names[] = {"batch", "q_heads", "kv_heads", "q_len", "kv_len", "head_dim"};
      *sizes[field] = bad;
      expect_rejected(c, CAUSALATTN_ERROR_INVALID_SHAPE, std::string("shape.") + names[field] + " must be positive");
    }
  }
}

TEST(Errors, ElementCountsThatOverflow) {
  Call c;
  c.shape.batch = int64_t{1} << 40;
  c.shape.q_len = c.shape.kv_len = int64_t{1} << 30;
  expect_rejected(c, CAUSALATTN_ERROR_INVALID_SHAPE, "overflows int64");
}

TEST(Errors, StridesThatOverflow) {
  Call c;
  c.kv_layout.token = INT64_MAX / 4;
  expect_rejected(c, CAUSALATTN_ERROR_INVALID_LAYOUT, "k_layout");
}

TEST(Errors, HeadDimTooLarge) {
  Call c;
  c.shape.head_dim = CAUSALATTN_MAX_HEAD_DIM + 1;
  expect_rejected(c, CAUSALATTN_ERROR_INVALID_SHAPE, "CAUSALATTN_MAX_HEAD_DIM");
}

TEST(Errors, QueryHeadsNotAMultipleOfKvHeads) {
  Call c;
  c.shape.kv_heads = 3;
  expect_rejected(c, CAUSALATTN_ERROR_INVALID_SHAPE, "not a multiple of shape.kv_heads");
}

TEST(Errors, CausalNeedsQueriesNoLongerThanKeys) {
  Call c;
  c.shape.kv_len = 7;
  expect_rejected(c, CAUSALATTN_ERROR_INVALID_SHAPE, "q_len <= kv_len");
}

TEST(Errors, NegativeStride) {
  Call c;
  c.q_layout.head = -16;
  expect_rejected(c, CAUSALATTN_ERROR_INVALID_LAYOUT, "q_layout has a negative stride");
}

TEST(Errors, OutputRowsThatOverlap) {
  { Call c; c.out_layout.token = 8; expect_rejected(c, CAUSALATTN_ERROR_INVALID_LAYOUT, "output rows overlap"); }
  { Call c; c.out_layout.head = 0; expect_rejected(c, CAUSALATTN_ERROR_INVALID_LAYOUT, "output rows overlap"); }
  { Call c; c.out_layout.batch = 100; expect_rejected(c, CAUSALATTN_ERROR_INVALID_LAYOUT, "output rows overlap"); }
}

TEST(Errors, OutputsThatAliasInputs) {
  { Call c; c.out_ptr = c.q.data(); expect_rejected(c, CAUSALATTN_ERROR_ALIASING, "out overlaps q"); }
  { Call c; c.options.lse = c.out.data() + 5; EXPECT_EQ(c.run(), CAUSALATTN_ERROR_ALIASING); }
}

TEST(Errors, BadOptions) {
  { Call c; c.options.flags = 16; expect_rejected(c, CAUSALATTN_ERROR_INVALID_OPTION, "unknown bits"); }
  { Call c; c.options.flags = CAUSALATTN_TOP_LEFT | CAUSALATTN_EXPLICIT_POSITIONS; expect_rejected(c, CAUSALATTN_ERROR_INVALID_OPTION, "exclude each other"); }
  { Call c; c.options.scale = 1.0f / 0.0f; expect_rejected(c, CAUSALATTN_ERROR_INVALID_OPTION, "scale"); }
  { Call c; c.options.scale = __builtin_nanf(""); expect_rejected(c, CAUSALATTN_ERROR_INVALID_OPTION, "scale"); }
  { Call c; c.options.num_threads = -1; expect_rejected(c, CAUSALATTN_ERROR_INVALID_OPTION, "num_threads"); }
}

TEST(Errors, NullOptionsMeanDefaults) {
  Call c;
  EXPECT_EQ(causalattn_forward_f32(&c.shape, c.q.data(), c.q_layout, c.k.data(), c.kv_layout, c.v.data(),
                                   c.kv_layout, c.out.data(), c.out_layout, nullptr),
            CAUSALATTN_OK);
}

TEST(Errors, UnknownIsa) {
  EXPECT_EQ(causalattn_set_isa("avx9000"), CAUSALATTN_ERROR_UNSUPPORTED);
  EXPECT_NE(std::string(causalattn_last_error()).find("avx9000"), std::string::npos);
  EXPECT_EQ(causalattn_set_isa(nullptr), CAUSALATTN_OK);
}

TEST(Errors, LastErrorIsPerThread) {
  Call c;
  c.shape.head_dim = 0;
  ASSERT_NE(c.run(), CAUSALATTN_OK);
  std::string other;
  std::thread([&] { other = causalattn_last_error(); }).join();
  EXPECT_EQ(other, "");
  EXPECT_NE(std::string(causalattn_last_error()), "");
}

}  // namespace
