// Concurrent callers: eight threads call the C API at once with different shapes and options
// while a ninth calls from inside a one-thread tbb::task_arena. Every result must equal, bit for
// bit, the same call made alone on one thread, and each thread keeps its own last error.
#include <gtest/gtest.h>
#include <tbb/task_arena.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "attention_tester.hpp"

namespace causalattn::testing {
namespace {

struct Case {
  causalattn_shape shape;
  Layout layout;
  uint32_t flags;
  float scale;
  bool lse;
};

const std::vector<Case> kCases = {
    {{1, 8, 2, 300, 300, 64}, Layout::kBHTD, 0, 0.0f, true},
    {{2, 4, 4, 129, 129, 128}, Layout::kBTHD, 0, 0.0f, false},
    {{1, 4, 1, 17, 500, 80}, Layout::kPadded, 0, 0.25f, true},
    {{3, 2, 1, 64, 64, 31}, Layout::kBHTD, CAUSALATTN_NON_CAUSAL, 0.0f, true},
    {{1, 12, 3, 1, 1031, 96}, Layout::kBTHD, 0, 0.0f, true},
    {{2, 2, 2, 257, 257, 16}, Layout::kBHTD, 0, 2.0f, false},
    {{1, 6, 6, 90, 200, 3}, Layout::kPadded, CAUSALATTN_NON_CAUSAL, 0.0f, true},
    {{1, 1, 1, 700, 700, 256}, Layout::kBHTD, 0, 0.0f, true},
    {{2, 8, 2, 100, 100, 64}, Layout::kBTHD, 0, 0.0f, true},  // the arena caller's
};

TEST(Concurrency, EightCallersAndAnArenaGetTheBitsOfALoneCall) {
  // The expected bits: each case alone, one thread.
  std::vector<Problem> expected;
  for (size_t c = 0; c < kCases.size(); ++c) {
    expected.emplace_back(kCases[c].shape, kCases[c].layout, static_cast<uint32_t>(100 + c));
    ASSERT_EQ(expected.back().run(kCases[c].flags, kCases[c].scale, 1, kCases[c].lse), CAUSALATTN_OK);
  }
  std::atomic<int> mismatches{0}, failures{0}, wrong_errors{0};
  auto caller = [&](size_t c, int rounds) {
    const Case& k = kCases[c];
    for (int round = 0; round < rounds; ++round) {
      // A failing call whose message names this caller, then valid calls by everyone.
      causalattn_shape bad = k.shape;
      bad.head_dim = -static_cast<int64_t>(1000 + c);
      Problem p(k.shape, k.layout, static_cast<uint32_t>(100 + c));
      causalattn_options options{};
      if (causalattn_forward_f32(&bad, p.q.data(), p.q_layout, p.k.data(), p.k_layout, p.v.data(), p.v_layout,
                                 p.out.data(), p.out_layout, &options) == CAUSALATTN_OK) {
        ++failures;
      }
      const int threads = round % 3 == 0 ? 0 : round % 3;  // all, 1, 2
      if (p.run(k.flags, k.scale, threads, k.lse) != CAUSALATTN_OK) ++failures;
      if (std::memcmp(p.out.data(), expected[c].out.data(), p.out.size() * sizeof(float)) != 0 ||
          std::memcmp(p.lse.data(), expected[c].lse.data(), p.lse.size() * sizeof(float)) != 0) {
        ++mismatches;
      }
      // Still this thread's own failure, whatever the others did meanwhile.
      if (std::string(causalattn_last_error()).find(std::to_string(1000 + c)) == std::string::npos) ++wrong_errors;
    }
  };
  std::vector<std::thread> threads;
  for (size_t c = 0; c + 1 < kCases.size(); ++c) threads.emplace_back(caller, c, 6);
  threads.emplace_back([&] {
    tbb::task_arena one(1);
    one.execute([&] { caller(kCases.size() - 1, 12); });
  });
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_EQ(wrong_errors.load(), 0);
}

}  // namespace
}  // namespace causalattn::testing
