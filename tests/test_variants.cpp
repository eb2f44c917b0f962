// The model variants across calls: context-parallel parts (keys and queries split over calls
// with explicit positions, merged) equal one call, the sink counted once; a chunked prefill gives
// one call's bits; the variants on 16- and 8-bit tensors; every bad variant argument refused
// with a message, outputs untouched. (Each variant against the reference inside one call, over
// every serving path: test_serving.cpp, Serving.ModelVariants / Alignments / HeadDimV.)
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

#include "attention_tester.hpp"
#include "causalattn/causalattn.h"
#include "reference/reference.hpp"

namespace causalattn::testing {
namespace {

constexpr int64_t kHeads = 4, kKvHeads = 2;

// One sequence of T queries at the end of S keys, [heads][tokens][dims], with per-head sinks and
// BLOOM-like slopes.
struct Sequence {
  int64_t T, S, D, Dv;
  std::vector<float> q, k, v, sinks, slopes;

  Sequence(int64_t t, int64_t s, int64_t d, int64_t dv, uint32_t seed) : T(t), S(s), D(d), Dv(dv) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal;
    q.resize(kHeads * T * D);
    k.resize(kKvHeads * S * D);
    v.resize(kKvHeads * S * Dv);
    for (auto* x : {&q, &k, &v})
      for (float& e : *x) e = normal(rng);
    for (int64_t h = 0; h < kHeads; ++h) {
      sinks.push_back(0.5f * static_cast<float>(h) - 0.5f);
      slopes.push_back(std::ldexp(1.0f, -2 * static_cast<int>(h + 1)));
    }
  }

  // A call over queries [q_begin, q_end) and keys [k_begin, k_end), at their absolute positions
  // (query t of the sequence at S - T + t, key j at j): out and lse [heads][q_end - q_begin].
  causalattn_attend_args part(int64_t q_begin, int64_t q_end, int64_t k_begin, int64_t k_end, float* out, float* lse) const {
    causalattn_attend_args a{};
    a.shape = {1, kHeads, kKvHeads, q_end - q_begin, k_end - k_begin, D};
    a.q = q.data() + q_begin * D;
    a.q_layout = {kHeads * T * D, T * D, D};
    a.k = k.data() + k_begin * D;
    a.k_layout = {kKvHeads * S * D, S * D, D};
    a.v = v.data() + k_begin * Dv;
    a.v_layout = {kKvHeads * S * Dv, S * Dv, Dv};
    a.out = out;
    a.out_layout = {kHeads * (q_end - q_begin) * Dv, (q_end - q_begin) * Dv, Dv};
    a.head_dim_v = Dv;
    a.options.lse = lse;
    a.options.flags = CAUSALATTN_EXPLICIT_POSITIONS;
    a.q_pos_offset = S - T + q_begin;
    a.kv_pos_offset = k_begin;
    return a;
  }

  reference::Result reference(const causalattn_attend_args& variant_of) const {
    reference::Variant r;
    r.window = variant_of.window;
    r.sinks = variant_of.sinks;
    r.softcap = variant_of.softcap;
    r.alibi_slopes = variant_of.alibi_slopes;
    r.head_dim_v = Dv;
    return reference::attention({1, kHeads, kKvHeads, T, S, D}, q.data(), {kHeads * T * D, T * D, D}, k.data(),
                                {kKvHeads * S * D, S * D, D}, v.data(), {kKvHeads * S * Dv, S * Dv, Dv}, r);
  }
};

// The variant fields of a call, copied onto another.
void copy_variants(const causalattn_attend_args& from, causalattn_attend_args* to) {
  to->window = from.window;
  to->sinks = from.sinks;
  to->softcap = from.softcap;
  to->alibi_slopes = from.alibi_slopes;
}

class Variants : public PerIsaTest {};

// A worker holds keys [a, b) and queries [c, d): its part with LSE; the merge of every key part of
// a query range equals the whole sequence's result, causal, windowed, ALiBi-biased, with sinks
// (every part is given the sinks; the part holding key 0 alone adds them). Parts whose queries
// all come before their keys see nothing there (lse -inf) and drop out of the merge.
TEST_P(Variants, ContextParallelPartsMergeIntoOneCall) {
  const Sequence seq(500, 900, 64, 48, 7);
  struct Case {
    const char* name;
    int64_t window;
    bool sinks, alibi;
    float softcap;
  };
  for (const Case& c : {Case{"causal", 0, false, false, 0.0f}, Case{"window", 150, false, false, 0.0f},
                        Case{"alibi", 0, false, true, 0.0f}, Case{"sinks", 0, true, false, 0.0f},
                        Case{"everything", 200, true, true, 8.0f}}) {
    SCOPED_TRACE(c.name);
    causalattn_attend_args variant{};
    variant.window = c.window;
    variant.sinks = c.sinks ? seq.sinks.data() : nullptr;
    variant.alibi_slopes = c.alibi ? seq.slopes.data() : nullptr;
    variant.softcap = c.softcap;
    const reference::Result ref = seq.reference(variant);
    const Tolerance tol = tolerance_for(seq.v, ref);
    const int64_t key_cuts[] = {0, 300, 301, 650, 900}, query_cuts[] = {0, 130, 500};
    for (int qi = 0; qi + 1 < 3; ++qi) {
      const int64_t q0 = query_cuts[qi], q1 = query_cuts[qi + 1], n = q1 - q0;
      std::vector<std::vector<float>> outs, lses;
      std::vector<causalattn_partial> parts;
      for (int ki = 0; ki + 1 < 5; ++ki) {
        outs.emplace_back(kHeads * n * seq.Dv);
        lses.emplace_back(kHeads * n);
        causalattn_attend_args a = seq.part(q0, q1, key_cuts[ki], key_cuts[ki + 1], outs.back().data(), lses.back().data());
        copy_variants(variant, &a);
        ASSERT_EQ(causalattn_attend(&a), CAUSALATTN_OK) << causalattn_last_error();
      }
      for (size_t p = 0; p < outs.size(); ++p) {
        parts.push_back({outs[p].data(), {kHeads * n * seq.Dv, n * seq.Dv, seq.Dv}, lses[p].data(), CAUSALATTN_DTYPE_F32});
      }
      std::vector<float> merged(kHeads * n * seq.Dv), merged_lse(kHeads * n);
      const causalattn_shape shape{1, kHeads, kKvHeads, n, 1, seq.Dv};
      ASSERT_EQ(causalattn_merge(&shape, parts.data(), static_cast<int32_t>(parts.size()), merged.data(),
                                 {kHeads * n * seq.Dv, n * seq.Dv, seq.Dv}, CAUSALATTN_DTYPE_F32, merged_lse.data()),
                CAUSALATTN_OK)
          << causalattn_last_error();
      for (int64_t h = 0; h < kHeads; ++h)
        for (int64_t t = 0; t < n; ++t) {
          const double expected_lse = ref.lse[h * seq.T + q0 + t];
          ASSERT_TRUE(matches(merged_lse[h * n + t], expected_lse, tol.lse_factor * (1 + std::fabs(expected_lse))))
              << "lse, head " << h << " query " << q0 + t << ": " << merged_lse[h * n + t] << ", reference " << expected_lse;
          for (int64_t d = 0; d < seq.Dv; ++d) {
            const double expected = ref.out[(h * seq.T + q0 + t) * seq.Dv + d];
            ASSERT_TRUE(matches(merged[(h * n + t) * seq.Dv + d], expected, tol.out))
                << "head " << h << " query " << q0 + t << " dim " << d << ": " << merged[(h * n + t) * seq.Dv + d]
                << ", reference " << expected;
          }
        }
    }
  }
}

// A prompt in chunks of 96 queries (a multiple of every ISA's row block), each against the cache
// so far, with every variant: the bits of one call, the sink counted once per row.
TEST_P(Variants, ChunkedPrefillGivesTheBitsOfOneCall) {
  const Sequence seq(400, 400, 64, 64, 11);
  std::vector<float> whole(kHeads * seq.T * seq.Dv), whole_lse(kHeads * seq.T);
  causalattn_attend_args one = seq.part(0, seq.T, 0, seq.S, whole.data(), whole_lse.data());
  one.options.flags = 0;  // bottom-right: the positions the offsets gave
  one.q_pos_offset = 0;
  one.window = 100;
  one.sinks = seq.sinks.data();
  one.alibi_slopes = seq.slopes.data();
  one.softcap = 20.0f;
  ASSERT_EQ(causalattn_attend(&one), CAUSALATTN_OK) << causalattn_last_error();
  for (int64_t c0 = 0; c0 < seq.T; c0 += 96) {
    const int64_t c1 = std::min<int64_t>(seq.T, c0 + 96), n = c1 - c0;
    std::vector<float> out(kHeads * n * seq.Dv), lse(kHeads * n);
    causalattn_attend_args chunk = seq.part(c0, c1, 0, c1, out.data(), lse.data());
    chunk.options.flags = 0;  // bottom-right over keys [0, c1)
    chunk.q_pos_offset = 0;
    copy_variants(one, &chunk);
    ASSERT_EQ(causalattn_attend(&chunk), CAUSALATTN_OK) << causalattn_last_error();
    for (int64_t h = 0; h < kHeads; ++h) {
      ASSERT_EQ(std::memcmp(out.data() + h * n * seq.Dv, whole.data() + (h * seq.T + c0) * seq.Dv, n * seq.Dv * sizeof(float)), 0)
          << "chunk at " << c0 << ", head " << h;
      ASSERT_EQ(std::memcmp(lse.data() + h * n, whole_lse.data() + h * seq.T + c0, n * sizeof(float)), 0)
          << "lse of the chunk at " << c0 << ", head " << h;
    }
  }
}

// The variants with K and V in bf16, f16 and q8_0 and with Q and out in bf16 (the BF16
// dot-product kernel where the ISA has it), against the reference on the values as stored.
TEST_P(Variants, SixteenAndEightBitTensors) {
  const int64_t T = 150, S = 700, D = 96, Dv = 64;
  const Sequence seq(T, S, D, Dv, 5);
  for (const causalattn_dtype q_dtype : {CAUSALATTN_DTYPE_F32, CAUSALATTN_DTYPE_BF16}) {
    for (const causalattn_dtype kv_dtype : {CAUSALATTN_DTYPE_BF16, CAUSALATTN_DTYPE_F16, CAUSALATTN_DTYPE_Q8_0}) {
      if (q_dtype == CAUSALATTN_DTYPE_BF16 && kv_dtype != CAUSALATTN_DTYPE_BF16) continue;
      SCOPED_TRACE(std::to_string(q_dtype) + " / " + std::to_string(kv_dtype));
      // The stored tensors, and their values widened back for the reference.
      auto store = [](const std::vector<float>& x, causalattn_dtype t, std::vector<float>* seen) {
        std::vector<uint8_t> bytes(x.size() * 4);
        EXPECT_EQ(causalattn_convert(x.data(), CAUSALATTN_DTYPE_F32, bytes.data(), t, static_cast<int64_t>(x.size())),
                  CAUSALATTN_OK);
        seen->resize(x.size());
        EXPECT_EQ(causalattn_convert(bytes.data(), t, seen->data(), CAUSALATTN_DTYPE_F32, static_cast<int64_t>(x.size())),
                  CAUSALATTN_OK);
        return bytes;
      };
      Sequence widened = seq;
      const std::vector<uint8_t> q = store(seq.q, q_dtype, &widened.q), k = store(seq.k, kv_dtype, &widened.k),
                                 v = store(seq.v, kv_dtype, &widened.v);
      std::vector<uint16_t> out(kHeads * T * Dv);
      std::vector<float> lse(kHeads * T);
      causalattn_attend_args a{};
      a.shape = {1, kHeads, kKvHeads, T, S, D};
      const int64_t k_units = kv_dtype == CAUSALATTN_DTYPE_Q8_0 ? D / 32 : D, v_units = kv_dtype == CAUSALATTN_DTYPE_Q8_0 ? Dv / 32 : Dv;
      a.q = q.data();
      a.q_layout = {kHeads * T * D, T * D, D};
      a.k = k.data();
      a.k_layout = {kKvHeads * S * k_units, S * k_units, k_units};
      a.v = v.data();
      a.v_layout = {kKvHeads * S * v_units, S * v_units, v_units};
      a.out = out.data();
      a.out_layout = {kHeads * T * Dv, T * Dv, Dv};
      a.q_dtype = q_dtype;
      a.k_dtype = a.v_dtype = kv_dtype;
      a.out_dtype = CAUSALATTN_DTYPE_BF16;
      a.head_dim_v = Dv;
      a.options.lse = lse.data();
      a.window = 300;
      a.sinks = seq.sinks.data();
      a.alibi_slopes = seq.slopes.data();
      a.softcap = 10.0f;
      ASSERT_EQ(causalattn_attend(&a), CAUSALATTN_OK) << causalattn_last_error();
      const reference::Result ref = widened.reference(a);
      Tolerance tol = tolerance_for(widened.v, ref);
      float v_max = 0.0f;
      for (float x : widened.v) v_max = std::fmax(v_max, std::fabs(x));
      // bf16 out: half an ulp of 8 significant bits, 2^-8 relative; the bf16 kernels' P rounding: 2^-8 · max|v|.
      tol.out += std::ldexp(1.0, -8) * v_max + (q_dtype == CAUSALATTN_DTYPE_BF16 ? std::ldexp(1.0, -8) * v_max : 0.0);
      std::vector<float> out_f32(out.size());
      ASSERT_EQ(causalattn_convert(out.data(), CAUSALATTN_DTYPE_BF16, out_f32.data(), CAUSALATTN_DTYPE_F32,
                                   static_cast<int64_t>(out.size())),
                CAUSALATTN_OK);
      for (size_t i = 0; i < out_f32.size(); ++i) {
        ASSERT_TRUE(matches(out_f32[i], ref.out[i], tol.out)) << "out[" << i << "] = " << out_f32[i] << ", reference " << ref.out[i];
      }
      for (size_t i = 0; i < lse.size(); ++i) {
        ASSERT_TRUE(matches(lse[i], ref.lse[i], tol.lse_factor * (1 + std::fabs(ref.lse[i])))) << "lse[" << i << "]";
      }
    }
  }
}

// Tiles that the window or the causal diagonal hides are never loaded, whatever the offsets: the
// keys below the first query's window and past the last query's position sit on PROT_NONE
// pages (a read there faults), for prefill row blocks and decode, f32 and bf16 K and V, with
// every variant. The hidden ranges are whole tiles of every ISA (multiples of 96 and 64 keys).
TEST_P(Variants, HiddenTilesAreNeverLoaded) {
  const int64_t S = 3072, D = 128, low = 1152, high = 2304, window = 500;
  const std::vector<float> sinks = {0.5f, -1.0f, 2.0f, 0.0f}, slopes = {0.25f, 0.0625f, 0.015625f, 0.00390625f};
  for (const causalattn_dtype dtype : {CAUSALATTN_DTYPE_F32, CAUSALATTN_DTYPE_BF16}) {
    const int64_t element = dtype == CAUSALATTN_DTYPE_F32 ? 4 : 2;
    const std::size_t bytes = static_cast<std::size_t>(kKvHeads * S * D * element);
    auto map = [&] {
      void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      EXPECT_NE(p, MAP_FAILED);
      return static_cast<std::byte*>(p);
    };
    std::byte* const k = map();
    std::byte* const v = map();
    std::mt19937 rng(3);
    std::normal_distribution<float> normal;
    std::vector<float> row(static_cast<std::size_t>(D));
    for (std::byte* t : {k, v}) {
      for (int64_t r = 0; r < kKvHeads * S; ++r) {
        for (float& x : row) x = normal(rng);
        ASSERT_EQ(causalattn_convert(row.data(), CAUSALATTN_DTYPE_F32, t + r * D * element, dtype, D), CAUSALATTN_OK);
      }
    }
    // The same tensors, readable everywhere: the expected bits.
    const std::vector<std::byte> k_copy(k, k + bytes), v_copy(v, v + bytes);
    for (std::byte* t : {k, v}) {
      for (int64_t h = 0; h < kKvHeads; ++h) {
        std::byte* head = t + h * S * D * element;
        ASSERT_EQ(mprotect(head, static_cast<std::size_t>(low * D * element), PROT_NONE), 0);
        ASSERT_EQ(mprotect(head + high * D * element, static_cast<std::size_t>((S - high) * D * element), PROT_NONE), 0);
      }
    }
    for (const int64_t q_len : {int64_t{200}, int64_t{4}}) {  // prefill row blocks, decode
      SCOPED_TRACE("q_len " + std::to_string(q_len) + ", dtype " + std::to_string(dtype));
      std::vector<float> q(static_cast<std::size_t>(kHeads * q_len * D)), out(static_cast<std::size_t>(kHeads * q_len * D));
      std::vector<float> expected(out.size());
      for (float& x : q) x = normal(rng);
      causalattn_attend_args a{};
      a.shape = {1, kHeads, kKvHeads, q_len, S, D};
      a.q = q.data();
      a.q_layout = a.out_layout = {kHeads * q_len * D, q_len * D, D};
      a.k_layout = a.v_layout = {kKvHeads * S * D, S * D, D};
      a.k_dtype = a.v_dtype = dtype;
      a.options.flags = CAUSALATTN_EXPLICIT_POSITIONS;
      a.q_pos_offset = high - q_len;  // the last query at key high - 1
      a.kv_pos_offset = 0;
      a.window = window;              // the first query sees keys from high - q_len - window + 1 > low
      a.sinks = sinks.data();
      a.softcap = 30.0f;
      a.alibi_slopes = slopes.data();
      a.k = k_copy.data();
      a.v = v_copy.data();
      a.out = expected.data();
      ASSERT_EQ(causalattn_attend(&a), CAUSALATTN_OK) << causalattn_last_error();
      a.k = k;
      a.v = v;
      a.out = out.data();
      ASSERT_EQ(causalattn_attend(&a), CAUSALATTN_OK) << causalattn_last_error();  // a load there faults
      EXPECT_EQ(std::memcmp(out.data(), expected.data(), out.size() * sizeof(float)), 0);
    }
    munmap(k, bytes);
    munmap(v, bytes);
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, Variants, ::testing::ValuesIn(known_isas()), [](const auto& info) { return info.param; });

// Bad variant arguments: a status, a message that names the problem, out and lse untouched.
class VariantErrors : public ::testing::Test {
 protected:
  VariantErrors() : seq(5, 9, 64, 64, 3), out(kHeads * 5 * 64, -7.0f), lse(kHeads * 5, -7.0f) {
    a = seq.part(0, 5, 0, 9, out.data(), lse.data());
    a.options.flags = 0;
    a.q_pos_offset = 0;
  }
  void Expect(int status, const std::string& words) {
    EXPECT_EQ(causalattn_attend(&a), status);
    EXPECT_NE(std::string(causalattn_last_error()).find(words), std::string::npos) << causalattn_last_error();
    for (float x : out) ASSERT_EQ(x, -7.0f);
    for (float x : lse) ASSERT_EQ(x, -7.0f);
  }
  Sequence seq;
  std::vector<float> out, lse;
  causalattn_attend_args a{};
};

TEST_F(VariantErrors, Softcap) {
  for (const float cap : {-1.0f, NAN, INFINITY}) {
    a.softcap = cap;
    Expect(CAUSALATTN_ERROR_INVALID_OPTION, "softcap must be 0 (none) or finite and > 0");
  }
}

TEST_F(VariantErrors, SlopesAndSinks) {
  std::vector<float> bad = seq.slopes;
  bad[2] = NAN;
  a.alibi_slopes = bad.data();
  Expect(CAUSALATTN_ERROR_INVALID_OPTION, "alibi_slopes[2] = nan is not finite");
  bad[2] = -INFINITY;
  Expect(CAUSALATTN_ERROR_INVALID_OPTION, "alibi_slopes[2]");
  a.alibi_slopes = nullptr;
  a.sinks = bad.data();
  bad[2] = INFINITY;
  Expect(CAUSALATTN_ERROR_INVALID_OPTION, "sinks[2] = inf: a sink logit must be finite, or -inf for none");
  bad[2] = NAN;
  Expect(CAUSALATTN_ERROR_INVALID_OPTION, "sinks[2]");
  // An output over the sinks: they are inputs.
  a.sinks = out.data();
  std::fill(out.begin(), out.begin() + kHeads, 0.0f);
  EXPECT_EQ(causalattn_attend(&a), CAUSALATTN_ERROR_ALIASING);
  EXPECT_NE(std::string(causalattn_last_error()).find("out overlaps sinks"), std::string::npos) << causalattn_last_error();
}

TEST_F(VariantErrors, Positions) {
  a.options.flags = CAUSALATTN_TOP_LEFT | CAUSALATTN_EXPLICIT_POSITIONS;
  Expect(CAUSALATTN_ERROR_INVALID_OPTION, "exclude each other");
  a.options.flags = 0;
  a.kv_pos_offset = 3;
  Expect(CAUSALATTN_ERROR_INVALID_OPTION, "lacks CAUSALATTN_EXPLICIT_POSITIONS");
  a.options.flags = CAUSALATTN_EXPLICIT_POSITIONS;
  a.kv_pos_offset = -1;
  Expect(CAUSALATTN_ERROR_INVALID_SHAPE, "kv_pos_offset = -1 is outside [0, CAUSALATTN_MAX_TOKENS");
  a.kv_pos_offset = 0;
  a.q_pos_offset = CAUSALATTN_MAX_TOKENS + 1;
  Expect(CAUSALATTN_ERROR_INVALID_SHAPE, "q_pos_offset");
  a.q_pos_offset = 0;
  const int64_t offsets[] = {-5};
  causalattn_seq_lens lens{};
  lens.kv_pos_offsets = offsets;
  a.seq_lens = &lens;
  Expect(CAUSALATTN_ERROR_INVALID_SHAPE, "kv_pos_offset = -5");
  a.options.flags = 0;
  Expect(CAUSALATTN_ERROR_INVALID_OPTION, "lacks CAUSALATTN_EXPLICIT_POSITIONS");
  a.seq_lens = nullptr;
  a.shape.q_len = 10;  // more queries than keys: only bottom-right refuses it
  Expect(CAUSALATTN_ERROR_INVALID_SHAPE, "CAUSALATTN_TOP_LEFT or CAUSALATTN_EXPLICIT_POSITIONS align it otherwise");
}

TEST_F(VariantErrors, HeadDimV) {
  for (const int64_t dv : {int64_t{-1}, int64_t{CAUSALATTN_MAX_HEAD_DIM + 1}}) {
    a.head_dim_v = dv;
    Expect(CAUSALATTN_ERROR_INVALID_SHAPE, "head_dim_v " + std::to_string(dv) + " is outside");
  }
  a.head_dim_v = 48;  // q8_0 V needs whole blocks of its own head size
  a.v_dtype = CAUSALATTN_DTYPE_Q8_0;
  Expect(CAUSALATTN_ERROR_INVALID_SHAPE, "v_dtype is Q8_0, which needs head_dim a multiple of 32, got 48");
}

// A row that sees no key: NaN and lse -inf without a sink; 0 and lse = the sink with one.
TEST(VariantRows, QueriesBeforeEveryKey) {
  const Sequence seq(4, 6, 32, 32, 9);
  std::vector<float> out(kHeads * 4 * 32), lse(kHeads * 4);
  causalattn_attend_args a = seq.part(0, 4, 0, 6, out.data(), lse.data());
  a.q_pos_offset = 10;
  a.kv_pos_offset = 12;  // queries at 10 .. 13, keys at 12 .. 17: queries 0 and 1 see none
  ASSERT_EQ(causalattn_attend(&a), CAUSALATTN_OK) << causalattn_last_error();
  EXPECT_TRUE(std::isnan(out[0]));
  EXPECT_EQ(lse[0], -INFINITY);
  EXPECT_TRUE(std::isfinite(lse[2]));
  a.kv_pos_offset = 0;  // keys at 0 .. 5 now: the sink is this call's
  a.q_pos_offset = 0;
  a.options.flags = CAUSALATTN_EXPLICIT_POSITIONS;
  a.window = 1;
  a.shape.q_len = 4;
  a.q_pos_offset = 100;  // far past every key: the window hides them all
  a.sinks = seq.sinks.data();
  ASSERT_EQ(causalattn_attend(&a), CAUSALATTN_OK) << causalattn_last_error();
  for (int64_t h = 0; h < kHeads; ++h) {
    EXPECT_EQ(out[h * 4 * 32], 0.0f);
    EXPECT_EQ(lse[h * 4], seq.sinks[h]);
  }
}

}  // namespace
}  // namespace causalattn::testing
