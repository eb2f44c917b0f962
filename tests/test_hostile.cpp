// Hostile callers: the inputs of an adversarial campaign that once crashed or misread, and the
// classes behind them. Each gets a correct result or a status with a message, outputs untouched:
// paged block tables with absurd page sizes, thread counts up to INT32_MAX, sizes whose
// arithmetic overflows, calls made from inside the caller's own TBB tasks, thread counts that
// change at every call, workspaces that overlap the tensors.
#include <gtest/gtest.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <string>
#include <vector>

#include "attention_tester.hpp"
#include "causalattn/causalattn.h"
#include "causalattn/modules.hpp"
#include "parallel/parallel.hpp"

namespace causalattn::testing {
namespace {

constexpr float kSentinel = -4321.0f;

// One-element tensors and a paged call over them: the campaign's shape {1,1,1,1,1,1}.
struct TinyPaged {
  std::vector<float> kv = std::vector<float>(64, 1.0f);
  std::vector<float> q = std::vector<float>(64, 0.5f);
  std::vector<float> out = std::vector<float>(64, kSentinel);
  std::vector<int32_t> table = {-7};
  std::vector<int64_t> kv_lens = {2};
  causalattn_kv_pages pages{};
  causalattn_seq_lens lens{};
  causalattn_attend_args args{};

  TinyPaged(int64_t q_len, int64_t page_tokens) {
    pages = {table.data(), 1, page_tokens, 1};
    lens.kv_lens = kv_lens.data();
    args.shape = {1, 1, 1, q_len, 1, 1};
    args.q = q.data();
    args.q_layout = {q_len, q_len, 1};
    args.k = args.v = kv.data();
    args.k_layout = args.v_layout = {1, 0, 0};
    args.out = out.data();
    args.out_layout = {q_len, q_len, 1};
    args.options.flags = CAUSALATTN_NON_CAUSAL;
    args.seq_lens = &lens;
    args.pages = &pages;
  }
};

void expect_refused(const causalattn_attend_args& args, int status, const std::string& words,
                    const std::vector<float>& out) {
  EXPECT_EQ(causalattn_attend_f32(&args), status);
  EXPECT_NE(std::string(causalattn_last_error()).find(words), std::string::npos)
      << "message: " << causalattn_last_error();
  for (float x : out) ASSERT_EQ(x, kSentinel);
}

TEST(Hostile, PagesOfInt64MaxTokensAreRefused) {
  TinyPaged c(1, std::numeric_limits<int64_t>::max());
  expect_refused(c.args, CAUSALATTN_ERROR_INVALID_SHAPE, "page_tokens", c.out);
}

TEST(Hostile, EveryBlockTableEntryInUseIsChecked) {
  // Page sizes where kv_len + page_tokens - 1 overflowed, and the 9-query row-block path.
  for (const int64_t page_tokens : {int64_t{1} << 31, CAUSALATTN_MAX_TOKENS, CAUSALATTN_MAX_TOKENS - 1}) {
    for (const int64_t q_len : {1, 9}) {
      for (const int32_t entry : {-7, 1000000}) {
        SCOPED_TRACE("page_tokens " + std::to_string(page_tokens) + ", q_len " + std::to_string(q_len));
        TinyPaged c(q_len, page_tokens);
        c.table[0] = entry;
        c.kv_lens[0] = 9;
        expect_refused(c.args, CAUSALATTN_ERROR_INVALID_SHAPE, "block_table[0][0] = " + std::to_string(entry), c.out);
      }
    }
  }
}

TEST(Hostile, KeysBeyondMaxTokensAreRefused) {
  // Stride-0 K and V let one element stand for any number of keys.
  for (const int64_t kv_len : {std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::max() - 1000,
                               CAUSALATTN_MAX_TOKENS + 1}) {
    TinyPaged c(1, 1);
    c.args.pages = nullptr;
    c.args.seq_lens = nullptr;
    c.args.shape.kv_len = kv_len;
    c.args.k_layout = c.args.v_layout = {0, 0, 0};
    std::vector<float> lse(1, kSentinel);
    c.args.options.lse = lse.data();
    expect_refused(c.args, CAUSALATTN_ERROR_INVALID_SHAPE, "CAUSALATTN_MAX_TOKENS", c.out);
    EXPECT_EQ(lse[0], kSentinel);
    size_t bytes = 0;
    EXPECT_EQ(causalattn_attend_workspace_size(&c.args, &bytes), CAUSALATTN_ERROR_INVALID_SHAPE);
  }
}

TEST(Hostile, ManyKeysOfOneElementGiveItsValue) {
  // 2^24 keys that are all the same key: every weight is 2^-24, the output is V's value.
  TinyPaged c(1, 1);
  c.args.pages = nullptr;
  c.args.seq_lens = nullptr;
  c.args.shape.kv_len = int64_t{1} << 24;
  c.args.k_layout = c.args.v_layout = {0, 0, 0};
  c.kv[0] = 3.0f;
  float lse = 0.0f;
  c.args.options.lse = &lse;
  ASSERT_EQ(causalattn_attend_f32(&c.args), CAUSALATTN_OK) << causalattn_last_error();
  EXPECT_FLOAT_EQ(c.out[0], 3.0f);
  EXPECT_NEAR(lse, 0.5f * 3.0f + 24 * std::log(2.0), 1e-3);  // scale 1: q·k = 1.5
}

TEST(Hostile, PlansLargerThanMemoryAreRefused) {
  // 2^20 sequences of 2^32 stride-0 keys: decode partials of 2^43 floats.
  TinyPaged c(1, 1);
  c.args.pages = nullptr;
  c.args.seq_lens = nullptr;
  c.args.shape.batch = int64_t{1} << 20;
  c.args.shape.kv_len = CAUSALATTN_MAX_TOKENS;
  c.args.k_layout = c.args.v_layout = {0, 0, 0};
  c.args.q_layout = {0, 0, 0};
  std::vector<float> out(size_t{1} << 20, kSentinel);
  c.args.out = out.data();
  c.args.out_layout = {1, 1, 1};
  expect_refused(c.args, CAUSALATTN_ERROR_INVALID_SHAPE, "of this machine's memory", out);
}

TEST(Hostile, EveryThreadCountGivesTheBitsOfOneThread) {
  Problem one({1, 4, 2, 100, 100, 32}, Layout::kBHTD, 7);
  ASSERT_EQ(one.run(0, 0.0f, 1, true), CAUSALATTN_OK);
  for (const int32_t threads : {2, 3, 64, 4096, 8'000'000, 12'000'000, 100'000'000, std::numeric_limits<int32_t>::max()}) {
    SCOPED_TRACE("num_threads " + std::to_string(threads));
    Problem p({1, 4, 2, 100, 100, 32}, Layout::kBHTD, 7);
    ::testing::internal::CaptureStderr();
    ASSERT_EQ(p.run(0, 0.0f, threads, true), CAUSALATTN_OK) << causalattn_last_error();
    // Nothing on stderr: oneTBB warns there when asked for more workers than it may run.
    EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
    EXPECT_EQ(std::memcmp(p.out.data(), one.out.data(), p.out.size() * sizeof(float)), 0);
    EXPECT_EQ(std::memcmp(p.lse.data(), one.lse.data(), p.lse.size() * sizeof(float)), 0);

    const int64_t m = 70, n = 50, k = 33;
    std::vector<float> x(m * k, 0.25f), w(n * k, -0.5f), y(m * n, 0.0f), y1(m * n, 1.0f);
    ASSERT_EQ(causalattn_linear_f32(m, n, k, x.data(), k, w.data(), k, nullptr, y1.data(), n, 1), CAUSALATTN_OK);
    ASSERT_EQ(causalattn_linear_f32(m, n, k, x.data(), k, w.data(), k, nullptr, y.data(), n, threads), CAUSALATTN_OK)
        << causalattn_last_error();
    EXPECT_EQ(std::memcmp(y.data(), y1.data(), y.size() * sizeof(float)), 0);
  }
}

TEST(Hostile, WorkspaceSizeIsTheSameForCountsPastTheMachine) {
  causalattn_shape s{1, 8, 8, 4, 4, 64};
  causalattn_options all{}, huge{};
  all.num_threads = tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism);
  huge.num_threads = std::numeric_limits<int32_t>::max();
  size_t a = 0, b = 0;
  ASSERT_EQ(causalattn_workspace_size(&s, &all, &a), CAUSALATTN_OK);
  ASSERT_EQ(causalattn_workspace_size(&s, &huge, &b), CAUSALATTN_OK);
  EXPECT_EQ(a, b);
}

// Resident memory of this process, in bytes.
int64_t resident_bytes() {
  long pages = 0, resident = 0;
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return -1;
  const int read = std::fscanf(f, "%ld %ld", &pages, &resident);
  std::fclose(f);
  return read == 2 ? resident * 4096 : -1;
}

TEST(Hostile, ChangingThreadCountsDoNotGrowMemory) {
  // Counts 2 and 3 must be two arenas here too: let oneTBB run up to 4 threads.
  tbb::global_control four(tbb::global_control::max_allowed_parallelism, 4);
  Problem p({1, 2, 2, 16, 16, 16}, Layout::kBHTD, 3);
  causalattn_shape s = p.shape;
  causalattn_options options{};
  auto calls = [&](int count) {
    for (int i = 0; i < count; ++i) {
      options.num_threads = 2 + i % 2;
      ASSERT_EQ(causalattn_forward_f32(&s, p.q.data(), p.q_layout, p.k.data(), p.k_layout, p.v.data(), p.v_layout,
                                       p.out.data(), p.out_layout, &options),
                CAUSALATTN_OK);
    }
  };
  calls(2000);
  const int64_t before = resident_bytes();
  if (before < 0) GTEST_SKIP() << "no /proc/self/statm";
  calls(20000);
  // Replacing the arena at each change grew ~4.3 KB a call: 86 MB here.
  EXPECT_LT(resident_bytes() - before, int64_t{8} << 20);
}

TEST(Hostile, AWorkspaceOverlappingATensorIsRefused) {
  Problem p({1, 2, 2, 20, 20, 16}, Layout::kBHTD, 5);
  causalattn_options options{};
  options.lse = p.lse.data();
  size_t bytes = 0;
  ASSERT_EQ(causalattn_workspace_size(&p.shape, &options, &bytes), CAUSALATTN_OK);
  std::vector<float> own(bytes / sizeof(float) + 1);
  ASSERT_EQ(p.run_with_workspace(options, own.data(), bytes), CAUSALATTN_OK);
  const std::vector<float> expected_out = p.out, expected_lse = p.lse;
  struct Overlap {
    std::vector<float>* tensor;
    const char* name;
  };
  for (const Overlap& o : {Overlap{&p.q, "q"}, Overlap{&p.k, "k"}, Overlap{&p.v, "v"}, Overlap{&p.out, "out"},
                           Overlap{&p.lse, "options.lse"}}) {
    SCOPED_TRACE(o.name);
    std::fill(p.out.begin(), p.out.end(), kSentinel);
    std::fill(p.lse.begin(), p.lse.end(), kSentinel);
    const std::vector<float> q_before = p.q;
    // Four bytes inside the tensor (aliasing is checked before the workspace's size).
    void* workspace = o.tensor->data() + o.tensor->size() / 2;
    EXPECT_EQ(p.run_with_workspace(options, workspace, sizeof(float)), CAUSALATTN_ERROR_ALIASING);
    EXPECT_NE(std::string(causalattn_last_error()).find(std::string("workspace overlaps ") + o.name), std::string::npos)
        << causalattn_last_error();
    if (o.tensor != &p.out) {
      for (float x : p.out) ASSERT_EQ(x, kSentinel);
    }
    if (o.tensor != &p.lse) {
      for (float x : p.lse) ASSERT_EQ(x, kSentinel);
    }
    EXPECT_EQ(p.q, q_before);
  }
  std::fill(p.out.begin(), p.out.end(), kSentinel);
  ASSERT_EQ(p.run_with_workspace(options, own.data(), bytes), CAUSALATTN_OK);
  EXPECT_EQ(p.out, expected_out);
  EXPECT_EQ(p.lse, expected_lse);
}

// Calls from inside the caller's own TBB tasks, with more TBB threads than cores: each outer
// task's call must give the bits of the same call made alone.
struct NestedCase {
  causalattn_shape shape;
  int num_threads;
};

TEST(Hostile, CallsFromInsideTheCallersTasksGiveTheBitsOfLoneCalls) {
  tbb::global_control eight(tbb::global_control::max_allowed_parallelism, 8);
  const std::vector<NestedCase> cases = {
      {{1, 8, 2, 4, 3000, 64}, 0},   // decode: split chunks and their merge
      {{1, 4, 4, 130, 130, 32}, 0},  // row blocks
      {{2, 8, 8, 1, 2100, 16}, 2},
      {{1, 2, 1, 60, 200, 48}, 3},
  };
  std::vector<Problem> expected;
  for (size_t c = 0; c < cases.size(); ++c) {
    expected.emplace_back(cases[c].shape, Layout::kBTHD, static_cast<uint32_t>(40 + c));
    ASSERT_EQ(expected.back().run(0, 0.0f, 1, true), CAUSALATTN_OK);
  }
  for (const int arena_threads : {8, 4}) {
    SCOPED_TRACE("outer arena of " + std::to_string(arena_threads));
    constexpr int kOuterTasks = 48;
    std::vector<Problem> results;
    for (int t = 0; t < kOuterTasks; ++t) {
      results.emplace_back(cases[t % cases.size()].shape, Layout::kBTHD, static_cast<uint32_t>(40 + t % cases.size()));
    }
    std::vector<int> statuses(kOuterTasks, -1);
    tbb::task_arena outer(arena_threads);
    parallel::ForkJoinEdges edges;  // the outer fork and join, told to ThreadSanitizer
    edges.before_fork();
    outer.execute([&] {
      tbb::parallel_for(tbb::blocked_range<int>(0, kOuterTasks, 1), [&](const tbb::blocked_range<int>& r) {
        edges.task_begins();
        for (int t = r.begin(); t != r.end(); ++t) {
          statuses[t] = results[t].run(0, 0.0f, cases[t % cases.size()].num_threads, true);
        }
        edges.task_ends();
      });
    });
    edges.after_join();
    for (int t = 0; t < kOuterTasks; ++t) {
      ASSERT_EQ(statuses[t], CAUSALATTN_OK) << "task " << t;
      const Problem& want = expected[t % cases.size()];
      EXPECT_EQ(results[t].out, want.out) << "task " << t;
      EXPECT_EQ(results[t].lse, want.lse) << "task " << t;
    }
  }
}

TEST(Hostile, OneModuleSharedByTheCallersTasksGivesTheBitsOfLoneCalls) {
  tbb::global_control eight(tbb::global_control::max_allowed_parallelism, 8);
  MultiHeadAttention mha(48, 64, 64, 0.0f, 4, true);
  mha.eval();
  constexpr int kOuterTasks = 32;
  std::vector<std::vector<float>> inputs, expected;
  for (int t = 0; t < kOuterTasks; ++t) {
    const int64_t tokens = 1 + (t * 7) % 64;
    std::vector<float> x(static_cast<size_t>(2 * tokens * 48));
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 37 + t * 11) % 101) / 50.0f - 1.0f;
    expected.push_back(mha.forward(x, 2, tokens));
    inputs.push_back(std::move(x));
  }
  for (const int arena_threads : {8, 4}) {
    std::vector<std::vector<float>> results(kOuterTasks);
    tbb::task_arena outer(arena_threads);
    parallel::ForkJoinEdges edges;
    edges.before_fork();
    outer.execute([&] {
      tbb::parallel_for(tbb::blocked_range<int>(0, kOuterTasks, 1), [&](const tbb::blocked_range<int>& r) {
        edges.task_begins();
        for (int t = r.begin(); t != r.end(); ++t) {
          results[t] = mha.forward(inputs[t], 2, 1 + (t * 7) % 64);
        }
        edges.task_ends();
      });
    });
    edges.after_join();
    for (int t = 0; t < kOuterTasks; ++t) EXPECT_EQ(results[t], expected[t]) << "task " << t;
  }
}


// ---- Sizes near every power of two, through the validation and the plan ----

// Values that sit on the edges of int64 arithmetic: 2^k - 1, 2^k, 2^k + 1 for every k, and the
// negative extremes.
std::vector<int64_t> edge_values() {
  std::vector<int64_t> values = {0, -1, std::numeric_limits<int64_t>::min()};
  for (int k = 0; k < 63; ++k) {
    const int64_t p = int64_t{1} << k;
    values.insert(values.end(), {p - 1, p, p + 1});
  }
  values.push_back(std::numeric_limits<int64_t>::max());
  return values;
}

using Wide = __int128;

// Elements a tensor spans through its layout, in 128 bits (each term is below 2^126, the sum
// below 2^127.6: a term past 2^64 already decides, so the sum saturates there).
Wide wide_span(int64_t batches, int64_t heads, int64_t tokens, int64_t dim, const causalattn_layout& l) {
  const Wide big = Wide{1} << 64;
  const Wide terms[] = {Wide{batches - 1} * l.batch, Wide{heads - 1} * l.head, Wide{tokens - 1} * l.token};
  Wide span = dim;
  for (const Wide t : terms) span = t > big || span > big ? big : span + t;
  return span;
}

// The product of positive factors, saturated at 2^64 (so it never overflows 128 bits).
Wide wide_product(std::initializer_list<int64_t> factors) {
  const Wide big = Wide{1} << 64;
  Wide product = 1;
  for (const int64_t f : factors) product = product > big ? big : product * f;
  return product > big ? big : product;
}

// One attend call over fixed buffers, with any field overwritten; what the test expects of it is
// worked out here, independently of the library's validation.
struct EdgeCall {
  std::vector<float> q = std::vector<float>(2 * 2 * 5 * 8), kv = std::vector<float>(2 * 1 * 7 * 8);
  std::vector<float> out = std::vector<float>(2 * 2 * 5 * 8, kSentinel), lse = std::vector<float>(2 * 2 * 5, kSentinel);
  causalattn_attend_args a{};

  EdgeCall() {
    for (size_t i = 0; i < q.size(); ++i) q[i] = static_cast<float>(i % 7) / 7.0f - 0.5f;
    for (size_t i = 0; i < kv.size(); ++i) kv[i] = static_cast<float>(i % 5) / 5.0f - 0.4f;
    a.shape = {2, 2, 1, 5, 7, 8};
    a.q = q.data();
    a.k = a.v = kv.data();
    a.out = out.data();
    a.q_layout = a.out_layout = {2 * 5 * 8, 5 * 8, 8};
    a.k_layout = a.v_layout = {7 * 8, 7 * 8, 8};
    a.options.lse = lse.data();
  }

  // The documented rules (README, causalattn.h), checked in 128-bit arithmetic.
  bool valid() const {
    const causalattn_shape& s = a.shape;
    for (int64_t size : {s.batch, s.q_heads, s.kv_heads, s.q_len, s.kv_len, s.head_dim})
      if (size <= 0) return false;
    if (s.head_dim > CAUSALATTN_MAX_HEAD_DIM || s.q_len > CAUSALATTN_MAX_TOKENS || s.kv_len > CAUSALATTN_MAX_TOKENS) return false;
    if (s.q_heads % s.kv_heads != 0 || s.q_len > s.kv_len) return false;  // causal
    if (a.window < 0) return false;
    const Wide limit = std::numeric_limits<int64_t>::max();
    if (wide_product({s.batch, s.q_heads, s.q_len, s.head_dim}) > limit ||
        wide_product({s.batch, s.kv_heads, s.kv_len, s.head_dim}) > limit) {
      return false;
    }
    for (const causalattn_layout* l : {&a.q_layout, &a.k_layout, &a.v_layout, &a.out_layout})
      if (l->batch < 0 || l->head < 0 || l->token < 0) return false;
    const Wide max_span = limit / 4;
    return wide_span(s.batch, s.q_heads, s.q_len, s.head_dim, a.q_layout) <= max_span &&
           wide_span(s.batch, s.kv_heads, s.kv_len, s.head_dim, a.k_layout) <= max_span &&
           wide_span(s.batch, s.kv_heads, s.kv_len, s.head_dim, a.v_layout) <= max_span &&
           wide_span(s.batch, s.q_heads, s.q_len, s.head_dim, a.out_layout) <= max_span;
  }

  // Every element the call may touch lies inside the buffers.
  bool fits() const {
    const causalattn_shape& s = a.shape;
    return wide_span(s.batch, s.q_heads, s.q_len, s.head_dim, a.q_layout) <= Wide(q.size()) &&
           wide_span(s.batch, s.kv_heads, s.kv_len, s.head_dim, a.k_layout) <= Wide(kv.size()) &&
           wide_span(s.batch, s.kv_heads, s.kv_len, s.head_dim, a.v_layout) <= Wide(kv.size()) &&
           wide_span(s.batch, s.q_heads, s.q_len, s.head_dim, a.out_layout) <= Wide(out.size()) &&
           wide_product({s.batch, s.q_heads, s.q_len}) <= Wide(lse.size());
  }
};

// Runs one edge call and checks it against what EdgeCall expects.
void check_edge_call(EdgeCall& c, const std::string& what) {
  SCOPED_TRACE(what);
  if (!c.valid()) {
    EXPECT_NE(causalattn_attend_f32(&c.a), CAUSALATTN_OK);
    EXPECT_STRNE(causalattn_last_error(), "");
    for (float x : c.out) ASSERT_EQ(x, kSentinel);
    for (float x : c.lse) ASSERT_EQ(x, kSentinel);
    return;
  }
  if (!c.fits()) {
    // Valid sizes over tensors larger than this test holds: the shape-only query still answers,
    // with a size or with the plan's refusal.
    size_t bytes = 0;
    const int status = causalattn_attend_workspace_size(&c.a, &bytes);
    EXPECT_TRUE(status == CAUSALATTN_OK || status == CAUSALATTN_ERROR_INVALID_SHAPE) << causalattn_last_error();
    return;
  }
  const int status = causalattn_attend_f32(&c.a);
  if (status == CAUSALATTN_ERROR_INVALID_LAYOUT) {  // output rows that overlap: refused, untouched
    for (float x : c.out) ASSERT_EQ(x, kSentinel);
    return;
  }
  ASSERT_EQ(status, CAUSALATTN_OK) << causalattn_last_error();
  const reference::Result ref = reference::attention(c.a.shape, c.q.data(), c.a.q_layout, c.kv.data(), c.a.k_layout,
                                                     c.kv.data(), c.a.v_layout, true, 0.0, c.a.window);
  const causalattn_shape& s = c.a.shape;
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t h = 0; h < s.q_heads; ++h)
      for (int64_t i = 0; i < s.q_len; ++i)
        for (int64_t d = 0; d < s.head_dim; ++d) {
          const causalattn_layout& l = c.a.out_layout;
          ASSERT_NEAR(c.out[b * l.batch + h * l.head + i * l.token + d],
                      ref.out[((b * s.q_heads + h) * s.q_len + i) * s.head_dim + d], 1e-5);
        }
  std::fill(c.out.begin(), c.out.end(), kSentinel);
  std::fill(c.lse.begin(), c.lse.end(), kSentinel);
}

// Each size, stride and the window alone through every edge value.
TEST(Hostile, EveryFieldNearEveryPowerOfTwo) {
  struct Field {
    const char* name;
    int64_t* (*at)(causalattn_attend_args&);
  };
  const Field fields[] = {
      {"batch", [](causalattn_attend_args& a) { return &a.shape.batch; }},
      {"q_heads", [](causalattn_attend_args& a) { return &a.shape.q_heads; }},
      {"kv_heads", [](causalattn_attend_args& a) { return &a.shape.kv_heads; }},
      {"q_len", [](causalattn_attend_args& a) { return &a.shape.q_len; }},
      {"kv_len", [](causalattn_attend_args& a) { return &a.shape.kv_len; }},
      {"head_dim", [](causalattn_attend_args& a) { return &a.shape.head_dim; }},
      {"q.batch", [](causalattn_attend_args& a) { return &a.q_layout.batch; }},
      {"q.head", [](causalattn_attend_args& a) { return &a.q_layout.head; }},
      {"q.token", [](causalattn_attend_args& a) { return &a.q_layout.token; }},
      {"k.batch", [](causalattn_attend_args& a) { return &a.k_layout.batch; }},
      {"k.head", [](causalattn_attend_args& a) { return &a.k_layout.head; }},
      {"k.token", [](causalattn_attend_args& a) { return &a.k_layout.token; }},
      {"v.token", [](causalattn_attend_args& a) { return &a.v_layout.token; }},
      {"out.batch", [](causalattn_attend_args& a) { return &a.out_layout.batch; }},
      {"out.head", [](causalattn_attend_args& a) { return &a.out_layout.head; }},
      {"out.token", [](causalattn_attend_args& a) { return &a.out_layout.token; }},
      {"window", [](causalattn_attend_args& a) { return &a.window; }},
  };
  for (const Field& f : fields) {
    for (const int64_t value : edge_values()) {
      EdgeCall c;
      *f.at(c.a) = value;
      check_edge_call(c, std::string(f.name) + " = " + std::to_string(value));
    }
  }
  // Pairs of sizes, both at edges (the products are where overflow hides).
  const std::vector<int64_t> coarse = {1, 2, 7, (int64_t{1} << 31) + 1, int64_t{1} << 32, (int64_t{1} << 32) + 1,
                                       int64_t{1} << 62, std::numeric_limits<int64_t>::max()};
  for (int i = 0; i < 6; ++i)
    for (int j = i + 1; j < 6; ++j)
      for (const int64_t x : coarse)
        for (const int64_t y : coarse) {
          EdgeCall c;
          *fields[i].at(c.a) = x;
          *fields[j].at(c.a) = y;
          check_edge_call(c, std::string(fields[i].name) + " = " + std::to_string(x) + ", " + fields[j].name + " = " +
                                 std::to_string(y));
        }
}

// Paged caches: page sizes, page counts, block table strides, lengths and entries at the edges.
TEST(Hostile, PagedFieldsNearEveryPowerOfTwo) {
  for (int field = 0; field < 5; ++field) {
    for (const int64_t value : edge_values()) {
      std::vector<float> q(2 * 3 * 8, 0.25f), kv(6 * 4 * 8, 0.5f), out(q.size(), kSentinel);
      std::vector<int32_t> table = {0, 1, 2, 3, 4, 5};
      std::vector<int64_t> kv_lens = {5, 9};
      causalattn_kv_pages pages{table.data(), 3, 4, 6};
      causalattn_seq_lens lens{};
      lens.kv_lens = kv_lens.data();
      causalattn_attend_args a{};
      a.shape = {2, 1, 1, 3, 9, 8};
      a.q = q.data();
      a.k = a.v = kv.data();
      a.out = out.data();
      a.q_layout = a.out_layout = {3 * 8, 3 * 8, 8};
      a.k_layout = a.v_layout = {4 * 8, 4 * 8, 8};
      a.seq_lens = &lens;
      a.pages = &pages;
      switch (field) {
        case 0: pages.page_tokens = value; break;
        case 1: pages.num_pages = value; break;
        case 2: pages.block_table_stride = value; break;
        case 3: kv_lens[1] = value; break;
        case 4: table[3] = static_cast<int32_t>(std::clamp<int64_t>(value, INT32_MIN, INT32_MAX)); break;
      }
      SCOPED_TRACE("field " + std::to_string(field) + " = " + std::to_string(value));
      // What the call may touch: pages [0, num_pages) of 4-token pages in kv; table rows 0 and 1.
      const Wide pt = pages.page_tokens, stride = pages.block_table_stride;
      bool valid = pt >= 1 && pt <= CAUSALATTN_MAX_TOKENS && pages.num_pages >= 1 && stride >= 1 &&
                   kv_lens[1] >= 3 && kv_lens[1] <= CAUSALATTN_MAX_TOKENS &&
                   wide_product({pages.num_pages, pages.page_tokens, 8}) <= std::numeric_limits<int64_t>::max();
      valid = valid && Wide{kv_lens[0]} <= stride * pt && Wide{kv_lens[1]} <= stride * pt &&
              wide_span(pages.num_pages, 1, pages.page_tokens, 8, a.k_layout) <= std::numeric_limits<int64_t>::max() / 4;
      bool fits = valid && pages.num_pages <= 6 && pages.page_tokens <= 4 && stride * 2 <= 6;
      for (int64_t s = 0; valid && s < 2; ++s) {
        const Wide used = (kv_lens[s] + pt - 1) / pt;
        for (Wide i = 0; i < used && fits; ++i) {
          const int32_t entry = table[static_cast<size_t>(s * stride + i)];
          if (entry < 0 || entry >= pages.num_pages) valid = false;
        }
      }
      if (valid && !fits) continue;  // tensors larger than this test holds
      const int status = causalattn_attend_f32(&a);
      if (valid) {
        EXPECT_EQ(status, CAUSALATTN_OK) << causalattn_last_error();
        for (float x : out) EXPECT_TRUE(std::isfinite(x));
      } else {
        EXPECT_NE(status, CAUSALATTN_OK);
        EXPECT_STRNE(causalattn_last_error(), "");
        for (float x : out) ASSERT_EQ(x, kSentinel);
      }
    }
  }
}
}  // namespace
}  // namespace causalattn::testing
