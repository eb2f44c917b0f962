// What one row-block kernel call needs: plain data shared by the per-ISA kernels and the
// threading layer.
#pragma once

#include <cstddef>
#include <cstdint>

namespace causalattn::kernels {

// One block of consecutive queries of one (batch, query head), against its KV head.
// Pointers are at element 0 of the respective (batch, head); strides are token strides.
struct RowBlockArgs {
  const float* q;         // query row q_begin
  int64_t q_stride;
  const float* k;         // key row 0
  int64_t k_stride;
  const float* v;         // value row 0
  int64_t v_stride;
  float* out;             // output row q_begin
  int64_t out_stride;
  float* lse;             // lse of row q_begin, or nullptr
  int64_t q_begin;        // position of the block's first query
  int64_t q_count;        // valid queries in the block, 1 ... rows of the kernel
  int64_t kv_len;
  int64_t causal_offset;  // kv_len - q_len: query i sees key j iff j <= i + causal_offset
  bool causal;
  int64_t head_dim;
  float scale;            // multiplies q·k
  float* workspace;       // 64-byte aligned, KernelInfo::workspace_floats(head_dim) floats
};

// A compiled kernel family for one ISA, as the dispatcher hands it out.
struct KernelInfo {
  const char* isa;                                  // "avx512", "avx2", "sse2"
  int rows;                                         // queries per row block
  std::size_t (*workspace_floats)(int64_t head_dim);
  // Computes `count` row blocks of one (batch, query head); each has its own workspace.
  void (*row_blocks)(const RowBlockArgs* blocks, int count);
};

}  // namespace causalattn::kernels
