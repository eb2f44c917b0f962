// safetensors: a state dict written and read back; BF16 and F16 widened exactly; every kind of
// malformed file refused with a message that names the problem.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "causalattn/safetensors.hpp"

namespace {

using causalattn::HostTensor;
using causalattn::StateDict;

// A file from a header text and data bytes, as another writer (PyTorch) would produce it.
std::vector<unsigned char> file_of(const std::string& header, const std::vector<unsigned char>& data) {
  std::vector<unsigned char> bytes(8 + header.size() + data.size());
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<unsigned char>(static_cast<uint64_t>(header.size()) >> (8 * i));
  std::copy(header.begin(), header.end(), bytes.begin() + 8);
  std::copy(data.begin(), data.end(), bytes.begin() + 8 + static_cast<std::ptrdiff_t>(header.size()));
  return bytes;
}

TEST(Safetensors, WriteThenReadGivesTheSameTensors) {
  const StateDict dict = {{"W_query.weight", {{3, 2}, {1, -2, 3.5f, 0, 1e-30f, -7}}},
                          {"out_proj.bias", {{2}, {0.25f, std::nanf("")}}}};
  const std::string path = ::testing::TempDir() + "/dict.safetensors";
  causalattn::write_safetensors(path, dict);
  const StateDict back = causalattn::read_safetensors(path);
  ASSERT_EQ(back.size(), dict.size());
  for (const auto& [name, t] : dict) {
    ASSERT_EQ(back.at(name).shape, t.shape) << name;
    ASSERT_EQ(std::memcmp(back.at(name).data.data(), t.data.data(), t.data.size() * sizeof(float)), 0) << name;
  }
}

TEST(Safetensors, Bf16AndF16AreWidenedExactly) {
  // bf16 0x3FC0 = 1.5, 0xC100 = -8; f16 0x3C00 = 1, 0x0001 = 2^-24 (subnormal), 0xFC00 = -inf.
  const std::vector<unsigned char> data = {0xC0, 0x3F, 0x00, 0xC1, 0x00, 0x3C, 0x01, 0x00, 0x00, 0xFC};
  const std::string header = R"({"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},)"
                             R"("b":{"dtype":"F16","shape":[3],"data_offsets":[4,10]},"__metadata__":{"format":"pt"}})";
  const StateDict dict = causalattn::parse_safetensors(file_of(header, data));
  EXPECT_EQ(dict.at("a").data, (std::vector<float>{1.5f, -8.0f}));
  EXPECT_EQ(dict.at("b").data[0], 1.0f);
  EXPECT_EQ(dict.at("b").data[1], std::ldexp(1.0f, -24));
  EXPECT_EQ(dict.at("b").data[2], -INFINITY);
}

TEST(Safetensors, AsBf16Bf16IsKeptAndTheOthersRounded) {
  // bf16 0x3FC0 = 1.5, 0xFFC1 (a NaN, kept as stored); f16 0x3C01 = 1 + 2^-10 -> bf16 1.0 (0x3F80);
  // f32 0x3F818000 = 1 + 3 · 2^-8 -> ties to even 0x3F82.
  const std::vector<unsigned char> data = {0xC0, 0x3F, 0xC1, 0xFF, 0x01, 0x3C, 0x00, 0x80, 0x81, 0x3F};
  const std::string header = R"({"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},)"
                             R"("b":{"dtype":"F16","shape":[1],"data_offsets":[4,6]},)"
                             R"("c":{"dtype":"F32","shape":[1,1],"data_offsets":[6,10]}})";
  const causalattn::StateDictBf16 dict = causalattn::parse_safetensors_bf16(file_of(header, data));
  ASSERT_EQ(dict.size(), 3u);
  EXPECT_EQ(dict.at("a").data[0].bits, 0x3FC0);
  EXPECT_EQ(dict.at("a").data[1].bits, 0xFFC1);
  EXPECT_EQ(dict.at("b").data[0].bits, 0x3F80);
  EXPECT_EQ(dict.at("c").shape, (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(dict.at("c").data[0].bits, 0x3F82);
  EXPECT_THROW(causalattn::parse_safetensors_bf16(file_of(header, {0xC0, 0x3F})), causalattn::Error);
}

TEST(Safetensors, MalformedFilesAreRefusedWithTheReason) {
  const std::vector<unsigned char> data(16, 0);
  const struct {
    std::vector<unsigned char> bytes;
    const char* reason;
  } cases[] = {
      {{1, 2, 3}, "no header length"},
      {file_of("{not json", data), "not JSON"},
      {file_of("[1,2]", data), "not a JSON object"},
      {file_of(R"({"w":{"dtype":"F32","shape":[2]}})", data), "lacks"},
      {file_of(R"({"w":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}})", data), "is not F32, BF16 or F16"},
      {file_of(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", data), "bad shape"},
      {file_of(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,24]}})", data), "out of the"},
      {file_of(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", data), "bytes for 3 elements"},
      {file_of(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"v":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", data),
       "overlap"},
  };
  for (const auto& c : cases) {
    try {
      causalattn::parse_safetensors(c.bytes);
      ADD_FAILURE() << "accepted; expected: " << c.reason;
    } catch (const causalattn::Error& e) {
      EXPECT_NE(std::string(e.what()).find(c.reason), std::string::npos) << e.what();
    }
  }
  // A header length past the end of the file (a truncated file).
  std::vector<unsigned char> truncated = file_of(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", data);
  truncated.resize(20);
  EXPECT_THROW(causalattn::parse_safetensors(truncated), causalattn::Error);
  EXPECT_THROW(causalattn::read_safetensors("/nonexistent/file.safetensors"), causalattn::Error);
}

}  // namespace
