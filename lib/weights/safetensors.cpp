#include "causalattn/safetensors.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <type_traits>
#include <utility>

namespace causalattn {
namespace {

[[noreturn]] void malformed(const std::string& what) {
  throw Error(CAUSALATTN_ERROR_INVALID_SHAPE, "safetensors: " + what);
}

// A 16-bit float (IEEE half or bfloat16) widened to fp32 exactly.
float from_bf16(uint16_t bits) {
  const uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &wide, sizeof f);
  return f;
}

float from_f16(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu, mantissa = bits & 0x3ffu;
  uint32_t wide;
  if (exponent == 0x1f) {
    wide = sign | 0x7f800000u | (mantissa << 13);  // Inf, NaN
  } else if (exponent != 0) {
    wide = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    wide = sign;  // ±0
  } else {  // subnormal: normalize
    int shift = 0;
    uint32_t m = mantissa;
    while ((m & 0x400u) == 0) {
      m <<= 1;
      ++shift;
    }
    wide = sign | ((113 - shift) << 23) | ((m & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &wide, sizeof f);
  return f;
}

uint64_t read_u64_le(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// A tensor's stored elements (F32, BF16 or F16, little-endian) as fp32, exactly.
std::vector<float> widened(const std::string& type, const unsigned char* p, uint64_t count) {
  std::vector<float> out(count);
  for (uint64_t i = 0; i < count; ++i) {
    if (type == "F32") {
      const uint32_t bits = static_cast<uint32_t>(p[4 * i]) | static_cast<uint32_t>(p[4 * i + 1]) << 8 |
                            static_cast<uint32_t>(p[4 * i + 2]) << 16 | static_cast<uint32_t>(p[4 * i + 3]) << 24;
      std::memcpy(&out[i], &bits, sizeof bits);
    } else {
      const uint16_t bits = static_cast<uint16_t>(p[2 * i] | p[2 * i + 1] << 8);
      out[i] = type == "BF16" ? from_bf16(bits) : from_f16(bits);
    }
  }
  return out;
}

// The same as T: fp32, or bf16 (BF16 as stored, the others rounded to nearest even).
template <class T>
std::vector<T> elements(const std::string& type, const unsigned char* p, uint64_t count) {
  if constexpr (std::is_same_v<T, float>) {
    return widened(type, p, count);
  } else {
    std::vector<bf16> out(count);
    if (type == "BF16") {
      for (uint64_t i = 0; i < count; ++i) out[i].bits = static_cast<uint16_t>(p[2 * i] | p[2 * i + 1] << 8);
    } else if (count > 0) {
      const std::vector<float> wide = widened(type, p, count);
      causalattn_convert(wide.data(), CAUSALATTN_DTYPE_F32, out.data(), CAUSALATTN_DTYPE_BF16, static_cast<int64_t>(count));
    }
    return out;
  }
}

// A tensor of the file as stored: its dtype ("F32", "BF16", "F16"), shape and bytes.
struct StoredTensor {
  std::string name, type;
  std::vector<int64_t> shape;
  const unsigned char* data;
  uint64_t count;
};

// The file's tensors, every check of the format made.
std::vector<StoredTensor> stored_tensors(const std::vector<unsigned char>& bytes) {
  if (bytes.size() < 8) malformed("file of " + std::to_string(bytes.size()) + " bytes has no header length");
  const uint64_t header_len = read_u64_le(bytes.data());
  if (header_len > bytes.size() - 8) {
    malformed("header length " + std::to_string(header_len) + " exceeds the file (" + std::to_string(bytes.size()) +
              " bytes)");
  }
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(header_len));
  } catch (const nlohmann::json::exception& e) {
    malformed(std::string("header is not JSON: ") + e.what());
  }
  if (!header.is_object()) malformed("header is not a JSON object");
  const uint64_t data_size = bytes.size() - 8 - header_len;
  const unsigned char* data = bytes.data() + 8 + header_len;

  std::vector<StoredTensor> tensors;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") continue;
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") || !entry.contains("data_offsets")) {
      malformed("tensor \"" + name + "\" lacks dtype, shape or data_offsets");
    }
    const auto& dtype = entry["dtype"];
    const auto& shape = entry["shape"];
    const auto& offsets = entry["data_offsets"];
    if (!dtype.is_string()) malformed("tensor \"" + name + "\": dtype is not a string");
    const std::string type = dtype.get<std::string>();
    const uint64_t width = type == "F32" ? 4 : (type == "BF16" || type == "F16") ? 2 : 0;
    if (width == 0) malformed("tensor \"" + name + "\": dtype " + type + " is not F32, BF16 or F16");
    if (!shape.is_array()) malformed("tensor \"" + name + "\": shape is not an array");
    StoredTensor t{name, type, {}, nullptr, 0};
    uint64_t count = 1;
    for (const auto& dim : shape) {
      if (!dim.is_number_unsigned() || dim.get<uint64_t>() > (uint64_t{1} << 40) ||
          __builtin_mul_overflow(count, dim.get<uint64_t>(), &count) || count > (uint64_t{1} << 40)) {
        malformed("tensor \"" + name + "\": bad shape " + shape.dump());
      }
      t.shape.push_back(static_cast<int64_t>(dim.get<uint64_t>()));
    }
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned()) {
      malformed("tensor \"" + name + "\": data_offsets is not [begin, end]");
    }
    const uint64_t begin = offsets[0].get<uint64_t>(), end = offsets[1].get<uint64_t>();
    if (begin > end || end > data_size) {
      malformed("tensor \"" + name + "\": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                "] out of the " + std::to_string(data_size) + " data bytes");
    }
    if (end - begin != count * width) {
      malformed("tensor \"" + name + "\": " + std::to_string(end - begin) + " bytes for " + std::to_string(count) +
                " elements of " + type);
    }
    ranges.emplace_back(begin, end);
    t.data = data + begin;
    t.count = count;
    tensors.push_back(std::move(t));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].first < ranges[i - 1].second) malformed("tensors' data_offsets overlap");
  }
  return tensors;
}

template <class T>
std::map<std::string, BasicHostTensor<T>> parse(const std::vector<unsigned char>& bytes) {
  std::map<std::string, BasicHostTensor<T>> tensors;
  for (StoredTensor& t : stored_tensors(bytes)) {
    tensors.emplace(std::move(t.name), BasicHostTensor<T>{std::move(t.shape), elements<T>(t.type, t.data, t.count)});
  }
  return tensors;
}

std::vector<unsigned char> file_bytes(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw Error(CAUSALATTN_ERROR_INVALID_SHAPE, "safetensors: cannot open " + path);
  return std::vector<unsigned char>((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
}

}  // namespace

StateDict parse_safetensors(const std::vector<unsigned char>& bytes) { return parse<float>(bytes); }
StateDictBf16 parse_safetensors_bf16(const std::vector<unsigned char>& bytes) { return parse<bf16>(bytes); }
StateDict read_safetensors(const std::string& path) { return parse_safetensors(file_bytes(path)); }
StateDictBf16 read_safetensors_bf16(const std::string& path) { return parse_safetensors_bf16(file_bytes(path)); }

std::vector<unsigned char> serialize_safetensors(const StateDict& tensors) {
  nlohmann::json header = nlohmann::json::object();
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    const uint64_t bytes = t.data.size() * 4;
    header[name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the format pads the header to 8 bytes
  std::vector<unsigned char> out(8 + text.size());
  for (int i = 0; i < 8; ++i) out[i] = static_cast<unsigned char>(static_cast<uint64_t>(text.size()) >> (8 * i));
  std::memcpy(out.data() + 8, text.data(), text.size());
  for (const auto& [name, t] : tensors) {
    for (float x : t.data) {
      uint32_t bits;
      std::memcpy(&bits, &x, sizeof bits);
      for (int i = 0; i < 4; ++i) out.push_back(static_cast<unsigned char>(bits >> (8 * i)));
    }
  }
  return out;
}

void write_safetensors(const std::string& path, const StateDict& tensors) {
  const std::vector<unsigned char> bytes = serialize_safetensors(tensors);
  std::ofstream file(path, std::ios::binary);
  file.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!file) throw Error(CAUSALATTN_ERROR_INTERNAL, "safetensors: cannot write " + path);
}

}  // namespace causalattn
