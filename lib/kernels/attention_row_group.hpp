// A group of row blocks of one (sequence, head) walked together over the keys in chunks, so each
// chunk's K and V come from L2 once per group, with the next chunk's prefetch shared among the
// blocks: attention_row_blocks, the row-block entry of the kernel table.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/attention_row_block.hpp"

namespace causalattn::kernels {

// A group of row blocks of one (batch, head), each with its own workspace. KV is walked in
// chunks of kChunkTiles tiles, each chunk applied to every block before the next: the chunk's K
// and V then come from L2 once per group instead of from memory once per block. Every block
// still sees its tiles in the same order, so the bits do not depend on the grouping.
template <class Arch>
void attention_row_blocks(const RowBlockArgs* blocks, int count) {
  // 4 tiles of 96 keys: 384 KiB of K and V at D=128; with the next chunk on its way 768 KiB,
  // which beside the working block's Qt and Ot (68 KiB) fit a 1-2 MiB L2.
  constexpr int64_t kChunkKeys = 4 * Blocking<Arch>::kTileKeys;
  int64_t kv_begin = INT64_MAX, kv_end = 0;
  for (int i = 0; i < count; ++i) {
    begin_block<Arch>(blocks[i]);
    kv_begin = std::min(kv_begin, block_first_tile<Arch>(blocks[i]));
    kv_end = std::max(kv_end, block_kv_end<Arch>(blocks[i]));
  }
  for (int64_t j = kv_begin; j < kv_end; j += kChunkKeys) {
    // The blocks that compute tiles of this chunk share the prefetch of the next one.
    auto computes = [&](const RowBlockArgs& a) { return block_keys_in<Arch>(a, j, j + kChunkKeys) > 0; };
    int active = 0;
    for (int i = 0; i < count; ++i) active += computes(blocks[i]);
    const int64_t next_begin = j + kChunkKeys;
    const int64_t next_end = std::max(next_begin, std::min(kv_end, next_begin + kChunkKeys));
    const int64_t share = (next_end - next_begin + active - 1) / std::max(active, 1);
    int64_t prefetch_begin = next_begin;
    for (int i = 0; i < count; ++i) {
      if (!computes(blocks[i])) continue;
      const int64_t prefetch_end = std::min(next_end, prefetch_begin + share);
      block_tiles<Arch>(blocks[i], j, j + kChunkKeys, prefetch_begin, prefetch_end);
      prefetch_begin = prefetch_end;
    }
  }
  for (int i = 0; i < count; ++i) finish_block<Arch>(blocks[i]);
}

}  // namespace causalattn::kernels
