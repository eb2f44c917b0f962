// Partial attention results of a block of query rows, as both causalattn_mpi calls keep them:
// f32 [q_heads][rows][head_dim_v] and their LSE [q_heads][rows], merged through causalattn_merge.
#pragma once

#include <cstdint>
#include <vector>

#include "causalattn/causalattn.h"

namespace causalattn::mpi {

// One block of partial results, in memory the caller owns.
struct Partial {
  float* out;
  float* lse;
};

// The layout of a Partial's out.
inline causalattn_layout partial_layout(int64_t heads, int64_t rows, int64_t dim) {
  return {heads * rows * dim, rows * dim, dim};
}

// The sink as one more part (gpt-oss): output 0 (one zero row read at every position) and LSE
// sinks[h] on every row of head h.
struct SinkPart {
  std::vector<float> zero_row, lse;

  SinkPart(const float* sinks, int64_t heads, int64_t rows, int64_t dim)
      : zero_row(static_cast<std::size_t>(dim), 0.0f), lse(static_cast<std::size_t>(heads * rows)) {
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t i = 0; i < rows; ++i) lse[static_cast<std::size_t>(h * rows + i)] = sinks[h];
    }
  }
  causalattn_partial part() const { return {zero_row.data(), {0, 0, 0}, lse.data(), CAUSALATTN_DTYPE_F32}; }
};

// A Partial as a causalattn_merge part.
inline causalattn_partial part_of(const Partial& p, int64_t heads, int64_t rows, int64_t dim) {
  return {p.out, partial_layout(heads, rows, dim), p.lse, CAUSALATTN_DTYPE_F32};
}

}  // namespace causalattn::mpi
