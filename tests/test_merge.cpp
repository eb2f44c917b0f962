// causalattn_merge_f32: k partial results over disjoint key ranges merge into the result over the
// whole range. The queries are a chunk at the end of a cache, so every part but the last is
// seen whole by every query (computed non-causal) and the last part ends where the cache ends
// (computed causal, the library's bottom-right alignment). Empty and fully masked parts (LSE
// -inf; NaN or garbage outputs) must change nothing.
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "attention_tester.hpp"

namespace causalattn::testing {
namespace {

struct Part {
  std::vector<float> out, lse;
  causalattn_layout layout{};
};

const causalattn_shape kShape{2, 4, 2, 5, 300, 40};

// The part over keys [begin, end) of `full`.
Part compute_part(const Problem& full, int64_t begin, int64_t end, bool causal) {
  const causalattn_shape& s = full.shape;
  const causalattn_shape part_shape{s.batch, s.q_heads, s.kv_heads, s.q_len, end - begin, s.head_dim};
  Part part;
  part.layout = {s.q_heads * s.q_len * s.head_dim, s.q_len * s.head_dim, s.head_dim};
  part.out.assign(s.batch * s.q_heads * s.q_len * s.head_dim, 0.0f);
  part.lse.assign(s.batch * s.q_heads * s.q_len, 0.0f);
  causalattn_options options{};
  options.flags = causal ? 0u : CAUSALATTN_NON_CAUSAL;
  options.lse = part.lse.data();
  const int64_t offset = begin * full.k_layout.token;
  EXPECT_EQ(causalattn_forward_f32(&part_shape, full.q.data(), full.q_layout, full.k.data() + offset, full.k_layout,
                                   full.v.data() + offset, full.v_layout, part.out.data(), part.layout, &options),
            CAUSALATTN_OK)
      << causalattn_last_error();
  return part;
}

// A part that saw no key of any row: LSE -inf, its output `fill` (NaN, or anything).
Part unseen_part(float fill) {
  Part part;
  part.layout = {kShape.q_heads * kShape.q_len * kShape.head_dim, kShape.q_len * kShape.head_dim, kShape.head_dim};
  part.out.assign(kShape.batch * kShape.q_heads * kShape.q_len * kShape.head_dim, fill);
  part.lse.assign(kShape.batch * kShape.q_heads * kShape.q_len, -std::numeric_limits<float>::infinity());
  return part;
}

int merge(const std::vector<Part>& parts, Problem& into) {
  std::vector<causalattn_partial_f32> views;
  for (const Part& p : parts) views.push_back({p.out.data(), p.layout, p.lse.data()});
  return causalattn_merge_f32(&into.shape, views.data(), static_cast<int32_t>(views.size()), into.out.data(),
                              into.out_layout, into.lse.data());
}

// Tolerance: the tests' bound against the double reference (attention_tester.hpp). Merging adds
// one exp and one weighted sum per part, a few ulp on outputs of magnitude max|v|.
TEST(Merge, PartsMergeIntoTheWholeRange) {
  const Problem full(kShape, Layout::kBHTD, 21);
  const int64_t last_start_limit = kShape.kv_len - kShape.q_len + 1;  // keys before it: seen by all
  for (int k : {1, 2, 3, 7}) {
    SCOPED_TRACE(k);
    std::vector<Part> parts;
    int64_t begin = 0;
    for (int p = 0; p + 1 < k; ++p) {
      const int64_t end = last_start_limit * (p + 1) / k;
      parts.push_back(compute_part(full, begin, end, false));
      begin = end;
    }
    parts.push_back(compute_part(full, begin, kShape.kv_len, true));
    Problem merged(kShape, Layout::kBHTD, 21);  // the same Q, K, V, for the reference
    ASSERT_EQ(merge(parts, merged), CAUSALATTN_OK) << causalattn_last_error();
    expect_matches_reference(merged, true, 0.0f, true);

    // Empty and fully masked parts anywhere change nothing.
    parts.insert(parts.begin(), unseen_part(123.0f));
    parts.insert(parts.begin() + static_cast<long>(parts.size() / 2), unseen_part(std::numeric_limits<float>::quiet_NaN()));
    Problem with_unseen(kShape, Layout::kBHTD, 21);
    ASSERT_EQ(merge(parts, with_unseen), CAUSALATTN_OK);
    EXPECT_EQ(std::memcmp(with_unseen.out.data(), merged.out.data(), merged.out.size() * sizeof(float)), 0);
    EXPECT_EQ(std::memcmp(with_unseen.lse.data(), merged.lse.data(), merged.lse.size() * sizeof(float)), 0);
  }
}

TEST(Merge, OnePartIsItsOwnBits) {
  Problem full(kShape, Layout::kBHTD, 22);
  ASSERT_EQ(full.run(0, 0.0f, 0, true), CAUSALATTN_OK);
  const Part whole = compute_part(full, 0, kShape.kv_len, true);
  Problem merged(kShape, Layout::kBHTD, 22);
  ASSERT_EQ(merge({whole}, merged), CAUSALATTN_OK);
  EXPECT_EQ(std::memcmp(merged.out.data(), full.out.data(), full.out.size() * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(merged.lse.data(), full.lse.data(), full.lse.size() * sizeof(float)), 0);
}

TEST(Merge, RowsNoPartSawAreNanWithLseMinusInfinity) {
  Problem merged(kShape, Layout::kBHTD, 23);
  ASSERT_EQ(merge({unseen_part(1.0f), unseen_part(2.0f)}, merged), CAUSALATTN_OK);
  for (float x : merged.out) ASSERT_TRUE(std::isnan(x));
  for (float x : merged.lse) ASSERT_EQ(x, -std::numeric_limits<float>::infinity());
}

TEST(Merge, BadInputFailsAndLeavesOutputsUntouched) {
  const Problem full(kShape, Layout::kBHTD, 24);
  std::vector<Part> parts = {compute_part(full, 0, 100, false), unseen_part(0.0f)};
  std::vector<causalattn_partial_f32> views;
  for (const Part& p : parts) views.push_back({p.out.data(), p.layout, p.lse.data()});
  Problem into(kShape, Layout::kBHTD, 24);
  auto expect_failure = [&](int status, int expected, const char* words) {
    EXPECT_EQ(status, expected);
    EXPECT_NE(std::string(causalattn_last_error()).find(words), std::string::npos) << causalattn_last_error();
    for (float x : into.out) ASSERT_EQ(x, -12345.0f);
    for (float x : into.lse) ASSERT_EQ(x, -12345.0f);
  };
  expect_failure(causalattn_merge_f32(&kShape, nullptr, 2, into.out.data(), into.out_layout, into.lse.data()),
                 CAUSALATTN_ERROR_NULL_POINTER, "parts");
  expect_failure(causalattn_merge_f32(&kShape, views.data(), 0, into.out.data(), into.out_layout, into.lse.data()),
                 CAUSALATTN_ERROR_INVALID_SHAPE, "count");
  causalattn_partial_f32 no_lse = views[0];
  no_lse.lse = nullptr;
  expect_failure(causalattn_merge_f32(&kShape, &no_lse, 1, into.out.data(), into.out_layout, into.lse.data()),
                 CAUSALATTN_ERROR_NULL_POINTER, "parts[0].lse");
  causalattn_layout overlapping = into.out_layout;
  overlapping.token = 1;
  expect_failure(causalattn_merge_f32(&kShape, views.data(), 2, into.out.data(), overlapping, into.lse.data()),
                 CAUSALATTN_ERROR_INVALID_LAYOUT, "overlap");
  causalattn_partial_f32 aliased = views[0];
  aliased.out = into.out.data();
  expect_failure(causalattn_merge_f32(&kShape, &aliased, 1, into.out.data(), into.out_layout, into.lse.data()),
                 CAUSALATTN_ERROR_ALIASING, "out overlaps parts[0]");
}

}  // namespace
}  // namespace causalattn::testing
