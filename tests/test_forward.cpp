// The kernels against the double-precision reference, over shapes that break tilings, on every
// ISA this CPU runs.
#include "attention_tester.hpp"

namespace causalattn::testing {
namespace {

class Forward : public PerIsaTest {};

TEST_P(Forward, HeadDims) {
  for (int64_t d : {1, 3, 16, 31, 64, 80, 96, 128, 256}) {
    for (int64_t t : {17, 65}) AttnTester().seq_len(t).head_dim(d).Test();
  }
}

TEST_P(Forward, SequenceLengths) {
  for (int64_t t : {1, 2, 15, 16, 17, 63, 64, 65, 127, 128, 129, 500, 1031}) {
    AttnTester().seq_len(t).head_dim(64).Test();
  }
  for (int64_t t : {31, 33, 97}) AttnTester().seq_len(t).head_dim(31).Test();
}

TEST_P(Forward, ChunkAtEndOfCache) {
  const int64_t cases[][2] = {{1, 1}, {1, 2}, {1, 100}, {1, 1031}, {7, 33}, {16, 500}, {33, 129}, {100, 1031}, {64, 65}};
  for (const auto& [tq, tk] : cases) AttnTester().q_len(tq).kv_len(tk).head_dim(64).Test();
  AttnTester().q_len(5).kv_len(300).head_dim(128).heads(4, 1).Test();
}

TEST_P(Forward, BatchesAndGroupedQueryHeads) {
  AttnTester().batch(3).heads(1, 1).seq_len(65).head_dim(16).Test();
  AttnTester().batch(3).heads(4, 1).seq_len(33).head_dim(64).Test();
  AttnTester().batch(1).heads(8, 2).seq_len(129).head_dim(80).Test();
  AttnTester().batch(3).heads(8, 2).q_len(17).kv_len(40).head_dim(96).Test();
}

TEST_P(Forward, Layouts) {
  for (Layout layout : {Layout::kBHTD, Layout::kBTHD, Layout::kPadded}) {
    AttnTester().batch(3).heads(4, 1).seq_len(63).head_dim(31).layout(layout).Test();
    AttnTester().batch(1).heads(8, 2).q_len(20).kv_len(130).head_dim(64).layout(layout).Test();
    AttnTester().batch(2).heads(2, 2).seq_len(129).head_dim(128).layout(layout).causal(false).Test();
  }
}

TEST_P(Forward, NonCausal) {
  for (int64_t t : {1, 17, 64, 129, 500}) AttnTester().seq_len(t).head_dim(64).causal(false).Test();
  // Non-causal attention has no ordering between queries and keys: any lengths.
  AttnTester().q_len(100).kv_len(7).head_dim(31).causal(false).Test();
  AttnTester().q_len(3).kv_len(1031).head_dim(80).causal(false).Test();
}

TEST_P(Forward, ScaleAndLse) {
  AttnTester().seq_len(77).head_dim(64).scale(0.05f).Test();
  AttnTester().seq_len(77).head_dim(64).scale(-0.3f).Test();
  AttnTester().seq_len(77).head_dim(64).lse(false).Test();
}

TEST_P(Forward, LargeLogitsNeedTheRunningMax) {
  // Scores of several hundred: a softmax that forgot to subtract the max would overflow.
  AttnTester().seq_len(200).head_dim(64).scale(20.0f).Test();
}

INSTANTIATE_TEST_SUITE_P(Isa, Forward, ::testing::ValuesIn(known_isas()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace causalattn::testing
