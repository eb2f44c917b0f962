// causalattn C++ API: tensor views with shapes and strides over the C ABI, errors as exceptions.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "causalattn/causalattn.h"

namespace causalattn {

// A failed call: the C status code and the library's message.
class Error : public std::runtime_error {
 public:
  Error(int status, const std::string& message) : std::runtime_error(message), status_(status) {}
  int status() const noexcept { return status_; }

 private:
  int status_;
};

// A [batch][heads][tokens][head_dim] view of fp32 data; head_dim is contiguous, the other three
// dimensions have element strides (any order, padding allowed).
template <class T>
struct TensorView {
  T* data = nullptr;
  int64_t batch = 0, heads = 0, tokens = 0, head_dim = 0;
  causalattn_layout strides{};

  // Dense [B, H, T, D], the layout of PyTorch's attention inputs.
  static TensorView bhtd(T* data, int64_t batch, int64_t heads, int64_t tokens, int64_t head_dim) {
    return {data, batch, heads, tokens, head_dim, {heads * tokens * head_dim, tokens * head_dim, head_dim}};
  }
  // Dense [B, T, H, D], the layout a QKV projection produces; no transpose copy needed.
  static TensorView bthd(T* data, int64_t batch, int64_t tokens, int64_t heads, int64_t head_dim) {
    return {data, batch, heads, tokens, head_dim, {tokens * heads * head_dim, head_dim, heads * head_dim}};
  }
};

using ConstTensor = TensorView<const float>;
using Tensor = TensorView<float>;

struct Options {
  bool causal = true;      // false: every query sees every key
  float scale = 0.0f;      // 0: 1/sqrt(head_dim)
  int num_threads = 0;     // 0: what the calling TBB arena allows
  float* lse = nullptr;    // nullptr, or [batch][q_heads][q_len] contiguous
};

// out = softmax(scale · q · kᵀ + causal mask) · v, per (batch, head); see causalattn.h.
// q: [B, Hq, Tq, D]; k, v: [B, Hkv, Tk, D]; out: [B, Hq, Tq, D]. Throws causalattn::Error on
// bad input (out untouched).
inline void forward(ConstTensor q, ConstTensor k, ConstTensor v, Tensor out, const Options& options = {}) {
  auto same = [](const auto& a, const auto& b) {
    return a.batch == b.batch && a.heads == b.heads && a.tokens == b.tokens && a.head_dim == b.head_dim;
  };
  if (!same(k, v)) throw Error(CAUSALATTN_ERROR_INVALID_SHAPE, "k and v must have the same shape");
  if (!same(q, out)) throw Error(CAUSALATTN_ERROR_INVALID_SHAPE, "q and out must have the same shape");
  if (q.batch != k.batch || q.head_dim != k.head_dim) {
    throw Error(CAUSALATTN_ERROR_INVALID_SHAPE, "q and k must have the same batch and head_dim");
  }
  const causalattn_shape shape{q.batch, q.heads, k.heads, q.tokens, k.tokens, q.head_dim};
  causalattn_options opts{};
  opts.flags = options.causal ? 0u : CAUSALATTN_NON_CAUSAL;
  opts.scale = options.scale;
  opts.num_threads = options.num_threads;
  opts.lse = options.lse;
  const int status = causalattn_forward_f32(&shape, q.data, q.strides, k.data, k.strides, v.data, v.strides,
                                            out.data, out.strides, &opts);
  if (status != CAUSALATTN_OK) throw Error(status, causalattn_last_error());
}

// The ISA the kernels run on: "avx512", "avx2" or "sse2".
inline std::string isa() { return causalattn_isa(); }

}  // namespace causalattn
