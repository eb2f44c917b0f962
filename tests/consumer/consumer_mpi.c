/* Builds against the installed causalattn_mpi.h as C99 and runs a ring prefill on one rank (MPI's
 * singleton start, no mpirun): every query sees equal scores, so row i averages V rows 0..i. */
#include <causalattn/causalattn_mpi.h>

#include <math.h>
#include <stdio.h>

int main(int argc, char** argv) {
  enum { T = 6, D = 4 };
  float q[T * D], k[T * D], v[T * D], out[T * D];
  int64_t seq_len = T, positions[2], tokens[2];
  causalattn_mpi_ring_args ring = {0};
  int i, status;
  MPI_Init(&argc, &argv);
  for (i = 0; i < T * D; ++i) {
    q[i] = 0.5f;
    k[i] = 0.5f;
    v[i] = (float)(i / D);
  }
  causalattn_mpi_shard_pieces(CAUSALATTN_MPI_ZIGZAG, seq_len, 1, 0, positions, tokens);
  ring.local.shape.batch = 1;
  ring.local.shape.q_heads = ring.local.shape.kv_heads = 1;
  ring.local.shape.q_len = ring.local.shape.kv_len = T;
  ring.local.shape.head_dim = D;
  ring.local.q = q;
  ring.local.k = k;
  ring.local.v = v;
  ring.local.out = out;
  ring.local.q_layout.batch = ring.local.k_layout.batch = ring.local.v_layout.batch = ring.local.out_layout.batch = T * D;
  ring.local.q_layout.head = ring.local.k_layout.head = ring.local.v_layout.head = ring.local.out_layout.head = T * D;
  ring.local.q_layout.token = ring.local.k_layout.token = ring.local.v_layout.token = ring.local.out_layout.token = D;
  ring.shard.sequences = 1;
  ring.shard.seq_lens = &seq_len;
  ring.shard.positions = positions;
  ring.shard.tokens = tokens;
  ring.comm = MPI_COMM_WORLD;
  status = causalattn_mpi_ring_attend(&ring);
  if (status != CAUSALATTN_OK) fprintf(stderr, "%s\n", causalattn_mpi_last_error());
  /* The zigzag pieces of one rank are positions 0..2 and 3..5, packed in that order. */
  for (i = 0; status == CAUSALATTN_OK && i < T; ++i) {
    if (fabsf(out[i * D] - 0.5f * (float)i) > 1e-6f) status = 1;
  }
  MPI_Finalize();
  if (status == CAUSALATTN_OK) printf("MPI consumer: ok\n");
  return status;
}
