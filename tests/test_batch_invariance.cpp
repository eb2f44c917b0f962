// CAUSALATTN_BATCH_INVARIANT: a query's output and LSE have the same bits however its sequence is
// batched, chunked, decoded, paged or threaded (docs/batch-invariance.md). Each case computes one
// sequence's whole prefill in one call, checks it against the double reference, then recomputes
// its rows every other way and compares bit for bit: chunks of random sizes, token by token
// around the key splits and at the end, inside packed and padded batches of random other
// sequences, paged with random page sizes and block tables, and on 1, 2 and 7 threads.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "attention_tester.hpp"

namespace causalattn::testing {
namespace {

constexpr int64_t kSplit = CAUSALATTN_INVARIANT_SPLIT_KEYS;

struct Case {
  int64_t T, q_heads, kv_heads, D, Dv;
  causalattn_dtype q_dtype = CAUSALATTN_DTYPE_F32, k_dtype = CAUSALATTN_DTYPE_F32, v_dtype = CAUSALATTN_DTYPE_F32,
                   out_dtype = CAUSALATTN_DTYPE_F32;
  int64_t window = 0;
  bool sinks = false, softcap = false, alibi = false;
};

int64_t unit_bytes(causalattn_dtype t) {
  return t == CAUSALATTN_DTYPE_F32 ? 4 : t == CAUSALATTN_DTYPE_Q8_0 ? 34 : 2;
}
// Units (elements, or q8_0 blocks) of a row of n elements.
int64_t row_units(causalattn_dtype t, int64_t n) { return t == CAUSALATTN_DTYPE_Q8_0 ? n / 32 : n; }

// tokens × heads rows of n elements of N(0, 1) values, stored as dtype t ([token][head][n]).
std::vector<unsigned char> random_rows(std::mt19937& rng, int64_t tokens, int64_t heads, int64_t n, causalattn_dtype t) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> values(static_cast<std::size_t>(tokens * heads * n));
  for (float& x : values) x = normal(rng);
  std::vector<unsigned char> stored(static_cast<std::size_t>(tokens * heads * row_units(t, n) * unit_bytes(t)));
  EXPECT_EQ(causalattn_convert(values.data(), CAUSALATTN_DTYPE_F32, stored.data(), t, static_cast<int64_t>(values.size())),
            CAUSALATTN_OK);
  return stored;
}

std::vector<float> widened(const std::vector<unsigned char>& stored, causalattn_dtype t, int64_t elements) {
  std::vector<float> f(static_cast<std::size_t>(elements));
  EXPECT_EQ(causalattn_convert(stored.data(), t, f.data(), CAUSALATTN_DTYPE_F32, elements), CAUSALATTN_OK);
  return f;
}

// One sequence's tensors, [token][head][dim] in their stored dtypes, and the case's variants.
struct Sequence {
  Case c;
  std::vector<unsigned char> q, k, v;
  std::vector<float> sinks, slopes;
  Sequence(const Case& cs, std::mt19937& rng) : c(cs) {
    q = random_rows(rng, c.T, c.q_heads, c.D, c.q_dtype);
    k = random_rows(rng, c.T, c.kv_heads, c.D, c.k_dtype);
    v = random_rows(rng, c.T, c.kv_heads, c.Dv, c.v_dtype);
    for (int64_t h = 0; h < c.q_heads; ++h) {
      sinks.push_back(0.5f * static_cast<float>(h) - 1.0f);
      slopes.push_back(std::exp2(-8.0f * static_cast<float>(h + 1) / static_cast<float>(c.q_heads)));
    }
  }
  int64_t q_row_bytes() const { return c.q_heads * row_units(c.q_dtype, c.D) * unit_bytes(c.q_dtype); }
  int64_t k_row_bytes() const { return c.kv_heads * row_units(c.k_dtype, c.D) * unit_bytes(c.k_dtype); }
  int64_t v_row_bytes() const { return c.kv_heads * row_units(c.v_dtype, c.Dv) * unit_bytes(c.v_dtype); }
  int64_t out_row_bytes() const { return c.q_heads * c.Dv * unit_bytes(c.out_dtype); }
};

// A call's arguments for the case's options, dtypes and variants; tensors and shape left to set.
causalattn_attend_args base_args(const Sequence& s, int threads) {
  causalattn_attend_args a{};
  a.options.flags = CAUSALATTN_BATCH_INVARIANT;
  a.options.num_threads = threads;
  a.q_dtype = s.c.q_dtype;
  a.k_dtype = s.c.k_dtype;
  a.v_dtype = s.c.v_dtype;
  a.out_dtype = s.c.out_dtype;
  a.window = s.c.window;
  a.head_dim_v = s.c.Dv;
  if (s.c.sinks) a.sinks = s.sinks.data();
  if (s.c.softcap) a.softcap = 2.5f;
  if (s.c.alibi) a.alibi_slopes = s.slopes.data();
  return a;
}

// [B,T,H,D] strides, in units of the dtype, for `tokens` tokens.
causalattn_layout bthd(causalattn_dtype t, int64_t tokens, int64_t heads, int64_t n) {
  const int64_t row = row_units(t, n);
  return {tokens * heads * row, row, heads * row};
}

// The rows of queries [q0, q1) (keys [0, q1)): out [q1 - q0][heads][Dv] bytes, lse [heads][q1 - q0].
struct Rows {
  std::vector<unsigned char> out;
  std::vector<float> lse;
};

// Queries [q0, q1) of the sequence against its keys [0, q1) (bottom-right), alone, contiguous.
Rows alone(const Sequence& s, int64_t q0, int64_t q1, int threads) {
  const Case& c = s.c;
  causalattn_attend_args a = base_args(s, threads);
  a.shape = {1, c.q_heads, c.kv_heads, q1 - q0, q1, c.D};
  a.q = s.q.data() + q0 * s.q_row_bytes();
  a.q_layout = bthd(c.q_dtype, c.T, c.q_heads, c.D);
  a.k = s.k.data();
  a.k_layout = bthd(c.k_dtype, c.T, c.kv_heads, c.D);
  a.v = s.v.data();
  a.v_layout = bthd(c.v_dtype, c.T, c.kv_heads, c.Dv);
  Rows r;
  r.out.assign(static_cast<std::size_t>((q1 - q0) * s.out_row_bytes()), 0xA5);
  r.lse.assign(static_cast<std::size_t>(c.q_heads * (q1 - q0)), -7.0f);
  a.out = r.out.data();
  a.out_layout = bthd(c.out_dtype, q1 - q0, c.q_heads, c.Dv);
  a.options.lse = r.lse.data();
  EXPECT_EQ(causalattn_attend(&a), CAUSALATTN_OK) << causalattn_last_error();
  return r;
}

// Rows [q0, q1) of `got` (rows of queries [g0, ...)) equal those of the whole prefill.
void expect_rows_equal(const Sequence& s, const Rows& whole, const Rows& got, int64_t g0, int64_t q0, int64_t q1,
                       const std::string& how) {
  const int64_t got_rows = static_cast<int64_t>(got.lse.size()) / s.c.q_heads, T = s.c.T;
  const int64_t bytes = (q1 - q0) * s.out_row_bytes();
  ASSERT_EQ(std::memcmp(got.out.data() + (q0 - g0) * s.out_row_bytes(), whole.out.data() + q0 * s.out_row_bytes(),
                        static_cast<std::size_t>(bytes)),
            0)
      << how << ": out of queries " << q0 << " .. " << q1;
  for (int64_t h = 0; h < s.c.q_heads; ++h)
    for (int64_t i = q0; i < q1; ++i) {
      const float a = got.lse[h * got_rows + i - g0], b = whole.lse[h * T + i];
      ASSERT_EQ(std::memcmp(&a, &b, sizeof a), 0) << how << ": lse of head " << h << " query " << i << " " << a << " " << b;
    }
}

// The whole prefill against the double reference, on the widened inputs: within fp32's bounds
// (the 16-bit outputs' rounding added).
void expect_close_to_reference(const Sequence& s, const Rows& whole, int64_t q0, int64_t q1) {
  const Case& c = s.c;
  const std::vector<float> q = widened(s.q, c.q_dtype, c.T * c.q_heads * c.D), k = widened(s.k, c.k_dtype, c.T * c.kv_heads * c.D),
                           v = widened(s.v, c.v_dtype, c.T * c.kv_heads * c.Dv);
  const std::vector<float> out = widened(whole.out, c.out_dtype, c.T * c.q_heads * c.Dv);
  reference::Variant variant;
  variant.window = c.window;
  variant.head_dim_v = c.Dv;
  if (c.sinks) variant.sinks = s.sinks.data();
  if (c.softcap) variant.softcap = 2.5;
  if (c.alibi) variant.alibi_slopes = s.slopes.data();
  const causalattn_shape shape{1, c.q_heads, c.kv_heads, q1 - q0, q1, c.D};
  const causalattn_layout ql{c.T * c.q_heads * c.D, c.D, c.q_heads * c.D}, kl{c.T * c.kv_heads * c.D, c.D, c.kv_heads * c.D},
      vl{c.T * c.kv_heads * c.Dv, c.Dv, c.kv_heads * c.Dv};
  const reference::Result ref = reference::attention(shape, q.data() + q0 * c.q_heads * c.D, ql, k.data(), kl, v.data(), vl, variant);
  const double out_rounding = c.out_dtype == CAUSALATTN_DTYPE_F32 ? 0.0 : c.out_dtype == CAUSALATTN_DTYPE_BF16 ? 0x1p-8 : 0x1p-11;
  for (int64_t h = 0; h < c.q_heads; ++h)
    for (int64_t i = 0; i < q1 - q0; ++i) {
      for (int64_t d = 0; d < c.Dv; ++d) {
        const double want = ref.out[((h * (q1 - q0)) + i) * c.Dv + d], have = out[((q0 + i) * c.q_heads + h) * c.Dv + d];
        ASSERT_NEAR(have, want, 2e-5 * (1.0 + ref.score_magnitude) + out_rounding * std::fabs(want))
            << "head " << h << " query " << q0 + i << " dim " << d;
      }
      ASSERT_NEAR(whole.lse[h * c.T + q0 + i], ref.lse[h * (q1 - q0) + i], 2e-5 * (1.0 + std::fabs(ref.lse[h * (q1 - q0) + i])));
    }
}

// Another sequence of a batch: random lengths and data, same dtypes and heads.
struct Other {
  int64_t q_len, kv_len;
  Sequence data;
};

Other random_other(const Case& c, std::mt19937& rng) {
  std::uniform_int_distribution<int64_t> kv(1, 2 * kSplit), q(1, 60);
  Case oc = c;
  oc.T = kv(rng);
  Other o{std::min(q(rng), oc.T), oc.T, Sequence(oc, rng)};
  return o;
}

// Queries [q0, T) of the sequence inside a packed (or padded) batch with `others`, at `index`.
Rows in_batch(const Sequence& s, int64_t q0, const std::vector<Other>& others, std::size_t index, bool packed, int threads) {
  const Case& c = s.c;
  struct Member {
    const Sequence* data;
    int64_t q_begin, q_len, kv_len;
  };
  std::vector<Member> members;
  for (const Other& o : others) members.push_back({&o.data, o.kv_len - o.q_len, o.q_len, o.kv_len});
  members.insert(members.begin() + static_cast<std::ptrdiff_t>(index), Member{&s, q0, c.T - q0, c.T});
  const int64_t n = static_cast<int64_t>(members.size());
  std::vector<int64_t> cu_q{0}, cu_kv{0}, q_lens, kv_lens;
  int64_t max_q = 0, max_kv = 0;
  for (const Member& m : members) {
    cu_q.push_back(cu_q.back() + m.q_len);
    cu_kv.push_back(cu_kv.back() + m.kv_len);
    q_lens.push_back(m.q_len);
    kv_lens.push_back(m.kv_len);
    max_q = std::max(max_q, m.q_len);
    max_kv = std::max(max_kv, m.kv_len);
  }
  // Tokens of member m start at token (packed) cu[m], or (padded) m · max.
  auto q_token = [&](int64_t m) { return packed ? cu_q[m] : m * max_q; };
  auto kv_token = [&](int64_t m) { return packed ? cu_kv[m] : m * max_kv; };
  const int64_t q_tokens = packed ? cu_q.back() : n * max_q, kv_tokens = packed ? cu_kv.back() : n * max_kv;
  std::vector<unsigned char> q(q_tokens * s.q_row_bytes()), k(kv_tokens * s.k_row_bytes()), v(kv_tokens * s.v_row_bytes());
  for (int64_t m = 0; m < n; ++m) {
    const Member& mb = members[m];
    std::memcpy(q.data() + q_token(m) * s.q_row_bytes(), mb.data->q.data() + mb.q_begin * s.q_row_bytes(), mb.q_len * s.q_row_bytes());
    std::memcpy(k.data() + kv_token(m) * s.k_row_bytes(), mb.data->k.data(), mb.kv_len * s.k_row_bytes());
    std::memcpy(v.data() + kv_token(m) * s.v_row_bytes(), mb.data->v.data(), mb.kv_len * s.v_row_bytes());
  }
  causalattn_attend_args a = base_args(s, threads);
  causalattn_seq_lens lens{};
  if (packed) {
    lens.cu_q_lens = cu_q.data();
    lens.cu_kv_lens = cu_kv.data();
  } else {
    lens.q_lens = q_lens.data();
    lens.kv_lens = kv_lens.data();
  }
  // Tokens per batch entry: packed, all of them in batch 0; padded, the longest sequence's.
  const int64_t q_span = packed ? q_tokens : max_q, kv_span = packed ? kv_tokens : max_kv;
  a.shape = {n, c.q_heads, c.kv_heads, q_span, kv_span, c.D};
  a.q_layout = bthd(c.q_dtype, q_span, c.q_heads, c.D);
  a.k_layout = bthd(c.k_dtype, kv_span, c.kv_heads, c.D);
  a.v_layout = bthd(c.v_dtype, kv_span, c.kv_heads, c.Dv);
  a.seq_lens = &lens;
  a.q = q.data();
  a.k = k.data();
  a.v = v.data();
  std::vector<unsigned char> out(q_tokens * s.out_row_bytes(), 0xA5);
  std::vector<float> lse(static_cast<std::size_t>(c.q_heads * q_tokens), -7.0f);
  a.out = out.data();
  a.out_layout = bthd(c.out_dtype, q_span, c.q_heads, c.Dv);
  a.options.lse = lse.data();
  EXPECT_EQ(causalattn_attend(&a), CAUSALATTN_OK) << causalattn_last_error();
  // Our rows: out tokens from q_token(index); lse [q_heads][q_tokens] packed, [n][q_heads][max_q] padded.
  Rows r;
  const int64_t rows = c.T - q0, at = static_cast<int64_t>(index);
  r.out.assign(out.begin() + q_token(at) * s.out_row_bytes(), out.begin() + (q_token(at) + rows) * s.out_row_bytes());
  for (int64_t h = 0; h < c.q_heads; ++h)
    for (int64_t i = 0; i < rows; ++i)
      r.lse.push_back(packed ? lse[h * q_tokens + cu_q[at] + i] : lse[(at * c.q_heads + h) * max_q + i]);
  return r;
}

// Queries [q0, T) with K and V in pages of page_tokens, the pages in random order among another
// sequence's.
Rows paged(const Sequence& s, int64_t q0, int64_t page_tokens, std::mt19937& rng, int threads) {
  const Case& c = s.c;
  const int64_t pages = (c.T + page_tokens - 1) / page_tokens, num_pages = 2 * pages + 3;
  std::vector<int32_t> ids(num_pages);
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng);
  std::vector<unsigned char> k(num_pages * page_tokens * s.k_row_bytes(), 0x5A), v(num_pages * page_tokens * s.v_row_bytes(), 0x5A);
  // Other pages hold finite junk (bf16/f16/q8_0 0x5A5A are finite).
  for (int64_t j = 0; j < c.T; ++j) {
    const int64_t page = ids[j / page_tokens], slot = j % page_tokens;
    std::memcpy(k.data() + (page * page_tokens + slot) * s.k_row_bytes(), s.k.data() + j * s.k_row_bytes(), s.k_row_bytes());
    std::memcpy(v.data() + (page * page_tokens + slot) * s.v_row_bytes(), s.v.data() + j * s.v_row_bytes(), s.v_row_bytes());
  }
  causalattn_attend_args a = base_args(s, threads);
  a.shape = {1, c.q_heads, c.kv_heads, c.T - q0, c.T, c.D};
  const causalattn_kv_pages table{ids.data(), pages, page_tokens, num_pages};
  a.pages = &table;
  a.q = s.q.data() + q0 * s.q_row_bytes();
  a.q_layout = bthd(c.q_dtype, c.T, c.q_heads, c.D);
  a.k = k.data();
  a.k_layout = bthd(c.k_dtype, page_tokens, c.kv_heads, c.D);
  a.v = v.data();
  a.v_layout = bthd(c.v_dtype, page_tokens, c.kv_heads, c.Dv);
  Rows r;
  r.out.assign(static_cast<std::size_t>((c.T - q0) * s.out_row_bytes()), 0xA5);
  r.lse.assign(static_cast<std::size_t>(c.q_heads * (c.T - q0)), -7.0f);
  a.out = r.out.data();
  a.out_layout = bthd(c.out_dtype, c.T - q0, c.q_heads, c.Dv);
  a.options.lse = r.lse.data();
  EXPECT_EQ(causalattn_attend(&a), CAUSALATTN_OK) << causalattn_last_error();
  return r;
}

// The most queries a batched or paged call of expect_invariant computes: every tile and split
// position is still reached, at a third of the cost of random starts (the suite runs under the
// sanitizers and under emulation too).
constexpr int64_t kTailRows = 400;

class BatchInvariance : public PerIsaTest {
 protected:
  // Every way of computing the case's rows against its whole prefill.
  void expect_invariant(const Case& c, uint32_t seed) {
    std::mt19937 rng(seed);
    const Sequence s(c, rng);
    const Rows whole = alone(s, 0, c.T, 1);
    if (HasFatalFailure()) return;
    // The oracle on the rows around each split and at the end.
    for (int64_t q0 = kSplit - 20; q0 + 40 <= c.T; q0 += kSplit) expect_close_to_reference(s, whole, q0, q0 + 40);
    expect_close_to_reference(s, whole, c.T - 30, c.T);

    // Chunks of random sizes, each against the keys so far.
    std::uniform_int_distribution<int64_t> chunk(1, 150);
    for (int64_t q0 = 0; q0 < c.T;) {
      const int64_t q1 = std::min(c.T, q0 + chunk(rng));
      expect_rows_equal(s, whole, alone(s, q0, q1, 2), q0, q0, q1, "chunk");
      if (HasFatalFailure()) return;
      q0 = q1;
    }
    // Token by token around the splits and at the end.
    std::vector<int64_t> tokens;
    for (int64_t p = kSplit - 3; p < c.T; p += kSplit)
      for (int64_t t = p; t < std::min(c.T, p + 6); ++t) tokens.push_back(t);
    for (int64_t t = c.T - 5; t < c.T; ++t) tokens.push_back(t);
    if (c.window > 0) tokens.push_back(c.window + 2);
    for (int64_t t : tokens) {
      expect_rows_equal(s, whole, alone(s, t, t + 1, 1), t, t, t + 1, "decode");
      if (HasFatalFailure()) return;
    }
    // Threads.
    for (int threads : {2, 7}) {
      expect_rows_equal(s, whole, alone(s, 0, c.T, threads), 0, 0, c.T, "threads " + std::to_string(threads));
      if (HasFatalFailure()) return;
    }
    // Batches of random others, packed and padded; our sequence's last q_len queries, 1 to
    // kTailRows of them (decode- and prefill-shaped; the whole prefill on threads is above).
    std::uniform_int_distribution<int64_t> tail_start(std::max<int64_t>(0, c.T - kTailRows), c.T - 1);
    for (int trial = 0; trial < 4; ++trial) {
      std::vector<Other> others;
      for (int i = 0; i < 1 + trial; ++i) others.push_back(random_other(c, rng));
      const int64_t q0 = tail_start(rng);
      const std::size_t index = std::uniform_int_distribution<std::size_t>(0, others.size())(rng);
      for (bool packed : {true, false}) {
        expect_rows_equal(s, whole, in_batch(s, q0, others, index, packed, trial % 2 + 1), q0, q0, c.T,
                          packed ? "packed batch" : "padded batch");
        if (HasFatalFailure()) return;
      }
    }
    // Paged.
    for (int64_t page_tokens : {1, 16, 100}) {
      const int64_t q0 = page_tokens == 1 ? c.T - 1 : tail_start(rng);
      expect_rows_equal(s, whole, paged(s, q0, page_tokens, rng, 2), q0, q0, c.T, "paged " + std::to_string(page_tokens));
      if (HasFatalFailure()) return;
    }
  }
};

TEST_P(BatchInvariance, F32GroupedQueryAttention) {
  expect_invariant({kSplit + 230, 4, 1, 40, 40}, 1);
}

TEST_P(BatchInvariance, TwoSplitBoundaries) {
  expect_invariant({2 * kSplit + 100, 2, 1, 27, 19}, 2);  // odd sizes: rows of no whole vector
}

TEST_P(BatchInvariance, WindowSinksSoftcapAlibiAndHeadDimV) {
  Case c{kSplit + 150, 4, 2, 40, 24};
  c.window = 1000;
  c.sinks = c.softcap = c.alibi = true;
  expect_invariant(c, 3);
}

TEST_P(BatchInvariance, Bf16Tensors) {
  Case c{kSplit + 120, 4, 1, 32, 32};
  c.q_dtype = c.k_dtype = c.v_dtype = c.out_dtype = CAUSALATTN_DTYPE_BF16;
  expect_invariant(c, 4);
}

TEST_P(BatchInvariance, F16KeysQ8Values) {
  Case c{kSplit + 90, 4, 2, 64, 64};
  c.k_dtype = CAUSALATTN_DTYPE_F16;
  c.v_dtype = CAUSALATTN_DTYPE_Q8_0;
  c.out_dtype = CAUSALATTN_DTYPE_F16;
  c.sinks = true;
  expect_invariant(c, 5);
}

// Dropout's mask is drawn per sequence and query index of the call: the mode refuses it, output
// untouched, and causalattn_attend_validate says the same.
TEST(BatchInvarianceErrors, RefusesDropout) {
  std::mt19937 rng(6);
  const Sequence s({40, 2, 1, 32, 32}, rng);
  causalattn_attend_args a = base_args(s, 1);
  a.shape = {1, 2, 1, 40, 40, 32};
  a.q = s.q.data();
  a.q_layout = bthd(CAUSALATTN_DTYPE_F32, 40, 2, 32);
  a.k = s.k.data();
  a.v = s.v.data();
  a.k_layout = a.v_layout = bthd(CAUSALATTN_DTYPE_F32, 40, 1, 32);
  std::vector<float> out(40 * 2 * 32, 3.0f);
  a.out = out.data();
  a.out_layout = a.q_layout;
  a.dropout.p = 0.1f;
  EXPECT_EQ(causalattn_attend(&a), CAUSALATTN_ERROR_UNSUPPORTED);
  EXPECT_NE(std::string(causalattn_last_error()).find("dropout with CAUSALATTN_BATCH_INVARIANT"), std::string::npos)
      << causalattn_last_error();
  EXPECT_EQ(causalattn_attend_validate(&a), CAUSALATTN_ERROR_UNSUPPORTED);
  for (float x : out) ASSERT_EQ(x, 3.0f);
  a.dropout.p = 0.0f;
  EXPECT_EQ(causalattn_attend(&a), CAUSALATTN_OK) << causalattn_last_error();
}

INSTANTIATE_TEST_SUITE_P(Isa, BatchInvariance, ::testing::ValuesIn(known_isas()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace causalattn::testing
