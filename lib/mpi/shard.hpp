// Which tokens of a sequence each rank holds: pieces of consecutive positions, the checks that the
// ranks' pieces tile each sequence, and which (query piece, key piece) pairs any query can see.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mpi/comm.hpp"

namespace causalattn::mpi {

// Consecutive positions [position, position + tokens) of one sequence; `offset` is the index of
// its first token in its rank's tensors.
struct Piece {
  int64_t sequence, position, tokens, offset;
};

// Sets the `offset` of every piece of one rank (pieces in the rank's packed order).
void assign_offsets(std::vector<Piece>* pieces);

// Whether some query of `q` may see some key of `k` (pieces of the same sequence): under causal
// masking a key at P is seen by a query at p iff P <= p (and p - window < P with a window).
bool visible(const Piece& q, const Piece& k, bool causal, int64_t window);

// Every rank's ranges of each sequence (ranges[rank][s], empty ones ignored) tile [0, lengths[s]):
// each position held by exactly one rank. With lengths empty, each sequence's length is the end of
// its last range. `what` names the ranges in the message ("piece", "key range").
Result check_tiling(const std::vector<std::vector<std::vector<Piece>>>& ranges, const std::vector<int64_t>& lengths,
                    const char* what);

}  // namespace causalattn::mpi
