// libFuzzer target for the file formats an engine hands us: the input is a safetensors file.
// parse_safetensors must return a state dict or throw causalattn::Error with a message (no other
// exception, no crash); a dict it returns must survive serialize → parse unchanged; loading it
// into a MultiHeadAttention must succeed or throw causalattn::Error and leave the module as it
// was; parse_safetensors_bf16 must accept the same files, each tensor the f32 one rounded to
// bf16. Seeds: tests/fuzz/safetensors_corpus; tokens: tests/fuzz/safetensors.dict.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "causalattn/modules.hpp"
#include "causalattn/safetensors.hpp"

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_safetensors: %s\n", what);
  std::abort();
}

// Equal as bits: NaN payloads included.
bool same_dict(const causalattn::StateDict& a, const causalattn::StateDict& b) {
  if (a.size() != b.size()) return false;
  for (auto i = a.begin(), j = b.begin(); i != a.end(); ++i, ++j) {
    if (i->first != j->first || i->second.shape != j->second.shape || i->second.data.size() != j->second.data.size() ||
        std::memcmp(i->second.data.data(), j->second.data.data(), i->second.data.size() * sizeof(float)) != 0) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<unsigned char> bytes(data, data + size);
  causalattn::StateDict dict;
  try {
    dict = causalattn::parse_safetensors(bytes);
  } catch (const causalattn::Error& e) {
    if (e.what()[0] == '\0') fail("an error without a message");
    return 0;
  }
  if (!same_dict(causalattn::parse_safetensors(causalattn::serialize_safetensors(dict)), dict)) {
    fail("serialize -> parse changed the state dict");
  }
  // As bf16: the same tensors, rounded (a BF16 file's bits as stored: rounding its exact
  // widening gives them back, NaNs made quiet as causalattn_convert makes them).
  const causalattn::StateDictBf16 dict_bf16 = causalattn::parse_safetensors_bf16(bytes);
  if (dict_bf16.size() != dict.size()) fail("parse_safetensors_bf16 found other tensors");
  for (const auto& [name, t] : dict) {
    const auto it = dict_bf16.find(name);
    if (it == dict_bf16.end() || it->second.shape != t.shape || it->second.data.size() != t.data.size()) {
      fail("parse_safetensors_bf16 gave another tensor");
    }
    std::vector<causalattn::bf16> rounded(t.data.size());
    if (!t.data.empty()) {
      causalattn_convert(t.data.data(), CAUSALATTN_DTYPE_F32, rounded.data(), CAUSALATTN_DTYPE_BF16,
                         static_cast<int64_t>(t.data.size()));
    }
    for (size_t i = 0; i < rounded.size(); ++i) {
      const uint16_t got = it->second.data[i].bits, want = rounded[i].bits;
      const bool both_nan = (got & 0x7fffu) > 0x7f80u && (want & 0x7fffu) > 0x7f80u;
      if (got != want && !both_nan) fail("parse_safetensors_bf16 is not the f32 tensor rounded");
    }
  }
  // The seeds hold this module's parameters, so mutated files reach every check of the load.
  static causalattn::MultiHeadAttention module(4, 6, 3, 0.0f, 2, true);
  const causalattn::StateDict before = module.state_dict();
  try {
    module.load_state_dict(dict);
  } catch (const causalattn::Error& e) {
    if (e.what()[0] == '\0') fail("an error without a message");
    if (!same_dict(module.state_dict(), before)) fail("a failed load changed the module");
    return 0;
  }
  if (!same_dict(module.state_dict(), [&] {
        causalattn::StateDict expected = dict;
        expected.erase("mask");
        expected.emplace("mask", before.at("mask"));
        return expected;
      }())) {
    fail("the module does not hold what was loaded");
  }
  // A forward with the loaded weights: any values, no crash.
  std::vector<float> x(2 * 3 * 4, 0.25f), y(2 * 3 * 6);
  module.forward(x.data(), 2, 3, 4, y.data());
  module.load_state_dict(before);
  return 0;
}
