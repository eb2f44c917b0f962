// causalattn_mpi_ring_attend: ring prefill. Every rank packs its K and V shard into one block;
// blocks travel rank r -> r+1 one step at a time while each rank attends its query pieces to the
// key pieces of the block in hand (explicit positions: the core's causal mask and window at the
// pieces' absolute positions), merging each piece's partial results in ring order.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <new>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "causalattn/causalattn.h"
#include "causalattn/causalattn_mpi.h"
#include "common/dtype.hpp"
#include "mpi/agree.hpp"
#include "mpi/comm.hpp"
#include "mpi/partials.hpp"
#include "mpi/shard.hpp"

namespace causalattn::mpi {

namespace {

constexpr int64_t kMaxSequences = int64_t{1} << 20;
constexpr std::size_t kMaxMessageBytes = std::size_t{1} << 30;  // a block goes in messages of at most this

// The ring's memory (two K/V blocks, three f32 results of this rank's queries), kept per calling
// thread between calls and grown as needed: faulting in fresh pages took longer than a T = 4096
// ring's transfers.
thread_local std::vector<std::byte> scratch;

// The sizes every rank agrees on, resolved.
struct Sizes {
  int64_t q_heads, kv_heads, head_dim, head_dim_v;
  Dtype q, k, v, out;
  int64_t k_row_units, v_row_units, k_row_bytes, v_row_bytes;
};

Sizes sizes_of(const causalattn_attend_args& a) {
  Sizes z{};
  z.q_heads = a.shape.q_heads;
  z.kv_heads = a.shape.kv_heads;
  z.head_dim = a.shape.head_dim;
  z.head_dim_v = a.head_dim_v != 0 ? a.head_dim_v : a.shape.head_dim;
  z.q = static_cast<Dtype>(raw_dtype(a.q_dtype));
  z.k = static_cast<Dtype>(raw_dtype(a.k_dtype));
  z.v = static_cast<Dtype>(raw_dtype(a.v_dtype));
  z.out = static_cast<Dtype>(raw_dtype(a.out_dtype));
  z.k_row_units = z.head_dim / unit_elements(z.k);
  z.v_row_units = z.head_dim_v / unit_elements(z.v);
  z.k_row_bytes = z.k_row_units * unit_bytes(z.k);
  z.v_row_bytes = z.v_row_units * unit_bytes(z.v);
  return z;
}

// Where K and V of a block of `tokens` tokens lie: [kv_heads][tokens][row] each, V 64-byte aligned.
struct Block {
  int64_t tokens;
  std::size_t v_offset, bytes;
};

Block block_of(const Sizes& z, int64_t tokens) {
  const auto k_bytes = static_cast<std::size_t>(tokens * z.kv_heads * z.k_row_bytes);
  const std::size_t v_offset = (k_bytes + 63) / 64 * 64;
  return {tokens, v_offset, v_offset + static_cast<std::size_t>(tokens * z.kv_heads * z.v_row_bytes)};
}

// This rank's pieces in packed order, from its shard.
std::vector<Piece> pieces_of(const causalattn_mpi_shard& shard, const std::vector<int64_t>& positions,
                             const std::vector<int64_t>& tokens) {
  std::vector<Piece> pieces;
  for (int64_t s = 0; s < shard.sequences; ++s) {
    for (int p = 0; p < CAUSALATTN_MPI_PIECES; ++p) {
      const auto i = static_cast<std::size_t>(s * CAUSALATTN_MPI_PIECES + p);
      pieces.push_back({s, positions[i], tokens[i], 0});
    }
  }
  assign_offsets(&pieces);
  return pieces;
}

// This rank's own checks: what it was given is well formed and its causalattn_attend would run.
Result check_local(const causalattn_mpi_ring_args& a, int64_t* total_tokens) {
  const causalattn_mpi_shard& shard = a.shard;
  const causalattn_attend_args& l = a.local;
  if (shard.sequences < 1 || shard.sequences > kMaxSequences) {
    return {CAUSALATTN_ERROR_INVALID_SHAPE, "shard.sequences must be in [1, 2^20], got " + std::to_string(shard.sequences)};
  }
  if (shard.seq_lens == nullptr || shard.positions == nullptr || shard.tokens == nullptr) {
    return {CAUSALATTN_ERROR_NULL_POINTER, "shard.seq_lens, shard.positions or shard.tokens is NULL"};
  }
  if ((l.options.flags & ~uint32_t{CAUSALATTN_NON_CAUSAL}) != 0) {
    return {CAUSALATTN_ERROR_INVALID_OPTION,
            "local.options.flags may only be 0 or CAUSALATTN_NON_CAUSAL: the shard gives the positions"};
  }
  if (l.seq_lens != nullptr || l.pages != nullptr || l.workspace != nullptr || l.dropout.p != 0.0f ||
      l.q_pos_offset != 0 || l.kv_pos_offset != 0) {
    return {CAUSALATTN_ERROR_UNSUPPORTED,
            "local.seq_lens, pages, workspace, dropout and position offsets are not taken by the ring (the shard "
            "describes the tokens)"};
  }
  int64_t total = 0;
  for (int64_t s = 0; s < shard.sequences; ++s) {
    const int64_t length = shard.seq_lens[s];
    const std::string which = "sequence " + std::to_string(s) + ": ";
    if (length < 0 || length > CAUSALATTN_MAX_TOKENS) {
      return {CAUSALATTN_ERROR_INVALID_SHAPE, which + "seq_len " + std::to_string(length) +
                                                  " is outside [0, CAUSALATTN_MAX_TOKENS]"};
    }
    int64_t previous_end = 0;
    for (int p = 0; p < CAUSALATTN_MPI_PIECES; ++p) {
      const int64_t position = shard.positions[s * 2 + p], tokens = shard.tokens[s * 2 + p];
      if (tokens < 0 || position < 0 || position > length || tokens > length - position) {
        return {CAUSALATTN_ERROR_INVALID_SHAPE, which + "piece " + std::to_string(p) + " (position " +
                                                    std::to_string(position) + ", " + std::to_string(tokens) +
                                                    " tokens) is not inside its " + std::to_string(length) + " tokens"};
      }
      if (tokens > 0 && position < previous_end) {
        return {CAUSALATTN_ERROR_INVALID_SHAPE, which + "piece 1 must come after piece 0"};
      }
      if (tokens > 0) previous_end = position + tokens;
      total += tokens;
    }
  }
  if (l.shape.batch != 1 || l.shape.q_len != total || l.shape.kv_len != total) {
    return {CAUSALATTN_ERROR_INVALID_SHAPE, "local.shape must have batch 1 and q_len = kv_len = this rank's " +
                                                std::to_string(total) + " tokens, got batch " +
                                                std::to_string(l.shape.batch) + ", q_len " +
                                                std::to_string(l.shape.q_len) + ", kv_len " +
                                                std::to_string(l.shape.kv_len)};
  }
  if (l.shape.q_heads < 1 || l.shape.q_heads > kMaxHeads) {
    return {CAUSALATTN_ERROR_INVALID_SHAPE, "local.shape.q_heads must be in [1, 65536]"};
  }
  if (total > 0) {
    if (int status = causalattn_attend_validate(&l)) return {status, causalattn_last_error()};
  }
  *total_tokens = total;
  return {};
}

// The scalars the ranks must give alike. A rank that failed its own checks sends zeros (its
// arguments may not be readable): the round still matches, and its failure is reported first.
std::vector<Field> fields_of(const causalattn_mpi_ring_args& a, bool readable) {
  const causalattn_attend_args& l = a.local;
  const Sizes z = sizes_of(l);
  constexpr int kShape = CAUSALATTN_ERROR_INVALID_SHAPE, kOption = CAUSALATTN_ERROR_INVALID_OPTION;
  std::vector<Field> fields = {{"shard.sequences", a.shard.sequences, kShape},
          {"q_heads", z.q_heads, kShape},
          {"kv_heads", z.kv_heads, kShape},
          {"head_dim", z.head_dim, kShape},
          {"head_dim_v", z.head_dim_v, kShape},
          {"q_dtype", static_cast<int64_t>(z.q), kOption},
          {"k_dtype", static_cast<int64_t>(z.k), kOption},
          {"v_dtype", static_cast<int64_t>(z.v), kOption},
          {"out_dtype", static_cast<int64_t>(z.out), kOption},
          {"options.flags", l.options.flags, kOption},
          {"options.scale (bits)", float_bits(l.options.scale), kOption},
          {"window", l.window, kOption},
          {"softcap (bits)", float_bits(l.softcap), kOption},
          {"sinks (hash)", readable ? hash_floats(l.sinks, l.shape.q_heads) : 0, kOption},
          {"alibi_slopes (hash)", readable ? hash_floats(l.alibi_slopes, l.shape.q_heads) : 0, kOption}};
  if (!readable) {
    for (Field& f : fields) f.value = 0;
  }
  return fields;
}

// The ring's state on this rank.
class Ring {
 public:
  Ring(const causalattn_mpi_ring_args& a, MPI_Comm comm, std::vector<std::vector<Piece>> pieces)
      : a_(a), z_(sizes_of(a.local)), comm_(comm), timeout_(a.timeout_seconds), pieces_(std::move(pieces)),
        causal_((a.local.options.flags & CAUSALATTN_NON_CAUSAL) == 0) {
    MPI_Comm_size(comm, &ranks_);
    MPI_Comm_rank(comm, &rank_);
    for (int j = 0; j < ranks_; ++j) {
      std::vector<bool> row;
      for (int r = 0; r < ranks_; ++r) row.push_back(sees(r, j));
      sees_.push_back(row);
    }
  }

  // Bytes of each rank's block; false if one overflows.
  bool size_blocks() {
    for (int j = 0; j < ranks_; ++j) {
      int64_t tokens = 0;
      for (const Piece& p : pieces_[j]) tokens += p.tokens;
      int64_t bytes = 0;
      if (__builtin_mul_overflow(tokens, z_.kv_heads, &bytes) ||
          __builtin_mul_overflow(bytes, z_.k_row_bytes + z_.v_row_bytes + 1, &bytes) || bytes > (int64_t{1} << 50)) {
        return false;
      }
      blocks_.push_back(block_of(z_, tokens));
    }
    return true;
  }

  // The buffers: two blocks (the one in hand, the one arriving) and each query piece's partials,
  // carved from this thread's scratch.
  void allocate() {
    auto round_up = [](std::size_t bytes) { return (bytes + 63) / 64 * 64; };
    std::size_t largest = 0;
    for (const Block& b : blocks_) largest = std::max(largest, round_up(b.bytes));
    std::size_t bytes = 2 * largest + 64;
    for (const Piece& p : pieces_[rank_]) {
      bytes += 3 * round_up(static_cast<std::size_t>(z_.q_heads * p.tokens * (z_.head_dim_v + 1)) * sizeof(float));
    }
    if (scratch.size() < bytes) scratch.resize(bytes);
    auto* at = reinterpret_cast<std::byte*>((reinterpret_cast<uintptr_t>(scratch.data()) + 63) / 64 * 64);
    for (std::byte*& buffer : buffers_) {
      buffer = at;
      at += largest;
    }
    for (const Piece& p : pieces_[rank_]) {
      PieceResult& state = state_.emplace_back();
      const std::size_t rows = static_cast<std::size_t>(z_.q_heads * p.tokens);
      for (Partial& partial : state.partials) {
        partial.out = reinterpret_cast<float*>(at);
        partial.lse = partial.out + rows * static_cast<std::size_t>(z_.head_dim_v);
        at += round_up(rows * static_cast<std::size_t>(z_.head_dim_v + 1) * sizeof(float));
      }
    }
  }

  // Runs every step. A failed computation (into *failure) stops this rank's computing, not its part
  // in the ring; what is returned is a failure of the communication.
  Result run(causalattn_mpi_stats* stats, Result* failure) {
    pack_own_block();
    for (int t = 0; t < ranks_; ++t) {
      const int held = (rank_ - t + ranks_) % ranks_;
      const bool holds = t == 0 || forwards(held, t - 1);
      std::vector<MPI_Request> requests;
      if (holds && forwards(held, t)) {
        if (Result r = post(buffers_[t % 2], blocks_[held].bytes, (rank_ + 1) % ranks_, true, &requests)) {
          return r;
        }
        bytes_sent_ += static_cast<int64_t>(blocks_[held].bytes);
      }
      const int arriving = (rank_ - 1 - t + 2 * ranks_) % ranks_;
      if (forwards(arriving, t)) {
        if (Result r = post(buffers_[(t + 1) % 2], blocks_[arriving].bytes, (rank_ - 1 + ranks_) % ranks_, false,
                            &requests)) {
          return r;
        }
      }
      const Clock::time_point compute_start = Clock::now();
      if (holds && sees_[held][rank_] && !*failure) {
        *failure = compute(held, buffers_[t % 2], requests);
        ++steps_;
      }
      compute_seconds_ += seconds_since(compute_start);
      const Clock::time_point wait_start = Clock::now();
      if (Result r = wait_all(requests, Deadline::after(timeout_), "a ring step's K/V transfer")) {
        if (r.status == CAUSALATTN_MPI_ERROR_TIMEOUT) {
          abandon(std::move(scratch));  // a late peer may still write into it
          scratch = {};
        }
        return r;
      }
      wait_seconds_ += seconds_since(wait_start);
    }
    if (stats != nullptr) {
      stats->compute_seconds = compute_seconds_;
      stats->wait_seconds = wait_seconds_;
      stats->bytes_sent = bytes_sent_;
      stats->steps = steps_;
    }
    return {};
  }

  // Writes each query piece's merged result (with the sink) to out and options.lse.
  Result write_out() {
    const causalattn_attend_args& l = a_.local;
    const auto out_units = unit_bytes(z_.out);
    for (std::size_t i = 0; i < pieces_[rank_].size(); ++i) {
      const Piece& p = pieces_[rank_][i];
      if (p.tokens == 0) continue;
      PieceResult& state = state_[i];
      std::vector<causalattn_partial> parts = {part_of(state.partials[state.merged], z_.q_heads, p.tokens, z_.head_dim_v)};
      std::vector<float> lse(static_cast<std::size_t>(z_.q_heads * p.tokens));
      std::optional<SinkPart> sink;
      if (l.sinks != nullptr) {
        sink.emplace(l.sinks, z_.q_heads, p.tokens, z_.head_dim_v);
        parts.push_back(sink->part());
      }
      const causalattn_shape shape{1, z_.q_heads, z_.q_heads, p.tokens, p.tokens, z_.head_dim_v};
      void* out = static_cast<std::byte*>(l.out) + p.offset * l.out_layout.token * out_units;
      if (causalattn_merge(&shape, parts.data(), static_cast<int32_t>(parts.size()), out, l.out_layout, l.out_dtype,
                           lse.data()) != CAUSALATTN_OK) {
        return {CAUSALATTN_ERROR_INTERNAL, std::string("merging the output: ") + causalattn_last_error()};
      }
      if (l.options.lse != nullptr) {
        for (int64_t h = 0; h < z_.q_heads; ++h) {
          std::copy_n(lse.data() + h * p.tokens, p.tokens, l.options.lse + h * l.shape.q_len + p.offset);
        }
      }
    }
    return {};
  }

 private:
  // A query piece's partial results: the merged one so far, the step's new one, a spare.
  struct PieceResult {
    Partial partials[3];
    int merged = 0, fresh = 1, spare = 2, count = 0;
  };

  // Whether rank r's queries see a key of rank j's block.
  bool sees(int r, int j) const {
    for (const Piece& q : pieces_[r]) {
      for (const Piece& k : pieces_[j]) {
        if (k.sequence == q.sequence && visible(q, k, causal_, a_.local.window)) return true;
      }
    }
    return false;
  }

  // Whether block j, at step t on rank j + t, goes on to the next rank: a rank still ahead on its
  // way sees one of its keys.
  bool forwards(int j, int t) const {
    for (int u = t + 1; u < ranks_; ++u) {
      if (sees_[j][(j + u) % ranks_]) return true;
    }
    return false;
  }

  // Non-blocking send or receive of a block in messages of at most kMaxMessageBytes.
  Result post(std::byte* data, std::size_t bytes, int peer, bool send, std::vector<MPI_Request>* requests) {
    for (std::size_t offset = 0, tag = 0; offset < bytes; offset += kMaxMessageBytes, ++tag) {
      const int count = static_cast<int>(std::min(kMaxMessageBytes, bytes - offset));
      MPI_Request request;
      const int code = send ? MPI_Isend(data + offset, count, MPI_BYTE, peer, static_cast<int>(tag), comm_, &request)
                            : MPI_Irecv(data + offset, count, MPI_BYTE, peer, static_cast<int>(tag), comm_, &request);
      if (code != MPI_SUCCESS) return mpi_failure(code, send ? "MPI_Isend" : "MPI_Irecv");
      requests->push_back(request);
    }
    return {};
  }

  // This rank's K and V rows, from the caller's layouts into its block.
  void pack_own_block() {
    const causalattn_attend_args& l = a_.local;
    const Block& b = blocks_[rank_];
    std::byte* block = buffers_[0];
    for (int64_t h = 0; h < z_.kv_heads; ++h) {
      for (int64_t t = 0; t < b.tokens; ++t) {
        std::memcpy(block + (h * b.tokens + t) * z_.k_row_bytes,
                    static_cast<const std::byte*>(l.k) + (h * l.k_layout.head + t * l.k_layout.token) * unit_bytes(z_.k),
                    static_cast<std::size_t>(z_.k_row_bytes));
        std::memcpy(block + b.v_offset + (h * b.tokens + t) * z_.v_row_bytes,
                    static_cast<const std::byte*>(l.v) + (h * l.v_layout.head + t * l.v_layout.token) * unit_bytes(z_.v),
                    static_cast<std::size_t>(z_.v_row_bytes));
      }
    }
  }

  // This rank's query pieces against the key pieces of block j (at `block`), one causalattn_attend
  // per (pair, KV head) with MPI progress between them, each pair merged into its query piece.
  Result compute(int j, const std::byte* block, std::vector<MPI_Request>& requests) {
    const causalattn_attend_args& l = a_.local;
    const Block& b = blocks_[j];
    const int64_t group = z_.q_heads / z_.kv_heads;
    for (std::size_t i = 0; i < pieces_[rank_].size(); ++i) {
      const Piece& q = pieces_[rank_][i];
      for (const Piece& k : pieces_[j]) {
        if (k.sequence != q.sequence || !visible(q, k, causal_, l.window)) continue;
        PieceResult& state = state_[i];
        Partial& fresh = state.partials[state.count == 0 ? state.merged : state.fresh];
        for (int64_t g = 0; g < z_.kv_heads; ++g) {
          causalattn_attend_args c{};
          c.shape = {1, group, 1, q.tokens, k.tokens, z_.head_dim};
          c.q = static_cast<const std::byte*>(l.q) +
                (q.offset * l.q_layout.token + g * group * l.q_layout.head) * unit_bytes(z_.q);
          c.q_layout = l.q_layout;
          c.k = block + (g * b.tokens + k.offset) * z_.k_row_bytes;
          c.k_layout = {0, b.tokens * z_.k_row_units, z_.k_row_units};
          c.v = block + b.v_offset + (g * b.tokens + k.offset) * z_.v_row_bytes;
          c.v_layout = {0, b.tokens * z_.v_row_units, z_.v_row_units};
          c.out = fresh.out + g * group * q.tokens * z_.head_dim_v;
          c.out_layout = partial_layout(z_.q_heads, q.tokens, z_.head_dim_v);
          c.options = l.options;
          c.options.flags = CAUSALATTN_EXPLICIT_POSITIONS | (causal_ ? 0u : CAUSALATTN_NON_CAUSAL);
          c.options.lse = fresh.lse + g * group * q.tokens;
          c.window = l.window;
          c.q_dtype = l.q_dtype;
          c.k_dtype = l.k_dtype;
          c.v_dtype = l.v_dtype;
          c.softcap = l.softcap;
          c.alibi_slopes = l.alibi_slopes != nullptr ? l.alibi_slopes + g * group : nullptr;
          c.head_dim_v = z_.head_dim_v;
          c.q_pos_offset = q.position;
          c.kv_pos_offset = k.position;
          // The sink is one more part of the final merge, not of the call that holds position 0.
          if (causalattn_attend(&c) != CAUSALATTN_OK) {
            return {CAUSALATTN_ERROR_INTERNAL, std::string("attending a ring step: ") + causalattn_last_error()};
          }
          progress(requests);
        }
        if (state.count++ == 0) continue;  // the first partial is the merged result so far
        const causalattn_partial parts[2] = {part_of(state.partials[state.merged], z_.q_heads, q.tokens, z_.head_dim_v),
                                             part_of(fresh, z_.q_heads, q.tokens, z_.head_dim_v)};
        Partial& spare = state.partials[state.spare];
        const causalattn_shape shape{1, z_.q_heads, z_.q_heads, q.tokens, q.tokens, z_.head_dim_v};
        if (causalattn_merge(&shape, parts, 2, spare.out, partial_layout(z_.q_heads, q.tokens, z_.head_dim_v),
                             CAUSALATTN_DTYPE_F32, spare.lse) != CAUSALATTN_OK) {
          return {CAUSALATTN_ERROR_INTERNAL, std::string("merging a ring step: ") + causalattn_last_error()};
        }
        std::swap(state.merged, state.spare);
        progress(requests);
      }
    }
    return {};
  }

  const causalattn_mpi_ring_args& a_;
  const Sizes z_;
  MPI_Comm comm_;
  double timeout_;  // of each wait
  int ranks_ = 0, rank_ = 0;
  std::vector<std::vector<Piece>> pieces_;  // [rank] in packed order
  const bool causal_;
  std::vector<std::vector<bool>> sees_;     // [block j][rank r]
  std::vector<Block> blocks_;
  std::byte* buffers_[2] = {nullptr, nullptr};
  std::vector<PieceResult> state_;               // per piece of this rank
  double compute_seconds_ = 0, wait_seconds_ = 0;
  int64_t bytes_sent_ = 0;
  int32_t steps_ = 0;
};

int ring_attend(const causalattn_mpi_ring_args* args) {
  const Clock::time_point start = Clock::now();
  if (args == nullptr) return report({CAUSALATTN_ERROR_NULL_POINTER, "args is NULL"});
  const double timeout = args->timeout_seconds;
  MPI_Comm comm = MPI_COMM_NULL;
  if (Result r = library_comm(args->comm, Deadline::after(timeout), &comm)) return report(r);
  int ranks = 0;
  MPI_Comm_size(comm, &ranks);

  int64_t tokens = 0;
  const Result local = check_local(*args, &tokens);
  if (Result r = agree(comm, Deadline::after(timeout), local, fields_of(*args, !local))) return report(r);

  // Every rank's shard: the sequences' lengths (alike), then its pieces' positions and tokens.
  const causalattn_mpi_shard& shard = args->shard;
  const auto sequences = static_cast<std::size_t>(shard.sequences);
  std::vector<int64_t> mine(shard.seq_lens, shard.seq_lens + sequences);
  mine.insert(mine.end(), shard.positions, shard.positions + 2 * sequences);
  mine.insert(mine.end(), shard.tokens, shard.tokens + 2 * sequences);
  std::vector<std::vector<int64_t>> all;
  if (Result r = exchange(comm, Deadline::after(timeout), mine, &all, "exchanging the shards")) return report(r);
  const std::vector<int64_t> lengths(mine.begin(), mine.begin() + static_cast<std::ptrdiff_t>(sequences));
  std::vector<std::vector<Piece>> pieces;
  std::vector<std::vector<std::vector<Piece>>> ranges(static_cast<std::size_t>(ranks));
  int64_t all_tokens = 0;
  for (int r = 0; r < ranks; ++r) {
    const std::vector<int64_t>& theirs = all[static_cast<std::size_t>(r)];
    for (std::size_t s = 0; s < sequences; ++s) {
      if (theirs[s] != lengths[s]) {
        return report({CAUSALATTN_ERROR_INVALID_SHAPE, "ranks disagree on shard.seq_lens[" + std::to_string(s) +
                                                           "]: rank " + std::to_string(r) + " has " +
                                                           std::to_string(theirs[s]) + ", this rank " +
                                                           std::to_string(lengths[s])});
      }
    }
    pieces.push_back(pieces_of(shard, std::vector<int64_t>(theirs.begin() + sequences, theirs.begin() + 3 * sequences),
                               std::vector<int64_t>(theirs.begin() + 3 * sequences, theirs.end())));
    ranges[static_cast<std::size_t>(r)].resize(sequences);
    for (const Piece& p : pieces.back()) {
      ranges[static_cast<std::size_t>(r)][static_cast<std::size_t>(p.sequence)].push_back(p);
      all_tokens += p.tokens;
    }
  }
  if (Result r = check_tiling(ranges, lengths, "piece")) return report(r);
  if (all_tokens == 0) return CAUSALATTN_OK;  // every sequence is empty

  Ring ring(*args, comm, std::move(pieces));
  if (!ring.size_blocks()) {
    return report({CAUSALATTN_ERROR_INVALID_SHAPE, "a rank's K/V block overflows (tokens · kv_heads · row bytes)"});
  }
  Result allocated;
  try {
    ring.allocate();
  } catch (const std::bad_alloc&) {
    allocated = {CAUSALATTN_ERROR_INTERNAL, "out of memory for the ring's buffers"};
  }
  if (Result r = agree(comm, Deadline::after(timeout), allocated, {})) return report(r);

  Result computed;
  if (Result r = ring.run(args->stats, &computed)) return report(r);
  if (Result r = agree(comm, Deadline::after(timeout), computed, {})) return report(r);
  if (Result r = ring.write_out()) return report(r);
  if (args->stats != nullptr) args->stats->seconds = seconds_since(start);
  return CAUSALATTN_OK;
}

}  // namespace

}  // namespace causalattn::mpi

extern "C" int causalattn_mpi_ring_attend(const causalattn_mpi_ring_args* args) {
  return causalattn::mpi::guarded([&] { return causalattn::mpi::ring_attend(args); });
}
