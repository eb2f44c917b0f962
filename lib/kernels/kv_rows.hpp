// Row addresses of K or V, contiguous or paged: the kernels read keys through a small array of
// row pointers per tile, so one kernel serves both layouts with the same arithmetic (and bits).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/kernel_table.hpp"
#include "kernels/simd.hpp"

namespace causalattn::kernels {

// rows[i] = address of key j0 + i, for i < n, as a T* (float for the f32 kernels, std::byte for
// the kernels that widen). A template on Arch, like everything in the per-ISA kernels, so per-ISA
// objects share no out-of-line symbol. With n = 0, j0 may lie past the keys (a tile after the
// last): then not even the block table is read.
template <class Arch, class T>
inline void fill_rows(const KvRows& kv, int64_t j0, int64_t n, const T** rows) {
  if (n == 0) return;
  if (kv.pages == nullptr) {
    for (int64_t i = 0; i < n; ++i) {
      rows[i] = reinterpret_cast<const T*>(kv.base + (j0 + i - kv.first_key) * kv.token_stride);
    }
    return;
  }
  // One division per tile; the walk then steps through slots and pages.
  int64_t page = j0 / kv.page_tokens, slot = j0 % kv.page_tokens;
  const std::byte* page_base = kv.base + kv.pages[page] * kv.page_stride;
  for (int64_t i = 0; i < n; ++i) {
    rows[i] = reinterpret_cast<const T*>(page_base + slot * kv.token_stride);
    if (++slot == kv.page_tokens && i + 1 < n) {
      slot = 0;
      page_base = kv.base + kv.pages[++page] * kv.page_stride;
    }
  }
}

// Bytes of one K or V row of head_dim elements.
template <class Arch>
constexpr int64_t row_bytes(Dtype t, int64_t head_dim) {
  return head_dim / unit_elements(t) * unit_bytes(t);
}

// Asks for a K or V row to be brought into L2 (T1: a tile's K and V outgrow L1 at D=128), or with
// kToL1 into L1 (for a row a few keys ahead), every cache line it touches.
template <class Arch, bool kToL1 = false>
inline void prefetch_row(const void* row, int64_t bytes) {
  const auto first = reinterpret_cast<uintptr_t>(row) & ~uintptr_t{63};
  const auto end = reinterpret_cast<uintptr_t>(row) + static_cast<uintptr_t>(bytes);
#pragma GCC unroll 8
  for (uintptr_t line = first; line < end; line += 64) {
    if constexpr (kToL1) {
      prefetch_l1<Arch>(reinterpret_cast<const void*>(line));
    } else {
      prefetch_l2<Arch>(reinterpret_cast<const void*>(line));
    }
  }
}

// The K and V row addresses of one tile of at most kMaxKeys keys, as T*.
template <class Arch, int kMaxKeys, class T = float>
struct TileRows {
  const T* k[kMaxKeys];
  const T* v[kMaxKeys];
  int64_t n = 0;  // keys in the tile

  // The rows of keys j0 .. j0 + count - 1 (count <= kMaxKeys).
  void fill(const KvRows& keys, const KvRows& values, int64_t j0, int64_t count) {
    n = count;
    fill_rows<Arch>(keys, j0, n, k);
    fill_rows<Arch>(values, j0, n, v);
  }
  // Brings key j's K and V rows (k_bytes and v_bytes long) into L2.
  void prefetch(int64_t j, int64_t k_bytes, int64_t v_bytes) const {
    prefetch_row<Arch>(k[j], k_bytes);
    prefetch_row<Arch>(v[j], v_bytes);
  }
};

}  // namespace causalattn::kernels
