// causalattn_mpi under mpirun -np 1, 2, 3, 4 (tests/CMakeLists.txt): ring prefill and sharded-cache
// decode against the double reference and against the single-process call on the same data (every
// rank builds the whole problem from one seed), bitwise identical for 1 and 2 threads; bad input
// refused on every rank with the same status, outputs untouched; a rank that does not take part
// makes the others time out instead of hang. Every test is collective: all ranks run them in order.
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "attention_tester.hpp"
#include "causalattn/causalattn.h"
#include "causalattn/causalattn_mpi.h"
#include "reference/reference.hpp"

namespace causalattn::testing {
namespace {

int g_rank = 0, g_ranks = 1;
constexpr double kTimeout = 120.0;
constexpr float kSentinel = -777.0f;

int64_t row_units(causalattn_dtype t, int64_t dim) { return t == CAUSALATTN_DTYPE_Q8_0 ? dim / 32 : dim; }
int64_t unit_size(causalattn_dtype t) {
  return t == CAUSALATTN_DTYPE_F32 ? 4 : t == CAUSALATTN_DTYPE_Q8_0 ? 34 : 2;
}

// f32 values stored as `t` (contiguous rows of `dim`), and back: what a tensor of that dtype holds.
std::vector<std::byte> encode(const std::vector<float>& x, causalattn_dtype t) {
  std::vector<std::byte> bytes(x.size() / (t == CAUSALATTN_DTYPE_Q8_0 ? 32 : 1) * static_cast<size_t>(unit_size(t)) + 64);
  if (!x.empty()) {
    EXPECT_EQ(causalattn_convert(x.data(), CAUSALATTN_DTYPE_F32, bytes.data(), t, static_cast<int64_t>(x.size())), 0);
  }
  return bytes;
}
std::vector<float> decode(const std::vector<std::byte>& bytes, causalattn_dtype t, size_t n) {
  std::vector<float> x(n);
  if (n > 0) {
    EXPECT_EQ(causalattn_convert(bytes.data(), t, x.data(), CAUSALATTN_DTYPE_F32, static_cast<int64_t>(n)), 0);
  }
  return x;
}
std::vector<float> round_through(const std::vector<float>& x, causalattn_dtype t) {
  return t == CAUSALATTN_DTYPE_F32 ? x : decode(encode(x, t), t, x.size());
}

// A batch of sequences, the same on every rank: sequence s's Q [Hq][L][D], K [Hkv][L][D],
// V [Hkv][L][Dv], values already rounded through their dtypes.
struct Batch {
  int64_t Hq = 4, Hkv = 2, D = 64, Dv = 64;
  std::vector<int64_t> lens;
  causalattn_dtype q_t = CAUSALATTN_DTYPE_F32, k_t = CAUSALATTN_DTYPE_F32, v_t = CAUSALATTN_DTYPE_F32,
                   out_t = CAUSALATTN_DTYPE_F32;
  bool causal = true;
  int64_t window = 0;
  bool sinks = false, alibi = false;
  float softcap = 0.0f;
  std::vector<std::vector<float>> q, k, v;
  std::vector<float> sink_values, slopes;

  void make(uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal;
    auto fill = [&](int64_t n, causalattn_dtype t) {
      std::vector<float> x(static_cast<size_t>(n));
      for (float& e : x) e = normal(rng);
      return round_through(x, t);
    };
    for (int64_t L : lens) {
      q.push_back(fill(Hq * L * D, q_t));
      k.push_back(fill(Hkv * L * D, k_t));
      v.push_back(fill(Hkv * L * Dv, v_t));
    }
    for (int64_t h = 0; h < Hq; ++h) {
      sink_values.push_back(0.5f * static_cast<float>(h) - 0.25f);
      slopes.push_back(std::ldexp(1.0f, -2 * static_cast<int>(h + 1)));
    }
  }

  void set_variants(causalattn_attend_args* a) const {
    a->shape.q_heads = Hq;
    a->shape.kv_heads = Hkv;
    a->shape.head_dim = D;
    a->head_dim_v = Dv;
    a->q_dtype = q_t;
    a->k_dtype = k_t;
    a->v_dtype = v_t;
    a->out_dtype = out_t;
    a->options.flags = causal ? 0u : CAUSALATTN_NON_CAUSAL;
    a->window = window;
    a->sinks = sinks ? sink_values.data() : nullptr;
    a->alibi_slopes = alibi ? slopes.data() : nullptr;
    a->softcap = softcap;
  }

  // The double reference of sequence s's last `queries` queries over all its keys.
  reference::Result reference(size_t s, int64_t queries) const {
    const int64_t L = lens[s];
    reference::Variant r;
    r.causal = causal;
    r.window = window;
    r.sinks = sinks ? sink_values.data() : nullptr;
    r.softcap = softcap;
    r.alibi_slopes = alibi ? slopes.data() : nullptr;
    r.head_dim_v = Dv;
    return reference::attention({1, Hq, Hkv, queries, L, D}, q[s].data() + (L - queries) * D, {Hq * L * D, L * D, D},
                                k[s].data(), {Hkv * L * D, L * D, D}, v[s].data(), {Hkv * L * Dv, L * Dv, Dv}, r);
  }

  // Sequence s in one single-process causalattn_attend (f32 out): the result the ranks must match.
  void single_call(size_t s, std::vector<float>* out, std::vector<float>* lse) const {
    const int64_t L = lens[s];
    causalattn_attend_args a{};
    set_variants(&a);
    a.shape.batch = 1;
    a.shape.q_len = a.shape.kv_len = L;
    a.q_dtype = a.k_dtype = a.v_dtype = a.out_dtype = CAUSALATTN_DTYPE_F32;
    a.q = q[s].data();
    a.q_layout = {Hq * L * D, L * D, D};
    a.k = k[s].data();
    a.k_layout = {Hkv * L * D, L * D, D};
    a.v = v[s].data();
    a.v_layout = {Hkv * L * Dv, L * Dv, Dv};
    out->assign(static_cast<size_t>(Hq * L * Dv), 0.0f);
    lse->assign(static_cast<size_t>(Hq * L), 0.0f);
    a.out = out->data();
    a.out_layout = {Hq * L * Dv, L * Dv, Dv};
    a.options.lse = lse->data();
    ASSERT_EQ(causalattn_attend(&a), 0) << causalattn_last_error();
  }

  double v_max() const {
    double m = 0;
    for (const auto& x : v)
      for (float e : x) m = std::max(m, static_cast<double>(std::fabs(e)));
    return m;
  }
};

// A rank's pieces of every sequence, packed in the shard's order.
struct Shard {
  std::vector<int64_t> positions, tokens;
  int64_t total = 0;
};

Shard standard_shard(const Batch& b, causalattn_mpi_sharding sharding) {
  Shard sh;
  for (int64_t L : b.lens) {
    int64_t pos[2], tok[2];
    EXPECT_EQ(causalattn_mpi_shard_pieces(sharding, L, g_ranks, g_rank, pos, tok), 0) << causalattn_mpi_last_error();
    for (int p = 0; p < 2; ++p) {
      sh.positions.push_back(pos[p]);
      sh.tokens.push_back(tok[p]);
      sh.total += tok[p];
    }
  }
  return sh;
}

// Cut points of one sequence of L tokens among the ranks given as fractions; rank r gets [cut r, cut r+1).
Shard custom_shard(const Batch& b, const std::vector<double>& fractions) {
  Shard sh;
  for (int64_t L : b.lens) {
    std::vector<int64_t> cuts = {0};
    for (int r = 1; r < g_ranks; ++r) cuts.push_back(static_cast<int64_t>(fractions[static_cast<size_t>(r - 1) % fractions.size()] * L));
    cuts.push_back(L);
    std::sort(cuts.begin(), cuts.end());
    sh.positions.insert(sh.positions.end(), {cuts[g_rank], cuts[g_rank + 1]});
    sh.tokens.insert(sh.tokens.end(), {cuts[g_rank + 1] - cuts[g_rank], 0});
    sh.total += cuts[g_rank + 1] - cuts[g_rank];
  }
  return sh;
}

// This rank's tensors for a ring call: its tokens packed, Q and out [Hq][tokens][D] or interleaved
// [tokens][Hq][D], K and V [Hkv][tokens][D].
struct RingTensors {
  std::vector<std::byte> q, k, v, out;
  std::vector<float> lse;
  causalattn_layout q_layout, k_layout, v_layout, out_layout;
  int64_t tokens;
};

RingTensors ring_tensors(const Batch& b, const Shard& sh, bool interleaved) {
  const int64_t n = sh.total;
  std::vector<float> q(static_cast<size_t>(b.Hq * n * b.D)), k(static_cast<size_t>(b.Hkv * n * b.D)),
      v(static_cast<size_t>(b.Hkv * n * b.Dv));
  int64_t offset = 0;
  for (size_t s = 0; s < b.lens.size(); ++s) {
    const int64_t L = b.lens[s];
    for (int p = 0; p < 2; ++p) {
      const int64_t pos = sh.positions[2 * s + p], tok = sh.tokens[2 * s + p];
      for (int64_t t = 0; t < tok; ++t) {
        for (int64_t h = 0; h < b.Hq; ++h) {
          const int64_t row = interleaved ? (offset + t) * b.Hq + h : h * n + offset + t;
          std::copy_n(b.q[s].data() + (h * L + pos + t) * b.D, b.D, q.data() + row * b.D);
        }
        for (int64_t h = 0; h < b.Hkv; ++h) {
          std::copy_n(b.k[s].data() + (h * L + pos + t) * b.D, b.D, k.data() + (h * n + offset + t) * b.D);
          std::copy_n(b.v[s].data() + (h * L + pos + t) * b.Dv, b.Dv, v.data() + (h * n + offset + t) * b.Dv);
        }
      }
      offset += tok;
    }
  }
  RingTensors r;
  r.tokens = n;
  r.q = encode(q, b.q_t);
  r.k = encode(k, b.k_t);
  r.v = encode(v, b.v_t);
  const int64_t qu = row_units(b.q_t, b.D), ku = row_units(b.k_t, b.D), vu = row_units(b.v_t, b.Dv), ou = b.Dv;
  r.q_layout = interleaved ? causalattn_layout{n * b.Hq * qu, qu, b.Hq * qu} : causalattn_layout{b.Hq * n * qu, n * qu, qu};
  r.k_layout = {b.Hkv * n * ku, n * ku, ku};
  r.v_layout = {b.Hkv * n * vu, n * vu, vu};
  r.out_layout = interleaved ? causalattn_layout{n * b.Hq * ou, ou, b.Hq * ou} : causalattn_layout{b.Hq * n * ou, n * ou, ou};
  r.out.assign(static_cast<size_t>(b.Hq * n * b.Dv * unit_size(b.out_t)) + 64, std::byte{0});
  r.lse.assign(static_cast<size_t>(b.Hq * n), kSentinel);
  return r;
}

causalattn_mpi_ring_args ring_args(const Batch& b, const Shard& sh, RingTensors* t, int threads,
                                   MPI_Comm comm = MPI_COMM_WORLD) {
  causalattn_mpi_ring_args a{};
  b.set_variants(&a.local);
  a.local.shape.batch = 1;
  a.local.shape.q_len = a.local.shape.kv_len = t->tokens;
  a.local.q = t->q.data();
  a.local.q_layout = t->q_layout;
  a.local.k = t->k.data();
  a.local.k_layout = t->k_layout;
  a.local.v = t->v.data();
  a.local.v_layout = t->v_layout;
  a.local.out = t->out.data();
  a.local.out_layout = t->out_layout;
  a.local.options.lse = t->lse.data();
  a.local.options.num_threads = threads;
  a.shard = {static_cast<int64_t>(b.lens.size()), b.lens.data(), sh.positions.data(), sh.tokens.data()};
  a.comm = comm;
  a.timeout_seconds = kTimeout;
  return a;
}

// The out of a rank's ring call as f32, [tokens][Hq][Dv] read through its layout.
float out_at(const Batch& b, const RingTensors& t, int64_t token, int64_t h, int64_t d) {
  const int64_t index = token * t.out_layout.token + h * t.out_layout.head + d;
  const std::byte* at = t.out.data() + index * unit_size(b.out_t);
  float x = 0;
  EXPECT_EQ(causalattn_convert(at, b.out_t, &x, CAUSALATTN_DTYPE_F32, 1), 0);
  return x;
}

// 16-bit outputs: the f32 result rounded once more.
double out_rounding(causalattn_dtype t) {
  return t == CAUSALATTN_DTYPE_BF16 ? std::ldexp(1.0, -8) : t == CAUSALATTN_DTYPE_F16 ? std::ldexp(1.0, -11) : 0.0;
}

struct RingCase {
  const char* name;
  Batch batch;
  int sharding;  // 0 contiguous, 1 zigzag, 2 custom cuts (uneven, some ranks empty)
  bool interleaved = false;
};

// Runs one case with 1 and 2 threads (bits equal), checks every token this rank holds against the
// reference and the single-process call.
void check_ring(RingCase c) {
  SCOPED_TRACE(c.name);
  Batch& b = c.batch;
  b.make(1234);
  const Shard sh = c.sharding == 2 ? custom_shard(b, {0.0, 0.37, 0.37, 0.9}) :
                                     standard_shard(b, c.sharding == 1 ? CAUSALATTN_MPI_ZIGZAG : CAUSALATTN_MPI_CONTIGUOUS);
  RingTensors one = ring_tensors(b, sh, c.interleaved), two = ring_tensors(b, sh, c.interleaved);
  causalattn_mpi_stats stats{};
  causalattn_mpi_ring_args a1 = ring_args(b, sh, &one, 1), a2 = ring_args(b, sh, &two, 2);
  a1.stats = &stats;
  ASSERT_EQ(causalattn_mpi_ring_attend(&a1), 0) << causalattn_mpi_last_error();
  ASSERT_EQ(causalattn_mpi_ring_attend(&a2), 0) << causalattn_mpi_last_error();
  EXPECT_EQ(std::memcmp(one.out.data(), two.out.data(), one.out.size()), 0) << "bits differ across thread counts";
  EXPECT_TRUE(std::equal(one.lse.begin(), one.lse.end(), two.lse.begin(), [](float x, float y) {
    return std::memcmp(&x, &y, sizeof x) == 0;
  }));
  EXPECT_GE(stats.seconds, stats.compute_seconds);

  const double v_max = b.v_max();
  double worst_single = 0;
  int64_t offset = 0;
  for (size_t s = 0; s < b.lens.size(); ++s) {
    const int64_t L = b.lens[s];
    if (L == 0) continue;
    const reference::Result ref = b.reference(s, L);
    Tolerance tol = tolerance_for(b.v[s], ref);
    tol.out += out_rounding(b.out_t) * v_max;
    std::vector<float> single, single_lse;
    b.single_call(s, &single, &single_lse);
    for (int p = 0; p < 2; ++p) {
      const int64_t pos = sh.positions[2 * s + p], tok = sh.tokens[2 * s + p];
      for (int64_t t = 0; t < tok; ++t) {
        for (int64_t h = 0; h < b.Hq; ++h) {
          const int64_t row = h * L + pos + t;
          const float lse = one.lse[static_cast<size_t>(h * one.tokens + offset + t)];
          ASSERT_TRUE(matches(lse, ref.lse[row], tol.lse_factor * (1 + std::fabs(ref.lse[row]))))
              << "sequence " << s << " position " << pos + t << " head " << h << ": lse " << lse << " vs " << ref.lse[row];
          for (int64_t d = 0; d < b.Dv; ++d) {
            const float got = out_at(b, one, offset + t, h, d);
            ASSERT_TRUE(matches(got, ref.out[row * b.Dv + d], tol.out))
                << "sequence " << s << " position " << pos + t << " head " << h << " dim " << d << ": " << got
                << " vs " << ref.out[row * b.Dv + d];
            if (b.out_t == CAUSALATTN_DTYPE_F32) {
              worst_single = std::max(worst_single, static_cast<double>(std::fabs(got - single[row * b.Dv + d])));
            }
          }
        }
      }
      offset += tok;
    }
  }
  // The ring against one call: only the merge's rounding apart (docs/scale-out.md).
  EXPECT_LE(worst_single, std::ldexp(1.0, -20) * v_max * g_ranks) << "ring vs single-process call";
  if (g_ranks == 1 && c.sharding == 0 && !b.sinks && b.out_t == CAUSALATTN_DTYPE_F32) {
    EXPECT_EQ(worst_single, 0.0) << "one rank, one piece: the single call's bits";
  }
  double global_worst = 0;
  MPI_Allreduce(&worst_single, &global_worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  if (g_rank == 0) std::printf("  [%s] ring vs single call: max |diff| = %.3g (%.3g of max|v|)\n", c.name, global_worst, global_worst / v_max);
}

Batch batch_of(std::vector<int64_t> lens) {
  Batch b;
  b.lens = std::move(lens);
  return b;
}

TEST(MpiRing, CausalContiguous) { check_ring({"causal contiguous", batch_of({700}), 0}); }
TEST(MpiRing, CausalZigzag) { check_ring({"causal zigzag", batch_of({700}), 1}); }
TEST(MpiRing, Window) {
  Batch b = batch_of({900});
  b.window = 150;
  check_ring({"window zigzag", b, 1});
  check_ring({"window contiguous", b, 0});
}
TEST(MpiRing, GroupedQueryAttention) {
  Batch b = batch_of({513});
  b.Hq = 8;
  b.Hkv = 2;
  check_ring({"gqa 8/2 zigzag", b, 1, true});
}
TEST(MpiRing, NonCausal) {
  Batch b = batch_of({400});
  b.causal = false;
  check_ring({"non-causal", b, 0});
}
TEST(MpiRing, VarlenBatch) {
  check_ring({"varlen zigzag", batch_of({300, 1, 517, 0, 64}), 1});
  check_ring({"varlen contiguous", batch_of({300, 1, 517, 0, 64}), 0});
}
TEST(MpiRing, OddShardsAndEmptyRanks) { check_ring({"uneven cuts, empty ranks", batch_of({611, 5}), 2}); }
TEST(MpiRing, ModelVariants) {
  Batch b = batch_of({480});
  b.sinks = b.alibi = true;
  b.softcap = 8.0f;
  b.Dv = 48;
  check_ring({"sinks alibi softcap dv48", b, 1});
}
TEST(MpiRing, Dtypes) {
  Batch b = batch_of({333});
  b.q_t = b.k_t = b.v_t = b.out_t = CAUSALATTN_DTYPE_BF16;
  check_ring({"bf16", b, 1, true});
  Batch c = batch_of({333});
  c.k_t = CAUSALATTN_DTYPE_F16;
  c.v_t = CAUSALATTN_DTYPE_Q8_0;
  check_ring({"f16 K, q8_0 V", c, 0});
}

// ---- Sharded-cache decode ----

struct DecodeCase {
  const char* name;
  Batch batch;
  int64_t queries = 1;
  int root = -1;
  bool paged = false;
};

// Rank r's key range of a sequence of L keys: uneven cuts, some ranks empty.
std::pair<int64_t, int64_t> key_range(int64_t L, int rank, int ranks) {
  std::vector<int64_t> cuts = {0};
  const double fractions[] = {0.5, 0.5, 0.8};
  for (int r = 1; r < ranks; ++r) cuts.push_back(static_cast<int64_t>(fractions[(r - 1) % 3] * L));
  cuts.push_back(L);
  std::sort(cuts.begin(), cuts.end());
  return {cuts[rank], cuts[rank + 1] - cuts[rank]};
}

struct DecodeTensors {
  std::vector<float> q, k, v, out, lse;
  std::vector<int64_t> kv_lens, q_pos, kv_pos;
  std::vector<int32_t> block_table;
  causalattn_seq_lens lens{};
  causalattn_kv_pages pages{};
};

void check_decode(DecodeCase c) {
  SCOPED_TRACE(c.name);
  Batch& b = c.batch;
  b.make(99);
  const int64_t B = static_cast<int64_t>(b.lens.size()), T = c.queries, D = b.D, Dv = b.Dv;
  int64_t longest = 1;
  for (size_t s = 0; s < b.lens.size(); ++s) longest = std::max(longest, key_range(b.lens[s], g_rank, g_ranks).second);
  constexpr int64_t kPage = 16;
  const int64_t pages_per_seq = (longest + kPage - 1) / kPage;
  auto run = [&](int threads, DecodeTensors* t) {
    t->q.assign(static_cast<size_t>(B * b.Hq * T * D), 0.0f);
    const int64_t kv_tokens = c.paged ? kPage : longest;
    const int64_t kv_batches = c.paged ? B * pages_per_seq : B;
    t->k.assign(static_cast<size_t>(kv_batches * b.Hkv * kv_tokens * D), 0.0f);
    t->v.assign(static_cast<size_t>(kv_batches * b.Hkv * kv_tokens * Dv), 0.0f);
    t->out.assign(static_cast<size_t>(B * b.Hq * T * Dv), kSentinel);
    t->lse.assign(static_cast<size_t>(B * b.Hq * T), kSentinel);
    t->kv_lens.clear();
    t->q_pos.clear();
    t->kv_pos.clear();
    t->block_table.assign(static_cast<size_t>(B * pages_per_seq), 0);
    // Pages in a shuffled order: sequence s's page i lives in page slot perm[s * pages + i].
    std::vector<int32_t> perm(static_cast<size_t>(B * pages_per_seq));
    for (size_t i = 0; i < perm.size(); ++i) perm[i] = static_cast<int32_t>(i);
    std::shuffle(perm.begin(), perm.end(), std::mt19937(5));
    for (int64_t s = 0; s < B; ++s) {
      const int64_t L = b.lens[s];
      const auto [first, count] = key_range(L, g_rank, g_ranks);
      t->kv_lens.push_back(count);
      t->q_pos.push_back(L - T);
      t->kv_pos.push_back(first);
      for (int64_t h = 0; h < b.Hq; ++h) {
        std::copy_n(b.q[s].data() + (h * L + L - T) * D, T * D, t->q.data() + ((s * b.Hq + h) * T) * D);
      }
      for (int64_t i = 0; i < pages_per_seq; ++i) t->block_table[s * pages_per_seq + i] = perm[s * pages_per_seq + i];
      for (int64_t j = 0; j < count; ++j) {
        const int64_t batch = c.paged ? t->block_table[s * pages_per_seq + j / kPage] : s;
        const int64_t slot = c.paged ? j % kPage : j;
        for (int64_t h = 0; h < b.Hkv; ++h) {
          std::copy_n(b.k[s].data() + (h * L + first + j) * D, D, t->k.data() + ((batch * b.Hkv + h) * kv_tokens + slot) * D);
          std::copy_n(b.v[s].data() + (h * L + first + j) * Dv, Dv,
                      t->v.data() + ((batch * b.Hkv + h) * kv_tokens + slot) * Dv);
        }
      }
    }
    causalattn_mpi_decode_args a{};
    b.set_variants(&a.local);
    a.local.q_dtype = a.local.k_dtype = a.local.v_dtype = a.local.out_dtype = CAUSALATTN_DTYPE_F32;
    a.local.options.flags |= CAUSALATTN_EXPLICIT_POSITIONS;
    a.local.options.num_threads = threads;
    a.local.shape.batch = B;
    a.local.shape.q_len = T;
    a.local.shape.kv_len = kv_tokens;
    a.local.q = t->q.data();
    a.local.q_layout = {b.Hq * T * D, T * D, D};
    a.local.k = t->k.data();
    a.local.k_layout = {b.Hkv * kv_tokens * D, kv_tokens * D, D};
    a.local.v = t->v.data();
    a.local.v_layout = {b.Hkv * kv_tokens * Dv, kv_tokens * Dv, Dv};
    const bool result_rank = c.root < 0 || c.root == g_rank;
    a.local.out = result_rank ? t->out.data() : nullptr;
    a.local.out_layout = {b.Hq * T * Dv, T * Dv, Dv};
    a.local.options.lse = result_rank ? t->lse.data() : nullptr;
    t->lens = {};
    t->lens.kv_lens = t->kv_lens.data();
    t->lens.q_pos_offsets = t->q_pos.data();
    t->lens.kv_pos_offsets = t->kv_pos.data();
    a.local.seq_lens = &t->lens;
    if (c.paged) {
      t->pages = {t->block_table.data(), pages_per_seq, kPage, B * pages_per_seq};
      a.local.pages = &t->pages;
    }
    a.comm = MPI_COMM_WORLD;
    a.root = c.root;
    a.timeout_seconds = kTimeout;
    return causalattn_mpi_decode_attend(&a);
  };
  DecodeTensors one, two;
  ASSERT_EQ(run(1, &one), 0) << causalattn_mpi_last_error();
  ASSERT_EQ(run(2, &two), 0) << causalattn_mpi_last_error();
  if (c.root >= 0 && c.root != g_rank) {
    for (float x : one.out) ASSERT_EQ(x, kSentinel);
    return;
  }
  EXPECT_EQ(std::memcmp(one.out.data(), two.out.data(), one.out.size() * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(one.lse.data(), two.lse.data(), one.lse.size() * sizeof(float)), 0);
  for (int64_t s = 0; s < B; ++s) {
    const reference::Result ref = b.reference(static_cast<size_t>(s), T);
    const Tolerance tol = tolerance_for(b.v[s], ref);
    for (int64_t h = 0; h < b.Hq; ++h) {
      for (int64_t i = 0; i < T; ++i) {
        const int64_t row = h * T + i;
        const float lse = one.lse[(s * b.Hq + h) * T + i];
        ASSERT_TRUE(matches(lse, ref.lse[row], tol.lse_factor * (1 + std::fabs(ref.lse[row]))))
            << "sequence " << s << " head " << h << " query " << i << ": " << lse << " vs " << ref.lse[row];
        for (int64_t d = 0; d < Dv; ++d) {
          const float got = one.out[((s * b.Hq + h) * T + i) * Dv + d];
          ASSERT_TRUE(matches(got, ref.out[row * Dv + d], tol.out))
              << "sequence " << s << " head " << h << " query " << i << " dim " << d;
        }
      }
    }
  }
}

TEST(MpiDecode, OneQueryEveryRank) {
  Batch b = batch_of({1000, 37, 2048});
  b.Hq = 8;
  b.Hkv = 2;
  check_decode({"gqa, 3 sequences", b});
}
TEST(MpiDecode, ToRoot) { check_decode({"to root 0", batch_of({777, 64}), 1, 0}); }
TEST(MpiDecode, PagedWithVariants) {
  Batch b = batch_of({900, 130});
  b.sinks = b.alibi = true;
  b.softcap = 10.0f;
  b.window = 300;
  check_decode({"paged, sinks, alibi, softcap, window, 3 queries", b, 3, -1, true});
}

// ---- Bad input: every rank the same status, outputs untouched; nobody hangs ----

// Runs a ring call whose shard `change_shard` and arguments `change_args` break (on the ranks they
// choose; the tensors follow the shard); every rank must get `status` and a message containing
// `words`, and write nothing.
template <class ChangeShard, class ChangeArgs>
void expect_ring_refused(int status, const std::string& words, ChangeShard change_shard, ChangeArgs change_args) {
  Batch b = batch_of({200});
  b.make(3);
  Shard sh = standard_shard(b, CAUSALATTN_MPI_ZIGZAG);
  change_shard(&sh);
  RingTensors t = ring_tensors(b, sh, false);
  std::fill(t.out.begin(), t.out.end(), std::byte{0x5a});
  causalattn_mpi_ring_args a = ring_args(b, sh, &t, 1);
  change_args(&a);
  EXPECT_EQ(causalattn_mpi_ring_attend(&a), status) << causalattn_mpi_last_error();
  EXPECT_NE(std::string(causalattn_mpi_last_error()).find(words), std::string::npos)
      << "message: " << causalattn_mpi_last_error();
  for (std::byte x : t.out) ASSERT_EQ(x, std::byte{0x5a});
  for (float x : t.lse) ASSERT_EQ(x, kSentinel);
}

template <class ChangeArgs>
void expect_ring_refused(int status, const std::string& words, ChangeArgs change_args) {
  expect_ring_refused(status, words, [](Shard*) {}, change_args);
}

bool is_last() { return g_rank == g_ranks - 1; }

TEST(MpiErrors, ShardsThatDoNotTile) {
  // The last rank drops its last token: a position nobody holds.
  expect_ring_refused(CAUSALATTN_ERROR_INVALID_SHAPE, "in no rank's piece", [](Shard* sh) {
    if (!is_last()) return;
    const int p = sh->tokens[1] > 0 ? 1 : 0;
    sh->tokens[p] -= 1;
    sh->total -= 1;
  }, [](causalattn_mpi_ring_args*) {});
  if (g_ranks < 2) return;
  // Rank 1 takes one token of rank 0's first chunk too.
  expect_ring_refused(CAUSALATTN_ERROR_INVALID_SHAPE, "and of rank 1", [](Shard* sh) {
    if (g_rank != 1) return;
    sh->positions[0] -= 1;
    sh->tokens[0] += 1;
    sh->total += 1;
  }, [](causalattn_mpi_ring_args*) {});
}

TEST(MpiErrors, RanksDisagree) {
  if (g_ranks < 2) GTEST_SKIP() << "needs two ranks";
  expect_ring_refused(CAUSALATTN_ERROR_INVALID_SHAPE, "ranks disagree on q_heads", [](causalattn_mpi_ring_args* a) {
    if (is_last()) a->local.shape.q_heads = 2;
  });
  expect_ring_refused(CAUSALATTN_ERROR_INVALID_OPTION, "ranks disagree on window", [](causalattn_mpi_ring_args* a) {
    if (is_last()) a->local.window = 5;
  });
}

TEST(MpiErrors, DtypeMismatch) {
  if (g_ranks < 2) GTEST_SKIP() << "needs two ranks";
  expect_ring_refused(CAUSALATTN_ERROR_INVALID_OPTION, "ranks disagree on k_dtype", [](causalattn_mpi_ring_args* a) {
    if (is_last()) a->local.k_dtype = CAUSALATTN_DTYPE_F16;  // (its bytes would be read as f16: caught first)
  });
}

TEST(MpiErrors, OneRanksOwnProblemReachesEveryRank) {
  const std::string rank = "rank " + std::to_string(g_ranks - 1) + ": ";
  expect_ring_refused(CAUSALATTN_ERROR_NULL_POINTER, rank + "q is NULL", [](causalattn_mpi_ring_args* a) {
    if (is_last()) a->local.q = nullptr;
  });
  expect_ring_refused(CAUSALATTN_ERROR_INVALID_OPTION, rank + "local.options.flags", [](causalattn_mpi_ring_args* a) {
    if (is_last()) a->local.options.flags = CAUSALATTN_TOP_LEFT;
  });
  expect_ring_refused(CAUSALATTN_ERROR_UNSUPPORTED, rank + "local.seq_lens", [](causalattn_mpi_ring_args* a) {
    if (is_last()) a->local.dropout.p = 0.1f;
  });
}

TEST(MpiErrors, ShardPieces) {
  int64_t pos[2], tok[2];
  EXPECT_EQ(causalattn_mpi_shard_pieces(CAUSALATTN_MPI_ZIGZAG, 10, 2, 2, pos, tok), CAUSALATTN_ERROR_INVALID_SHAPE);
  EXPECT_EQ(causalattn_mpi_shard_pieces(CAUSALATTN_MPI_ZIGZAG, -1, 2, 0, pos, tok), CAUSALATTN_ERROR_INVALID_SHAPE);
  EXPECT_EQ(causalattn_mpi_shard_pieces(static_cast<causalattn_mpi_sharding>(7), 10, 2, 0, pos, tok),
            CAUSALATTN_ERROR_INVALID_OPTION);
  // Zigzag over 3 ranks of 12 tokens: rank 1 holds chunks 1 and 4 of 6.
  ASSERT_EQ(causalattn_mpi_shard_pieces(CAUSALATTN_MPI_ZIGZAG, 12, 3, 1, pos, tok), 0);
  EXPECT_EQ(pos[0], 2);
  EXPECT_EQ(tok[0], 2);
  EXPECT_EQ(pos[1], 8);
  EXPECT_EQ(tok[1], 2);
}

TEST(MpiErrors, DecodeRefusals) {
  Batch b = batch_of({100});
  b.make(4);
  std::vector<float> q(b.Hq * b.D, 0.5f), out(b.Hq * b.Dv, kSentinel);
  const auto [first, count] = key_range(100, g_rank, g_ranks);
  std::vector<float> k(b.Hkv * std::max<int64_t>(count, 1) * b.D, 0.25f), v(b.Hkv * std::max<int64_t>(count, 1) * b.Dv, 1.0f);
  int64_t kv_len = count, q_pos = 99, kv_pos = first;
  causalattn_seq_lens lens{nullptr, nullptr, nullptr, &kv_len, &q_pos, &kv_pos};
  auto call = [&](auto mutate) {
    causalattn_mpi_decode_args a{};
    b.set_variants(&a.local);
    a.local.options.flags = CAUSALATTN_EXPLICIT_POSITIONS;
    a.local.shape = {1, b.Hq, b.Hkv, 1, std::max<int64_t>(count, 1), b.D};
    a.local.q = q.data();
    a.local.q_layout = {b.Hq * b.D, b.D, b.D};
    a.local.k = k.data();
    a.local.k_layout = {0, std::max<int64_t>(count, 1) * b.D, b.D};
    a.local.v = v.data();
    a.local.v_layout = {0, std::max<int64_t>(count, 1) * b.Dv, b.Dv};
    a.local.out = out.data();
    a.local.out_layout = {b.Hq * b.Dv, b.Dv, b.Dv};
    a.local.seq_lens = &lens;
    a.comm = MPI_COMM_WORLD;
    a.root = -1;
    a.timeout_seconds = kTimeout;
    mutate(&a);
    return causalattn_mpi_decode_attend(&a);
  };
  ASSERT_EQ(call([](causalattn_mpi_decode_args*) {}), 0) << causalattn_mpi_last_error();
  std::fill(out.begin(), out.end(), kSentinel);
  EXPECT_EQ(call([](causalattn_mpi_decode_args* a) { a->local.options.flags = 0; }), CAUSALATTN_ERROR_INVALID_OPTION);
  EXPECT_NE(std::string(causalattn_mpi_last_error()).find("CAUSALATTN_EXPLICIT_POSITIONS"), std::string::npos);
  EXPECT_EQ(call([](causalattn_mpi_decode_args* a) { a->root = g_ranks; }), CAUSALATTN_ERROR_INVALID_OPTION);
  kv_pos = first + 1;  // every range one later: position 0 is held by nobody
  EXPECT_EQ(call([](causalattn_mpi_decode_args*) {}), CAUSALATTN_ERROR_INVALID_SHAPE);
  EXPECT_NE(std::string(causalattn_mpi_last_error()).find("in no rank's key range"), std::string::npos)
      << causalattn_mpi_last_error();
  kv_pos = first;
  q_pos = 99 - (is_last() ? 1 : 0);
  if (g_ranks > 1) {
    EXPECT_EQ(call([](causalattn_mpi_decode_args*) {}), CAUSALATTN_ERROR_INVALID_SHAPE);
    EXPECT_NE(std::string(causalattn_mpi_last_error()).find("query position"), std::string::npos);
  }
  for (float x : out) ASSERT_EQ(x, kSentinel);
}

// A rank that does not come: the others give up after their timeout, with a status that says so.
// (On a communicator of its own, given up afterwards: an operation of ours stays pending on it.)
TEST(MpiErrors, AMissingRankTimesOutInsteadOfHanging) {
  if (g_ranks < 2) GTEST_SKIP() << "needs two ranks";
  MPI_Comm comm;
  MPI_Comm_dup(MPI_COMM_WORLD, &comm);
  Batch b = batch_of({64});
  b.make(8);
  Shard sh = standard_shard(b, CAUSALATTN_MPI_CONTIGUOUS);
  RingTensors t = ring_tensors(b, sh, false);
  causalattn_mpi_ring_args a = ring_args(b, sh, &t, 1, comm);
  ASSERT_EQ(causalattn_mpi_ring_attend(&a), 0) << causalattn_mpi_last_error();  // everyone, once
  MPI_Barrier(MPI_COMM_WORLD);
  if (g_rank == 0) {
    a.timeout_seconds = 0.5;
    std::fill(t.out.begin(), t.out.end(), std::byte{0x5a});
    const double start = MPI_Wtime();
    EXPECT_EQ(causalattn_mpi_ring_attend(&a), CAUSALATTN_MPI_ERROR_TIMEOUT);
    EXPECT_LT(MPI_Wtime() - start, 30.0);
    EXPECT_NE(std::string(causalattn_mpi_last_error()).find("no answer within"), std::string::npos)
        << causalattn_mpi_last_error();
    for (std::byte x : t.out) ASSERT_EQ(x, std::byte{0x5a});
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

// Prints a failure of a rank other than 0 (whose output is otherwise silenced), with its rank.
class RankFailurePrinter : public ::testing::EmptyTestEventListener {
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (r.failed()) std::printf("[rank %d] %s:%d: %s\n", g_rank, r.file_name() ? r.file_name() : "?", r.line_number(), r.summary());
  }
};

}  // namespace
}  // namespace causalattn::testing

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &causalattn::testing::g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &causalattn::testing::g_ranks);
  ::testing::InitGoogleTest(&argc, argv);
  if (causalattn::testing::g_rank != 0) {
    ::testing::TestEventListeners& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new causalattn::testing::RankFailurePrinter);
  }
  int failed = RUN_ALL_TESTS();
  int any_failed = 0;
  MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return any_failed;
}
