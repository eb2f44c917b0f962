#include "mpi/agree.hpp"

#include <algorithm>
#include <cstring>

namespace causalattn::mpi {

namespace {

// A rank's entry in the round: its status, the start of its message, then its fields.
constexpr std::size_t kMessageBytes = 256;

struct Entry {
  int64_t status;
  char message[kMessageBytes];
};

}  // namespace

Result agree(MPI_Comm comm, const Deadline& deadline, const Result& mine, const std::vector<Field>& fields) {
  const std::size_t bytes = sizeof(Entry) + fields.size() * sizeof(int64_t);
  std::vector<std::byte> entry(bytes, std::byte{0});
  Entry head{};
  head.status = mine.status;
  std::memcpy(head.message, mine.message.data(), std::min(mine.message.size(), kMessageBytes - 1));
  std::memcpy(entry.data(), &head, sizeof head);
  for (std::size_t f = 0; f < fields.size(); ++f) {
    std::memcpy(entry.data() + sizeof(Entry) + f * sizeof(int64_t), &fields[f].value, sizeof(int64_t));
  }
  std::vector<std::byte> all;
  if (Result r = allgather(comm, entry.data(), bytes, &all, deadline, "exchanging the arguments")) return r;
  const int ranks = static_cast<int>(all.size() / bytes);
  auto entry_of = [&](int r) {
    Entry e{};
    std::memcpy(&e, all.data() + static_cast<std::size_t>(r) * bytes, sizeof e);
    e.message[kMessageBytes - 1] = '\0';
    return e;
  };
  for (int r = 0; r < ranks; ++r) {
    const Entry e = entry_of(r);
    if (e.status != 0) return {static_cast<int>(e.status), "rank " + std::to_string(r) + ": " + e.message};
  }
  auto field_of = [&](int r, std::size_t f) {
    int64_t v;
    std::memcpy(&v, all.data() + static_cast<std::size_t>(r) * bytes + sizeof(Entry) + f * sizeof(int64_t), sizeof v);
    return v;
  };
  for (std::size_t f = 0; f < fields.size(); ++f) {
    for (int r = 1; r < ranks; ++r) {
      if (field_of(r, f) != field_of(0, f)) {
        return {fields[f].status, std::string("ranks disagree on ") + fields[f].name + ": rank 0 has " +
                                      std::to_string(field_of(0, f)) + ", rank " + std::to_string(r) + " has " +
                                      std::to_string(field_of(r, f))};
      }
    }
  }
  return {};
}

Result exchange(MPI_Comm comm, const Deadline& deadline, const std::vector<int64_t>& mine,
                std::vector<std::vector<int64_t>>* all, const char* what) {
  std::vector<std::byte> bytes;
  if (Result r = allgather(comm, mine.data(), mine.size() * sizeof(int64_t), &bytes, deadline, what)) return r;
  const std::size_t ranks = mine.empty() ? 0 : bytes.size() / (mine.size() * sizeof(int64_t));
  all->assign(ranks, std::vector<int64_t>(mine.size()));
  for (std::size_t r = 0; r < ranks; ++r) {
    std::memcpy((*all)[r].data(), bytes.data() + r * mine.size() * sizeof(int64_t), mine.size() * sizeof(int64_t));
  }
  return {};
}

int64_t hash_floats(const float* values, int64_t n) {
  if (values == nullptr) return 0;
  uint64_t h = 14695981039346656037ull;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, &values[i], sizeof bits);
    for (int b = 0; b < 4; ++b) {
      h ^= (bits >> (8 * b)) & 0xffu;
      h *= 1099511628211ull;
    }
  }
  return static_cast<int64_t>(h | 1);  // never 0, which stands for "none"
}

int64_t float_bits(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return bits;
}

}  // namespace causalattn::mpi
