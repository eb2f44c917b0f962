// A group of row blocks of one (sequence, head) walked together over the keys in chunks, so each
// chunk's K and V come from L2 once per group, with the next chunk's prefetch shared among the
// blocks: attention_row_blocks, the row-block entry of the kernel table. K and V stored in 16 or
// 8 bits are widened to f32 a chunk at a time into the group's workspace, once for all its blocks;
// so are f32 rows whose stride would make them share L1 sets (RowBlockArgs::copy_kv).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "kernels/attention_amx.hpp"
#include "kernels/attention_bf16.hpp"
#include "kernels/attention_row_block.hpp"
#include "kernels/widen.hpp"

namespace causalattn::kernels {

// 4 tiles of 96 keys: 384 KiB of K and V at D=128; with the next chunk on its way 768 KiB,
// which beside the working block's Qt and Ot (68 KiB) fit a 1-2 MiB L2.
template <class Arch>
constexpr int64_t kChunkKeys = 4 * Blocking<Arch>::kTileKeys;

// The group workspace: a chunk of K and of V in f32, [kChunkKeys][head_dim] and
// [kChunkKeys][head_dim_v] (the bf16 kernel keeps V's key pairs and f32 rows there, 1.5 ·
// [kChunkKeys][head_dim_v]; the AMX kernel K and V in bf16 and V in f32).
template <class Arch>
constexpr std::size_t group_workspace_floats(int64_t head_dim, int64_t head_dim_v) {
  const auto floats = static_cast<std::size_t>(kChunkKeys<Arch> * std::max(head_dim + head_dim_v, head_dim_v + head_dim_v / 2));
  if constexpr (IsaTraits<Arch>::kAmx) {
    return std::max(floats, amx_group_workspace_floats<Arch>(kChunkKeys<Arch>, head_dim, head_dim_v));
  }
  return floats;
}

// A group of row blocks of one (batch, head), each with its own workspace. KV is walked in
// chunks of kChunkKeys keys, each chunk applied to every block before the next: the chunk's K
// and V then come from L2 once per group instead of from memory once per block. Every block
// still sees its tiles in the same order, so the bits do not depend on the grouping, and K and V
// widened exactly give the bits of the same values stored in f32.
template <class Arch>
void attention_row_blocks(const RowBlockArgs* blocks, int count, float* group_workspace) {
  if constexpr (IsaTraits<Arch>::kAmx) {
    // The AMX row: bf16 on the tiles where the shape allows, else the f32 kernel (the BF16 dot
    // product is slower than the f32 FMAs on the CPUs that have AMX).
    static_assert(kChunkKeys<Arch> <= 64 * kAmxPairDims, "AmxChunk::finite has a bit per 32 keys");
    if (amx_runs<Arch>(blocks[0])) return attention_row_blocks_amx<Arch>(blocks, count, group_workspace, kChunkKeys<Arch>);
  } else if constexpr (IsaTraits<Arch>::kDotBf16) {
    const RowBlockArgs& a = blocks[0];
    if (!a.f32_products && a.q_dtype == Dtype::kBf16 && a.k.dtype == Dtype::kBf16 && a.v.dtype == Dtype::kBf16) {
      return attention_row_blocks_bf16<Arch>(blocks, count, group_workspace, kChunkKeys<Arch>);
    }
  }
  int64_t kv_begin = INT64_MAX, kv_end = 0;
  for (int i = 0; i < count; ++i) {
    begin_block<Arch>(blocks[i]);
    kv_begin = std::min(kv_begin, block_first_tile<Arch>(blocks[i]));
    kv_end = std::max(kv_end, block_kv_end<Arch>(blocks[i]));
  }
  const KvRows& k = blocks[0].k;
  const KvRows& v = blocks[0].v;
  const bool widen = blocks[0].copy_kv;
  const int64_t D = blocks[0].head_dim, Dv = blocks[0].head_dim_v;
  constexpr int64_t C = kChunkKeys<Arch>;
  for (int64_t j = kv_begin; j < kv_end; j += C) {
    // The blocks that compute tiles of this chunk share the prefetch of the next one (f32 rows
    // read in place; widened chunks prefetch their sources as they widen).
    auto computes = [&](const RowBlockArgs& a) { return block_keys_in<Arch>(a, j, j + C) > 0; };
    int active = 0;
    for (int i = 0; i < count; ++i) active += computes(blocks[i]);
    const int64_t next_begin = j + C;
    const int64_t next_end = widen ? next_begin : std::max(next_begin, std::min(kv_end, next_begin + C));
    const int64_t share = (next_end - next_begin + active - 1) / std::max(active, 1);
    KvRows chunk_k = k, chunk_v = v;
    if (widen) {
      const int64_t end = std::min(kv_end, j + C);
      chunk_k = widen_chunk<Arch>(k, j, end, D, group_workspace);
      chunk_v = widen_chunk<Arch>(v, j, end, Dv, group_workspace + C * D);
    }
    int64_t prefetch_begin = next_begin;
    for (int i = 0; i < count; ++i) {
      if (!computes(blocks[i])) continue;
      RowBlockArgs block = blocks[i];
      block.k = chunk_k;
      block.v = chunk_v;
      const int64_t prefetch_end = std::min(next_end, prefetch_begin + share);
      block_tiles<Arch>(block, j, j + C, prefetch_begin, prefetch_end);
      prefetch_begin = prefetch_end;
    }
  }
  for (int i = 0; i < count; ++i) finish_block<Arch>(blocks[i]);
}

}  // namespace causalattn::kernels
