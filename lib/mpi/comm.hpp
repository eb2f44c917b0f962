// What both causalattn_mpi calls share underneath: their outcome (a status and a message), the
// library's own duplicate of the caller's communicator, and MPI operations whose waits are
// bounded by a deadline.
#pragma once

#include <mpi.h>

#include "causalattn/causalattn.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <new>
#include <string>
#include <vector>

namespace causalattn::mpi {

// A call's outcome: status 0 (CAUSALATTN_OK) or a causalattn_status / CAUSALATTN_MPI_ERROR_*.
struct Result {
  int status = 0;
  std::string message;
  explicit operator bool() const { return status != 0; }
};

// Sets this thread's causalattn_mpi_last_error and returns the status.
int report(const Result& result);

// Runs an entry point's body; an exception becomes CAUSALATTN_ERROR_INTERNAL, never a crash across
// the C ABI.
template <class Body>
int guarded(Body&& body) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return report({CAUSALATTN_ERROR_INTERNAL, "out of memory"});
  } catch (const std::exception& e) {
    return report({CAUSALATTN_ERROR_INTERNAL, std::string("internal error: ") + e.what()});
  }
}

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// When waits give up: timeout_seconds <= 0 means 300 s.
struct Deadline {
  Clock::time_point at;
  double seconds;
  static Deadline after(double timeout_seconds);
};

// The library's duplicate of `user` (MPI_Comm_idup at the first call, then cached as an attribute
// of `user`), with MPI_ERRORS_RETURN. Checks that MPI is initialized and `user` an intracommunicator.
Result library_comm(MPI_Comm user, const Deadline& deadline, MPI_Comm* comm);

// Waits for every request until the deadline; `what` names them in a timeout's message.
Result wait_all(std::vector<MPI_Request>& requests, const Deadline& deadline, const char* what);

// Keeps a buffer of an operation that may still be pending after a timeout alive for the rest of
// the process (leaked on purpose): a late peer must not write into, or read, freed memory.
void abandon(std::vector<std::byte>&& buffer);

// Lets MPI move pending transfers along (Open MPI progresses large messages only inside its
// calls): one MPI_Testall, nothing waited for.
void progress(std::vector<MPI_Request>& requests);

// Every rank's `bytes` bytes of `mine`, in rank order, into `all` (ranks · bytes).
Result allgather(MPI_Comm comm, const void* mine, std::size_t bytes, std::vector<std::byte>* all,
                 const Deadline& deadline, const char* what);

// As allgather, but only `root` receives (`all` is left empty elsewhere).
Result gather(MPI_Comm comm, int root, const void* mine, std::size_t bytes, std::vector<std::byte>* all,
              const Deadline& deadline, const char* what);

// An MPI error code as a Result naming the operation.
Result mpi_failure(int code, const char* what);

}  // namespace causalattn::mpi
