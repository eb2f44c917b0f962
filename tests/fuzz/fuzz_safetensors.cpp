// libFuzzer target for the file formats an engine hands us: the input is a safetensors file.
// parse_safetensors must return a state dict or throw causalattn::Error with a message (no other
// exception, no crash); a dict it returns must survive serialize → parse unchanged; loading it
// into a MultiHeadAttention must succeed or throw causalattn::Error and leave the module as it
// was. Seeds: tests/fuzz/safetensors_corpus; tokens: tests/fuzz/safetensors.dict.
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
