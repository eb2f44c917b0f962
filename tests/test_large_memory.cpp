// One causal call at T = 65536 (one head, D = 128) runs within inputs + outputs + 64 MiB of peak
// resident memory: O(T·D), where the textbook's T×T scores alone would take 16 GiB.
// Label "large" (ctest -LE large skips it on small machines); about 10 s on two cores.
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "attention_tester.hpp"

namespace causalattn::testing {
namespace {

// VmHWM or VmRSS of this process, in bytes.
long long status_bytes(const std::string& key) {
  std::ifstream status("/proc/self/status");
  std::string word;
  while (status >> word) {
    if (word == key) {
      long long kib = 0;
      status >> kib;
      return kib * 1024;
    }
  }
  return -1;
}

TEST(LargeMemory, CausalT65536StaysWithinInputsOutputsAnd64MiB) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "sanitizers change what memory is resident";
#endif
  const causalattn_shape shape{1, 1, 1, 65536, 65536, 128};
  Problem p(shape, Layout::kBHTD, 7);  // Q, K, V, out and lse filled, so resident
  const long long tensor_bytes =
      static_cast<long long>((p.q.size() + p.k.size() + p.v.size() + p.out.size() + p.lse.size()) * sizeof(float));
  // Reset the high-water mark to the current resident set, so the peak is this call's.
  std::ofstream("/proc/self/clear_refs") << "5";
  const long long before = status_bytes("VmRSS:");
  ASSERT_EQ(p.run(0, 0.0f, 0, true), CAUSALATTN_OK) << causalattn_last_error();
  const long long peak = status_bytes("VmHWM:");
  ASSERT_GT(peak, 0);
  RecordProperty("peak_rss_bytes", std::to_string(peak));
  RecordProperty("call_rss_growth_bytes", std::to_string(peak - before));
  EXPECT_LE(peak, tensor_bytes + (64ll << 20)) << "peak " << peak << ", tensors " << tensor_bytes;

  // Spot checks: row i of a causal call is the one-query call over keys 0..i.
  for (int64_t i : {0, 4095, 65535}) {
    Problem row(causalattn_shape{1, 1, 1, 1, i + 1, shape.head_dim}, Layout::kBHTD, 0);
    std::copy_n(p.q.begin() + i * shape.head_dim, shape.head_dim, row.q.begin());
    std::copy_n(p.k.begin(), row.k.size(), row.k.begin());
    std::copy_n(p.v.begin(), row.v.size(), row.v.begin());
    std::copy_n(p.out.begin() + i * shape.head_dim, shape.head_dim, row.out.begin());
    row.lse[0] = p.lse[i];
    expect_matches_reference(row, true, 0.0f, true);
  }
}

}  // namespace
}  // namespace causalattn::testing
