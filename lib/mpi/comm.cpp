#include "mpi/comm.hpp"

#include <climits>
#include <mutex>
#include <thread>

#include "causalattn/causalattn.h"
#include "causalattn/causalattn_mpi.h"

namespace causalattn::mpi {

namespace {

thread_local std::string last_error_message;

// The keyval under which a communicator keeps our duplicate of it.
int dup_keyval = MPI_KEYVAL_INVALID;
std::mutex dup_keyval_mutex;

std::mutex abandoned_mutex;
std::vector<std::vector<std::byte>>* abandoned = nullptr;

int free_dup(MPI_Comm, int, void* attribute, void*) {
  auto* dup = static_cast<MPI_Comm*>(attribute);
  MPI_Comm_free(dup);
  delete dup;
  return MPI_SUCCESS;
}

}  // namespace

int report(const Result& result) {
  last_error_message = result.message;
  return result.status;
}

Deadline Deadline::after(double timeout_seconds) {
  const double seconds = timeout_seconds > 0 ? timeout_seconds : 300.0;
  const auto span = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  return Deadline{Clock::now() + span, seconds};
}

Result mpi_failure(int code, const char* what) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) length = 0;
  return {CAUSALATTN_ERROR_INTERNAL, std::string(what) + " failed: " + std::string(text, length)};
}

Result wait_all(std::vector<MPI_Request>& requests, const Deadline& deadline, const char* what) {
  // Poll, yielding the core between polls: transports that copy through shared-memory FIFOs or
  // sockets move a message a fragment per poll, so sleeping here would stretch every transfer,
  // while a yield still leaves the core to a peer process that shares it.
  for (;;) {
    int done = 0;
    const int code = MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done, MPI_STATUSES_IGNORE);
    if (code != MPI_SUCCESS) return mpi_failure(code, what);
    if (done) return {};
    if (Clock::now() > deadline.at) {
      return {CAUSALATTN_MPI_ERROR_TIMEOUT, std::string(what) + ": no answer within " +
                                                std::to_string(deadline.seconds) +
                                                " s (a rank not in this call?); the communicator may be broken now"};
    }
    std::this_thread::yield();
  }
}

void abandon(std::vector<std::byte>&& buffer) {
  std::lock_guard<std::mutex> lock(abandoned_mutex);
  if (abandoned == nullptr) abandoned = new std::vector<std::vector<std::byte>>();
  abandoned->push_back(std::move(buffer));
}

void progress(std::vector<MPI_Request>& requests) {
  int done = 0;
  MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done, MPI_STATUSES_IGNORE);
}

Result library_comm(MPI_Comm user, const Deadline& deadline, MPI_Comm* comm) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) return {CAUSALATTN_ERROR_UNSUPPORTED, "MPI is not initialized (or already finalized)"};
  if (user == MPI_COMM_NULL) return {CAUSALATTN_ERROR_INVALID_OPTION, "comm is MPI_COMM_NULL"};
  int inter = 0;
  if (int code = MPI_Comm_test_inter(user, &inter)) return mpi_failure(code, "MPI_Comm_test_inter");
  if (inter) return {CAUSALATTN_ERROR_UNSUPPORTED, "comm is an intercommunicator"};
  {
    std::lock_guard<std::mutex> lock(dup_keyval_mutex);
    if (dup_keyval == MPI_KEYVAL_INVALID) {
      if (int code = MPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, free_dup, &dup_keyval, nullptr)) {
        return mpi_failure(code, "MPI_Comm_create_keyval");
      }
    }
  }
  void* attribute = nullptr;
  int found = 0;
  if (int code = MPI_Comm_get_attr(user, dup_keyval, &attribute, &found)) return mpi_failure(code, "MPI_Comm_get_attr");
  if (found) {
    *comm = *static_cast<MPI_Comm*>(attribute);
    return {};
  }
  MPI_Comm dup = MPI_COMM_NULL;
  std::vector<MPI_Request> request(1);
  if (int code = MPI_Comm_idup(user, &dup, request.data())) return mpi_failure(code, "MPI_Comm_idup");
  if (Result r = wait_all(request, deadline, "duplicating the communicator")) return r;
  MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN);
  if (int code = MPI_Comm_set_attr(user, dup_keyval, new MPI_Comm(dup))) return mpi_failure(code, "MPI_Comm_set_attr");
  *comm = dup;
  return {};
}

namespace {

Result collect(MPI_Comm comm, int root, const void* mine, std::size_t bytes, std::vector<std::byte>* all,
               const Deadline& deadline, const char* what) {
  if (bytes > static_cast<std::size_t>(INT_MAX)) {
    return {CAUSALATTN_ERROR_UNSUPPORTED, std::string(what) + ": " + std::to_string(bytes) +
                                              " bytes per rank, more than one MPI message of bytes holds"};
  }
  int ranks = 0, rank = 0;
  MPI_Comm_size(comm, &ranks);
  MPI_Comm_rank(comm, &rank);
  const bool receives = root < 0 || rank == root;
  all->assign(receives ? bytes * static_cast<std::size_t>(ranks) : 0, std::byte{0});
  // Our own copy of what is sent, so that both buffers can outlive a timeout (abandon).
  std::vector<std::byte> sent(static_cast<const std::byte*>(mine), static_cast<const std::byte*>(mine) + bytes);
  std::vector<MPI_Request> request(1);
  const int count = static_cast<int>(bytes);
  const int code = root < 0 ? MPI_Iallgather(sent.data(), count, MPI_BYTE, all->data(), count, MPI_BYTE, comm,
                                             request.data())
                            : MPI_Igather(sent.data(), count, MPI_BYTE, all->data(), count, MPI_BYTE, root, comm,
                                          request.data());
  if (code != MPI_SUCCESS) return mpi_failure(code, what);
  Result waited = wait_all(request, deadline, what);
  if (waited.status == CAUSALATTN_MPI_ERROR_TIMEOUT) {
    abandon(std::move(sent));
    abandon(std::move(*all));
    all->clear();
  }
  return waited;
}

}  // namespace

Result allgather(MPI_Comm comm, const void* mine, std::size_t bytes, std::vector<std::byte>* all,
                 const Deadline& deadline, const char* what) {
  return collect(comm, -1, mine, bytes, all, deadline, what);
}

Result gather(MPI_Comm comm, int root, const void* mine, std::size_t bytes, std::vector<std::byte>* all,
              const Deadline& deadline, const char* what) {
  return collect(comm, root, mine, bytes, all, deadline, what);
}

}  // namespace causalattn::mpi

extern "C" const char* causalattn_mpi_last_error(void) {
  return causalattn::mpi::last_error_message.c_str();
}
