// The interface of the per-ISA kernels: the arguments of the attention row blocks, the decode
// chunks and the projection tasks, and KernelTable, the functions one ISA provides.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/dtype.hpp"

namespace causalattn::kernels {

// Where the rows of K (or V) of one (sequence, KV head) live: contiguous at a token stride, or
// in pages through the sequence's block table row; strides in bytes.
struct KvRows {
  const std::byte* base;  // key first_key (contiguous), or page 0 slot 0 of this KV head (paged)
  int64_t token_stride;
  const int32_t* pages;   // nullptr: contiguous; else the sequence's block table row
  int64_t page_tokens;
  int64_t page_stride;
  Dtype dtype;
  int64_t first_key;      // contiguous only: the key at base (a widened chunk starts past 0)
};

// One block of consecutive queries of one (sequence, query head), against its KV head.
struct RowBlockArgs {
  const std::byte* q;     // query row q_begin
  int64_t q_stride;       // bytes
  Dtype q_dtype;          // f32, bf16 or f16
  KvRows k, v;
  std::byte* out;         // output row q_begin
  int64_t out_stride;     // bytes
  Dtype out_dtype;        // f32, bf16 or f16
  float* lse;             // lse of row q_begin, or nullptr
  int64_t q_begin;        // position of the block's first query
  int64_t q_count;        // valid queries in the block, 1 ... rows of the kernel
  int64_t kv_len;
  int64_t diagonal;       // query i is at key position i + diagonal: causal, it sees keys j <= i + diagonal
  bool causal;
  int64_t window;         // 0, or (causal only) query i also needs j > i + diagonal - window
  int64_t head_dim;       // of Q and K
  int64_t head_dim_v;     // of V and out
  float scale;            // multiplies q·k
  float* workspace;       // 64-byte aligned, KernelTable::workspace_floats(head_dim) floats
  bool copy_kv;           // the group copies K and V a chunk at a time into its workspace, as f32
                          // rows head_dim apart (true whenever K or V is not f32)
  // Dropout (see philox.hpp): off when threshold is 0.
  uint32_t dropout_threshold;  // p · 2^32
  float dropout_scale;         // 1 / (1 - p)
  uint64_t dropout_seed;
  uint32_t sequence, head;     // the block's sequence and query head, for the dropout counter
  // Variants (causalattn_attend_args), each off at its zero: scores s become
  // softcap · tanh(s / softcap), then s - alibi_slope · (i + diagonal - j); sink joins the softmax.
  float softcap;               // 0 or > 0
  float alibi_slope;           // 0: none
  bool has_sink;               // false: none
  float sink;
  // The batch-invariant mode (CAUSALATTN_BATCH_INVARIANT); each field off at zero, so a block
  // built without them is today's block.
  // Its softmax covers keys [key_begin, key_end) only (0: kv_len): one split of the mode's fixed
  // key splits, key_begin a multiple of kTileKeys.
  int64_t key_begin, key_end;
  bool f32_products;           // true: bf16 Q, K, V take the f32 kernel, widened, and not the BF16
                               // dot product, whose rounding of P depends on the block's masking
};

// Decode: the few queries of one KV head's group (its query heads × a few positions) against a
// chunk of that head's keys, each key read once for all of them.
constexpr int kDecodeRows = 8;

struct DecodeArgs {
  const std::byte* q[kDecodeRows];  // row r's query vector
  Dtype q_dtype;
  int64_t first_key[kDecodeRows];  // row r sees keys first_key[r] <= j <= last_key[r]
  int64_t last_key[kDecodeRows];
  int rows;                      // 1 ... kDecodeRows
  KvRows k, v;
  int64_t j_begin, j_end;        // the chunk's keys
  int64_t head_dim;              // of Q and K
  int64_t head_dim_v;            // of V and out
  float scale;
  float softcap;                 // as RowBlockArgs
  float alibi_slope[kDecodeRows];
  int64_t position[kDecodeRows]; // row r's query is at key position position[r] (ALiBi's distances)
  float* out;                    // [rows][head_dim_v]: the chunk's normalized partial output
  float* lse;                    // [rows]: its log-sum-exp; -inf for a row that saw no key
  float* workspace;              // 64-byte aligned, KernelTable::decode_workspace_floats(head_dim)
};

// Most features one projection task covers (a multiple of every ISA's panel).
constexpr int64_t kGemmTaskFeatures = 1024;

// One task of a projection y = x · Wᵀ + b: rows [m_begin, m_end) and features [n_begin, n_end)
// of y, with W packed in panels (KernelTable::gemm_pack_panel).
struct GemmArgs {
  const float* packed_x;  // the micro-panels of rows m_begin.. (KernelTable::gemm_pack_rows), k each
  const float* packed_w;  // panel p at p · k · gemm_features: [k][gemm_features]
  const float* bias;      // nullptr or [n]
  float* y;               // [m][n], rows at y_stride
  int64_t y_stride;
  int64_t k;
  int64_t m_begin, m_end; // m_begin a multiple of gemm_row_panel
  int64_t n_begin, n_end; // n_begin a multiple of gemm_features
  float* workspace;       // 64-byte aligned, KernelTable::gemm_workspace_floats() floats
};

// The bf16 projection's packed W (gemm_amx.hpp): per panel of 32 features, per 32 of k, two B
// tiles of 16 k pairs by 16 features, zeros past n and k.
constexpr int64_t kAmxGemmFeatures = 32;
constexpr int64_t kAmxGemmDepth = 32;

inline int64_t gemm_bf16_packed_elements(int64_t n, int64_t k) {
  const int64_t panels = (n + kAmxGemmFeatures - 1) / kAmxGemmFeatures, depth = (k + kAmxGemmDepth - 1) / kAmxGemmDepth;
  return panels * depth * kAmxGemmFeatures * kAmxGemmDepth;
}

// One task of a bf16 projection on AMX or the dot product (gemm_amx.hpp, gemm_bf16_dot.hpp): rows
// [m_begin, m_end) and features [n_begin, n_end) of y = x · Wᵀ + b, all bf16.
struct GemmBf16Args {
  const uint16_t* x;         // [m][k], rows at x_stride elements
  int64_t x_stride;
  const uint16_t* packed_w;  // KernelTable::gemm_bf16_pack_panel's panels
  const uint16_t* bias;      // nullptr or [n]
  uint16_t* y;               // [m][n], rows at y_stride elements
  int64_t y_stride;
  int64_t k;
  int64_t m_begin, m_end;
  int64_t n_begin, n_end;    // n_begin a multiple of gemm_bf16_features
  float* workspace;          // 64-byte aligned, KernelTable::gemm_bf16_workspace_bytes(k)
};

// The kernels of one ISA, as the dispatcher hands them out (one table per row of cmake/isas.cmake).
struct KernelTable {
  const char* isa;                                  // the ISA's public name
  int rows;                                         // queries per row block
  std::size_t (*workspace_floats)(int64_t head_dim, int64_t head_dim_v);
  // Computes `count` row blocks of one (sequence, query head); each has its own workspace, and
  // the group has group_workspace (KernelTable::group_workspace_floats(head_dim), 64-byte
  // aligned) for K and V widened to f32.
  void (*row_blocks)(const RowBlockArgs* blocks, int count, float* group_workspace);
  std::size_t (*group_workspace_floats)(int64_t head_dim, int64_t head_dim_v);
  std::size_t (*decode_workspace_floats)(int64_t head_dim, int64_t head_dim_v);
  void (*decode_chunk)(const DecodeArgs& args);
  // The batch-invariant mode's decode chunk: the row blocks' arithmetic (invariant_decode.hpp).
  std::size_t (*invariant_decode_workspace_floats)(int64_t head_dim, int64_t head_dim_v);
  void (*invariant_decode_chunk)(const DecodeArgs& args);
  int gemm_features;                                // features of W per packed panel
  int gemm_rows;                                    // most rows of x a task should take at once
  int gemm_row_panel;                               // rows of the microkernel (tasks take multiples)
  // Packs panel `panel` of W ([n][k], rows at w_stride): gemm_features · k floats.
  void (*gemm_pack_panel)(const float* w, int64_t w_stride, int64_t n, int64_t k, int64_t panel, float* packed);
  // Packs rows <= gemm_row_panel rows of x ([rows][k]) as one micro-panel: gemm_row_panel · k floats.
  void (*gemm_pack_rows)(const float* x, int64_t x_stride, int64_t rows, int64_t k, float* packed);
  std::size_t (*gemm_workspace_floats)();
  void (*gemm_block)(const GemmArgs& args);
  // The bf16 projection on AMX tiles; nullptr on ISAs without them (linear.cpp widens to f32).
  int gemm_bf16_features;  // features of W per packed panel
  void (*gemm_bf16_pack_panel)(const uint16_t* w, int64_t w_stride, int64_t n, int64_t k, int64_t panel, uint16_t* packed);
  std::size_t (*gemm_bf16_workspace_bytes)(int64_t k);
  void (*gemm_bf16_block)(const GemmBf16Args& args);
};

}  // namespace causalattn::kernels
