/* causalattn_mpi: context-parallel causal attention across the ranks of an MPI communicator,
 * merged exactly through the log-sum-exp. An optional library (target causalattn::mpi) on top of
 * causalattn; C ABI, C99. */
#ifndef CAUSALATTN_CAUSALATTN_MPI_H
#define CAUSALATTN_CAUSALATTN_MPI_H

#include <mpi.h>

#include "causalattn/causalattn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Both calls are collective over comm: every rank calls them in the same order. MPI must be
 * initialized; only the calling thread makes MPI calls (MPI_THREAD_FUNNELED suffices), the
 * kernels run on oneTBB's threads as causalattn_attend does. The library talks on its own
 * duplicate of comm (made at the first call on comm, MPI_Comm_idup, kept as an attribute of comm),
 * so no message of the caller's can match one of ours.
 *
 * Every rank checks its own arguments (causalattn_attend_validate and the checks below), then the
 * ranks exchange what they were given and check that they agree; if any rank found a problem,
 * every rank returns the same status with a message naming the rank and the problem, and writes
 * nothing. Every wait is bounded by timeout_seconds: a rank that does not take part (another call,
 * or none) makes the others return CAUSALATTN_MPI_ERROR_TIMEOUT; comm should then be taken as
 * broken (an MPI operation of ours may still be pending on it).
 *
 * Results are bitwise identical for a given rank count and sharding, whatever the thread counts;
 * across rank counts or shardings they differ by the rounding of the merge (docs/scale-out.md
 * states the bound). */

/* A rank did not answer within timeout_seconds. */
#define CAUSALATTN_MPI_ERROR_TIMEOUT 100

/* Statistics of one call, for benchmarks and tuning (optional). */
typedef struct causalattn_mpi_stats {
  double seconds;         /* the whole call on this rank */
  double compute_seconds; /* in the attention kernels and the merges */
  double wait_seconds;    /* blocked on communication after the computation of a step */
  int64_t bytes_sent;     /* by this rank */
  int32_t steps;          /* ring steps in which this rank computed (prefill) */
} causalattn_mpi_stats;

/* How a rank holds its part of one sequence: at most two pieces of consecutive positions (the
 * second may be empty), both in this rank's tensors one after the other. */
#define CAUSALATTN_MPI_PIECES 2

/* The tokens each rank holds, for ring prefill. Sequence s has seq_lens[s] tokens at positions
 * 0 .. seq_lens[s] - 1; this rank holds pieces p = 0, 1 of it: tokens[2s + p] tokens from position
 * positions[2s + p] (piece 0 before piece 1 when both are non-empty). The ranks' pieces of each
 * sequence must tile it: every position held by exactly one rank. This rank's tensors hold its
 * tokens packed in that order: sequence 0's piece 0, its piece 1, sequence 1's piece 0, ... */
typedef struct causalattn_mpi_shard {
  int64_t sequences;        /* the same on every rank */
  const int64_t* seq_lens;  /* [sequences], the same on every rank */
  const int64_t* positions; /* [sequences][2] */
  const int64_t* tokens;    /* [sequences][2] */
} causalattn_mpi_shard;

/* Standard shardings of a sequence of seq_len tokens over `ranks` ranks, for the shard above. */
typedef enum causalattn_mpi_sharding {
  /* Rank r holds positions [r·L/N, (r+1)·L/N) (rounded down): simple, but under causal masking
   * rank N-1 computes N times what rank 0 does. */
  CAUSALATTN_MPI_CONTIGUOUS = 0,
  /* The sequence cut into 2N chunks the same way; rank r holds chunks r and 2N-1-r ("zigzag"):
   * every rank computes the same causal work, within a chunk's rounding. */
  CAUSALATTN_MPI_ZIGZAG = 1
} causalattn_mpi_sharding;

/* Writes rank's two pieces of a sequence of seq_len tokens under `sharding` into positions[2] and
 * tokens[2]. */
CAUSALATTN_API int causalattn_mpi_shard_pieces(causalattn_mpi_sharding sharding, int64_t seq_len, int32_t ranks,
                                               int32_t rank, int64_t positions[2], int64_t tokens[2]);

/* Ring prefill: attention of every token of a sharded batch of sequences to its sequence's past,
 * each rank computing its own queries.
 *
 * local describes this rank's tensors as one causalattn_attend call would: shape.batch 1,
 * shape.q_len = shape.kv_len = this rank's tokens (the sum of its pieces; 0 allowed, the tensors
 * then unread), q, k, v, out and options.lse ([q_heads][q_len]) over those tokens in the packed order
 * above, any dtypes the core takes, options (flags 0 for causal or CAUSALATTN_NON_CAUSAL; the
 * positions come from the shard), window, sinks, softcap, alibi_slopes, head_dim_v. Not taken here:
 * seq_lens, pages, dropout, workspace, position offsets.
 *
 * K and V shards travel around the ring (rank r sends to r+1) with non-blocking sends and receives
 * that overlap the computation of the shard in hand; a shard is sent on only while a rank further
 * along may see one of its keys (under causal masking, a contiguous shard never travels to the
 * ranks before it), and a (query piece, key piece) pair that no query can see is not computed.
 * Each rank merges its partial results in ring order. */
typedef struct causalattn_mpi_ring_args {
  causalattn_attend_args local;
  causalattn_mpi_shard shard;
  MPI_Comm comm;
  double timeout_seconds;       /* <= 0: 300 */
  causalattn_mpi_stats* stats;  /* NULL, or filled on success */
} causalattn_mpi_ring_args;

CAUSALATTN_API int causalattn_mpi_ring_attend(const causalattn_mpi_ring_args* args);

/* Sharded-cache decode: the KV cache of each sequence is split across the ranks by positions, each
 * rank holding one range of each sequence's keys (contiguous or in its own pages); every rank
 * passes the same queries. Each rank attends the queries to the keys it holds, the ranks exchange
 * their partial (out, LSE) with one all-gather (or gather to root), and each merges them in rank
 * order.
 *
 * local is this rank's causalattn_attend call with CAUSALATTN_EXPLICIT_POSITIONS in its flags: the
 * queries' positions (q_pos_offset or seq_lens->q_pos_offsets, the same on every rank) and this
 * rank's keys (kv_pos_offset or seq_lens->kv_pos_offsets, and the kv lengths). The ranks' key
 * ranges of each sequence must tile positions 0 .. (the end of the last range). Not taken here:
 * dropout, workspace. With root >= 0 only root writes out and options.lse (the others' may be
 * NULL); with root = -1 every rank does. */
typedef struct causalattn_mpi_decode_args {
  causalattn_attend_args local;
  MPI_Comm comm;
  int32_t root;                 /* -1: every rank; else the rank that gets the result */
  double timeout_seconds;       /* <= 0: 300 */
  causalattn_mpi_stats* stats;  /* NULL, or filled on success */
} causalattn_mpi_decode_args;

CAUSALATTN_API int causalattn_mpi_decode_attend(const causalattn_mpi_decode_args* args);

/* This thread's last failure of a causalattn_mpi call as readable text; "" if none has failed. */
CAUSALATTN_API const char* causalattn_mpi_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* CAUSALATTN_CAUSALATTN_MPI_H */
