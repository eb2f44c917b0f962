// The textbook's attention modules ("Build a Large Language Model (From Scratch)", chapter 3)
// on causalattn's kernels: CausalAttention and MultiHeadAttention with PyTorch's parameter
// layout and names, so a trained model's state dict loads as is. No T × T mask or score matrix:
// the projections run on packed SIMD microkernels, attention on the fused causal kernel (with
// dropout inside it in training mode). C++17.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "causalattn/causalattn.hpp"
#include "causalattn/safetensors.hpp"

namespace causalattn {

namespace detail {
struct AttentionModuleState;
}

class AttentionModule;

// The keys and values a module has projected so far, for incremental decoding
// (AttentionModule::forward_next): `batch` sequences of up to the module's context_length tokens.
class CAUSALATTN_API KvCache {
 public:
  // In the module's dtype (AttentionModule::dtype()) at construction: f32 or bf16 keys and values.
  KvCache(const AttentionModule& module, int64_t batch);
  int64_t batch() const { return batch_; }
  int64_t tokens() const { return tokens_; }  // cached per sequence so far
  causalattn_dtype dtype() const { return dtype_; }
  void clear() { tokens_ = 0; }

 private:
  friend class AttentionModule;
  int64_t batch_, d_out_, context_length_, tokens_ = 0;
  causalattn_dtype dtype_;
  std::vector<std::byte> k_, v_;  // [batch][context_length][d_out] elements of dtype_
};

// What both modules share: forward, training mode and dropout, and the state dict.
// A module's forward may run on several threads at once; loading weights, train() and eval()
// must not run concurrently with anything else on the same module. A moved-from module throws.
class CAUSALATTN_API AttentionModule {
 public:
  AttentionModule(AttentionModule&&) noexcept;
  AttentionModule& operator=(AttentionModule&&) noexcept;
  ~AttentionModule();

  // y = module(x): x is [batch][num_tokens][d_in], y is [batch][num_tokens][d_out], both
  // contiguous. 1 <= num_tokens <= context_length (the textbook's sliced mask); d_in must be the
  // module's. Throws causalattn::Error naming the problem (y untouched) on bad arguments.
  // y may overlap x (in place): x is read in full before y is written.
  void forward(const float* x, int64_t batch, int64_t num_tokens, int64_t d_in, float* y) const;
  // The same with x's size checked against batch × num_tokens × d_in; returns y.
  std::vector<float> forward(const std::vector<float>& x, int64_t batch, int64_t num_tokens) const;
  // The same for a bf16 module (to(CAUSALATTN_DTYPE_BF16)), as PyTorch runs a module after
  // .to(torch.bfloat16): x and y bf16, the projections' outputs (Q, K, V, the attention's output)
  // rounded to bf16, sums in f32. On CPUs with AMX the projections and the attention run on its
  // tiles (causalattn_linear_bf16, the amx ISA); elsewhere on the f32 kernels over the widened
  // values. A forward in the other dtype than the module's throws.
  void forward(const bf16* x, int64_t batch, int64_t num_tokens, int64_t d_in, bf16* y) const;
  // Incremental decoding: y for the next num_tokens tokens of each of cache.batch() == batch
  // sequences, which attend to the cache's tokens and to themselves; their keys and values are
  // appended to the cache (cache.tokens() moves on only when the call succeeds). cache.tokens() + num_tokens <=
  // context_length; the cache in the module's dtype. With set_batch_invariant(true), a prompt then
  // token by token gives the bits of forward over the whole text.
  void forward_next(const float* x, int64_t batch, int64_t num_tokens, int64_t d_in, KvCache& cache, float* y) const;
  void forward_next(const bf16* x, int64_t batch, int64_t num_tokens, int64_t d_in, KvCache& cache, bf16* y) const;

  // As PyTorch's module.to(dtype), CAUSALATTN_DTYPE_F32 (a new module's) or CAUSALATTN_DTYPE_BF16:
  // the parameters converted (to bf16: rounded to nearest even; back: exactly) and kept in that
  // dtype only. A bf16 module's load() keeps a file's BF16 tensors as stored (never widened);
  // state_dict() and save() give them widened to f32, exactly.
  void to(causalattn_dtype dtype);
  causalattn_dtype dtype() const;

  // CAUSALATTN_BATCH_INVARIANT for forward and forward_next: each token's output the same bits
  // however the text is split into calls or batched (docs/batch-invariance.md). No dropout with it.
  void set_batch_invariant(bool on);

  // As nn.Module: a new module is in training mode, where dropout (p > 0) drops attention
  // weights; eval() turns it off. Each training-mode forward draws a fresh dropout stream:
  // seed, seed + 1, ... (manual_seed sets the next one; the default is 0).
  void train(bool on = true);
  void eval() { train(false); }
  bool training() const;
  void manual_seed(uint64_t seed);

  // Threads for forward: 0 (the default) uses what the calling TBB arena allows.
  void set_num_threads(int num_threads);

  // PyTorch's names and shapes: W_query.weight [d_out, d_in] (and .bias [d_out] with qkv_bias),
  // W_key.*, W_value.*, out_proj.weight [d_out, d_out] and out_proj.bias [d_out]
  // (MultiHeadAttention), and the textbook's "mask" buffer [context_length, context_length]
  // (triu of ones above the diagonal), which PyTorch keeps in its state dict too.
  StateDict state_dict() const;
  // Replaces every parameter (rounded to bf16 in a bf16 module). Missing or unexpected names, wrong shapes, or a "mask" that is not
  // the textbook's throw causalattn::Error naming them, and leave the module unchanged.
  void load_state_dict(const StateDict& state);
  // The same through a safetensors file (F32, BF16 or F16 tensors; malformed files throw).
  void load(const std::string& path);
  // Writes state_dict() as F32 safetensors, loadable by PyTorch's load_state_dict(strict=True).
  void save(const std::string& path) const;

  int64_t d_in() const;
  int64_t d_out() const;
  int64_t context_length() const;
  int64_t num_heads() const;
  float dropout() const;

 protected:
  AttentionModule(int64_t d_in, int64_t d_out, int64_t context_length, float dropout, int64_t num_heads,
                  bool qkv_bias, bool out_proj);

 private:
  detail::AttentionModuleState& checked_state() const;  // throws for a moved-from module
  // forward and forward_next: x and y of dtype (f32 or bf16).
  void run(const void* x, causalattn_dtype dtype, int64_t batch, int64_t num_tokens, int64_t d_in, KvCache* cache,
           void* y) const;
  std::unique_ptr<detail::AttentionModuleState> state_;
};

// The textbook's single-head CausalAttention: one head of d_out dims (d_out <= 512, the kernel's
// CAUSALATTN_MAX_HEAD_DIM), scores scaled by 1/sqrt(d_out), no output projection. Weights start
// as nn.Linear's do in distribution (uniform in ±1/sqrt(d_in)), not in value: load PyTorch's.
class CAUSALATTN_API CausalAttention : public AttentionModule {
 public:
  CausalAttention(int64_t d_in, int64_t d_out, int64_t context_length, float dropout, bool qkv_bias = false);
};

// The textbook's MultiHeadAttention: num_heads heads of d_out / num_heads dims computed straight
// from the projections' [B, T, H, D] layout (no transposes), then out_proj (with bias).
class CAUSALATTN_API MultiHeadAttention : public AttentionModule {
 public:
  MultiHeadAttention(int64_t d_in, int64_t d_out, int64_t context_length, float dropout, int64_t num_heads,
                     bool qkv_bias = false);
};

}  // namespace causalattn
