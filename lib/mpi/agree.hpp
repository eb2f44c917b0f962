// How the ranks of a call reach one verdict before anything is written: each rank's own checks
// and its scalar arguments go to every rank in one all-gather; then every rank judges the same
// data the same way, so all return the same status (or all go on).
#pragma once

#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "mpi/comm.hpp"

namespace causalattn::mpi {

// A scalar argument that every rank must give alike.
struct Field {
  const char* name;
  int64_t value;
  int status;  // what disagreeing on it returns
};

// One round: `mine` is this rank's own verdict on its arguments. Returns the first failed rank's
// status with "rank R: " and its message, else the first field the ranks disagree on, else OK,
// the same on every rank (communication failing aside).
Result agree(MPI_Comm comm, const Deadline& deadline, const Result& mine, const std::vector<Field>& fields);

// Every rank's `mine` (the same length on every rank), in rank order.
Result exchange(MPI_Comm comm, const Deadline& deadline, const std::vector<int64_t>& mine,
                std::vector<std::vector<int64_t>>* all, const char* what);

// The most query heads a call may give: hash_floats reads that many sinks and slopes of a rank
// before its own checks have read them.
constexpr int64_t kMaxHeads = int64_t{1} << 16;

// FNV-1a over n floats' bits (0 for nullptr): sinks and slopes are compared by this.
int64_t hash_floats(const float* values, int64_t n);

// A float's bits as a field value.
int64_t float_bits(float x);

}  // namespace causalattn::mpi
