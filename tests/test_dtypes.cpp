// 16- and 8-bit tensors: causalattn_convert against independent oracles (every f16 and bf16 value,
// round-to-nearest-even checked by distance, ggml's q8_0 by its defining properties), then
// causalattn_attend with every K and V dtype, Q and out in f32, bf16 and f16, on every ISA: against
// the double reference on the widened inputs, the 16-bit output bit for bit the f32 output
// rounded, paged = contiguous and every thread count the same bits. A single key makes the output
// V itself, which checks the kernels' widening and rounding on special values (NaN, infinities,
// subnormals, ties) exactly.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "attention_tester.hpp"
#include "causalattn/causalattn.h"
#include "reference/reference.hpp"

extern "C" int convert_with_dtype_codes(const void* src, int src_dtype, void* dst, int dst_dtype, int64_t n);

namespace causalattn::testing {
namespace {

constexpr causalattn_dtype kF32 = CAUSALATTN_DTYPE_F32, kBf16 = CAUSALATTN_DTYPE_BF16, kF16 = CAUSALATTN_DTYPE_F16,
                           kQ8 = CAUSALATTN_DTYPE_Q8_0;

const char* dtype_name(causalattn_dtype t) {
  switch (t) {
    case CAUSALATTN_DTYPE_F32: return "f32";
    case CAUSALATTN_DTYPE_BF16: return "bf16";
    case CAUSALATTN_DTYPE_F16: return "f16";
    case CAUSALATTN_DTYPE_Q8_0: return "q8_0";
  }
  return "?";
}

int64_t unit_bytes(causalattn_dtype t) { return t == kF32 ? 4 : t == kQ8 ? 34 : 2; }
int64_t unit_elements(causalattn_dtype t) { return t == kQ8 ? 32 : 1; }

uint32_t bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}

float from_bits(uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

// ---- Oracles for one value, in double from the formats' definitions ----

// f16: 1 sign, 5 exponent (bias 15), 10 mantissa bits.
double f16_value(uint16_t h) {
  const int sign = h >> 15, exponent = (h >> 10) & 31, mantissa = h & 1023;
  double magnitude;
  if (exponent == 31) {
    magnitude = mantissa == 0 ? std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
  } else if (exponent == 0) {
    magnitude = std::ldexp(mantissa, -24);
  } else {
    magnitude = std::ldexp(1024 + mantissa, exponent - 25);
  }
  return sign ? -magnitude : magnitude;
}

double bf16_value(uint16_t h) { return from_bits(static_cast<uint32_t>(h) << 16); }

// h is x rounded to nearest, ties to even, in a format whose values `value` gives (finite h
// adjacent to h±1 in magnitude): no representable value is nearer, and on a tie h is even.
// Values at or past the largest finite one's rounding boundary go to infinity.
template <class Value>
bool rounds_to_nearest_even(float x, uint16_t h, Value value, double overflow) {
  if (std::isnan(x)) return std::isnan(value(h));
  if (std::fabs(static_cast<double>(x)) >= overflow) return value(h) == (x > 0 ? INFINITY : -INFINITY);
  const double got = value(h);
  if (!std::isfinite(got)) return false;
  const double error = std::fabs(got - x);
  const uint16_t magnitude = h & 0x7fff, sign = h & 0x8000;
  for (const int step : {-1, 1}) {
    const int neighbour = magnitude + step;
    if (neighbour < 0) continue;
    const double other = value(static_cast<uint16_t>(sign | neighbour));
    if (!std::isfinite(other)) continue;
    const double other_error = std::fabs(other - x);
    if (other_error < error || (other_error == error && (h & 1) != 0)) return false;
  }
  // Zero's other neighbour is the smallest value of the other sign.
  if (magnitude == 0 && std::fabs(value(static_cast<uint16_t>((sign ^ 0x8000) | 1)) - x) < error) return false;
  return true;
}

// Floats that probe the conversions: every f16 and bf16 value and the midpoints between
// neighbours (and just beside them), subnormals of f32, the overflow edges, special values,
// random bits.
std::vector<float> probe_floats() {
  std::vector<float> xs = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, -NAN, std::numeric_limits<float>::denorm_min(),
                           std::numeric_limits<float>::min(), std::numeric_limits<float>::max(), 65504.0f, 65519.99f,
                           65520.0f, 65536.0f, 1e-8f, 5.96e-8f, 2.98e-8f, 2.99e-8f};
  for (uint32_t h = 0; h < 0x10000; ++h) {
    for (const double value : {f16_value(static_cast<uint16_t>(h)), bf16_value(static_cast<uint16_t>(h))}) {
      if (!std::isfinite(value)) continue;
      const auto x = static_cast<float>(value);
      xs.push_back(x);
      xs.push_back(std::nextafter(x, INFINITY));
      xs.push_back(std::nextafter(x, -INFINITY));
    }
    if ((h & 0x7fff) < 0x7bff) {  // the f16 midpoint to the next magnitude, exact in float
      const auto mid = static_cast<float>((f16_value(static_cast<uint16_t>(h)) + f16_value(static_cast<uint16_t>(h + 1))) / 2);
      xs.push_back(mid);
      xs.push_back(std::nextafter(mid, INFINITY));
      xs.push_back(std::nextafter(mid, -INFINITY));
    }
  }
  for (uint32_t u = 0x00007fff; u < 0x00810000; u += 0x8001) xs.push_back(from_bits(u ^ 0x8000));  // bf16 ties near 0
  std::mt19937 rng(7);
  for (int i = 0; i < 200000; ++i) xs.push_back(from_bits(static_cast<uint32_t>(rng())));
  return xs;
}

TEST(Convert, WideningIsExactForEvery16BitValue) {
  std::vector<uint16_t> all(0x10000);
  std::iota(all.begin(), all.end(), uint16_t{0});
  std::vector<float> f16(all.size()), bf16(all.size());
  ASSERT_EQ(causalattn_convert(all.data(), kF16, f16.data(), kF32, 0x10000), CAUSALATTN_OK);
  ASSERT_EQ(causalattn_convert(all.data(), kBf16, bf16.data(), kF32, 0x10000), CAUSALATTN_OK);
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const double f16_expected = f16_value(static_cast<uint16_t>(h)), bf16_expected = bf16_value(static_cast<uint16_t>(h));
    if (std::isnan(f16_expected)) {
      EXPECT_TRUE(std::isnan(f16[h])) << h;
    } else {
      EXPECT_EQ(f16[h], f16_expected) << h;
    }
    if (std::isnan(bf16_expected)) {
      EXPECT_TRUE(std::isnan(bf16[h])) << h;
    } else {
      EXPECT_EQ(bf16[h], bf16_expected) << h;
    }
  }
}

TEST(Convert, NarrowingRoundsToNearestEven) {
  const std::vector<float> xs = probe_floats();
  const auto n = static_cast<int64_t>(xs.size());
  std::vector<uint16_t> f16(xs.size()), bf16(xs.size());
  ASSERT_EQ(causalattn_convert(xs.data(), kF32, f16.data(), kF16, n), CAUSALATTN_OK);
  ASSERT_EQ(causalattn_convert(xs.data(), kF32, bf16.data(), kBf16, n), CAUSALATTN_OK);
  // Past the largest finite value plus half its ulp (ties go to the even infinity side).
  const double f16_overflow = 65504.0 + 16.0, bf16_overflow = std::ldexp(2.0 - std::ldexp(1.0, -8), 127);
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_TRUE(rounds_to_nearest_even(xs[i], f16[i], f16_value, f16_overflow))
        << "f16 of " << xs[i] << " (bits " << std::hex << bits(xs[i]) << ") gave " << f16[i];
    ASSERT_TRUE(rounds_to_nearest_even(xs[i], bf16[i], bf16_value, bf16_overflow))
        << "bf16 of " << xs[i] << " (bits " << std::hex << bits(xs[i]) << ") gave " << bf16[i];
  }
}

TEST(Convert, Q8_0AsGgmlQuantizes) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  constexpr int64_t kBlocks = 64;
  std::vector<float> x(kBlocks * 32);
  for (int64_t b = 0; b < kBlocks; ++b) {
    const float magnitude = std::ldexp(1.0f, static_cast<int>(b % 24) - 12);
    for (int64_t i = 0; i < 32; ++i) x[b * 32 + i] = b == 5 ? 0.0f : normal(rng) * magnitude;
  }
  std::vector<unsigned char> q(kBlocks * 34);
  std::vector<float> back(x.size());
  ASSERT_EQ(causalattn_convert(x.data(), kF32, q.data(), kQ8, kBlocks * 32), CAUSALATTN_OK);
  ASSERT_EQ(causalattn_convert(q.data(), kQ8, back.data(), kF32, kBlocks * 32), CAUSALATTN_OK);
  for (int64_t b = 0; b < kBlocks; ++b) {
    float amax = 0.0f;
    for (int64_t i = 0; i < 32; ++i) amax = std::fmax(amax, std::fabs(x[b * 32 + i]));
    uint16_t d_bits;
    std::memcpy(&d_bits, &q[b * 34], 2);
    const double d = f16_value(d_bits);
    // d is amax / 127 rounded to f16; each q is x / (amax / 127) rounded half away from zero.
    uint16_t expected_d;
    const float d_exact = amax / 127.0f;
    ASSERT_EQ(causalattn_convert(&d_exact, kF32, &expected_d, kF16, 1), CAUSALATTN_OK);
    EXPECT_EQ(d_bits, expected_d) << "block " << b;
    for (int64_t i = 0; i < 32; ++i) {
      const auto qi = static_cast<int8_t>(q[b * 34 + 2 + i]);
      const double ratio = amax == 0.0f ? 0.0 : static_cast<double>(x[b * 32 + i] * (1.0f / d_exact));
      EXPECT_EQ(qi, static_cast<int8_t>(std::round(ratio))) << "block " << b << " element " << i;
      EXPECT_LE(std::abs(qi), 127);
      EXPECT_EQ(back[b * 32 + i], static_cast<float>(d * qi)) << "dequantized as d·q";
    }
  }
}

TEST(Convert, RefusesWhatItCannotDo) {
  float x[32] = {};
  unsigned char q[34];
  uint16_t h[32];
  EXPECT_EQ(causalattn_convert(x, kF32, q, kQ8, 31), CAUSALATTN_ERROR_INVALID_SHAPE);
  EXPECT_NE(std::string(causalattn_last_error()).find("multiple of 32"), std::string::npos);
  x[7] = NAN;
  std::memset(q, 0x5a, sizeof q);
  EXPECT_EQ(causalattn_convert(x, kF32, q, kQ8, 32), CAUSALATTN_ERROR_INVALID_SHAPE);
  EXPECT_NE(std::string(causalattn_last_error()).find("src[7]"), std::string::npos);
  for (unsigned char byte : q) EXPECT_EQ(byte, 0x5a) << "nothing written";
  EXPECT_EQ(convert_with_dtype_codes(x, 9, h, CAUSALATTN_DTYPE_F16, 4), CAUSALATTN_ERROR_INVALID_OPTION);
  EXPECT_NE(std::string(causalattn_last_error()).find("src_dtype = 9"), std::string::npos);
  EXPECT_EQ(causalattn_convert(x, kF32, x + 1, kF32, 4), CAUSALATTN_ERROR_ALIASING);
  EXPECT_EQ(causalattn_convert(nullptr, kF32, h, kF16, 4), CAUSALATTN_ERROR_NULL_POINTER);
  EXPECT_EQ(causalattn_convert(x, kF32, h, kF16, -1), CAUSALATTN_ERROR_INVALID_SHAPE);
  EXPECT_EQ(causalattn_convert(x, kF32, h, kF16, 0), CAUSALATTN_OK);
}

// ---- Tensors stored in a dtype ----

// A [batches][heads][tokens][head_dim] tensor stored as `dtype`, [B,H,T,D] or [B,T,H,D], its
// strides in units of the dtype (q8_0 blocks), built from f32 values through causalattn_convert.
struct Stored {
  causalattn_dtype dtype = kF32;
  causalattn_layout layout{};
  std::vector<uint64_t> storage;  // 8-byte aligned bytes
  std::vector<float> seen;        // [B][H][T][D]: the values the library reads, widened

  void* data() { return storage.data(); }
  unsigned char* row(int64_t b, int64_t h, int64_t t) {
    return reinterpret_cast<unsigned char*>(storage.data()) +
           (b * layout.batch + h * layout.head + t * layout.token) * unit_bytes(dtype);
  }
};

Stored store(const std::vector<float>& x, int64_t batches, int64_t heads, int64_t tokens, int64_t head_dim,
             causalattn_dtype dtype, bool interleaved) {
  Stored s;
  s.dtype = dtype;
  const int64_t units = head_dim / unit_elements(dtype);
  s.layout = interleaved ? causalattn_layout{tokens * heads * units, units, heads * units}
                         : causalattn_layout{heads * tokens * units, tokens * units, units};
  s.storage.assign(static_cast<size_t>((batches * heads * tokens * units * unit_bytes(dtype) + 7) / 8), 0);
  s.seen.resize(x.size());
  for (int64_t b = 0; b < batches; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t t = 0; t < tokens; ++t) {
        const int64_t r = ((b * heads + h) * tokens + t) * head_dim;
        EXPECT_EQ(causalattn_convert(&x[r], kF32, s.row(b, h, t), dtype, head_dim), CAUSALATTN_OK);
        EXPECT_EQ(causalattn_convert(s.row(b, h, t), dtype, &s.seen[r], kF32, head_dim), CAUSALATTN_OK);
      }
  return s;
}

std::vector<float> normal_values(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> x(static_cast<size_t>(n));
  for (float& e : x) e = normal(rng) * scale;
  return x;
}

struct Case {
  int64_t batch = 1, q_heads = 4, kv_heads = 2, q_len = 1, kv_len = 37, head_dim = 64;
  bool causal = true;
  int64_t window = 0;
  causalattn_dtype q_dtype = kF32, k_dtype = kF32, v_dtype = kF32, out_dtype = kF32;
  bool interleaved = false;
  int64_t page_tokens = 0;  // > 0: K and V in shuffled pages of this many tokens
  float dropout = 0.0f;
  int threads = 0;

  std::string describe() const {
    return "B=" + std::to_string(batch) + " Hq=" + std::to_string(q_heads) + " Hkv=" + std::to_string(kv_heads) +
           " Tq=" + std::to_string(q_len) + " Tk=" + std::to_string(kv_len) + " D=" + std::to_string(head_dim) +
           (causal ? " causal" : " non-causal") + " window=" + std::to_string(window) + " q=" + dtype_name(q_dtype) +
           " k=" + dtype_name(k_dtype) + " v=" + dtype_name(v_dtype) + " out=" + dtype_name(out_dtype) +
           (interleaved ? " BTHD" : " BHTD") + " pages=" + std::to_string(page_tokens) +
           " dropout=" + std::to_string(dropout) + " isa=" + causalattn_isa();
  }
};

// A case's inputs, stored as its dtypes, and its outputs.
struct TypedRun {
  Case c;
  std::vector<float> q, k, v;  // the f32 values before storing
  Stored sq, sk, sv;
  std::vector<int32_t> block_table;
  std::vector<float> out_f32;  // the output widened to f32, [B][H][T][D]
  std::vector<uint16_t> out_raw;  // a 16-bit output as stored
  std::vector<float> lse;

  explicit TypedRun(const Case& cs, uint32_t seed = 11) : c(cs) {
    q = normal_values(c.batch * c.q_heads * c.q_len * c.head_dim, seed);
    k = normal_values(c.batch * c.kv_heads * c.kv_len * c.head_dim, seed + 1);
    v = normal_values(c.batch * c.kv_heads * c.kv_len * c.head_dim, seed + 2);
    sq = store(q, c.batch, c.q_heads, c.q_len, c.head_dim, c.q_dtype, c.interleaved);
    restore_kv();
  }

  // (Re)stores K and V from k and v, contiguous or paged.
  void restore_kv() {
    if (c.page_tokens == 0) {
      sk = store(k, c.batch, c.kv_heads, c.kv_len, c.head_dim, c.k_dtype, c.interleaved);
      sv = store(v, c.batch, c.kv_heads, c.kv_len, c.head_dim, c.v_dtype, c.interleaved);
      return;
    }
    // Pages of page_tokens tokens, sequence s's page i at a shuffled index; unused slots hold 0.
    const int64_t per_seq = (c.kv_len + c.page_tokens - 1) / c.page_tokens, pages = per_seq * c.batch + 1;
    block_table.resize(static_cast<size_t>(per_seq * c.batch));
    std::iota(block_table.begin(), block_table.end(), 1);
    std::shuffle(block_table.begin(), block_table.end(), std::mt19937(5));
    auto paged = [&](const std::vector<float>& x) {
      std::vector<float> p(static_cast<size_t>(pages * c.kv_heads * c.page_tokens * c.head_dim), 0.0f);
      for (int64_t s = 0; s < c.batch; ++s)
        for (int64_t h = 0; h < c.kv_heads; ++h)
          for (int64_t j = 0; j < c.kv_len; ++j) {
            const int64_t page = block_table[s * per_seq + j / c.page_tokens], slot = j % c.page_tokens;
            std::copy_n(&x[((s * c.kv_heads + h) * c.kv_len + j) * c.head_dim], c.head_dim,
                        &p[((page * c.kv_heads + h) * c.page_tokens + slot) * c.head_dim]);
          }
      return p;
    };
    sk = store(paged(k), pages, c.kv_heads, c.page_tokens, c.head_dim, c.k_dtype, c.interleaved);
    sv = store(paged(v), pages, c.kv_heads, c.page_tokens, c.head_dim, c.v_dtype, c.interleaved);
  }

  // The values the library reads, [B][Hkv][Tk][D] (paged or not).
  std::vector<float> seen_kv(const Stored& s) const {
    if (c.page_tokens == 0) return s.seen;
    const int64_t per_seq = (c.kv_len + c.page_tokens - 1) / c.page_tokens;
    std::vector<float> x(static_cast<size_t>(c.batch * c.kv_heads * c.kv_len * c.head_dim));
    for (int64_t b = 0; b < c.batch; ++b)
      for (int64_t h = 0; h < c.kv_heads; ++h)
        for (int64_t j = 0; j < c.kv_len; ++j) {
          const int64_t page = block_table[b * per_seq + j / c.page_tokens], slot = j % c.page_tokens;
          std::copy_n(&s.seen[((page * c.kv_heads + h) * c.page_tokens + slot) * c.head_dim], c.head_dim,
                      &x[((b * c.kv_heads + h) * c.kv_len + j) * c.head_dim]);
        }
    return x;
  }

  int attend(causalattn_dtype out_dtype) {
    const int64_t out_elements = c.batch * c.q_heads * c.q_len * c.head_dim;
    std::vector<uint64_t> out(static_cast<size_t>((out_elements * unit_bytes(out_dtype) + 7) / 8), 0x5a5a5a5a5a5a5a5aull);
    lse.assign(static_cast<size_t>(c.batch * c.q_heads * c.q_len), -1.0f);
    causalattn_attend_args a{};
    a.shape = {c.batch, c.q_heads, c.kv_heads, c.q_len, c.kv_len, c.head_dim};
    a.q = sq.data();
    a.q_layout = sq.layout;
    a.k = sk.data();
    a.k_layout = sk.layout;
    a.v = sv.data();
    a.v_layout = sv.layout;
    a.out = out.data();
    a.out_layout = {c.q_heads * c.q_len * c.head_dim, c.q_len * c.head_dim, c.head_dim};
    a.options.flags = c.causal ? 0u : CAUSALATTN_NON_CAUSAL;
    a.options.num_threads = c.threads;
    a.options.lse = lse.data();
    a.window = c.window;
    a.dropout = {c.dropout, 99};
    a.q_dtype = c.q_dtype;
    a.k_dtype = c.k_dtype;
    a.v_dtype = c.v_dtype;
    a.out_dtype = out_dtype;
    causalattn_seq_lens lens{};
    std::vector<int64_t> kv_lens(static_cast<size_t>(c.batch), c.kv_len);
    causalattn_kv_pages pages{};
    if (c.page_tokens > 0) {
      const int64_t per_seq = (c.kv_len + c.page_tokens - 1) / c.page_tokens;
      pages = {block_table.data(), per_seq, c.page_tokens, per_seq * c.batch + 1};
      lens.kv_lens = kv_lens.data();
      a.seq_lens = &lens;
      a.pages = &pages;
    }
    const int status = causalattn_attend(&a);
    if (status != CAUSALATTN_OK) return status;
    out_f32.resize(static_cast<size_t>(out_elements));
    EXPECT_EQ(causalattn_convert(out.data(), out_dtype, out_f32.data(), kF32, out_elements), CAUSALATTN_OK);
    out_raw.clear();
    if (out_dtype != kF32) {
      out_raw.resize(static_cast<size_t>(out_elements));
      std::memcpy(out_raw.data(), out.data(), out_raw.size() * 2);
    }
    return status;
  }

  reference::Result reference() const {
    const causalattn_shape shape{c.batch, c.q_heads, c.kv_heads, c.q_len, c.kv_len, c.head_dim};
    const causalattn_layout q_layout{c.q_heads * c.q_len * c.head_dim, c.q_len * c.head_dim, c.head_dim};
    const causalattn_layout kv_layout{c.kv_heads * c.kv_len * c.head_dim, c.kv_len * c.head_dim, c.head_dim};
    const float p = c.dropout;
    const reference::WeightMultiplier keep = [p](int64_t b, int64_t h, int64_t i, int64_t j) {
      return causalattn_dropout_keep(p, 99, b, h, i, j) ? 1.0 / (1.0 - p) : 0.0;
    };
    const std::vector<float> k_seen = seen_kv(sk), v_seen = seen_kv(sv);
    return reference::attention(shape, sq.seen.data(), q_layout, k_seen.data(), kv_layout, v_seen.data(), kv_layout,
                                c.causal, 0.0, c.window, c.dropout > 0.0f ? &keep : nullptr);
  }
};

// The bf16 dot-product kernel (ISAs avx512bf16, neonbf16) and the AMX kernel (ISA amx) run prefill when Q, K
// and V are all bf16: they round the weights P to bf16 for P·V, which adds at most 2^-8 · max|v|
// to an output (lib/kernels/attention_bf16.hpp derives it).
bool uses_bf16_kernel(const Case& c) {
  const std::string isa = causalattn_isa();
  return (isa == "avx512bf16" || isa == "neonbf16" || isa == "amx") && c.q_dtype == kBf16 && c.k_dtype == kBf16 && c.v_dtype == kBf16;
}

double max_abs(const std::vector<float>& x) {
  double m = 0.0;
  for (float e : x)
    if (std::isfinite(e)) m = std::fmax(m, std::fabs(e));
  return m;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// The case with f32 output against the reference on the widened inputs (the fp32 bound: every
// input is exact in f32), then with its own output dtype: the bits of the f32 output rounded.
void check_case(const Case& c) {
  SCOPED_TRACE(c.describe());
  TypedRun run(c);
  ASSERT_EQ(run.attend(kF32), CAUSALATTN_OK) << causalattn_last_error();
  const std::vector<float> f32_out = run.out_f32, f32_lse = run.lse;
  const reference::Result ref = run.reference();
  const std::vector<float> v_seen = run.seen_kv(run.sv);
  Tolerance tol = tolerance_for(v_seen, ref);
  if (uses_bf16_kernel(c)) tol.out += std::ldexp(max_abs(v_seen), -8);  // P rounded to bf16
  for (size_t i = 0; i < f32_out.size(); ++i) {
    ASSERT_TRUE(matches(f32_out[i], ref.out[i], tol.out)) << "out[" << i << "] = " << f32_out[i] << ", reference "
                                                          << ref.out[i] << ", tolerance " << tol.out;
  }
  for (size_t i = 0; i < f32_lse.size(); ++i) {
    ASSERT_TRUE(matches(f32_lse[i], ref.lse[i], tol.lse_factor * (1.0 + std::fabs(ref.lse[i]))))
        << "lse[" << i << "] = " << f32_lse[i] << ", reference " << ref.lse[i];
  }
  if (c.out_dtype == kF32) return;
  ASSERT_EQ(run.attend(c.out_dtype), CAUSALATTN_OK) << causalattn_last_error();
  std::vector<uint16_t> rounded(f32_out.size());
  ASSERT_EQ(causalattn_convert(f32_out.data(), kF32, rounded.data(), c.out_dtype, static_cast<int64_t>(f32_out.size())),
            CAUSALATTN_OK);
  for (size_t i = 0; i < rounded.size(); ++i) {
    ASSERT_EQ(run.out_raw[i], rounded[i]) << "out[" << i << "] is not the f32 output " << f32_out[i] << " rounded";
  }
  EXPECT_TRUE(same_bits(run.lse, f32_lse)) << "the LSE does not depend on the output's type";
}

class Dtypes : public PerIsaTest {};

// Every K dtype with every V dtype, Q and out taking f32, bf16 and f16 in turn, on the decode
// shape (GQA, a few queries) and the prefill shape (row blocks, diagonal tiles, an odd tail).
TEST_P(Dtypes, EveryKvPairOnDecodeAndPrefill) {
  const causalattn_dtype kv_types[] = {kF32, kBf16, kF16, kQ8};
  const causalattn_dtype qo_types[] = {kF32, kBf16, kF16};
  int turn = 0;
  for (const causalattn_dtype kt : kv_types)
    for (const causalattn_dtype vt : kv_types) {
      ++turn;
      Case c;
      c.k_dtype = kt;
      c.v_dtype = vt;
      c.q_dtype = qo_types[turn % 3];
      c.out_dtype = qo_types[(turn / 3) % 3];
      c.q_len = 1 + turn % 4;
      c.kv_len = 1100 + turn;  // two decode chunks
      check_case(c);
      c.q_len = 100;
      c.kv_len = 203;
      c.interleaved = turn % 2 == 1;
      check_case(c);
    }
}

// Head dims that leave a tail past the last full vector (16-bit types; q8_0 needs multiples of 32).
TEST_P(Dtypes, OddHeadDims) {
  for (const int64_t d : {1, 7, 33, 100}) {
    Case c;
    c.head_dim = d;
    c.q_dtype = kBf16;
    c.k_dtype = kF16;
    c.v_dtype = kBf16;
    c.out_dtype = kF16;
    c.q_len = 3;
    c.kv_len = 77;
    check_case(c);
    c.q_len = 61;
    c.kv_len = 130;
    c.causal = false;
    check_case(c);
  }
  Case c;
  c.head_dim = 96;
  c.k_dtype = c.v_dtype = kQ8;
  c.q_len = 50;
  c.kv_len = 90;
  check_case(c);
}

TEST_P(Dtypes, WindowDropoutNonCausalAndBatches) {
  Case c;
  c.batch = 3;
  c.k_dtype = kQ8;
  c.v_dtype = kF16;
  c.q_dtype = kBf16;
  c.out_dtype = kBf16;
  c.q_len = 70;
  c.kv_len = 300;
  c.window = 64;
  check_case(c);
  c.window = 0;
  c.dropout = 0.25f;
  check_case(c);
  c.dropout = 0.0f;
  c.causal = false;
  c.q_len = 5;
  check_case(c);
}

// All of Q, K and V in bf16: the bf16 kernel where the ISA has one (its bound), elsewhere the
// widening kernels (the f32 bound). Shapes that meet every part of it: odd head dims (a dim pair
// half empty), tiles with odd runs of unmasked keys, windows (masked lower edges), dropout,
// non-causal, GQA, short blocks, several chunks.
TEST_P(Dtypes, AllBf16) {
  struct Shape {
    int64_t q_len, kv_len, head_dim;
    bool causal;
    int64_t window;
    float dropout;
  };
  const Shape shapes[] = {{100, 203, 64, true, 0, 0.0f},  {61, 130, 33, false, 0, 0.0f}, {97, 97, 128, true, 0, 0.0f},
                          {200, 900, 80, true, 75, 0.0f}, {50, 333, 7, true, 0, 0.2f},   {9, 1000, 64, false, 0, 0.0f},
                          {300, 1200, 96, true, 0, 0.0f}, {1, 50, 64, true, 0, 0.0f},
                          // the AMX kernel's shapes (head_dim a multiple of 32): a window's
                          // edges, dropout, several chunks, non-causal
                          {200, 900, 64, true, 75, 0.0f}, {150, 500, 128, true, 0, 0.2f},
                          {130, 1000, 32, true, 0, 0.0f}, {70, 800, 64, false, 0, 0.0f}};
  for (const Shape& shape : shapes) {
    Case c;
    c.q_dtype = c.k_dtype = c.v_dtype = kBf16;
    c.out_dtype = kBf16;
    c.q_len = shape.q_len;
    c.kv_len = shape.kv_len;
    c.head_dim = shape.head_dim;
    c.causal = shape.causal;
    c.window = shape.window;
    c.dropout = shape.dropout;
    check_case(c);
    c.interleaved = true;
    c.page_tokens = 16;
    check_case(c);
  }
}

TEST_P(Dtypes, PagedEqualsContiguousBitwise) {
  for (const causalattn_dtype t : {kBf16, kF16, kQ8}) {
    for (const int64_t q_len : {2, 90}) {
      Case c;
      c.batch = 2;
      c.k_dtype = t;
      c.v_dtype = t == kQ8 ? kBf16 : t;
      c.q_dtype = t == kBf16 ? kBf16 : kF32;  // all bf16: the bf16 kernel where there is one
      c.q_len = q_len;
      c.kv_len = 1100;  // two decode chunks
      SCOPED_TRACE(c.describe());
      TypedRun contiguous(c);
      ASSERT_EQ(contiguous.attend(kBf16), CAUSALATTN_OK) << causalattn_last_error();
      c.page_tokens = 16;
      TypedRun paged(c);
      ASSERT_EQ(paged.attend(kBf16), CAUSALATTN_OK) << causalattn_last_error();
      EXPECT_EQ(contiguous.out_raw, paged.out_raw);
      EXPECT_TRUE(same_bits(contiguous.lse, paged.lse));
      check_case(c);
    }
  }
}

TEST_P(Dtypes, SameBitsForEveryThreadCount) {
  for (const int64_t q_len : {4, 150}) {
    Case c;
    c.batch = 2;
    c.k_dtype = kQ8;
    c.v_dtype = kBf16;
    c.out_dtype = kF16;
    c.q_len = q_len;
    c.kv_len = 2100;  // three decode chunks
    std::vector<uint16_t> first;
    for (const int threads : {1, 2, 3, 7}) {
      c.threads = threads;
      TypedRun run(c);
      ASSERT_EQ(run.attend(kF16), CAUSALATTN_OK) << causalattn_last_error();
      if (first.empty()) first = run.out_raw;
      EXPECT_EQ(run.out_raw, first) << threads << " threads";
    }
  }
}

// Causality: keys after a query's position (stored in any dtype) do not reach it, whatever they hold.
TEST_P(Dtypes, FutureKeysDoNotReachEarlierQueries) {
  for (const causalattn_dtype t : {kBf16, kF16, kQ8}) {
    Case c;
    c.k_dtype = c.v_dtype = t;
    c.q_len = 40;
    c.kv_len = 40;
    SCOPED_TRACE(c.describe());
    TypedRun run(c);
    ASSERT_EQ(run.attend(kF32), CAUSALATTN_OK);
    const std::vector<float> before = run.out_f32;
    for (int64_t h = 0; h < c.kv_heads; ++h)
      for (int64_t j = 20; j < 40; ++j)
        for (int64_t d = 0; d < c.head_dim; ++d) {
          run.k[(h * c.kv_len + j) * c.head_dim + d] *= 1000.0f;
          run.v[(h * c.kv_len + j) * c.head_dim + d] = 1e4f;
        }
    run.restore_kv();
    ASSERT_EQ(run.attend(kF32), CAUSALATTN_OK);
    for (int64_t h = 0; h < c.q_heads; ++h)
      for (int64_t i = 0; i < 20; ++i)
        for (int64_t d = 0; d < c.head_dim; ++d) {
          const size_t at = static_cast<size_t>((h * c.q_len + i) * c.head_dim + d);
          ASSERT_EQ(bits(run.out_f32[at]), bits(before[at])) << "head " << h << " query " << i;
        }
  }
}

// All bf16 on the kernels that round P (the bf16 dot product, the AMX tiles), with runs of whole
// tiles before the diagonal: finite changes to K and V at future positions leave the earlier
// queries' bits alone; a NaN there reaches none of them (the AMX kernel then takes the f32 path
// for the tiles that hold it, which may move an earlier query's last bits, within the bound).
TEST_P(Dtypes, AllBf16FutureKeysDoNotReachEarlierQueries) {
  Case c;
  c.q_dtype = c.k_dtype = c.v_dtype = c.out_dtype = kBf16;
  c.q_len = c.kv_len = 300;
  SCOPED_TRACE(c.describe());
  TypedRun run(c);
  ASSERT_EQ(run.attend(kF32), CAUSALATTN_OK);
  const std::vector<float> before = run.out_f32;
  constexpr int64_t kFirstFuture = 150;
  auto change_future = [&](float v_value) {
    for (int64_t h = 0; h < c.kv_heads; ++h)
      for (int64_t j = kFirstFuture; j < c.kv_len; ++j)
        for (int64_t d = 0; d < c.head_dim; ++d) {
          run.k[(h * c.kv_len + j) * c.head_dim + d] *= 1000.0f;
          run.v[(h * c.kv_len + j) * c.head_dim + d] = v_value;
        }
    run.restore_kv();
    ASSERT_EQ(run.attend(kF32), CAUSALATTN_OK);
  };
  auto at = [&](int64_t h, int64_t i, int64_t d) { return static_cast<size_t>((h * c.q_len + i) * c.head_dim + d); };
  change_future(1e4f);
  for (int64_t h = 0; h < c.q_heads; ++h)
    for (int64_t i = 0; i < kFirstFuture; ++i)
      for (int64_t d = 0; d < c.head_dim; ++d) {
        ASSERT_EQ(bits(run.out_f32[at(h, i, d)]), bits(before[at(h, i, d)])) << "head " << h << " query " << i;
      }
  change_future(std::numeric_limits<float>::quiet_NaN());
  const double bound = std::ldexp(max_abs(run.seen_kv(run.sv)), -7);  // twice the P rounding's 2^-8 · max|v|
  for (int64_t h = 0; h < c.q_heads; ++h)
    for (int64_t i = 0; i < c.q_len; ++i)
      for (int64_t d = 0; d < c.head_dim; ++d) {
        const float out = run.out_f32[at(h, i, d)];
        if (i < kFirstFuture) {
          ASSERT_LE(std::fabs(out - before[at(h, i, d)]), bound) << "head " << h << " query " << i;
        } else {
          ASSERT_TRUE(std::isnan(out)) << "head " << h << " query " << i << " sees a NaN value";
        }
      }
}

// One key: every output row is V's row exactly (weight 1), so the kernels' widening of V and the
// rounding of the output meet every kind of value: NaN, ±infinity, f16 and bf16 subnormals, ties,
// overflow. Both kernels: 1 query (decode) and 64 non-causal queries (row blocks).
TEST_P(Dtypes, SingleKeyPassesSpecialValuesExactly) {
  const std::vector<float> probes = probe_floats();
  constexpr int64_t D = 64;
  for (const int64_t q_len : {1, 64}) {
    for (const causalattn_dtype vt : {kF32, kBf16, kF16}) {
      for (const causalattn_dtype ot : {kF32, kBf16, kF16}) {
        Case c;
        c.q_heads = c.kv_heads = 1;
        c.q_len = q_len;
        c.kv_len = 1;
        c.head_dim = D;
        c.causal = q_len == 1;
        c.v_dtype = vt;
        c.out_dtype = ot;
        SCOPED_TRACE(c.describe());
        for (size_t first = 0; first < 4096 * D; first += 97 * D) {  // a sample of the probes, D at a time
          TypedRun run(c);
          for (int64_t d = 0; d < D; ++d) run.v[d] = probes[(first + d * 131) % probes.size()];
          for (float& x : run.q) x = 0.0f;
          run.restore_kv();
          ASSERT_EQ(run.attend(ot), CAUSALATTN_OK) << causalattn_last_error();
          // The kernels sum from +0: a -0 in V comes out +0 (v + 0 is what they compute).
          std::vector<float> want(D);
          for (int64_t d = 0; d < D; ++d) want[d] = run.sv.seen[d] + 0.0f;
          std::vector<uint16_t> expected(D);
          if (ot != kF32) {
            ASSERT_EQ(causalattn_convert(want.data(), kF32, expected.data(), ot, D), CAUSALATTN_OK);
          }
          auto nan16 = [&](uint16_t h) {
            return ot == kBf16 ? (h & 0x7f80) == 0x7f80 && (h & 0x7f) != 0 : (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0;
          };
          for (int64_t i = 0; i < q_len; ++i) {
            for (int64_t d = 0; d < D; ++d) {
              if (ot == kF32) {
                const float got = run.out_f32[i * D + d];
                ASSERT_TRUE(std::isnan(want[d]) ? std::isnan(got) : bits(got) == bits(want[d]))
                    << "row " << i << " d " << d << ": " << got << " for V = " << want[d];
              } else {
                const uint16_t got = run.out_raw[i * D + d];
                ASSERT_TRUE(nan16(expected[d]) ? nan16(got) : got == expected[d])
                    << "row " << i << " d " << d << ": " << got << " for V = " << want[d] << " (expected " << expected[d]
                    << ")";
              }
            }
          }
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, Dtypes, ::testing::ValuesIn(known_isas()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

// ---- Refusals: a status, a message naming the problem, out untouched ----

struct Refusal {
  causalattn_attend_args a{};
  std::vector<uint64_t> q, k, v, out;
  Refusal() {
    q.assign(64, 0);
    k.assign(64, 0);
    v.assign(64, 0);
    out.assign(64, 0x1234);
    a.shape = {1, 1, 1, 2, 2, 32};
    a.q = q.data();
    a.k = k.data();
    a.v = v.data();
    a.out = out.data();
    a.q_layout = a.k_layout = a.v_layout = a.out_layout = {64, 64, 32};
  }
  void expect(int status, const std::string& words) {
    EXPECT_EQ(causalattn_attend(&a), status);
    EXPECT_NE(std::string(causalattn_last_error()).find(words), std::string::npos) << causalattn_last_error();
    for (uint64_t x : out) ASSERT_EQ(x, 0x1234u) << "out was written";
  }
};

TEST(DtypeErrors, NotADtype) {
  Refusal r;
  const int32_t four = 4;  // as a C caller may store it (in C++ only its bits can be set)
  std::memcpy(&r.a.v_dtype, &four, sizeof four);
  r.expect(CAUSALATTN_ERROR_INVALID_OPTION, "v_dtype = 4 is not a causalattn_dtype");
}

TEST(DtypeErrors, Q8_0ForQueriesOrOutput) {
  Refusal r;
  r.a.q_dtype = kQ8;
  r.expect(CAUSALATTN_ERROR_UNSUPPORTED, "q_dtype is Q8_0");
  Refusal o;
  o.a.out_dtype = kQ8;
  o.expect(CAUSALATTN_ERROR_UNSUPPORTED, "out_dtype is Q8_0");
}

TEST(DtypeErrors, Q8_0HeadDimNotWholeBlocks) {
  Refusal r;
  r.a.shape.head_dim = 48;
  r.a.k_dtype = kQ8;
  r.a.k_layout = {2, 2, 1};
  r.expect(CAUSALATTN_ERROR_INVALID_SHAPE, "multiple of 32, got 48");
}

TEST(DtypeErrors, Misaligned) {
  Refusal r;
  r.a.k_dtype = kBf16;
  r.a.k = reinterpret_cast<const unsigned char*>(r.k.data()) + 1;
  r.expect(CAUSALATTN_ERROR_INVALID_LAYOUT, "k is not aligned to 2 bytes");
  Refusal f;
  f.a.out = reinterpret_cast<unsigned char*>(f.out.data()) + 2;
  f.expect(CAUSALATTN_ERROR_INVALID_LAYOUT, "out is not aligned to 4 bytes");
}

TEST(DtypeErrors, Q8_0StridesCountBlocks) {
  // Strides count 34-byte blocks: one that fits int64 as a count but not in bytes is refused.
  Refusal r;
  r.a.k_dtype = kQ8;
  r.a.k_layout = {INT64_MAX / 30, 1, INT64_MAX / 30};
  r.expect(CAUSALATTN_ERROR_INVALID_LAYOUT, "k_layout");
}

TEST(DtypeErrors, AttendF32RefusesOtherDtypes) {
  Refusal r;
  r.a.k_dtype = kF16;
  EXPECT_EQ(causalattn_attend_f32(&r.a), CAUSALATTN_ERROR_UNSUPPORTED);
  EXPECT_NE(std::string(causalattn_last_error()).find("k_dtype"), std::string::npos);
  EXPECT_NE(std::string(causalattn_last_error()).find("causalattn_attend"), std::string::npos);
  for (uint64_t x : r.out) ASSERT_EQ(x, 0x1234u);
}

// ---- Merge of 16-bit partials ----

TEST(DtypeMerge, SixteenBitPartialsMergeAsTheirWidenedValues) {
  const causalattn_shape shape{2, 3, 3, 5, 0, 40};
  const int64_t rows = 2 * 3 * 5, n = rows * 40;
  const causalattn_layout layout{3 * 5 * 40, 5 * 40, 40};
  const std::vector<float> a = normal_values(n, 1), b = normal_values(n, 2);
  std::vector<float> lse_a = normal_values(rows, 3), lse_b = normal_values(rows, 4);
  lse_b[4] = -INFINITY;  // a part that saw no key there
  std::vector<uint16_t> a16(n), b16(n);
  ASSERT_EQ(causalattn_convert(a.data(), kF32, a16.data(), kBf16, n), CAUSALATTN_OK);
  ASSERT_EQ(causalattn_convert(b.data(), kF32, b16.data(), kF16, n), CAUSALATTN_OK);
  std::vector<float> a_seen(n), b_seen(n);
  ASSERT_EQ(causalattn_convert(a16.data(), kBf16, a_seen.data(), kF32, n), CAUSALATTN_OK);
  ASSERT_EQ(causalattn_convert(b16.data(), kF16, b_seen.data(), kF32, n), CAUSALATTN_OK);
  const causalattn_partial parts[] = {{a16.data(), layout, lse_a.data(), kBf16}, {b16.data(), layout, lse_b.data(), kF16}};
  const causalattn_partial_f32 parts_f32[] = {{a_seen.data(), layout, lse_a.data()}, {b_seen.data(), layout, lse_b.data()}};
  std::vector<float> expected(n), expected_lse(rows), lse(rows);
  ASSERT_EQ(causalattn_merge_f32(&shape, parts_f32, 2, expected.data(), layout, expected_lse.data()), CAUSALATTN_OK);
  std::vector<uint16_t> out(n), rounded(n);
  ASSERT_EQ(causalattn_merge(&shape, parts, 2, out.data(), layout, kBf16, lse.data()), CAUSALATTN_OK)
      << causalattn_last_error();
  ASSERT_EQ(causalattn_convert(expected.data(), kF32, rounded.data(), kBf16, n), CAUSALATTN_OK);
  EXPECT_EQ(out, rounded);
  EXPECT_TRUE(same_bits(lse, expected_lse));
  EXPECT_EQ(causalattn_merge(&shape, parts, 2, out.data(), layout, kQ8, nullptr), CAUSALATTN_ERROR_UNSUPPORTED);
}

}  // namespace
}  // namespace causalattn::testing
