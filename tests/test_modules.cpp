// CausalAttention and MultiHeadAttention: PyTorch's outputs from the committed fixtures
// (tools/torch_parity.py), a live run of that script when torch is importable, a double-precision
// composition of the textbook's steps, dropout in training mode, the state dict's names, shapes
// and round trip, and bad inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include "attention_tester.hpp"
#include "causalattn/modules.hpp"
#include "causalattn/safetensors.hpp"

namespace {

namespace fs = std::filesystem;
using causalattn::AttentionModule;
using causalattn::CausalAttention;
using causalattn::HostTensor;
using causalattn::KvCache;
using causalattn::MultiHeadAttention;
using causalattn::StateDict;
using causalattn::testing::known_isas;

std::unique_ptr<AttentionModule> make_module(bool mha, int64_t d_in, int64_t d_out, int64_t context_length,
                                             int64_t heads, bool qkv_bias, float dropout = 0.0f) {
  if (mha) return std::make_unique<MultiHeadAttention>(d_in, d_out, context_length, dropout, heads, qkv_bias);
  return std::make_unique<CausalAttention>(d_in, d_out, context_length, dropout, qkv_bias);
}

// An Error with this status whose message contains `text`.
template <class Body>
void expect_error(Body&& body, int status, const std::string& text) {
  try {
    body();
    ADD_FAILURE() << "no error; expected one mentioning \"" << text << "\"";
  } catch (const causalattn::Error& e) {
    EXPECT_EQ(e.status(), status) << e.what();
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
  }
}

// |ours - PyTorch| <= 2^-16 · max(1, max|y|). Both sides are fp32 approximations of the same
// exact result that sum in different orders: projections of d_in <= 100 terms and attention over
// <= 200 keys each carry ~sqrt(n) · 2^-24 relative error, far below 2^-16 (measured: ~1e-7 on
// outputs of magnitude ~1); a wrong mask, scale, head split or bias misses by ~1e-2 or more.
double parity_bound(const std::vector<float>& y) {
  double m = 1.0;
  for (float v : y) m = std::fmax(m, std::fabs(v));
  return std::ldexp(m, -16);
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0.0;
  for (size_t i = 0; i < a.size(); ++i) d = std::fmax(d, std::fabs(double(a[i]) - double(b[i])));
  return d;
}

// Replays one exported case: loads the weights file into our module, runs x in eval mode.
void expect_case_matches(const fs::path& io_path) {
  const std::string stem = io_path.filename().string().substr(0, io_path.filename().string().size() -
                                                                     std::string(".io.safetensors").size());
  SCOPED_TRACE(stem);
  const StateDict io = causalattn::read_safetensors(io_path.string());
  const std::vector<float>& c = io.at("config").data;
  const HostTensor& x = io.at("x");
  const HostTensor& y = io.at("y");
  auto module = make_module(c[0] != 0.0f, int64_t(c[1]), int64_t(c[2]), int64_t(c[3]), int64_t(c[4]), c[5] != 0.0f);
  module->load((io_path.parent_path() / (stem + ".weights.safetensors")).string());
  module->eval();
  const std::vector<float> got = module->forward(x.data, x.shape[0], x.shape[1]);
  ASSERT_EQ(got.size(), y.data.size());
  const double diff = max_abs_diff(got, y.data), bound = parity_bound(y.data);
  EXPECT_LE(diff, bound) << "max |causalattn - PyTorch| over " << y.data.size() << " outputs";
  char text[32];
  std::snprintf(text, sizeof text, "%.3g", diff);
  ::testing::Test::RecordProperty(stem + "_max_abs_diff", text);
}

std::vector<fs::path> io_files(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.size() > 15 && name.compare(name.size() - 15, 15, ".io.safetensors") == 0) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

class Modules : public causalattn::testing::PerIsaTest {};

TEST_P(Modules, MatchPyTorchOnTheCommittedFixtures) {
  const std::vector<fs::path> files = io_files(CAUSALATTN_PARITY_DIR);
  ASSERT_GE(files.size(), 9u) << "fixtures missing from " << CAUSALATTN_PARITY_DIR;
  for (const fs::path& f : files) expect_case_matches(f);
}

// The textbook's steps in double: projections, per-head scores with the causal mask, softmax
// (times a dropout multiplier), weights · V, then out_proj. x [B, T, d_in].
std::vector<double> textbook_forward(const StateDict& p, bool mha, int64_t heads, const std::vector<float>& x, int64_t B,
                                     int64_t T, const causalattn::reference::WeightMultiplier* dropout = nullptr) {
  const int64_t d_out = p.at("W_query.weight").shape[0], d_in = p.at("W_query.weight").shape[1];
  const int64_t D = d_out / heads;
  auto project = [&](const std::string& name, const std::vector<double>& in, int64_t k) {
    const HostTensor& w = p.at(name + ".weight");
    const auto bias = p.find(name + ".bias");
    std::vector<double> out(B * T * w.shape[0]);
    for (int64_t r = 0; r < B * T; ++r)
      for (int64_t f = 0; f < w.shape[0]; ++f) {
        double s = bias != p.end() ? bias->second.data[f] : 0.0;
        for (int64_t j = 0; j < k; ++j) s += in[r * k + j] * double(w.data[f * k + j]);
        out[r * w.shape[0] + f] = s;
      }
    return out;
  };
  const std::vector<double> xd(x.begin(), x.end());
  const auto q = project("W_query", xd, d_in), k = project("W_key", xd, d_in), v = project("W_value", xd, d_in);
  std::vector<double> context(B * T * d_out, 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < T; ++i) {
        std::vector<double> s(i + 1);
        double m = -INFINITY;
        for (int64_t j = 0; j <= i; ++j) {
          double dot = 0.0;
          for (int64_t d = 0; d < D; ++d) dot += q[(b * T + i) * d_out + h * D + d] * k[(b * T + j) * d_out + h * D + d];
          s[j] = dot / std::sqrt(double(D));
          m = std::fmax(m, s[j]);
        }
        double sum = 0.0;
        for (double& e : s) sum += (e = std::exp(e - m));
        for (int64_t j = 0; j <= i; ++j) {
          const double w = s[j] / sum * (dropout ? (*dropout)(b, h, i, j) : 1.0);
          for (int64_t d = 0; d < D; ++d) context[(b * T + i) * d_out + h * D + d] += w * v[(b * T + j) * d_out + h * D + d];
        }
      }
  return mha ? project("out_proj", context, d_out) : context;
}

void expect_near_textbook(const std::vector<float>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  double m = 1.0, diff = 0.0;
  bool finite = true;
  for (size_t i = 0; i < want.size(); ++i) {
    m = std::fmax(m, std::fabs(want[i]));
    diff = std::fmax(diff, std::fabs(got[i] - want[i]));
    finite = finite && std::isfinite(got[i]);  // fmax would skip a NaN
  }
  EXPECT_TRUE(finite);
  EXPECT_LE(diff, std::ldexp(m, -16));
}

TEST_P(Modules, MatchTheTextbookStepsInDouble) {
  for (bool mha : {false, true}) {
    for (bool bias : {false, true}) {
      const int64_t B = 2, T = 45, heads = mha ? 6 : 1;
      auto module = make_module(mha, 40, 96, 64, heads, bias);
      module->eval();
      std::vector<float> x(B * T * 40);
      std::mt19937 rng(3);
      for (float& e : x) e = std::normal_distribution<float>()(rng);
      SCOPED_TRACE(std::string(mha ? "MultiHeadAttention" : "CausalAttention") + (bias ? " qkv_bias" : ""));
      expect_near_textbook(module->forward(x, B, T), textbook_forward(module->state_dict(), mha, heads, x, B, T));
    }
  }
}

std::vector<uint16_t> to_bf16(const std::vector<float>& x) {
  std::vector<uint16_t> out(x.size());
  EXPECT_EQ(causalattn_convert(x.data(), CAUSALATTN_DTYPE_F32, out.data(), CAUSALATTN_DTYPE_BF16,
                               static_cast<int64_t>(x.size())), CAUSALATTN_OK);
  return out;
}

std::vector<float> to_f32(const std::vector<uint16_t>& x) {
  std::vector<float> out(x.size());
  EXPECT_EQ(causalattn_convert(x.data(), CAUSALATTN_DTYPE_BF16, out.data(), CAUSALATTN_DTYPE_F32,
                               static_cast<int64_t>(x.size())), CAUSALATTN_OK);
  return out;
}

// The bf16 forward is the documented composition of the public bf16 calls, bit for bit: the
// parameters rounded to bf16, causalattn_linear_bf16 for the fused QKV projection, causalattn_attend
// on its bf16 rows, causalattn_linear_bf16 for out_proj (each checked against its own oracle in
// test_linear and test_dtypes). And it stays near the f32 forward of the same module.
TEST_P(Modules, Bf16ForwardIsTheBf16CallsComposed) {
  for (bool mha : {false, true}) {
    const int64_t B = 2, T = 77, d_in = 64, d_out = 64, heads = mha ? 2 : 1, D = d_out / heads;
    auto module = make_module(mha, d_in, d_out, 100, heads, true);
    module->eval();
    SCOPED_TRACE(mha ? "MultiHeadAttention" : "CausalAttention");
    std::vector<float> x_f32(B * T * d_in);
    std::mt19937 rng(5);
    for (float& e : x_f32) e = std::normal_distribution<float>()(rng);
    const std::vector<uint16_t> x = to_bf16(x_f32);
    const std::vector<float> y32 = module->forward(to_f32(x), B, T);  // before to(bf16): below
    module->to(CAUSALATTN_DTYPE_BF16);
    std::vector<uint16_t> y(B * T * d_out);
    module->forward(reinterpret_cast<const causalattn::bf16*>(x.data()), B, T, d_in,
                    reinterpret_cast<causalattn::bf16*>(y.data()));

    const causalattn::StateDict params = module->state_dict();
    std::vector<float> w, b;
    for (const char* name : {"W_query", "W_key", "W_value"}) {
      const std::vector<float>& wn = params.at(std::string(name) + ".weight").data;
      const std::vector<float>& bn = params.at(std::string(name) + ".bias").data;
      w.insert(w.end(), wn.begin(), wn.end());
      b.insert(b.end(), bn.begin(), bn.end());
    }
    const std::vector<uint16_t> w16 = to_bf16(w), b16 = to_bf16(b);
    std::vector<uint16_t> qkv(B * T * 3 * d_out), context(B * T * d_out), want(B * T * d_out);
    ASSERT_EQ(causalattn_linear_bf16(B * T, 3 * d_out, d_in, x.data(), d_in, w16.data(), d_in, b16.data(), qkv.data(),
                                     3 * d_out, 0), CAUSALATTN_OK) << causalattn_last_error();
    causalattn_attend_args a{};
    a.shape = {B, heads, heads, T, T, D};
    a.q = qkv.data();
    a.k = qkv.data() + d_out;
    a.v = qkv.data() + 2 * d_out;
    a.q_layout = a.k_layout = a.v_layout = {T * 3 * d_out, D, 3 * d_out};
    a.q_dtype = a.k_dtype = a.v_dtype = a.out_dtype = CAUSALATTN_DTYPE_BF16;
    a.out = mha ? context.data() : want.data();
    a.out_layout = {T * d_out, D, d_out};
    ASSERT_EQ(causalattn_attend(&a), CAUSALATTN_OK) << causalattn_last_error();
    if (mha) {
      const std::vector<uint16_t> wo = to_bf16(params.at("out_proj.weight").data), bo = to_bf16(params.at("out_proj.bias").data);
      ASSERT_EQ(causalattn_linear_bf16(B * T, d_out, d_out, context.data(), d_out, wo.data(), d_out, bo.data(), want.data(),
                                       d_out, 0), CAUSALATTN_OK) << causalattn_last_error();
    }
    EXPECT_EQ(y, want);

    // Near the f32 module's forward on the same x: bf16 roundings of Q, K, V, the context and y
    // (2^-8 relative each) and of the weights, all far below 2^-4 of max|y| on these sizes.
    const std::vector<float> y16 = to_f32(y);
    double top = 0.0, diff = 0.0;
    for (size_t i = 0; i < y32.size(); ++i) {
      top = std::fmax(top, std::fabs(y32[i]));
      diff = std::fmax(diff, std::fabs(y16[i] - y32[i]));
    }
    EXPECT_LE(diff, std::ldexp(top, -4));
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, Modules, ::testing::ValuesIn(known_isas()),
                         [](const auto& info) { return info.param; });

TEST(ModulesState, Bf16SameBitsForAnyThreadCountAndBadArguments) {
  MultiHeadAttention module(64, 96, 300, 0.0f, 4, true);
  module.eval();
  module.to(CAUSALATTN_DTYPE_BF16);
  std::vector<float> x32(2 * 257 * 64);
  for (size_t i = 0; i < x32.size(); ++i) x32[i] = std::cos(0.1f * float(i));
  const std::vector<uint16_t> x = to_bf16(x32);
  auto forward = [&](int threads) {
    module.set_num_threads(threads);
    std::vector<uint16_t> y(2 * 257 * 96);
    module.forward(reinterpret_cast<const causalattn::bf16*>(x.data()), 2, 257, 64, reinterpret_cast<causalattn::bf16*>(y.data()));
    return y;
  };
  const std::vector<uint16_t> one = forward(1);
  for (int threads : {2, 3, 0}) EXPECT_EQ(forward(threads), one) << threads << " threads";
  std::vector<uint16_t> y(2 * 257 * 96, 0x1234);
  const std::vector<uint16_t> before = y;
  auto* yp = reinterpret_cast<causalattn::bf16*>(y.data());
  const auto* xp = reinterpret_cast<const causalattn::bf16*>(x.data());
  EXPECT_THROW(module.forward(xp, 2, 257, 63, yp), causalattn::Error);
  EXPECT_THROW(module.forward(static_cast<const causalattn::bf16*>(nullptr), 2, 257, 64, yp), causalattn::Error);
  EXPECT_THROW(module.forward(xp, 2, 301, 64, yp), causalattn::Error);
  std::vector<float> x32_out(2 * 257 * 96, 3.0f);
  EXPECT_THROW(module.forward(x32.data(), 2, 257, 64, x32_out.data()), causalattn::Error);  // f32 x, bf16 module
  EXPECT_EQ(y, before);
  EXPECT_EQ(x32_out, std::vector<float>(2 * 257 * 96, 3.0f));
  // In place (y over x, d_in = d_out): x is read in full before y is written.
  MultiHeadAttention square(64, 64, 300, 0.0f, 4, true);
  square.eval();
  square.to(CAUSALATTN_DTYPE_BF16);
  std::vector<uint16_t> separate(x.size()), inplace = x;
  square.forward(xp, 2, 257, 64, reinterpret_cast<causalattn::bf16*>(separate.data()));
  square.forward(reinterpret_cast<const causalattn::bf16*>(inplace.data()), 2, 257, 64,
                 reinterpret_cast<causalattn::bf16*>(inplace.data()));
  EXPECT_EQ(inplace, separate);
}

// to(bf16) keeps the parameters rounded to bf16 and only those: state_dict() gives them widened,
// to(f32) back gives the same values; a bf16 module loads a BF16 file's bits as stored and an F32
// file rounded; a forward in the other dtype throws, y untouched.
TEST(ModulesState, ToBf16KeepsRoundedParametersAndLoadsBf16FilesAsStored) {
  MultiHeadAttention module(20, 32, 16, 0.0f, 4, true);
  module.eval();
  const StateDict f32 = module.state_dict();
  module.to(CAUSALATTN_DTYPE_BF16);
  EXPECT_EQ(module.dtype(), CAUSALATTN_DTYPE_BF16);
  const StateDict rounded = module.state_dict();
  ASSERT_EQ(rounded.size(), f32.size());
  for (const auto& [name, t] : f32) EXPECT_EQ(rounded.at(name).data, to_f32(to_bf16(t.data))) << name;

  std::vector<float> x(2 * 16 * 20), y(2 * 16 * 32, -4.0f);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(float(i));
  expect_error([&] { module.forward(x.data(), 2, 16, 20, y.data()); }, CAUSALATTN_ERROR_INVALID_OPTION,
               "call to(CAUSALATTN_DTYPE_F32) first");
  expect_error([&] { module.to(CAUSALATTN_DTYPE_F16); }, CAUSALATTN_ERROR_INVALID_OPTION, "F32 or CAUSALATTN_DTYPE_BF16");
  EXPECT_EQ(y, std::vector<float>(2 * 16 * 32, -4.0f));
  EXPECT_EQ(module.dtype(), CAUSALATTN_DTYPE_BF16);

  // A BF16 file (as PyTorch writes a bf16 module's state dict) of values no f32 round trip could
  // tell apart, and the same values as F32: both load to the same bits.
  std::mt19937 rng(3);
  std::string header = "{";
  std::vector<unsigned char> data;
  StateDict wide;
  for (const auto& [name, t] : f32) {
    if (name == "mask") continue;
    std::vector<uint16_t> b(t.data.size());
    for (uint16_t& e : b) e = static_cast<uint16_t>(0x3c00 + rng() % 0x0800) ^ (rng() % 2 ? 0x8000 : 0);
    header += (header.size() > 1 ? "," : "") + ("\"" + name + "\":{\"dtype\":\"BF16\",\"shape\":[") +
              std::to_string(t.shape[0]) + (t.shape.size() == 2 ? "," + std::to_string(t.shape[1]) : "") +
              "],\"data_offsets\":[" + std::to_string(data.size()) + "," + std::to_string(data.size() + 2 * b.size()) + "]}";
    for (uint16_t e : b) data.insert(data.end(), {static_cast<unsigned char>(e), static_cast<unsigned char>(e >> 8)});
    wide.emplace(name, HostTensor{t.shape, to_f32(b)});
  }
  header += "}";
  std::vector<unsigned char> file(8);
  for (int i = 0; i < 8; ++i) file[i] = static_cast<unsigned char>(static_cast<uint64_t>(header.size()) >> (8 * i));
  file.insert(file.end(), header.begin(), header.end());
  file.insert(file.end(), data.begin(), data.end());
  const fs::path path = fs::temp_directory_path() / ("causalattn_bf16_" + std::to_string(::getpid()) + ".safetensors");
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(file.data()), std::streamsize(file.size()));
  module.load(path.string());
  fs::remove(path);
  const StateDict loaded = module.state_dict();
  for (const auto& [name, t] : wide) EXPECT_EQ(loaded.at(name).data, t.data) << name;

  MultiHeadAttention other(20, 32, 16, 0.0f, 4, true);
  other.eval();
  other.to(CAUSALATTN_DTYPE_BF16);
  other.load_state_dict(wide);  // f32 tensors rounded: exact here
  const std::vector<uint16_t> xb = to_bf16(x);
  std::vector<uint16_t> ya(2 * 16 * 32), yb(2 * 16 * 32);
  module.forward(reinterpret_cast<const causalattn::bf16*>(xb.data()), 2, 16, 20, reinterpret_cast<causalattn::bf16*>(ya.data()));
  other.forward(reinterpret_cast<const causalattn::bf16*>(xb.data()), 2, 16, 20, reinterpret_cast<causalattn::bf16*>(yb.data()));
  EXPECT_EQ(ya, yb);

  // Back to f32: the bf16 values exactly, and the f32 forward of a module that loaded them.
  module.to(CAUSALATTN_DTYPE_F32);
  EXPECT_EQ(module.dtype(), CAUSALATTN_DTYPE_F32);
  for (const auto& [name, t] : wide) EXPECT_EQ(module.state_dict().at(name).data, t.data) << name;
  MultiHeadAttention third(20, 32, 16, 0.0f, 4, true);
  third.eval();
  third.load_state_dict(wide);
  EXPECT_EQ(module.forward(x, 2, 16), third.forward(x, 2, 16));
}

TEST(ModulesTraining, DropoutDropsTheWeightsOfTheDocumentedMaskAndEvalTurnsItOff) {
  const float p = 0.3f;
  const int64_t B = 2, T = 30, heads = 3;
  MultiHeadAttention module(24, 48, 32, p, heads, true);
  EXPECT_TRUE(module.training());  // as nn.Module
  std::vector<float> x(B * T * 24);
  std::mt19937 rng(9);
  for (float& e : x) e = std::normal_distribution<float>()(rng);
  module.manual_seed(77);
  const std::vector<float> first = module.forward(x, B, T);   // seed 77
  const std::vector<float> second = module.forward(x, B, T);  // seed 78: another draw
  const StateDict params = module.state_dict();
  for (uint64_t seed : {77u, 78u}) {
    const causalattn::reference::WeightMultiplier mask = [&](int64_t b, int64_t h, int64_t i, int64_t j) {
      return causalattn_dropout_keep(p, seed, b, h, i, j) ? 1.0 / (1.0 - p) : 0.0;
    };
    SCOPED_TRACE("seed " + std::to_string(seed));
    expect_near_textbook(seed == 77 ? first : second, textbook_forward(params, true, heads, x, B, T, &mask));
  }
  EXPECT_GT(max_abs_diff(first, second), 1e-3);
  module.eval();
  expect_near_textbook(module.forward(x, B, T), textbook_forward(params, true, heads, x, B, T));
}

TEST(ModulesState, SaveThenLoadGivesTheSameBitsAndPyTorchNames) {
  MultiHeadAttention a(20, 32, 16, 0.0f, 4, true);
  const fs::path path = fs::temp_directory_path() / ("causalattn_module_" + std::to_string(::getpid()) + ".safetensors");
  a.save(path.string());
  const StateDict saved = causalattn::read_safetensors(path.string());
  std::vector<std::string> names;
  for (const auto& [name, t] : saved) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"W_key.bias", "W_key.weight", "W_query.bias", "W_query.weight",
                                             "W_value.bias", "W_value.weight", "mask", "out_proj.bias",
                                             "out_proj.weight"}));
  EXPECT_EQ(saved.at("mask").shape, (std::vector<int64_t>{16, 16}));
  MultiHeadAttention b(20, 32, 16, 0.0f, 4, true);
  b.manual_seed(1);
  b.load(path.string());
  fs::remove(path);
  std::vector<float> x(2 * 16 * 20, 0.25f);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(float(i));
  EXPECT_EQ(a.forward(x, 2, 16), b.forward(x, 2, 16));
  // Without the mask buffer (a hand-made state dict) loading works too.
  StateDict no_mask = saved;
  no_mask.erase("mask");
  EXPECT_NO_THROW(b.load_state_dict(no_mask));
}

TEST(ModulesState, SameBitsForAnyThreadCount) {
  MultiHeadAttention module(64, 96, 300, 0.0f, 4, true);
  module.eval();
  std::vector<float> x(2 * 257 * 64);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::cos(0.1f * float(i));
  module.set_num_threads(1);
  const std::vector<float> one = module.forward(x, 2, 257);
  for (int threads : {2, 3, 0}) {
    module.set_num_threads(threads);
    EXPECT_EQ(module.forward(x, 2, 257), one) << threads << " threads";
  }
}

// With the batch-invariant mode, a prompt and then the rest token by token (or in chunks) through
// a KV cache give the bits of one forward over the whole text, on every ISA the CPU runs; the
// text is long enough to cross the mode's first key split. T: float (an f32 module) or
// causalattn::bf16 (a bf16 module and cache).
template <class T>
void expect_prompt_then_tokens_give_the_whole_texts_bits() {
  const int64_t n_tokens = CAUSALATTN_INVARIANT_SPLIT_KEYS + 40, d = 64, batch = 2;
  MultiHeadAttention module(d, d, n_tokens, 0.0f, 4, true);
  module.eval();
  module.set_batch_invariant(true);
  module.to(causalattn::dtype_of<T>);
  std::vector<float> x32(batch * n_tokens * d);
  std::mt19937 rng(9);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (float& v : x32) v = normal(rng);
  std::vector<T> x(x32.size());
  ASSERT_EQ(causalattn_convert(x32.data(), CAUSALATTN_DTYPE_F32, x.data(), causalattn::dtype_of<T>,
                               static_cast<int64_t>(x.size())), CAUSALATTN_OK);
  for (const std::string& isa : causalattn::testing::known_isas()) {
    if (!causalattn::testing::select_isa_or_skip(isa)) continue;
    std::vector<T> whole(x.size());
    module.forward(x.data(), batch, n_tokens, d, whole.data());
    KvCache cache(module, batch);
    EXPECT_EQ(cache.dtype(), causalattn::dtype_of<T>);
    std::vector<T> y(whole.size()), step;
    // The prompt, a chunk of 13, then one token at a time.
    for (int64_t t0 = 0; t0 < n_tokens;) {
      const int64_t n = t0 == 0 ? n_tokens - 60 : t0 == n_tokens - 60 ? 13 : 1;
      std::vector<T> xs(batch * n * d);
      for (int64_t b = 0; b < batch; ++b) std::copy_n(x.begin() + (b * n_tokens + t0) * d, n * d, xs.begin() + b * n * d);
      step.assign(xs.size(), T{});
      module.forward_next(xs.data(), batch, n, d, cache, step.data());
      for (int64_t b = 0; b < batch; ++b) std::copy_n(step.begin() + b * n * d, n * d, y.begin() + (b * n_tokens + t0) * d);
      t0 += n;
    }
    EXPECT_EQ(cache.tokens(), n_tokens);
    ASSERT_EQ(std::memcmp(y.data(), whole.data(), y.size() * sizeof(T)), 0) << isa;
    // Past the context, the cache refuses and keeps its tokens.
    std::vector<T> one(batch * d), out(batch * d);
    EXPECT_THROW(module.forward_next(one.data(), batch, 1, d, cache, out.data()), causalattn::Error);
    EXPECT_EQ(cache.tokens(), n_tokens);
  }
  causalattn_set_isa(nullptr);
}

TEST(ModulesState, BatchInvariantPromptThenTokensGiveTheWholeTextsBits) {
  expect_prompt_then_tokens_give_the_whole_texts_bits<float>();
}

TEST(ModulesState, Bf16BatchInvariantPromptThenTokensGiveTheWholeTextsBits) {
  expect_prompt_then_tokens_give_the_whole_texts_bits<causalattn::bf16>();
}

// A cache holds the dtype of its module at construction; after to(), the module refuses it.
TEST(ModulesErrors, CacheOfTheOtherDtypeIsRefused) {
  MultiHeadAttention module(8, 8, 10, 0.0f, 2, false);
  KvCache cache(module, 1);
  module.to(CAUSALATTN_DTYPE_BF16);
  std::vector<causalattn::bf16> x(8, causalattn::bf16{0x3f80}), y(8, causalattn::bf16{0x1234});
  expect_error([&] { module.forward_next(x.data(), 1, 1, 8, cache, y.data()); }, CAUSALATTN_ERROR_INVALID_SHAPE,
               "f32; the module runs bf16");
  EXPECT_EQ(cache.tokens(), 0);
  EXPECT_EQ(y[0].bits, 0x1234);
  KvCache bf16_cache(module, 1);
  EXPECT_EQ(bf16_cache.dtype(), CAUSALATTN_DTYPE_BF16);
  module.forward_next(x.data(), 1, 1, 8, bf16_cache, y.data());
  EXPECT_EQ(bf16_cache.tokens(), 1);
}

TEST(ModulesErrors, ConstructorArguments) {
  expect_error([] { MultiHeadAttention(8, 10, 4, 0.0f, 3); }, CAUSALATTN_ERROR_INVALID_SHAPE, "divisible by num_heads");
  expect_error([] { CausalAttention(8, 768, 4, 0.0f); }, CAUSALATTN_ERROR_INVALID_SHAPE, "CAUSALATTN_MAX_HEAD_DIM");
  expect_error([] { CausalAttention(0, 8, 4, 0.0f); }, CAUSALATTN_ERROR_INVALID_SHAPE, "must be positive");
  expect_error([] { CausalAttention(8, 8, 4, 1.0f); }, CAUSALATTN_ERROR_INVALID_OPTION, "dropout");
}

TEST(ModulesErrors, ForwardArgumentsLeaveYUntouched) {
  CausalAttention module(4, 8, 6, 0.0f);
  std::vector<float> x(2 * 7 * 4, 1.0f), y(2 * 7 * 8, -5.0f);
  expect_error([&] { module.forward(x.data(), 2, 7, 4, y.data()); }, CAUSALATTN_ERROR_INVALID_SHAPE, "context_length = 6");
  expect_error([&] { module.forward(x.data(), 2, 0, 4, y.data()); }, CAUSALATTN_ERROR_INVALID_SHAPE, "num_tokens");
  expect_error([&] { module.forward(x.data(), 2, 3, 5, y.data()); }, CAUSALATTN_ERROR_INVALID_SHAPE, "d_in = 5");
  expect_error([&] { module.forward(x.data(), 0, 3, 4, y.data()); }, CAUSALATTN_ERROR_INVALID_SHAPE, "batch");
  expect_error([&] { module.forward(nullptr, 1, 3, 4, y.data()); }, CAUSALATTN_ERROR_NULL_POINTER, "x is NULL");
  EXPECT_EQ(y, std::vector<float>(2 * 7 * 8, -5.0f));
  expect_error([&] { module.forward(x, 2, 3); }, CAUSALATTN_ERROR_INVALID_SHAPE, "expected batch × num_tokens × d_in");
}

TEST(ModulesState, InPlaceForwardAndMovedFromModules) {
  MultiHeadAttention module(16, 16, 12, 0.0f, 2, true);
  module.eval();
  std::vector<float> x(3 * 12 * 16);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.3f * float(i));
  const std::vector<float> separate = module.forward(x, 3, 12);
  module.forward(x.data(), 3, 12, 16, x.data());  // y over x
  EXPECT_EQ(x, separate);

  MultiHeadAttention moved = std::move(module);
  EXPECT_EQ(moved.forward(std::vector<float>(16, 1.0f), 1, 1).size(), 16u);
  expect_error([&] { module.forward(std::vector<float>(16, 1.0f), 1, 1); }, CAUSALATTN_ERROR_INVALID_OPTION,
               "moved from");
}

TEST(ModulesErrors, BadStateDictsNameTheProblemAndChangeNothing) {
  MultiHeadAttention module(6, 8, 5, 0.0f, 2, false);
  module.eval();
  const std::vector<float> x(5 * 6, 0.5f);
  const std::vector<float> before = module.forward(x, 1, 5);
  const StateDict good = MultiHeadAttention(6, 8, 5, 0.0f, 2, false).state_dict();

  StateDict missing = good;
  missing.erase("W_key.weight");
  expect_error([&] { module.load_state_dict(missing); }, CAUSALATTN_ERROR_INVALID_SHAPE, "missing W_key.weight");
  StateDict unexpected = good;
  unexpected["W_key.bias"] = {{8}, std::vector<float>(8)};
  expect_error([&] { module.load_state_dict(unexpected); }, CAUSALATTN_ERROR_INVALID_SHAPE, "unexpected W_key.bias");
  StateDict shaped = good;
  shaped["out_proj.weight"] = {{8, 6}, std::vector<float>(48)};
  expect_error([&] { module.load_state_dict(shaped); }, CAUSALATTN_ERROR_INVALID_SHAPE,
               "out_proj.weight has shape [8, 6], expected [8, 8]");
  StateDict wrong_mask = good;
  wrong_mask["mask"].data[0] = 1.0f;
  expect_error([&] { module.load_state_dict(wrong_mask); }, CAUSALATTN_ERROR_INVALID_SHAPE, "not the causal mask");
  StateDict other_context = MultiHeadAttention(6, 8, 7, 0.0f, 2, false).state_dict();
  expect_error([&] { module.load_state_dict(other_context); }, CAUSALATTN_ERROR_INVALID_SHAPE, "context_length 5");

  // A truncated file.
  const fs::path path = fs::temp_directory_path() / ("causalattn_bad_" + std::to_string(::getpid()) + ".safetensors");
  std::vector<unsigned char> bytes = causalattn::serialize_safetensors(good);
  bytes.resize(bytes.size() - 3);
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  expect_error([&] { module.load(path.string()); }, CAUSALATTN_ERROR_INVALID_SHAPE, "safetensors");
  fs::remove(path);

  EXPECT_EQ(module.forward(x, 1, 5), before);
}

// When torch is importable: the script on random sizes, and our saved weights loaded by PyTorch
// (strict) giving our outputs.
TEST(ModulesLive, PyTorchOnRandomSizes) {
  const std::string python = CAUSALATTN_TORCH_PYTHON;
  if (python.empty()) GTEST_SKIP() << "no Python with torch found at configure time";
  const fs::path dir = fs::temp_directory_path() / ("causalattn_live_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const unsigned seed = std::random_device{}() % 100000;
  RecordProperty("seed", int(seed));
  const std::string script = std::string(CAUSALATTN_SOURCE_DIR) + "/tools/torch_parity.py";
  const std::string generate = python + " " + script + " random " + dir.string() + " " + std::to_string(seed) + " 6";
  ASSERT_EQ(std::system(generate.c_str()), 0) << generate;
  for (const fs::path& f : io_files(dir)) expect_case_matches(f);

  MultiHeadAttention module(33, 40, 20, 0.0f, 5, true);
  module.eval();
  std::vector<float> x(2 * 13 * 33);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.7f * float(i));
  StateDict io;
  io["x"] = {{2, 13, 33}, x};
  io["y"] = {{2, 13, 40}, module.forward(x, 2, 13)};
  io["config"] = {{6}, {1, 33, 40, 20, 5, 1}};
  causalattn::write_safetensors((dir / "ours.io.safetensors").string(), io);
  module.save((dir / "ours.weights.safetensors").string());
  const std::string check = python + " " + script + " check-load " + (dir / "ours.weights.safetensors").string() + " " +
                            (dir / "ours.io.safetensors").string();
  EXPECT_EQ(std::system(check.c_str()), 0) << check;
  fs::remove_all(dir);
}

}  // namespace
