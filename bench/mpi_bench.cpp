// causalattn_mpi against one process on the same cores, in one run: N ranks × 1 thread (ring
// prefill, or sharded-cache decode) against rank 0 alone with N threads (the others asleep in a
// non-blocking barrier), repetitions interleaved; and the ring's communication alone (the same
// transfers, nothing computed), to tell how much of it the computation hides.
// Run under mpirun; rank 0 prints one JSON object per line:
//   mpirun -np 2 bench/causalattn_mpi_bench [--mode ring|decode] [--tokens T] [--dim D]
//       [--heads H] [--kv-heads H] [--sharding zigzag|contiguous] [--reps R]
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "causalattn/causalattn.h"
#include "causalattn/causalattn_mpi.h"

namespace {

int rank = 0, ranks = 1;

struct Options {
  std::string mode = "ring", sharding = "zigzag";
  int64_t tokens = 16384, dim = 128, heads = 8, kv_heads = 0;
  int reps = 3;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    if (key == "--mode") o.mode = value;
    else if (key == "--sharding") o.sharding = value;
    else if (key == "--tokens") o.tokens = std::atoll(value.c_str());
    else if (key == "--dim") o.dim = std::atoll(value.c_str());
    else if (key == "--heads") o.heads = std::atoll(value.c_str());
    else if (key == "--kv-heads") o.kv_heads = std::atoll(value.c_str());
    else if (key == "--reps") o.reps = std::atoi(value.c_str());
  }
  if (o.kv_heads == 0) o.kv_heads = o.heads;
  return o;
}

void check(int status, const char* what) {
  if (status != 0) {
    std::fprintf(stderr, "rank %d: %s failed: %s %s\n", rank, what, causalattn_last_error(), causalattn_mpi_last_error());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
}

std::vector<float> random_values(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> x(static_cast<size_t>(n));
  for (float& e : x) e = normal(rng);
  return x;
}

// Every rank but 0 sleeps until rank 0 has run `body` alone, so that rank 0 has the cores.
template <class Body>
double alone_on_rank_0(Body body) {
  double seconds = 0;
  if (rank == 0) {
    const double start = MPI_Wtime();
    body();
    seconds = MPI_Wtime() - start;
  }
  MPI_Request request;
  MPI_Ibarrier(MPI_COMM_WORLD, &request);
  for (int done = 0; !done;) {
    MPI_Test(&request, &done, MPI_STATUS_IGNORE);
    if (!done) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return seconds;
}

// A causalattn_attend call on contiguous [heads][tokens][D] tensors.
causalattn_attend_args contiguous_call(const causalattn_shape& shape, const float* q, const float* k, const float* v,
                                       float* out) {
  causalattn_attend_args a{};
  a.shape = shape;
  a.q = q;
  a.q_layout = {shape.q_heads * shape.q_len * shape.head_dim, shape.q_len * shape.head_dim, shape.head_dim};
  a.k = k;
  a.k_layout = {shape.kv_heads * shape.kv_len * shape.head_dim, shape.kv_len * shape.head_dim, shape.head_dim};
  a.v = v;
  a.v_layout = a.k_layout;
  a.out = out;
  a.out_layout = a.q_layout;
  return a;
}

double max_over_ranks(double x) {
  double m = 0;
  MPI_Allreduce(&x, &m, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return m;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double best(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

void ring(const Options& o) {
  const int64_t T = o.tokens, D = o.dim, H = o.heads, Hkv = o.kv_heads;
  const causalattn_mpi_sharding sharding = o.sharding == "contiguous" ? CAUSALATTN_MPI_CONTIGUOUS : CAUSALATTN_MPI_ZIGZAG;
  int64_t positions[2], tokens[2];
  check(causalattn_mpi_shard_pieces(sharding, T, ranks, rank, positions, tokens), "shard");
  const int64_t n = tokens[0] + tokens[1];
  // This rank's shard (values need not be those of one sequence: only the time is measured).
  std::vector<float> q = random_values(H * n * D, 1 + rank), k = random_values(Hkv * n * D, 100 + rank),
                     v = random_values(Hkv * n * D, 200 + rank), out(static_cast<size_t>(H * n * D));
  causalattn_mpi_ring_args a{};
  a.local = contiguous_call({1, H, Hkv, n, n, D}, q.data(), k.data(), v.data(), out.data());
  a.local.options.num_threads = 1;
  const int64_t seq_len = T;
  a.shard = {1, &seq_len, positions, tokens};
  a.comm = MPI_COMM_WORLD;
  causalattn_mpi_stats stats{};
  a.stats = &stats;

  // The whole sequence in one process with `ranks` threads, on rank 0.
  std::vector<float> all_q, all_k, all_v, all_out;
  if (rank == 0) {
    all_q = random_values(H * T * D, 7);
    all_k = random_values(Hkv * T * D, 8);
    all_v = random_values(Hkv * T * D, 9);
    all_out.resize(static_cast<size_t>(H * T * D));
  }
  causalattn_attend_args whole =
      contiguous_call({1, H, Hkv, T, T, D}, all_q.data(), all_k.data(), all_v.data(), all_out.data());
  whole.options.num_threads = ranks;

  // The ring's transfers alone: ranks - 1 steps of the largest block (K and V of a shard), each
  // rank sending to the next and receiving from the previous.
  int64_t largest = 0;
  for (int r = 0; r < ranks; ++r) {
    int64_t p[2], t[2];
    check(causalattn_mpi_shard_pieces(sharding, T, ranks, r, p, t), "shard");
    largest = std::max(largest, t[0] + t[1]);
  }
  const size_t block_bytes = static_cast<size_t>(largest * Hkv * D * 2) * sizeof(float);
  std::vector<char> send(block_bytes, 1), receive(block_bytes);
  auto transfers_alone = [&] {
    MPI_Barrier(MPI_COMM_WORLD);
    const double start = MPI_Wtime();
    for (int step = 0; step + 1 < ranks; ++step) {
      for (size_t offset = 0; offset < block_bytes; offset += size_t{1} << 30) {
        const int count = static_cast<int>(std::min(size_t{1} << 30, block_bytes - offset));
        MPI_Sendrecv(send.data() + offset, count, MPI_BYTE, (rank + 1) % ranks, 0, receive.data() + offset, count,
                     MPI_BYTE, (rank - 1 + ranks) % ranks, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      }
    }
    return max_over_ranks(MPI_Wtime() - start);
  };

  std::vector<double> single, ringed, compute, wait, alone, hidden;
  for (int rep = 0; rep < o.reps; ++rep) {
    single.push_back(max_over_ranks(alone_on_rank_0([&] { check(causalattn_attend(&whole), "single call"); })));
    MPI_Barrier(MPI_COMM_WORLD);
    check(causalattn_mpi_ring_attend(&a), "ring");
    ringed.push_back(max_over_ranks(stats.seconds));
    compute.push_back(max_over_ranks(stats.compute_seconds));
    const double waited = max_over_ranks(stats.wait_seconds);
    wait.push_back(waited);
    alone.push_back(transfers_alone());
    hidden.push_back(ranks > 1 ? std::clamp(1.0 - waited / alone.back(), 0.0, 1.0) : 1.0);
  }
  const double flops = 2.0 * static_cast<double>(D) * static_cast<double>(T) * static_cast<double>(T + 1) * H;
  if (rank == 0) {
    std::printf("{\"mode\": \"ring\", \"ranks\": %d, \"sharding\": \"%s\", \"tokens\": %lld, \"dim\": %lld, \"heads\": %lld, "
                "\"kv_heads\": %lld, \"isa\": \"%s\", \"single_seconds\": %.4f, \"single_best\": %.4f, "
                "\"ring_seconds\": %.4f, \"ring_best\": %.4f, \"ring_vs_single\": %.3f, \"compute_seconds\": %.4f, "
                "\"wait_seconds\": %.4f, \"transfers_alone_seconds\": %.4f, \"hidden_share\": %.3f, "
                "\"block_bytes\": %zu, \"single_gflops\": %.1f, \"ring_gflops\": %.1f}\n",
                ranks, o.sharding.c_str(), static_cast<long long>(T), static_cast<long long>(D),
                static_cast<long long>(H), static_cast<long long>(Hkv), causalattn_isa(), median(single), best(single),
                median(ringed), best(ringed), median(ringed) / median(single), median(compute), median(wait),
                median(alone), median(hidden), block_bytes, flops / median(single) * 1e-9, flops / median(ringed) * 1e-9);
  }
}

void decode(const Options& o) {
  const int64_t Tk = o.tokens, D = o.dim, H = o.heads, Hkv = o.kv_heads;
  const int64_t first = Tk * rank / ranks, count = Tk * (rank + 1) / ranks - first;
  std::vector<float> q = random_values(H * D, 5), k = random_values(Hkv * count * D, 10 + rank),
                     v = random_values(Hkv * count * D, 20 + rank), out(static_cast<size_t>(H * D));
  causalattn_mpi_decode_args a{};
  a.local = contiguous_call({1, H, Hkv, 1, count, D}, q.data(), k.data(), v.data(), out.data());
  a.local.options.flags = CAUSALATTN_EXPLICIT_POSITIONS;
  a.local.options.num_threads = 1;
  a.local.q_pos_offset = Tk - 1;
  a.local.kv_pos_offset = first;
  a.comm = MPI_COMM_WORLD;
  a.root = -1;
  causalattn_mpi_stats stats{};
  a.stats = &stats;

  std::vector<float> all_k, all_v;
  if (rank == 0) {
    all_k = random_values(Hkv * Tk * D, 30);
    all_v = random_values(Hkv * Tk * D, 40);
  }
  causalattn_attend_args whole = contiguous_call({1, H, Hkv, 1, Tk, D}, q.data(), all_k.data(), all_v.data(), out.data());
  whole.options.num_threads = ranks;

  constexpr int kSteps = 20;  // decode steps per repetition: the median step is reported
  std::vector<double> single, sharded, wait;
  for (int rep = 0; rep < o.reps; ++rep) {
    for (int step = 0; step < kSteps; ++step) {
      single.push_back(max_over_ranks(alone_on_rank_0([&] { check(causalattn_attend(&whole), "single call"); })));
    }
    for (int step = 0; step < kSteps; ++step) {
      MPI_Barrier(MPI_COMM_WORLD);
      check(causalattn_mpi_decode_attend(&a), "decode");
      sharded.push_back(max_over_ranks(stats.seconds));
      wait.push_back(max_over_ranks(stats.wait_seconds));
    }
  }
  if (rank == 0) {
    std::printf("{\"mode\": \"decode\", \"ranks\": %d, \"kv_len\": %lld, \"dim\": %lld, \"heads\": %lld, \"kv_heads\": %lld, "
                "\"isa\": \"%s\", \"single_ms\": %.3f, \"sharded_ms\": %.3f, \"sharded_vs_single\": %.3f, "
                "\"gather_wait_ms\": %.3f, \"partial_bytes_per_rank\": %lld}\n",
                ranks, static_cast<long long>(Tk), static_cast<long long>(D), static_cast<long long>(H),
                static_cast<long long>(Hkv), causalattn_isa(), median(single) * 1e3, median(sharded) * 1e3,
                median(sharded) / median(single), median(wait) * 1e3, static_cast<long long>(stats.bytes_sent));
  }
}

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  const Options o = parse(argc, argv);
  if (o.mode == "decode") {
    decode(o);
  } else {
    ring(o);
  }
  MPI_Finalize();
  return 0;
}
