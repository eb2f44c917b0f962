// Reading and writing PyTorch state dicts in the safetensors format: an 8-byte little-endian
// header length, a JSON header {name: {dtype, shape, data_offsets}} and the raw tensor bytes.
// Tensors come back as fp32 whatever their stored dtype (F32, BF16, F16), or as bf16 for a bf16
// module; they are written as F32.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "causalattn/causalattn.hpp"

namespace causalattn {

// A tensor of a state dict: row-major data, as many elements as the shape's product.
template <class T>
struct BasicHostTensor {
  std::vector<int64_t> shape;
  std::vector<T> data;
};

using HostTensor = BasicHostTensor<float>;
using StateDict = std::map<std::string, HostTensor>;
// A bf16 module's parameters (AttentionModule::to(CAUSALATTN_DTYPE_BF16)).
using HostTensorBf16 = BasicHostTensor<bf16>;
using StateDictBf16 = std::map<std::string, HostTensorBf16>;

// Parses a whole safetensors file held in memory. A malformed file (truncated, bad header,
// offsets out of range or overlapping, unknown dtype, sizes that disagree) throws
// causalattn::Error with CAUSALATTN_ERROR_INVALID_SHAPE and a message naming the problem.
CAUSALATTN_API StateDict parse_safetensors(const std::vector<unsigned char>& bytes);

// Reads and parses a file; a file that cannot be read throws too.
CAUSALATTN_API StateDict read_safetensors(const std::string& path);

// The same with every tensor as bf16: BF16 tensors as stored (never widened), F32 and F16 ones
// rounded to nearest even.
CAUSALATTN_API StateDictBf16 parse_safetensors_bf16(const std::vector<unsigned char>& bytes);
CAUSALATTN_API StateDictBf16 read_safetensors_bf16(const std::string& path);

// The file's bytes for a state dict, every tensor as F32, in name order.
CAUSALATTN_API std::vector<unsigned char> serialize_safetensors(const StateDict& tensors);

// Writes serialize_safetensors(tensors) to path.
CAUSALATTN_API void write_safetensors(const std::string& path, const StateDict& tensors);

}  // namespace causalattn
