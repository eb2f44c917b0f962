// CausalAttention and MultiHeadAttention: a fused QKV projection (one packed [3·d_out, d_in]
// weight), the causal kernel reading Q, K and V in place from the projection's rows through
// [B, T, H, D] strides, and out_proj.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <cmath>
#include <mutex>
#include <random>
#include <sstream>
#include <utility>

#include "causalattn/modules.hpp"
#include "common/spans.hpp"
#include "dispatch/kernels.hpp"
#include "linear/linear.hpp"
#include "parallel/parallel.hpp"

namespace causalattn {
namespace detail {

struct AttentionModuleState {
  int64_t d_in, d_out, context_length, num_heads, head_dim;
  float dropout;
  bool qkv_bias, out_proj;
  bool training = true;
  bool batch_invariant = false;
  int num_threads = 0;
  std::atomic<uint64_t> next_seed{0};
  // The parameters in the module's dtype, PyTorch's names ("mask" is not kept: it is implied):
  // params for f32, params_bf16 for bf16; the other is empty.
  causalattn_dtype dtype = CAUSALATTN_DTYPE_F32;
  StateDict params;
  StateDictBf16 params_bf16;

  // Derived from the parameters for the kernels: the fused QKV weight packed, its bias, out_proj
  // packed (for the kernel in use; repacked after an ISA change).
  mutable std::mutex pack_mutex;
  mutable linear::PackedWeights qkv_packed, out_packed;
  mutable linear::PackedBf16Weights qkv_packed_bf16, out_packed_bf16;
  mutable std::vector<float> qkv_bias_fused;
  mutable std::vector<uint16_t> qkv_bias_fused_bf16;
};

}  // namespace detail

namespace {

using detail::AttentionModuleState;

[[noreturn]] void fail(causalattn_status status, const std::string& message) { throw Error(status, message); }

std::string shape_text(const std::vector<int64_t>& shape) {
  std::ostringstream s;
  s << '[';
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << ']';
  return s.str();
}

// Every parameter's name and shape, as PyTorch names them.
std::vector<std::pair<std::string, std::vector<int64_t>>> parameter_shapes(const AttentionModuleState& m) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes;
  for (const char* name : {"W_query", "W_key", "W_value"}) {
    shapes.push_back({std::string(name) + ".weight", {m.d_out, m.d_in}});
    if (m.qkv_bias) shapes.push_back({std::string(name) + ".bias", {m.d_out}});
  }
  if (m.out_proj) {
    shapes.push_back({"out_proj.weight", {m.d_out, m.d_out}});
    shapes.push_back({"out_proj.bias", {m.d_out}});
  }
  return shapes;
}

// The textbook's mask buffer: ones above the diagonal.
HostTensor mask_buffer(int64_t context_length) {
  HostTensor mask{{context_length, context_length}, std::vector<float>(context_length * context_length, 0.0f)};
  for (int64_t i = 0; i < context_length; ++i)
    for (int64_t j = i + 1; j < context_length; ++j) mask.data[i * context_length + j] = 1.0f;
  return mask;
}

// Q, K and V's weights (or biases: suffix) side by side, [3 · d_out][...].
template <class T>
std::vector<T> fused(const std::map<std::string, BasicHostTensor<T>>& params, const char* suffix) {
  std::vector<T> out;
  for (const char* name : {"W_query", "W_key", "W_value"}) {
    const std::vector<T>& part = params.at(std::string(name) + suffix).data;
    out.insert(out.end(), part.begin(), part.end());
  }
  return out;
}

const uint16_t* bits(const std::vector<bf16>& x) { return reinterpret_cast<const uint16_t*>(x.data()); }

// What the kernels take of a module's parameters, built aside (a failure changes nothing) and
// swapped in: packed for `kernel`, Q, K and V fused.
struct Packed {
  linear::PackedWeights qkv, out;
  linear::PackedBf16Weights qkv_bf16, out_bf16;
  std::vector<float> qkv_bias;
  std::vector<uint16_t> qkv_bias_bf16;

  Packed(const AttentionModuleState& m, causalattn_dtype dtype, const kernels::KernelTable& kernel,
         const StateDict& params, const StateDictBf16& params_bf16) {
    if (dtype == CAUSALATTN_DTYPE_F32) {
      qkv.pack(kernel, fused(params, ".weight").data(), m.d_in, 3 * m.d_out, m.d_in, m.num_threads);
      if (m.out_proj) out.pack(kernel, params.at("out_proj.weight").data.data(), m.d_out, m.d_out, m.d_out, m.num_threads);
      if (m.qkv_bias) qkv_bias = fused(params, ".bias");
    } else {
      qkv_bf16.pack(kernel, bits(fused(params_bf16, ".weight")), m.d_in, 3 * m.d_out, m.d_in, m.num_threads);
      if (m.out_proj) {
        out_bf16.pack(kernel, bits(params_bf16.at("out_proj.weight").data), m.d_out, m.d_out, m.d_out, m.num_threads);
      }
      if (m.qkv_bias) {
        const std::vector<bf16> b = fused(params_bf16, ".bias");
        qkv_bias_bf16.assign(bits(b), bits(b) + b.size());
      }
    }
  }

  void install(const AttentionModuleState& m) {
    m.qkv_packed = std::move(qkv);
    m.out_packed = std::move(out);
    m.qkv_packed_bf16 = std::move(qkv_bf16);
    m.out_packed_bf16 = std::move(out_bf16);
    m.qkv_bias_fused = std::move(qkv_bias);
    m.qkv_bias_fused_bf16 = std::move(qkv_bias_bf16);
  }
};

bool packed_for(const AttentionModuleState& m, const kernels::KernelTable& kernel) {
  return m.dtype == CAUSALATTN_DTYPE_F32 ? m.qkv_packed.packed_for(kernel) : m.qkv_packed_bf16.packed_for(kernel);
}

// Tensors converted by causalattn_convert: f32 to bf16 rounds to nearest even, bf16 to f32 is exact.
template <class To, class From>
std::map<std::string, BasicHostTensor<To>> converted(const std::map<std::string, BasicHostTensor<From>>& tensors) {
  std::map<std::string, BasicHostTensor<To>> out;
  for (const auto& [name, t] : tensors) {
    BasicHostTensor<To> c{t.shape, std::vector<To>(t.data.size())};
    if (!t.data.empty()) {
      causalattn_convert(t.data.data(), dtype_of<From>, c.data.data(), dtype_of<To>, static_cast<int64_t>(t.data.size()));
    }
    out.emplace(name, std::move(c));
  }
  return out;
}

const char* dtype_name(causalattn_dtype dtype) { return dtype == CAUSALATTN_DTYPE_F32 ? "f32" : "bf16"; }

// Makes params (f32) or params_bf16 the module's parameters in dtype: packed aside first, so a
// failure (out of memory) changes nothing.
void replace_parameters(AttentionModuleState& m, causalattn_dtype dtype, StateDict params, StateDictBf16 params_bf16) {
  Packed packed(m, dtype, dispatch::kernel_table(), params, params_bf16);
  std::lock_guard<std::mutex> lock(m.pack_mutex);
  packed.install(m);
  m.dtype = dtype;
  m.params = std::move(params);
  m.params_bf16 = std::move(params_bf16);
}

float value_of(float x) { return x; }
float value_of(bf16 x) {
  const uint32_t wide = static_cast<uint32_t>(x.bits) << 16;
  float f;
  std::memcpy(&f, &wide, sizeof f);
  return f;
}

// Throws naming every way `state` does not fit the module's parameters (missing, unexpected or
// misshapen tensors; a "mask" that is not the textbook's); returns the parameters it holds.
template <class T>
std::map<std::string, BasicHostTensor<T>> fitted(const AttentionModuleState& m,
                                                 const std::map<std::string, BasicHostTensor<T>>& state) {
  std::vector<std::string> problems;
  const auto shapes = parameter_shapes(m);
  for (const auto& [name, shape] : shapes) {
    const auto it = state.find(name);
    if (it == state.end()) {
      problems.push_back("missing " + name);
    } else if (it->second.shape != shape) {
      problems.push_back(name + " has shape " + shape_text(it->second.shape) + ", expected " + shape_text(shape));
    }
  }
  for (const auto& [name, tensor] : state) {
    if (name == "mask") {
      const HostTensor expected = mask_buffer(m.context_length);
      if (tensor.shape != expected.shape) {
        problems.push_back("mask has shape " + shape_text(tensor.shape) + ", expected " + shape_text(expected.shape) +
                           " (context_length " + std::to_string(m.context_length) + ")");
      } else if (!std::equal(tensor.data.begin(), tensor.data.end(), expected.data.begin(),
                             [](T a, float b) { return value_of(a) == b; })) {
        problems.push_back("mask is not the causal mask (ones above the diagonal)");
      }
      continue;
    }
    const std::string& given = name;  // (clang 14 cannot capture a structured binding)
    const bool known = std::any_of(shapes.begin(), shapes.end(), [&](const auto& s) { return s.first == given; });
    if (!known) problems.push_back("unexpected " + name);
  }
  if (!problems.empty()) {
    std::string message = "state dict does not fit the module: ";
    for (size_t i = 0; i < problems.size(); ++i) message += (i ? "; " : "") + problems[i];
    fail(CAUSALATTN_ERROR_INVALID_SHAPE, message);
  }
  std::map<std::string, BasicHostTensor<T>> params;
  for (const auto& [name, shape] : shapes) params.emplace(name, state.at(name));
  return params;
}

int64_t checked_product(std::initializer_list<int64_t> factors, const char* what) {
  int64_t product = 1;
  for (int64_t f : factors) {
    if (__builtin_mul_overflow(product, f, &product) || product > (int64_t{1} << 40)) {
      fail(CAUSALATTN_ERROR_INVALID_SHAPE, std::string(what) + " is too large");
    }
  }
  return product;
}

}  // namespace

AttentionModule::AttentionModule(int64_t d_in, int64_t d_out, int64_t context_length, float dropout,
                                 int64_t num_heads, bool qkv_bias, bool out_proj)
    : state_(std::make_unique<AttentionModuleState>()) {
  if (d_in <= 0 || d_out <= 0 || context_length <= 0 || num_heads <= 0) {
    fail(CAUSALATTN_ERROR_INVALID_SHAPE, "d_in, d_out, context_length and num_heads must be positive (got d_in=" +
                                             std::to_string(d_in) + ", d_out=" + std::to_string(d_out) +
                                             ", context_length=" + std::to_string(context_length) +
                                             ", num_heads=" + std::to_string(num_heads) + ")");
  }
  if (d_out % num_heads != 0) {
    fail(CAUSALATTN_ERROR_INVALID_SHAPE, "d_out must be divisible by num_heads (got d_out=" + std::to_string(d_out) +
                                             ", num_heads=" + std::to_string(num_heads) + ")");
  }
  if (d_out / num_heads > CAUSALATTN_MAX_HEAD_DIM) {
    fail(CAUSALATTN_ERROR_INVALID_SHAPE, "head_dim = d_out / num_heads = " + std::to_string(d_out / num_heads) +
                                             " exceeds CAUSALATTN_MAX_HEAD_DIM (" +
                                             std::to_string(CAUSALATTN_MAX_HEAD_DIM) + ")");
  }
  if (!(dropout >= 0.0f && dropout < 1.0f)) {
    fail(CAUSALATTN_ERROR_INVALID_OPTION, "dropout must be in [0, 1), got " + std::to_string(dropout));
  }
  checked_product({context_length, context_length}, "context_length² (the mask buffer)");
  checked_product({3, d_out, d_in}, "the QKV weight");
  AttentionModuleState& m = *state_;
  m.d_in = d_in;
  m.d_out = d_out;
  m.context_length = context_length;
  m.num_heads = num_heads;
  m.head_dim = d_out / num_heads;
  m.dropout = dropout;
  m.qkv_bias = qkv_bias;
  m.out_proj = out_proj;
  // nn.Linear's distribution, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), from a fixed seed.
  std::mt19937_64 rng(0x5eed);
  StateDict params;
  for (const auto& [name, shape] : parameter_shapes(m)) {
    const int64_t fan_in = name.rfind("out_proj", 0) == 0 ? d_out : d_in;
    const float bound = 1.0f / std::sqrt(static_cast<float>(fan_in));
    std::uniform_real_distribution<float> uniform(-bound, bound);
    HostTensor t{shape, std::vector<float>(shape.size() == 2 ? shape[0] * shape[1] : shape[0])};
    for (float& v : t.data) v = uniform(rng);
    params.emplace(name, std::move(t));
  }
  replace_parameters(m, CAUSALATTN_DTYPE_F32, std::move(params), {});
}

AttentionModule::AttentionModule(AttentionModule&&) noexcept = default;
AttentionModule& AttentionModule::operator=(AttentionModule&&) noexcept = default;
AttentionModule::~AttentionModule() = default;

AttentionModuleState& AttentionModule::checked_state() const {
  if (!state_) fail(CAUSALATTN_ERROR_INVALID_OPTION, "this module was moved from");
  return *state_;
}

void AttentionModule::forward(const float* x, int64_t batch, int64_t num_tokens, int64_t d_in, float* y) const {
  run(x, CAUSALATTN_DTYPE_F32, batch, num_tokens, d_in, nullptr, y);
}

void AttentionModule::forward(const bf16* x, int64_t batch, int64_t num_tokens, int64_t d_in, bf16* y) const {
  run(x, CAUSALATTN_DTYPE_BF16, batch, num_tokens, d_in, nullptr, y);
}

void AttentionModule::forward_next(const float* x, int64_t batch, int64_t num_tokens, int64_t d_in, KvCache& cache,
                                   float* y) const {
  run(x, CAUSALATTN_DTYPE_F32, batch, num_tokens, d_in, &cache, y);
}

void AttentionModule::forward_next(const bf16* x, int64_t batch, int64_t num_tokens, int64_t d_in, KvCache& cache,
                                   bf16* y) const {
  run(x, CAUSALATTN_DTYPE_BF16, batch, num_tokens, d_in, &cache, y);
}

KvCache::KvCache(const AttentionModule& module, int64_t batch)
    : batch_(batch), d_out_(module.d_out()), context_length_(module.context_length()), dtype_(module.dtype()) {
  if (batch <= 0) throw Error(CAUSALATTN_ERROR_INVALID_SHAPE, "a KV cache's batch must be positive, got " + std::to_string(batch));
  int64_t bytes = 0;
  if (__builtin_mul_overflow(batch, context_length_, &bytes) || __builtin_mul_overflow(bytes, d_out_, &bytes) ||
      __builtin_mul_overflow(bytes, dtype_ == CAUSALATTN_DTYPE_F32 ? 4 : 2, &bytes)) {
    throw Error(CAUSALATTN_ERROR_INVALID_SHAPE, "a KV cache of batch " + std::to_string(batch) + " overflows int64");
  }
  k_.assign(static_cast<size_t>(bytes), std::byte{0});
  v_.assign(static_cast<size_t>(bytes), std::byte{0});
}

namespace {

// The attention call of a forward without a cache: Q, K and V side by side in each row of qkv
// ([B, T, 3, H, D], in dtype), out [B, T, H, D]; the module's threads, mode and dropout stream
// (each training-mode call takes the next seed).
causalattn_attend_args attention_args(AttentionModuleState& m, causalattn_dtype dtype, int64_t batch, int64_t num_tokens,
                                      const void* qkv, void* out) {
  const int64_t stride = 3 * m.d_out;
  const std::size_t element_bytes = dtype == CAUSALATTN_DTYPE_F32 ? 4 : 2;
  const auto* rows = static_cast<const std::byte*>(qkv);
  causalattn_attend_args a{};
  a.shape = {batch, m.num_heads, m.num_heads, num_tokens, num_tokens, m.head_dim};
  a.q = rows;
  a.k = rows + m.d_out * element_bytes;
  a.v = rows + 2 * m.d_out * element_bytes;
  a.q_layout = a.k_layout = a.v_layout = {num_tokens * stride, m.head_dim, stride};
  a.q_dtype = a.k_dtype = a.v_dtype = a.out_dtype = dtype;
  a.out = out;
  a.out_layout = {num_tokens * m.d_out, m.head_dim, m.d_out};
  a.options.num_threads = m.num_threads;
  if (m.batch_invariant) a.options.flags = CAUSALATTN_BATCH_INVARIANT;
  if (m.training && m.dropout > 0.0f) a.dropout = {m.dropout, m.next_seed.fetch_add(1, std::memory_order_relaxed)};
  return a;
}

// Every check of a forward's arguments but its cache's (past: the tokens cached before the call,
// with_cache: forward_next); returns batch × num_tokens.
int64_t checked_rows(const AttentionModuleState& m, const void* x, int64_t batch, int64_t num_tokens, int64_t d_in,
                     bool with_cache, int64_t past, const void* y) {
  if (x == nullptr) fail(CAUSALATTN_ERROR_NULL_POINTER, "x is NULL");
  if (y == nullptr) fail(CAUSALATTN_ERROR_NULL_POINTER, "y is NULL");
  if (batch <= 0) fail(CAUSALATTN_ERROR_INVALID_SHAPE, "batch must be positive, got " + std::to_string(batch));
  if (num_tokens <= 0 || num_tokens > m.context_length - past) {
    fail(CAUSALATTN_ERROR_INVALID_SHAPE, "num_tokens must be in [1, context_length = " + std::to_string(m.context_length) +
                                             (with_cache ? " - the cache's " + std::to_string(past) + " tokens" : "") +
                                             "], got " + std::to_string(num_tokens));
  }
  if (d_in != m.d_in) {
    fail(CAUSALATTN_ERROR_INVALID_SHAPE,
         "x has d_in = " + std::to_string(d_in) + ", the module expects " + std::to_string(m.d_in));
  }
  const int64_t rows = checked_product({batch, num_tokens}, "batch × num_tokens");
  checked_product({rows, 3 * m.d_out}, "the projected batch");
  checked_product({rows, m.d_in}, "x");
  return rows;
}

// The calling thread's buffer for `elements` values of dtype (f32 or bf16).
template <class Purpose>
void* thread_elements(causalattn_dtype dtype, int64_t elements) {
  const auto n = static_cast<std::size_t>(elements);
  return parallel::thread_buffer<Purpose>(dtype == CAUSALATTN_DTYPE_F32 ? n : (n + 1) / 2);
}

}  // namespace

void AttentionModule::run(const void* x, causalattn_dtype dtype, int64_t batch, int64_t num_tokens, int64_t d_in,
                          KvCache* cache, void* y) const {
  const AttentionModuleState& m = checked_state();
  if (dtype != m.dtype) {
    fail(CAUSALATTN_ERROR_INVALID_OPTION, std::string("x and y are ") + dtype_name(dtype) + ", the module's parameters " +
                                              dtype_name(m.dtype) + ": call to(CAUSALATTN_DTYPE_" +
                                              (dtype == CAUSALATTN_DTYPE_F32 ? "F32" : "BF16") + ") first");
  }
  const int64_t past = cache != nullptr ? cache->tokens_ : 0;
  const int64_t rows = checked_rows(m, x, batch, num_tokens, d_in, cache != nullptr, past, y);
  if (cache != nullptr && (cache->batch_ != batch || cache->d_out_ != m.d_out || cache->context_length_ != m.context_length ||
                           cache->dtype_ != m.dtype)) {
    fail(CAUSALATTN_ERROR_INVALID_SHAPE, "the KV cache is not this module's for batch " + std::to_string(batch) +
                                             " (it holds batch " + std::to_string(cache->batch_) + ", d_out " +
                                             std::to_string(cache->d_out_) + ", context_length " +
                                             std::to_string(cache->context_length_) + ", " + dtype_name(cache->dtype_) +
                                             "; the module runs " + dtype_name(m.dtype) + ")");
  }
  const bool f32 = dtype == CAUSALATTN_DTYPE_F32;
  const std::size_t element_bytes = f32 ? 4 : 2;

  // The packed weights of the kernel in use (repacked once if the ISA was changed since).
  const kernels::KernelTable& kernel = dispatch::kernel_table();
  const void* qkv_w = nullptr;
  const void* out_w = nullptr;
  {
    std::lock_guard<std::mutex> lock(m.pack_mutex);
    if (!packed_for(m, kernel)) Packed(m, m.dtype, kernel, m.params, m.params_bf16).install(m);
    qkv_w = f32 ? static_cast<const void*>(m.qkv_packed.data()) : m.qkv_packed_bf16.data();
    out_w = f32 ? static_cast<const void*>(m.out_packed.data()) : m.out_packed_bf16.data();
  }
  // Q, K and V side by side in each token's row: [B, T, 3, H, D]. x is read in full here, before
  // y is written: y may overlap x.
  const int64_t qkv_stride = 3 * m.d_out;
  // Per-thread buffers kept across calls: fresh pages cost ~11 µs each to fault in (3 MiB per
  // call for a GPT-2-small layer at 256 tokens).
  void* const qkv = thread_elements<struct ProjectedQkv>(dtype, rows * qkv_stride);
  if (f32) {
    linear::apply(kernel, static_cast<const float*>(qkv_w), qkv_stride, m.d_in,
                  m.qkv_bias ? m.qkv_bias_fused.data() : nullptr, static_cast<const float*>(x), m.d_in, rows,
                  static_cast<float*>(qkv), qkv_stride, m.num_threads);
  } else {
    linear::apply_bf16(kernel, qkv_w, qkv_stride, m.d_in, m.qkv_bias ? m.qkv_bias_fused_bf16.data() : nullptr,
                       static_cast<const uint16_t*>(x), m.d_in, rows, static_cast<uint16_t*>(qkv), qkv_stride,
                       m.num_threads);
  }

  void* const context = m.out_proj ? thread_elements<struct AttentionOutput>(dtype, rows * m.d_out) : y;
  causalattn_attend_args a = attention_args(checked_state(), dtype, batch, num_tokens, qkv, context);
  a.shape.kv_len = past + num_tokens;
  if (cache != nullptr) {
    // The new tokens' keys and values go past the cached ones: until tokens_ moves on (when the
    // call succeeds) they are not part of the cache.
    const int64_t C = m.context_length;
    const std::size_t row_bytes = m.d_out * element_bytes;
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t t = 0; t < num_tokens; ++t) {
        const auto* row = static_cast<const std::byte*>(qkv) + (b * num_tokens + t) * qkv_stride * element_bytes;
        const std::size_t at = (b * C + past + t) * row_bytes;
        std::copy(row + row_bytes, row + 2 * row_bytes, cache->k_.begin() + at);
        std::copy(row + 2 * row_bytes, row + 3 * row_bytes, cache->v_.begin() + at);
      }
    a.k = cache->k_.data();
    a.v = cache->v_.data();
    a.k_layout = a.v_layout = {C * m.d_out, m.head_dim, m.d_out};
  }
  if (causalattn_attend(&a) != CAUSALATTN_OK) fail(CAUSALATTN_ERROR_INTERNAL, causalattn_last_error());

  if (m.out_proj && f32) {
    linear::apply(kernel, static_cast<const float*>(out_w), m.d_out, m.d_out, m.params.at("out_proj.bias").data.data(),
                  static_cast<const float*>(context), m.d_out, rows, static_cast<float*>(y), m.d_out, m.num_threads);
  } else if (m.out_proj) {
    linear::apply_bf16(kernel, out_w, m.d_out, m.d_out, bits(m.params_bf16.at("out_proj.bias").data),
                       static_cast<const uint16_t*>(context), m.d_out, rows, static_cast<uint16_t*>(y), m.d_out,
                       m.num_threads);
  }
  if (cache != nullptr) cache->tokens_ = past + num_tokens;
}

std::vector<float> AttentionModule::forward(const std::vector<float>& x, int64_t batch, int64_t num_tokens) const {
  const AttentionModuleState& m = checked_state();
  int64_t expected = 0;
  if (batch <= 0 || num_tokens <= 0 || __builtin_mul_overflow(batch * num_tokens, m.d_in, &expected) ||
      static_cast<int64_t>(x.size()) != expected) {
    fail(CAUSALATTN_ERROR_INVALID_SHAPE, "x has " + std::to_string(x.size()) +
                                             " elements, expected batch × num_tokens × d_in = " +
                                             std::to_string(batch) + " × " + std::to_string(num_tokens) + " × " +
                                             std::to_string(m.d_in));
  }
  std::vector<float> y(static_cast<size_t>(batch * num_tokens * m.d_out));
  forward(x.data(), batch, num_tokens, m.d_in, y.data());
  return y;
}

void AttentionModule::to(causalattn_dtype dtype) {
  AttentionModuleState& m = checked_state();
  if (dtype != CAUSALATTN_DTYPE_F32 && dtype != CAUSALATTN_DTYPE_BF16) {
    fail(CAUSALATTN_ERROR_INVALID_OPTION, "a module's dtype is CAUSALATTN_DTYPE_F32 or CAUSALATTN_DTYPE_BF16, got " +
                                              std::to_string(static_cast<int>(dtype)));
  }
  if (dtype == m.dtype) return;
  if (dtype == CAUSALATTN_DTYPE_BF16) {
    replace_parameters(m, dtype, {}, converted<bf16>(m.params));
  } else {
    replace_parameters(m, dtype, converted<float>(m.params_bf16), {});
  }
}

causalattn_dtype AttentionModule::dtype() const { return checked_state().dtype; }

void AttentionModule::train(bool on) { checked_state().training = on; }
bool AttentionModule::training() const { return checked_state().training; }
void AttentionModule::manual_seed(uint64_t seed) { checked_state().next_seed.store(seed, std::memory_order_relaxed); }

void AttentionModule::set_batch_invariant(bool on) { checked_state().batch_invariant = on; }

void AttentionModule::set_num_threads(int num_threads) {
  if (num_threads < 0) fail(CAUSALATTN_ERROR_INVALID_OPTION, "num_threads must not be negative");
  checked_state().num_threads = num_threads;
}

StateDict AttentionModule::state_dict() const {
  const AttentionModuleState& m = checked_state();
  StateDict dict = m.dtype == CAUSALATTN_DTYPE_F32 ? m.params : converted<float>(m.params_bf16);
  dict.emplace("mask", mask_buffer(checked_state().context_length));
  return dict;
}

void AttentionModule::load_state_dict(const StateDict& state) {
  AttentionModuleState& m = checked_state();
  StateDict params = fitted(m, state);
  if (m.dtype == CAUSALATTN_DTYPE_F32) {
    replace_parameters(m, m.dtype, std::move(params), {});
  } else {
    replace_parameters(m, m.dtype, {}, converted<bf16>(params));
  }
}

void AttentionModule::load(const std::string& path) {
  AttentionModuleState& m = checked_state();
  if (m.dtype == CAUSALATTN_DTYPE_F32) {
    load_state_dict(read_safetensors(path));
  } else {
    replace_parameters(m, m.dtype, {}, fitted(m, read_safetensors_bf16(path)));  // BF16 tensors never widened
  }
}

void AttentionModule::save(const std::string& path) const { write_safetensors(path, state_dict()); }

int64_t AttentionModule::d_in() const { return checked_state().d_in; }
int64_t AttentionModule::d_out() const { return checked_state().d_out; }
int64_t AttentionModule::context_length() const { return checked_state().context_length; }
int64_t AttentionModule::num_heads() const { return checked_state().num_heads; }
float AttentionModule::dropout() const { return checked_state().dropout; }

CausalAttention::CausalAttention(int64_t d_in, int64_t d_out, int64_t context_length, float dropout, bool qkv_bias)
    : AttentionModule(d_in, d_out, context_length, dropout, 1, qkv_bias, false) {}

MultiHeadAttention::MultiHeadAttention(int64_t d_in, int64_t d_out, int64_t context_length, float dropout,
                                       int64_t num_heads, bool qkv_bias)
    : AttentionModule(d_in, d_out, context_length, dropout, num_heads, qkv_bias, true) {}

}  // namespace causalattn
