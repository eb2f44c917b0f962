// causalattn_mpi_decode_attend: sharded-cache decode. Each rank attends the (same) queries to its
// range of each sequence's keys into f32 partials, compacts them per sequence, and the ranks
// all-gather (or gather to root) them; each result rank merges the N partials and the sink in rank
// order into out.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <new>
#include <optional>
#include <string>
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


// Sequence s's query rows: the batch and first token they have in q, out and the LSE, and how many.
struct QueryRows {
  int64_t batch, token, count;
};

QueryRows rows_of(const causalattn_attend_args& a, int64_t s) {
  const causalattn_seq_lens* l = a.seq_lens;
  if (l != nullptr && l->cu_q_lens != nullptr) return {0, l->cu_q_lens[s], l->cu_q_lens[s + 1] - l->cu_q_lens[s]};
  if (l != nullptr && l->q_lens != nullptr) return {s, 0, l->q_lens[s]};
  return {s, 0, a.shape.q_len};
}

int64_t kv_len_of(const causalattn_attend_args& a, int64_t s) {
  const causalattn_seq_lens* l = a.seq_lens;
  if (l != nullptr && l->cu_kv_lens != nullptr) return l->cu_kv_lens[s + 1] - l->cu_kv_lens[s];
  if (l != nullptr && l->kv_lens != nullptr) return l->kv_lens[s];
  return a.shape.kv_len;
}

int64_t q_pos_of(const causalattn_attend_args& a, int64_t s) {
  return a.seq_lens != nullptr && a.seq_lens->q_pos_offsets != nullptr ? a.seq_lens->q_pos_offsets[s] : a.q_pos_offset;
}

int64_t kv_pos_of(const causalattn_attend_args& a, int64_t s) {
  return a.seq_lens != nullptr && a.seq_lens->kv_pos_offsets != nullptr ? a.seq_lens->kv_pos_offsets[s]
                                                                         : a.kv_pos_offset;
}

// How the queries are laid out: 0 one length, 1 padded (q_lens), 2 packed (cu_q_lens).
int64_t query_form(const causalattn_attend_args& a) {
  if (a.seq_lens == nullptr) return 0;
  return a.seq_lens->cu_q_lens != nullptr ? 2 : a.seq_lens->q_lens != nullptr ? 1 : 0;
}

// The call this rank runs: the caller's, into f32 scratch and without the sink.
struct LocalCall {
  causalattn_attend_args args;
  std::vector<float> out, lse;
  int64_t out_batches, heads, rows, dim;  // scratch out is [out_batches][heads][rows][dim]

  explicit LocalCall(const causalattn_attend_args& a)
      : args(a), out_batches(query_form(a) == 2 ? 1 : a.shape.batch), heads(a.shape.q_heads), rows(a.shape.q_len),
        dim(a.head_dim_v != 0 ? a.head_dim_v : a.shape.head_dim) {
    out.assign(static_cast<std::size_t>(out_batches * heads * rows * dim), 0.0f);
    lse.assign(static_cast<std::size_t>(out_batches * heads * rows), 0.0f);
    args.out = out.data();
    args.out_layout = {heads * rows * dim, rows * dim, dim};
    args.out_dtype = CAUSALATTN_DTYPE_F32;
    args.options.lse = lse.data();
    args.sinks = nullptr;  // one more part of the merge instead
  }
};

// This rank's checks, then its partial: what it was given is well formed, its attention runs.
Result check_and_compute(const causalattn_mpi_decode_args& a, int rank, int ranks, std::optional<LocalCall>* call) {
  const causalattn_attend_args& l = a.local;
  if (a.root < -1 || a.root >= ranks) {
    return {CAUSALATTN_ERROR_INVALID_OPTION, "root " + std::to_string(a.root) + " is not -1 or a rank of comm"};
  }
  if ((l.options.flags & CAUSALATTN_EXPLICIT_POSITIONS) == 0) {
    return {CAUSALATTN_ERROR_INVALID_OPTION,
            "local.options.flags needs CAUSALATTN_EXPLICIT_POSITIONS: the positions of the queries and of this rank's "
            "keys"};
  }
  if (l.dropout.p != 0.0f || l.workspace != nullptr) {
    return {CAUSALATTN_ERROR_UNSUPPORTED, "local.dropout and local.workspace are not taken by the sharded decode"};
  }
  if (l.shape.q_heads < 1 || l.shape.q_heads > kMaxHeads) {
    return {CAUSALATTN_ERROR_INVALID_SHAPE, "local.shape.q_heads must be in [1, 65536]"};
  }
  // The shape and options first (nothing read through a tensor pointer), so the scratch is sized
  // from checked numbers.
  size_t bytes = 0;
  if (int status = causalattn_attend_workspace_size(&l, &bytes)) return {status, causalattn_last_error()};
  const bool result_rank = a.root < 0 || a.root == rank;
  if (result_rank) {
    if (int status = causalattn_attend_validate(&l)) return {status, causalattn_last_error()};
  }
  try {
    call->emplace(l);
  } catch (const std::bad_alloc&) {
    return {CAUSALATTN_ERROR_INTERNAL, "out of memory for the partial results"};
  }
  if (int status = causalattn_attend(&(*call)->args)) return {status, causalattn_last_error()};
  return {};
}

std::vector<Field> fields_of(const causalattn_mpi_decode_args& a, bool readable) {
  const causalattn_attend_args& l = a.local;
  constexpr int kShape = CAUSALATTN_ERROR_INVALID_SHAPE, kOption = CAUSALATTN_ERROR_INVALID_OPTION;
  std::vector<Field> fields = {
      {"batch", l.shape.batch, kShape},
      {"q_heads", l.shape.q_heads, kShape},
      {"kv_heads", l.shape.kv_heads, kShape},
      {"q_len", l.shape.q_len, kShape},
      {"head_dim", l.shape.head_dim, kShape},
      {"head_dim_v", l.head_dim_v != 0 ? l.head_dim_v : l.shape.head_dim, kShape},
      {"the queries' form (one length, q_lens, cu_q_lens)", readable ? query_form(l) : 0, kShape},
      {"q_dtype", raw_dtype(l.q_dtype), kOption},
      {"k_dtype", raw_dtype(l.k_dtype), kOption},
      {"v_dtype", raw_dtype(l.v_dtype), kOption},
      {"out_dtype", raw_dtype(l.out_dtype), kOption},
      {"options.flags", l.options.flags, kOption},
      {"options.scale (bits)", float_bits(l.options.scale), kOption},
      {"window", l.window, kOption},
      {"softcap (bits)", float_bits(l.softcap), kOption},
      {"sinks (hash)", readable ? hash_floats(l.sinks, l.shape.q_heads) : 0, kOption},
      {"alibi_slopes (hash)", readable ? hash_floats(l.alibi_slopes, l.shape.q_heads) : 0, kOption},
      {"root", a.root, kOption}};
  if (!readable) {
    for (Field& f : fields) f.value = 0;
  }
  return fields;
}

int decode_attend(const causalattn_mpi_decode_args* args) {
  const Clock::time_point start = Clock::now();
  if (args == nullptr) return report({CAUSALATTN_ERROR_NULL_POINTER, "args is NULL"});
  const double timeout = args->timeout_seconds;
  MPI_Comm comm = MPI_COMM_NULL;
  if (Result r = library_comm(args->comm, Deadline::after(timeout), &comm)) return report(r);
  int ranks = 0, rank = 0;
  MPI_Comm_size(comm, &ranks);
  MPI_Comm_rank(comm, &rank);
  const causalattn_attend_args& l = args->local;

  std::optional<LocalCall> call;
  const Clock::time_point compute_start = Clock::now();
  const Result local = check_and_compute(*args, rank, ranks, &call);
  const double compute_seconds = seconds_since(compute_start);
  if (Result r = agree(comm, Deadline::after(timeout), local, fields_of(*args, !local))) return report(r);

  // Per sequence: its query count and position (alike on every rank), this rank's keys.
  const int64_t sequences = l.shape.batch;
  std::vector<int64_t> mine;
  for (int64_t s = 0; s < sequences; ++s) {
    mine.insert(mine.end(), {rows_of(l, s).count, q_pos_of(l, s), kv_pos_of(l, s), kv_len_of(l, s)});
  }
  std::vector<std::vector<int64_t>> all;
  if (Result r = exchange(comm, Deadline::after(timeout), mine, &all, "exchanging the key ranges")) return report(r);
  std::vector<std::vector<std::vector<Piece>>> ranges(static_cast<std::size_t>(ranks));
  for (int r = 0; r < ranks; ++r) {
    for (int64_t s = 0; s < sequences; ++s) {
      const int64_t* theirs = all[static_cast<std::size_t>(r)].data() + 4 * s;
      for (int i = 0; i < 2; ++i) {
        if (theirs[i] != mine[static_cast<std::size_t>(4 * s + i)]) {
          return report({CAUSALATTN_ERROR_INVALID_SHAPE,
                         std::string("ranks disagree on sequence ") + std::to_string(s) + "'s " +
                             (i == 0 ? "query count" : "query position") + ": rank " + std::to_string(r) + " has " +
                             std::to_string(theirs[i]) + ", this rank " + std::to_string(mine[4 * s + i])});
        }
      }
      ranges[static_cast<std::size_t>(r)].push_back({{s, theirs[2], theirs[3], 0}});
    }
  }
  if (Result r = check_tiling(ranges, {}, "key range")) return report(r);

  // The partial compacted per sequence: [s][q_heads][rows][dim] outputs, then [s][q_heads][rows] LSEs.
  const LocalCall& c = *call;
  std::vector<int64_t> first_row(static_cast<std::size_t>(sequences) + 1, 0);  // in units of (head, row)
  for (int64_t s = 0; s < sequences; ++s) first_row[s + 1] = first_row[s] + c.heads * rows_of(l, s).count;
  const int64_t rows = first_row.back();
  std::vector<float> compact(static_cast<std::size_t>(rows * (c.dim + 1)));
  float* compact_lse = compact.data() + rows * c.dim;
  for (int64_t s = 0; s < sequences; ++s) {
    const QueryRows q = rows_of(l, s);
    for (int64_t h = 0; h < c.heads; ++h) {
      const int64_t from = (q.batch * c.heads + h) * c.rows + q.token, to = first_row[s] + h * q.count;
      std::copy_n(c.out.data() + from * c.dim, q.count * c.dim, compact.data() + to * c.dim);
      std::copy_n(c.lse.data() + from, q.count, compact_lse + to);
    }
  }
  std::vector<std::byte> gathered;
  const Clock::time_point wait_start = Clock::now();
  if (Result r = gather(comm, args->root, compact.data(), compact.size() * sizeof(float), &gathered,
                        Deadline::after(timeout), "gathering the partial results")) {
    return report(r);
  }
  const double wait_seconds = seconds_since(wait_start);

  // Each sequence's N partials (and the sink) merged in rank order into out.
  const Clock::time_point merge_start = Clock::now();
  if (args->root < 0 || args->root == rank) {
    const auto* parts_data = reinterpret_cast<const float*>(gathered.data());
    const auto out_units = unit_bytes(static_cast<Dtype>(raw_dtype(l.out_dtype)));
    for (int64_t s = 0; s < sequences; ++s) {
      const QueryRows q = rows_of(l, s);
      if (q.count == 0) continue;
      std::vector<causalattn_partial> parts;
      for (int r = 0; r < ranks; ++r) {
        const float* theirs = parts_data + static_cast<int64_t>(r) * rows * (c.dim + 1);
        parts.push_back({theirs + first_row[s] * c.dim, partial_layout(c.heads, q.count, c.dim),
                         theirs + rows * c.dim + first_row[s], CAUSALATTN_DTYPE_F32});
      }
      std::optional<SinkPart> sink;
      if (l.sinks != nullptr) {
        sink.emplace(l.sinks, c.heads, q.count, c.dim);
        parts.push_back(sink->part());
      }
      std::vector<float> lse(static_cast<std::size_t>(c.heads * q.count));
      const causalattn_shape shape{1, c.heads, c.heads, q.count, q.count, c.dim};
      void* out = static_cast<std::byte*>(l.out) + (q.batch * l.out_layout.batch + q.token * l.out_layout.token) * out_units;
      if (causalattn_merge(&shape, parts.data(), static_cast<int32_t>(parts.size()), out, l.out_layout, l.out_dtype,
                           lse.data()) != CAUSALATTN_OK) {
        return report({CAUSALATTN_ERROR_INTERNAL, std::string("merging the partial results: ") + causalattn_last_error()});
      }
      if (l.options.lse != nullptr) {
        for (int64_t h = 0; h < c.heads; ++h) {
          std::copy_n(lse.data() + h * q.count, q.count, l.options.lse + (q.batch * c.heads + h) * c.rows + q.token);
        }
      }
    }
  }
  if (args->stats != nullptr) {
    *args->stats = {seconds_since(start), compute_seconds + seconds_since(merge_start), wait_seconds,
                    static_cast<int64_t>(compact.size() * sizeof(float)), 0};
  }
  return CAUSALATTN_OK;
}

}  // namespace

}  // namespace causalattn::mpi

extern "C" int causalattn_mpi_decode_attend(const causalattn_mpi_decode_args* args) {
  return causalattn::mpi::guarded([&] { return causalattn::mpi::decode_attend(args); });
}
