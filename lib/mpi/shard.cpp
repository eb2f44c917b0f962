#include "mpi/shard.hpp"

#include <algorithm>
#include <cstring>

#include "causalattn/causalattn.h"
#include "causalattn/causalattn_mpi.h"

namespace causalattn::mpi {

void assign_offsets(std::vector<Piece>* pieces) {
  int64_t offset = 0;
  for (Piece& p : *pieces) {
    p.offset = offset;
    offset += p.tokens;
  }
}

bool visible(const Piece& q, const Piece& k, bool causal, int64_t window) {
  if (q.tokens == 0 || k.tokens == 0) return false;
  if (!causal) return true;
  // The queries of q together see keys in (q.position - window, q.position + q.tokens - 1].
  const int64_t last_query = q.position + q.tokens - 1, last_key = k.position + k.tokens - 1;
  return k.position <= last_query && (window == 0 || last_key > q.position - window);
}

Result check_tiling(const std::vector<std::vector<std::vector<Piece>>>& ranges, const std::vector<int64_t>& lengths,
                    const char* what) {
  struct Held {
    int64_t position, end;
    int rank;
  };
  const std::size_t sequences = ranges.empty() ? 0 : ranges[0].size();
  for (std::size_t s = 0; s < sequences; ++s) {
    std::vector<Held> held;
    for (std::size_t r = 0; r < ranges.size(); ++r) {
      for (const Piece& p : ranges[r][s]) {
        if (p.tokens > 0) held.push_back({p.position, p.position + p.tokens, static_cast<int>(r)});
      }
    }
    std::sort(held.begin(), held.end(), [](const Held& a, const Held& b) { return a.position < b.position; });
    const int64_t length = lengths.empty() ? (held.empty() ? 0 : held.back().end) : lengths[s];
    const std::string which = "sequence " + std::to_string(s) + ": ";
    int64_t next = 0;  // the first position not yet held
    for (std::size_t i = 0; i < held.size(); ++i) {
      if (held[i].position > next) {
        return {CAUSALATTN_ERROR_INVALID_SHAPE, which + "positions " + std::to_string(next) + " .. " +
                                                    std::to_string(held[i].position - 1) + " are in no rank's " + what};
      }
      if (held[i].position < next) {
        return {CAUSALATTN_ERROR_INVALID_SHAPE, which + "position " + std::to_string(held[i].position) +
                                                    " is in a " + what + " of rank " + std::to_string(held[i - 1].rank) +
                                                    " and of rank " + std::to_string(held[i].rank)};
      }
      next = held[i].end;
    }
    if (next < length) {
      return {CAUSALATTN_ERROR_INVALID_SHAPE, which + "positions " + std::to_string(next) + " .. " +
                                                  std::to_string(length - 1) + " are in no rank's " + what};
    }
  }
  return {};
}

}  // namespace causalattn::mpi

extern "C" int causalattn_mpi_shard_pieces(causalattn_mpi_sharding sharding, int64_t seq_len, int32_t ranks,
                                           int32_t rank, int64_t positions[2], int64_t tokens[2]) {
  using causalattn::mpi::report;
  if (positions == nullptr || tokens == nullptr) {
    return report({CAUSALATTN_ERROR_NULL_POINTER, "positions or tokens is NULL"});
  }
  if (seq_len < 0 || seq_len > CAUSALATTN_MAX_TOKENS) {
    return report({CAUSALATTN_ERROR_INVALID_SHAPE, "seq_len " + std::to_string(seq_len) +
                                                       " is outside [0, CAUSALATTN_MAX_TOKENS]"});
  }
  if (ranks <= 0 || rank < 0 || rank >= ranks) {
    return report({CAUSALATTN_ERROR_INVALID_SHAPE, "rank " + std::to_string(rank) + " of " + std::to_string(ranks) +
                                                       " ranks"});
  }
  // Boundary b of n equal chunks, rounded down (seq_len <= 2^32 and n < 2^32: no overflow).
  auto boundary = [seq_len](int64_t b, int64_t n) { return b * seq_len / n; };
  int sharding_value;
  static_assert(sizeof sharding_value == sizeof sharding, "an enum is an int");
  std::memcpy(&sharding_value, &sharding, sizeof sharding_value);
  if (sharding_value == CAUSALATTN_MPI_CONTIGUOUS) {
    positions[0] = boundary(rank, ranks);
    tokens[0] = boundary(rank + 1, ranks) - positions[0];
    positions[1] = boundary(rank + 1, ranks);
    tokens[1] = 0;
    return CAUSALATTN_OK;
  }
  if (sharding_value == CAUSALATTN_MPI_ZIGZAG) {
    const int64_t chunks = 2 * int64_t{ranks}, late = chunks - 1 - rank;
    positions[0] = boundary(rank, chunks);
    tokens[0] = boundary(rank + 1, chunks) - positions[0];
    positions[1] = boundary(late, chunks);
    tokens[1] = boundary(late + 1, chunks) - positions[1];
    return CAUSALATTN_OK;
  }
  return report({CAUSALATTN_ERROR_INVALID_OPTION, "sharding " + std::to_string(sharding_value) +
                                                      " is not a causalattn_mpi_sharding"});
}
