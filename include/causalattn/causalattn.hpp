// causalattn C++ API: tensor views with shapes and strides over the C ABI, errors as exceptions.
// C++17.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "causalattn/causalattn.h"

namespace causalattn {

// A failed call: the C status code and the library's message.
class CAUSALATTN_API Error : public std::runtime_error {
 public:
  Error(int status, const std::string& message) : std::runtime_error(message), status_(status) {}
  int status() const noexcept { return status_; }

 private:
  int status_;
};

// Element types of 16- and 8-bit views, as stored (fill them with causalattn_convert). A view of
// q8_0 blocks counts head_dim in elements (a multiple of 32) and its strides in blocks.
struct bf16 {
  uint16_t bits;
};
struct f16 {
  uint16_t bits;
};
#pragma pack(push, 1)
struct q8_0 {  // ggml's block_q8_0: value i is d · q[i]
  uint16_t d;  // f16 bits
  int8_t q[32];
};
#pragma pack(pop)
static_assert(sizeof(q8_0) == 34, "block_q8_0 is 34 bytes");

// A [batch][heads][tokens][head_dim] view of elements T (float, bf16, f16, q8_0); head_dim
// is contiguous, the other three dimensions have element strides (any order, padding allowed;
// for q8_0 they count blocks).
template <class T>
struct TensorView {
  T* data = nullptr;
  int64_t batch = 0, heads = 0, tokens = 0, head_dim = 0;
  causalattn_layout strides{};

  // Dense [B, H, T, D], the layout of PyTorch's attention inputs.
  static TensorView bhtd(T* data, int64_t batch, int64_t heads, int64_t tokens, int64_t head_dim) {
    const int64_t row = row_units(head_dim);
    return {data, batch, heads, tokens, head_dim, {heads * tokens * row, tokens * row, row}};
  }
  // Dense [B, T, H, D], the layout a QKV projection produces; no transpose copy needed.
  static TensorView bthd(T* data, int64_t batch, int64_t tokens, int64_t heads, int64_t head_dim) {
    const int64_t row = row_units(head_dim);
    return {data, batch, heads, tokens, head_dim, {tokens * heads * row, row, heads * row}};
  }
  // Units of T in a row of head_dim elements (q8_0: blocks of 32).
  static int64_t row_units(int64_t head_dim) {
    return std::is_same_v<std::remove_const_t<T>, q8_0> ? head_dim / 32 : head_dim;
  }
};

using ConstTensor = TensorView<const float>;
using Tensor = TensorView<float>;

namespace detail {
template <class T>
struct DtypeOf;
template <>
struct DtypeOf<float> {
  static constexpr causalattn_dtype value = CAUSALATTN_DTYPE_F32;
};
template <>
struct DtypeOf<bf16> {
  static constexpr causalattn_dtype value = CAUSALATTN_DTYPE_BF16;
};
template <>
struct DtypeOf<f16> {
  static constexpr causalattn_dtype value = CAUSALATTN_DTYPE_F16;
};
template <>
struct DtypeOf<q8_0> {
  static constexpr causalattn_dtype value = CAUSALATTN_DTYPE_Q8_0;
};
}  // namespace detail

// The causalattn_dtype of a view's element type (float, bf16, f16, q8_0; const or not).
template <class T>
constexpr causalattn_dtype dtype_of = detail::DtypeOf<std::remove_const_t<T>>::value;

// How the causal diagonal is placed (causalattn.h): bottom-right (a chunk of new tokens at the
// end of its cache), top-left (PyTorch's is_causal), or at explicit absolute positions.
enum class Alignment { kBottomRight, kTopLeft, kExplicitPositions };

struct Options {
  bool causal = true;      // false: every query sees every key
  float scale = 0.0f;      // 0: 1/sqrt(head_dim)
  int num_threads = 0;     // 0: what the calling TBB arena allows
  float* lse = nullptr;    // nullptr, or [batch][q_heads][q_len] contiguous
  // Model variants (causalattn_attend_args), off at their defaults.
  int64_t window = 0;                  // causal only: keys within `window` positions
  Alignment alignment = Alignment::kBottomRight;
  int64_t q_pos_offset = 0, kv_pos_offset = 0;  // kExplicitPositions: positions of query 0, key 0
  const float* sinks = nullptr;        // [q_heads] sink logits
  float softcap = 0.0f;                // > 0: scores become softcap · tanh(score / softcap)
  const float* alibi_slopes = nullptr; // [q_heads]
};

namespace detail {

// A C call from views and options, after the checks only views can make. V and out may have
// a head size of their own (head_dim_v).
template <class Q, class K, class V, class O>
causalattn_attend_args c_call(const TensorView<Q>& q, const TensorView<K>& k, const TensorView<V>& v,
                              const TensorView<O>& out, const Options& options) {
  if (k.batch != v.batch || k.heads != v.heads || k.tokens != v.tokens) {
    throw Error(CAUSALATTN_ERROR_INVALID_SHAPE, "k and v must have the same batch, heads and tokens");
  }
  if (q.batch != out.batch || q.heads != out.heads || q.tokens != out.tokens || v.head_dim != out.head_dim) {
    throw Error(CAUSALATTN_ERROR_INVALID_SHAPE, "out must have q's batch, heads and tokens and v's head_dim");
  }
  if (q.batch != k.batch || q.head_dim != k.head_dim) {
    throw Error(CAUSALATTN_ERROR_INVALID_SHAPE, "q and k must have the same batch and head_dim");
  }
  causalattn_attend_args a{};
  a.shape = {q.batch, q.heads, k.heads, q.tokens, k.tokens, q.head_dim};
  a.options.flags = (options.causal ? 0u : CAUSALATTN_NON_CAUSAL) |
                    (options.alignment == Alignment::kTopLeft            ? CAUSALATTN_TOP_LEFT
                     : options.alignment == Alignment::kExplicitPositions ? CAUSALATTN_EXPLICIT_POSITIONS
                                                                           : 0u);
  a.options.scale = options.scale;
  a.options.num_threads = options.num_threads;
  a.options.lse = options.lse;
  a.q = q.data;
  a.q_layout = q.strides;
  a.k = k.data;
  a.k_layout = k.strides;
  a.v = v.data;
  a.v_layout = v.strides;
  a.out = out.data;
  a.out_layout = out.strides;
  a.q_dtype = dtype_of<Q>;
  a.k_dtype = dtype_of<K>;
  a.v_dtype = dtype_of<V>;
  a.out_dtype = dtype_of<O>;
  a.window = options.window;
  a.q_pos_offset = options.q_pos_offset;
  a.kv_pos_offset = options.kv_pos_offset;
  a.sinks = options.sinks;
  a.softcap = options.softcap;
  a.alibi_slopes = options.alibi_slopes;
  a.head_dim_v = v.head_dim;
  return a;
}

inline void check(int status) {
  if (status != CAUSALATTN_OK) throw Error(status, causalattn_last_error());
}

}  // namespace detail

// out = softmax(scale · q · kᵀ + causal mask) · v, per (batch, head), with the variants of
// options; see causalattn.h. q: [B, Hq, Tq, D]; k: [B, Hkv, Tk, D]; v: [B, Hkv, Tk, Dv]; out:
// [B, Hq, Tq, Dv]. Throws causalattn::Error on bad input (out untouched).
// Views of any element types the library takes: Q and out float, bf16 or f16; K and V also q8_0,
// each its own (causalattn_attend). Inputs are widened to f32 exactly; a 16-bit out is the f32
// result rounded to nearest even.
template <class Q, class K, class V, class O>
void forward(TensorView<const Q> q, TensorView<const K> k, TensorView<const V> v, TensorView<O> out,
             const Options& options = {}) {
  const causalattn_attend_args a = detail::c_call(q, k, v, out, options);
  detail::check(causalattn_attend(&a));
}

// forward on f32 views (the overload that also takes views of non-const float).
inline void forward(ConstTensor q, ConstTensor k, ConstTensor v, Tensor out, const Options& options = {}) {
  forward<float, float, float, float>(q, k, v, out, options);
}

// The bytes of workspace forward(q, k, v, out, options, workspace, ...) needs: it depends on
// the shapes and the thread count (with num_threads = 0, the calling TBB arena's).
inline std::size_t workspace_size(ConstTensor q, ConstTensor k, ConstTensor v, Tensor out, const Options& options = {}) {
  const causalattn_attend_args a = detail::c_call(q, k, v, out, options);
  std::size_t bytes = 0;
  detail::check(causalattn_attend_workspace_size(&a, &bytes));
  return bytes;
}

// forward with a caller-owned workspace of at least workspace_size() bytes: allocates nothing.
inline void forward(ConstTensor q, ConstTensor k, ConstTensor v, Tensor out, const Options& options,
                    void* workspace, std::size_t workspace_bytes) {
  causalattn_attend_args a = detail::c_call(q, k, v, out, options);
  a.workspace = workspace;
  a.workspace_size = workspace_bytes;
  detail::check(causalattn_attend(&a));
}

// One partial result for merge: a forward output over part of the keys, and its LSE
// ([batch][heads][tokens] contiguous).
struct Partial {
  ConstTensor out;
  const float* lse = nullptr;
};

// Merges partial results over disjoint key ranges of the same queries (see causalattn_merge_f32).
inline void merge(const std::vector<Partial>& parts, Tensor out, float* lse = nullptr) {
  std::vector<causalattn_partial_f32> c_parts;
  c_parts.reserve(parts.size());
  for (const Partial& p : parts) {
    if (p.out.batch != out.batch || p.out.heads != out.heads || p.out.tokens != out.tokens ||
        p.out.head_dim != out.head_dim) {
      throw Error(CAUSALATTN_ERROR_INVALID_SHAPE, "every part must have the shape of out");
    }
    c_parts.push_back({p.out.data, p.out.strides, p.lse});
  }
  if (c_parts.size() > static_cast<std::size_t>(INT32_MAX)) throw Error(CAUSALATTN_ERROR_INVALID_SHAPE, "too many parts");
  const causalattn_shape shape{out.batch, out.heads, out.heads, out.tokens, out.tokens, out.head_dim};
  detail::check(causalattn_merge_f32(&shape, c_parts.data(), static_cast<int32_t>(c_parts.size()), out.data,
                                     out.strides, lse));
}

// The ISA the kernels run on, one of causalattn_known_isa's names.
inline std::string isa() { return causalattn_isa(); }

}  // namespace causalattn
