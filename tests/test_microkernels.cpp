// The microkernels of every ISA in the ISA table, each built with its ISA's flags
// (microkernels/checks_of_isa.cpp): exp_nonpositive within its ulp bound over its whole range,
// the softcap's tanh within its absolute bound, the square transpose exactly, score and output blocks of every size the kernels instantiate bit
// for bit against scalar loops. An ISA this CPU lacks is skipped.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>

#include "attention_tester.hpp"
#include "microkernels/checks.hpp"

namespace causalattn::testing {
namespace {

const MicrokernelChecks* checks_of(const std::string& isa) {
  for (int i = 0; kMicrokernelChecks[i] != nullptr; ++i) {
    if (isa == kMicrokernelChecks[i]->isa) return kMicrokernelChecks[i];
  }
  return nullptr;
}

class Microkernels : public PerIsaTest {
 protected:
  void SetUp() override {
    PerIsaTest::SetUp();
    if (IsSkipped()) return;
    checks_ = checks_of(GetParam());
    ASSERT_NE(checks_, nullptr) << "no microkernel checks for " << GetParam();
  }
  const MicrokernelChecks* checks_ = nullptr;
  char why_[512] = "";
};

TEST_P(Microkernels, ExpWithinItsUlpBound) {
  double worst = 0;
  EXPECT_TRUE(checks_->exp(why_, sizeof why_, &worst)) << why_;
  RecordProperty("worst_ulp", std::to_string(worst));
  std::printf("%s exp: worst %.3f ulp (beyond |y| without FMA)\n", GetParam().c_str(), worst);
}

TEST_P(Microkernels, SoftcapWithinItsBound) {
  double worst = 0;
  EXPECT_TRUE(checks_->softcap(why_, sizeof why_, &worst)) << why_;
  RecordProperty("worst_error", std::to_string(worst));
  std::printf("%s softcap: worst error %.3g of the cap (2^%.1f)\n", GetParam().c_str(), worst, std::log2(worst));
}

TEST_P(Microkernels, TransposeIsExact) { EXPECT_TRUE(checks_->transpose(why_, sizeof why_)) << why_; }

TEST_P(Microkernels, ScoreAndOutputBlocksGiveTheBitsOfScalarLoops) {
  EXPECT_TRUE(checks_->blocks(why_, sizeof why_)) << why_;
}

INSTANTIATE_TEST_SUITE_P(Isa, Microkernels, ::testing::ValuesIn(known_isas()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace causalattn::testing
