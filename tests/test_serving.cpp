// Serving shapes through causalattn_attend_f32: packed and padded batches of sequences of
// different lengths, paged KV caches, sliding windows and the decode path, each sequence against
// the double reference run on that sequence alone.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "attention_tester.hpp"
#include "causalattn/causalattn.h"
#include "reference/reference.hpp"

namespace causalattn::testing {
namespace {

enum class QForm { kPacked, kPadded };
enum class KvForm { kPacked, kPadded, kPaged };

struct Seq {
  int64_t q_len, kv_len;
};

// One sequence's tensors, [heads][tokens][head_dim] contiguous: what the reference reads.
struct SeqData {
  std::vector<float> q, k, v;
};

// A batch in the library's input forms, built from per-sequence data. Everything the library
// must not read (padding, unused pages) holds NaN; everything it must not write holds a sentinel.
struct ServingCase {
  std::vector<Seq> seqs;
  int64_t q_heads = 8, kv_heads = 2, head_dim = 64;
  bool causal = true;
  int64_t window = 0;
  QForm q_form = QForm::kPacked;
  KvForm kv_form = KvForm::kPacked;
  int64_t page_tokens = 16;
  int threads = 0;
  uint32_t seed = 1;
  // Model variants (causalattn_attend_args): off at their zeros.
  uint32_t alignment = 0;                   // 0, CAUSALATTN_TOP_LEFT or CAUSALATTN_EXPLICIT_POSITIONS
  int64_t q_pos = 0, kv_pos = 0;            // the call's offsets
  std::vector<int64_t> q_pos_offsets, kv_pos_offsets;  // per sequence (empty: the call's)
  bool sinks = false, alibi = false;        // random per-head sinks, BLOOM's slopes
  float softcap = 0.0f;
  int64_t head_dim_v = 0;                   // 0: head_dim

  static constexpr float kSentinel = -12345.0f;

  // Built by build():
  std::vector<SeqData> data;
  causalattn_attend_args args{};
  std::vector<float> q, k, v, out, lse, sink_logits, slopes;
  std::vector<int64_t> cu_q, q_lens, cu_kv, kv_lens;
  std::vector<int32_t> block_table;
  causalattn_seq_lens seq_lens{};
  causalattn_kv_pages pages{};

  int64_t batch() const { return static_cast<int64_t>(seqs.size()); }
  int64_t dv() const { return head_dim_v != 0 ? head_dim_v : head_dim; }

  void build() {
    const int64_t B = batch(), D = head_dim, Dv = dv(), Hq = q_heads, Hkv = kv_heads;
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal;
    data.assign(seqs.size(), {});
    for (size_t s = 0; s < seqs.size(); ++s) {
      data[s].q.resize(Hq * seqs[s].q_len * D);
      data[s].k.resize(Hkv * seqs[s].kv_len * D);
      data[s].v.resize(Hkv * seqs[s].kv_len * Dv);
      for (auto* t : {&data[s].q, &data[s].k, &data[s].v})
        for (float& x : *t) x = normal(rng);
    }
    const float nan = std::numeric_limits<float>::quiet_NaN();
    args = {};
    seq_lens = {};
    cu_q.assign(1, 0);
    cu_kv.assign(1, 0);
    q_lens.clear();
    kv_lens.clear();
    int64_t q_max = 0, kv_max = 0;
    for (const Seq& s : seqs) {
      cu_q.push_back(cu_q.back() + s.q_len);
      cu_kv.push_back(cu_kv.back() + s.kv_len);
      q_lens.push_back(s.q_len);
      kv_lens.push_back(s.kv_len);
      q_max = std::max(q_max, s.q_len);
      kv_max = std::max(kv_max, s.kv_len);
    }

    // Queries and outputs: packed [tokens][Hq][D or Dv] or padded [B][Hq][q_max + 2][D or Dv].
    int64_t q_capacity = 0;
    if (q_form == QForm::kPacked) {
      q_capacity = std::max<int64_t>(cu_q.back() + 1, 1);  // one spare token: must stay untouched
      args.q_layout = {q_capacity * Hq * D, D, Hq * D};
      args.out_layout = {q_capacity * Hq * Dv, Dv, Hq * Dv};
      q.assign(q_capacity * Hq * D, nan);
      seq_lens.cu_q_lens = cu_q.data();
    } else {
      q_capacity = q_max + 2;
      args.q_layout = {Hq * q_capacity * D, q_capacity * D, D};
      args.out_layout = {Hq * q_capacity * Dv, q_capacity * Dv, Dv};
      q.assign(B * Hq * q_capacity * D, nan);
      seq_lens.q_lens = q_lens.data();
    }
    out.assign(q.size() / D * Dv, kSentinel);
    const int64_t q_batches = q_form == QForm::kPacked ? 1 : B;
    lse.assign(q_batches * Hq * q_capacity, kSentinel);
    for (int64_t s = 0; s < B; ++s)
      for (int64_t h = 0; h < Hq; ++h)
        for (int64_t t = 0; t < seqs[s].q_len; ++t)
          std::memcpy(q_row_in(q, s, h, t), &data[s].q[(h * seqs[s].q_len + t) * D], D * sizeof(float));

    // Keys and values: packed [tokens][Hkv][D or Dv], padded [B][Hkv][kv_max + 3][D or Dv], or
    // pages [num_pages][page_tokens][Hkv][D or Dv] handed out in a shuffled order.
    int64_t kv_capacity = 0;
    if (kv_form == KvForm::kPacked) {
      kv_capacity = std::max<int64_t>(cu_kv.back(), 1);
      args.k_layout = {kv_capacity * Hkv * D, D, Hkv * D};
      args.v_layout = {kv_capacity * Hkv * Dv, Dv, Hkv * Dv};
      seq_lens.cu_kv_lens = cu_kv.data();
    } else if (kv_form == KvForm::kPadded) {
      kv_capacity = kv_max + 3;
      args.k_layout = {Hkv * kv_capacity * D, kv_capacity * D, D};
      args.v_layout = {Hkv * kv_capacity * Dv, kv_capacity * Dv, Dv};
      seq_lens.kv_lens = kv_lens.data();
    } else {
      int64_t pages_needed = 0, widest = 1;
      for (const Seq& s : seqs) {
        pages_needed += (s.kv_len + page_tokens - 1) / page_tokens;
        widest = std::max(widest, (s.kv_len + page_tokens - 1) / page_tokens);
      }
      const int64_t num_pages = pages_needed + 3;  // spare pages: never read
      std::vector<int32_t> order(num_pages);
      std::iota(order.begin(), order.end(), 0);
      std::shuffle(order.begin(), order.end(), rng);
      pages.block_table_stride = widest + 1;
      block_table.assign(B * pages.block_table_stride, -1);  // entries past a sequence's pages: never read
      int64_t next = 0;
      for (int64_t s = 0; s < B; ++s)
        for (int64_t i = 0; i < (seqs[s].kv_len + page_tokens - 1) / page_tokens; ++i)
          block_table[s * pages.block_table_stride + i] = order[next++];
      pages.block_table = block_table.data();
      pages.page_tokens = page_tokens;
      pages.num_pages = num_pages;
      args.k_layout = {page_tokens * Hkv * D, D, Hkv * D};
      args.v_layout = {page_tokens * Hkv * Dv, Dv, Hkv * Dv};
      kv_capacity = kv_max;
      seq_lens.kv_lens = kv_lens.data();
      args.pages = &pages;
    }
    const int64_t kv_batches = kv_form == KvForm::kPaged ? pages.num_pages : kv_form == KvForm::kPacked ? 1 : B;
    k.assign(kv_batches * args.k_layout.batch, nan);
    v.assign(kv_batches * args.v_layout.batch, nan);
    for (int64_t s = 0; s < B; ++s)
      for (int64_t h = 0; h < Hkv; ++h)
        for (int64_t j = 0; j < seqs[s].kv_len; ++j) {
          std::memcpy(&k[kv_index(args.k_layout, s, h, j)], &data[s].k[(h * seqs[s].kv_len + j) * D], D * sizeof(float));
          std::memcpy(&v[kv_index(args.v_layout, s, h, j)], &data[s].v[(h * seqs[s].kv_len + j) * Dv], Dv * sizeof(float));
        }

    args.shape = {B, Hq, Hkv, q_capacity, std::max<int64_t>(kv_capacity, 1), D};
    args.q = q.data();
    args.k = k.data();
    args.v = v.data();
    args.out = out.data();
    args.options.flags = (causal ? 0u : CAUSALATTN_NON_CAUSAL) | alignment;
    args.options.num_threads = threads;
    args.options.lse = lse.data();
    args.window = window;
    args.seq_lens = &seq_lens;
    args.q_pos_offset = q_pos;
    args.kv_pos_offset = kv_pos;
    if (!q_pos_offsets.empty()) seq_lens.q_pos_offsets = q_pos_offsets.data();
    if (!kv_pos_offsets.empty()) seq_lens.kv_pos_offsets = kv_pos_offsets.data();
    args.softcap = softcap;
    args.head_dim_v = head_dim_v;
    sink_logits.clear();
    slopes.clear();
    std::uniform_real_distribution<float> sink_of(-2.0f, 3.0f);
    for (int64_t h = 0; h < Hq; ++h) {
      sink_logits.push_back(sink_of(rng));
      slopes.push_back(alibi_slope(h, Hq));
    }
    args.sinks = sinks ? sink_logits.data() : nullptr;
    args.alibi_slopes = alibi ? slopes.data() : nullptr;
  }

  // BLOOM's slopes (build_alibi_tensor): 2^(-8 (h + 1) / n) for n heads, n a power of two.
  static float alibi_slope(int64_t h, int64_t n) {
    return static_cast<float>(std::pow(2.0, -8.0 * static_cast<double>(h + 1) / static_cast<double>(n)));
  }

  int64_t seq_q_pos(int64_t s) const { return q_pos_offsets.empty() ? q_pos : q_pos_offsets[s]; }
  int64_t seq_kv_pos(int64_t s) const { return kv_pos_offsets.empty() ? kv_pos : kv_pos_offsets[s]; }

  int64_t q_index(const causalattn_layout& l, int64_t s, int64_t h, int64_t t) const {
    return q_form == QForm::kPacked ? h * l.head + (cu_q[s] + t) * l.token : s * l.batch + h * l.head + t * l.token;
  }
  float* q_row_in(std::vector<float>& tensor, int64_t s, int64_t h, int64_t t) const {
    return &tensor[q_index(args.q_layout, s, h, t)];
  }
  int64_t lse_index(int64_t s, int64_t h, int64_t t) const {
    const int64_t capacity = args.shape.q_len;
    return q_form == QForm::kPacked ? h * capacity + cu_q[s] + t : (s * q_heads + h) * capacity + t;
  }
  int64_t kv_index(const causalattn_layout& l, int64_t s, int64_t h, int64_t j) const {
    if (kv_form == KvForm::kPacked) return h * l.head + (cu_kv[s] + j) * l.token;
    if (kv_form == KvForm::kPadded) return s * l.batch + h * l.head + j * l.token;
    const int64_t page = block_table[s * pages.block_table_stride + j / page_tokens];
    return page * l.batch + h * l.head + (j % page_tokens) * l.token;
  }

  std::string describe() const {
    std::string d = std::string(q_form == QForm::kPacked ? "q packed" : "q padded") +
                    (kv_form == KvForm::kPacked ? ", kv packed" : kv_form == KvForm::kPadded ? ", kv padded" : ", kv paged") +
                    " Hq=" + std::to_string(q_heads) + " Hkv=" + std::to_string(kv_heads) + " D=" +
                    std::to_string(head_dim) + (causal ? " causal" : " non-causal") + " window=" +
                    std::to_string(window) + " isa=" + causalattn_isa() + " alignment=" + std::to_string(alignment) +
                    " q_pos=" + std::to_string(q_pos) + " kv_pos=" + std::to_string(kv_pos) +
                    (sinks ? " sinks" : "") + (alibi ? " alibi" : "") + " softcap=" + std::to_string(softcap) +
                    " head_dim_v=" + std::to_string(dv()) + " seqs:";
    for (const Seq& s : seqs) d.append(" ").append(std::to_string(s.q_len)).append("/").append(std::to_string(s.kv_len));
    return d;
  }

  // Every sequence's rows against the reference on that sequence alone; every other element
  // of out and lse untouched.
  reference::Result reference_of(int64_t s) const {
    const Seq& seq = seqs[s];
    const int64_t D = head_dim, Dv = dv();
    const causalattn_shape shape{1, q_heads, kv_heads, seq.q_len, seq.kv_len, D};
    const causalattn_layout ql{q_heads * seq.q_len * D, seq.q_len * D, D};
    const causalattn_layout kl{kv_heads * seq.kv_len * D, seq.kv_len * D, D};
    const causalattn_layout vl{kv_heads * seq.kv_len * Dv, seq.kv_len * Dv, Dv};
    reference::Variant variant;
    variant.causal = causal;
    variant.window = window;
    variant.alignment = alignment == CAUSALATTN_TOP_LEFT             ? reference::Alignment::kTopLeft
                        : alignment == CAUSALATTN_EXPLICIT_POSITIONS ? reference::Alignment::kExplicit
                                                                     : reference::Alignment::kBottomRight;
    variant.q_pos = seq_q_pos(s);
    variant.kv_pos = seq_kv_pos(s);
    // The sink belongs to the keys that start at position 0.
    const bool sink_here = sinks && (alignment != CAUSALATTN_EXPLICIT_POSITIONS || seq_kv_pos(s) == 0);
    variant.sinks = sink_here ? sink_logits.data() : nullptr;
    variant.softcap = softcap;
    variant.alibi_slopes = alibi ? slopes.data() : nullptr;
    variant.head_dim_v = Dv;
    return reference::attention(shape, data[s].q.data(), ql, data[s].k.data(), kl, data[s].v.data(), vl, variant);
  }

  void expect_matches_reference() const {
    const int64_t Dv = dv();
    std::vector<char> written_out(out.size(), 0), written_lse(lse.size(), 0);
    for (int64_t s = 0; s < batch(); ++s) {
      const Seq& seq = seqs[s];
      if (seq.q_len == 0) continue;
      const reference::Result ref = reference_of(s);
      const Tolerance tol = tolerance_for(data[s].v, ref);
      for (int64_t h = 0; h < q_heads; ++h)
        for (int64_t t = 0; t < seq.q_len; ++t) {
          const int64_t row = q_index(args.out_layout, s, h, t);
          for (int64_t d = 0; d < Dv; ++d) {
            written_out[row + d] = 1;
            const double expected = ref.out[(h * seq.q_len + t) * Dv + d];
            ASSERT_TRUE(matches(out[row + d], expected, tol.out))
                << "sequence " << s << " head " << h << " query " << t << " dim " << d << ": " << out[row + d]
                << ", reference " << expected;
          }
          const double expected_lse = ref.lse[h * seq.q_len + t];
          written_lse[lse_index(s, h, t)] = 1;
          ASSERT_TRUE(matches(lse[lse_index(s, h, t)], expected_lse, tol.lse_factor * (1 + std::fabs(expected_lse))))
              << "lse of sequence " << s << " head " << h << " query " << t;
        }
    }
    for (size_t i = 0; i < out.size(); ++i) {
      if (!written_out[i]) {
        ASSERT_EQ(out[i], kSentinel) << "out[" << i << "] is outside every sequence";
      }
    }
    for (size_t i = 0; i < lse.size(); ++i) {
      if (!written_lse[i]) {
        ASSERT_EQ(lse[i], kSentinel) << "lse[" << i << "] is outside every sequence";
      }
    }
  }

  void Test() {
    build();
    SCOPED_TRACE(describe());
    ASSERT_EQ(causalattn_attend_f32(&args), CAUSALATTN_OK) << causalattn_last_error();
    expect_matches_reference();
  }
};

class Serving : public PerIsaTest {};

// Prefill-sized and decode-sized sequences mixed, empty ones included, odd sizes everywhere.
const std::vector<Seq> kMixed = {{37, 37}, {1, 200}, {0, 5}, {130, 1100}, {3, 3}, {17, 64}};

TEST_P(Serving, PackedBatches) {
  for (int64_t d : {31, 64, 128}) {
    for (bool causal : {true, false}) {
      ServingCase c;
      c.seqs = kMixed;
      c.head_dim = d;
      c.causal = causal;
      c.seed = static_cast<uint32_t>(d);
      c.Test();
    }
  }
}

TEST_P(Serving, PaddedBatches) {
  for (KvForm kv : {KvForm::kPacked, KvForm::kPadded}) {
    ServingCase c;
    c.seqs = kMixed;
    c.q_form = QForm::kPadded;
    c.kv_form = kv;
    c.head_dim = 80;
    c.Test();
  }
  ServingCase c;  // non-causal sequences with no keys: rows see nothing (NaN, lse -inf)
  c.seqs = {{4, 0}, {20, 9}};
  c.causal = false;
  c.q_form = QForm::kPadded;
  c.kv_form = KvForm::kPadded;
  c.Test();
}

TEST_P(Serving, PagedCaches) {
  for (int64_t page_tokens : {1, 7, 16, 256}) {
    ServingCase c;
    c.seqs = kMixed;
    c.kv_form = KvForm::kPaged;
    c.page_tokens = page_tokens;
    c.head_dim = 96;
    c.seed = static_cast<uint32_t>(page_tokens);
    c.Test();
  }
}

// The same sequences through pages and through a padded cache: the same bits.
TEST_P(Serving, PagedEqualsContiguousBitwise) {
  for (int64_t window : {0, 50}) {
    ServingCase paged;
    paged.seqs = kMixed;
    paged.kv_form = KvForm::kPaged;
    paged.page_tokens = 7;
    paged.window = window;
    paged.build();
    ServingCase padded = paged;
    padded.kv_form = KvForm::kPadded;
    padded.build();
    ASSERT_EQ(causalattn_attend_f32(&paged.args), CAUSALATTN_OK) << causalattn_last_error();
    ASSERT_EQ(causalattn_attend_f32(&padded.args), CAUSALATTN_OK) << causalattn_last_error();
    EXPECT_EQ(std::memcmp(paged.out.data(), padded.out.data(), paged.out.size() * sizeof(float)), 0);
    EXPECT_EQ(std::memcmp(paged.lse.data(), padded.lse.data(), paged.lse.size() * sizeof(float)), 0);
  }
}

TEST_P(Serving, SlidingWindow) {
  for (int64_t window : {1, 17, 96, 250, 5000}) {
    for (KvForm kv : {KvForm::kPacked, KvForm::kPaged}) {
      ServingCase c;
      c.seqs = {{300, 300}, {1, 700}, {5, 2100}, {64, 1000}};
      c.window = window;
      c.kv_form = kv;
      c.page_tokens = 32;
      c.seed = static_cast<uint32_t>(window);
      c.Test();
    }
  }
}

// Decode shapes: 1 to 8 queries per sequence against caches that span several split chunks,
// with GQA groups of 1, 3, 4 and 16 query heads (a group is split into units of at most 8 rows;
// a group of 3 with 3 queries each gives units of 2 heads and 1, never one across KV heads).
TEST_P(Serving, Decode) {
  for (auto [hq, hkv] : {std::pair<int64_t, int64_t>{4, 4}, {6, 2}, {32, 8}, {16, 1}}) {
    for (int64_t q_len : {1, 2, 3, 8}) {
      ServingCase c;
      c.seqs = {{q_len, 2500}, {q_len, q_len}, {q_len, 1025}};
      c.q_heads = hq;
      c.kv_heads = hkv;
      c.head_dim = 128;
      c.kv_form = KvForm::kPaged;
      c.seed = static_cast<uint32_t>(hq * 10 + q_len);
      c.Test();
    }
  }
  {
    // Sequences of three chunks, none (no keys: top-left) and two, whose chunks run chunk-major
    // (run.cpp, phase1_task), on a few threads.
    ServingCase c;
    c.seqs = {{1, 2500}, {2, 0}, {1, 1025}};
    c.alignment = CAUSALATTN_TOP_LEFT;
    c.q_heads = 8;
    c.kv_heads = 2;
    c.head_dim = 64;
    c.kv_form = KvForm::kPaged;
    c.threads = 3;
    c.Test();
  }
  ServingCase c;  // non-causal decode
  c.seqs = {{2, 1500}};
  c.causal = false;
  c.head_dim = 20;
  c.Test();
}

// Sinks, softcap and ALiBi, alone and together, through prefill row blocks, split decode
// (2500 keys: three chunks, the sink counted once in their merge), packed and paged, GQA, windows.
TEST_P(Serving, ModelVariants) {
  struct Variants {
    bool sinks, alibi;
    float softcap;
  };
  for (const Variants v : {Variants{true, false, 0.0f}, Variants{false, true, 0.0f}, Variants{false, false, 5.0f},
                           Variants{true, true, 2.0f}}) {
    for (KvForm kv : {KvForm::kPacked, KvForm::kPaged}) {
      for (int64_t window : {0, 40}) {
        ServingCase c;
        c.seqs = {{37, 37}, {1, 2500}, {0, 5}, {130, 600}, {3, 3}, {8, 1100}};
        c.kv_form = kv;
        c.window = window;
        c.sinks = v.sinks;
        c.alibi = v.alibi;
        c.softcap = v.softcap;
        c.seed = static_cast<uint32_t>(window + (v.sinks ? 1 : 0) + (v.alibi ? 2 : 0));
        c.Test();
      }
    }
    ServingCase c;  // non-causal: ALiBi's distances also negative
    c.seqs = {{20, 50}, {2, 1500}, {60, 30}};
    c.causal = false;
    c.head_dim = 20;
    c.sinks = v.sinks;
    c.alibi = v.alibi;
    c.softcap = v.softcap;
    c.Test();
  }
}

// Top-left alignment (q_len > kv_len allowed) and explicit positions, per call and per sequence:
// queries after, among and before their keys, with windows and ALiBi, decode and prefill.
TEST_P(Serving, Alignments) {
  {
    ServingCase c;
    c.seqs = {{37, 20}, {5, 1300}, {100, 100}, {3, 0}, {70, 200}};
    c.alignment = CAUSALATTN_TOP_LEFT;
    c.alibi = true;
    c.Test();
    c.window = 25;
    c.Test();
  }
  for (auto [q_pos, kv_pos] : {std::pair<int64_t, int64_t>{0, 0}, {5000, 0}, {0, 60}, {1000, 900}, {100000, 3000}}) {
    for (int64_t window : {0, 150}) {
      ServingCase c;
      c.seqs = {{40, 300}, {2, 2100}, {150, 90}, {8, 8}};
      c.alignment = CAUSALATTN_EXPLICIT_POSITIONS;
      c.q_pos = q_pos;
      c.kv_pos = kv_pos;
      c.window = window;
      c.alibi = true;
      c.sinks = true;
      c.kv_form = KvForm::kPaged;
      c.seed = static_cast<uint32_t>(q_pos + kv_pos + window);
      c.Test();
    }
  }
  ServingCase c;  // per-sequence offsets: rows before every key they may see get NaN and lse -inf
  c.seqs = {{40, 300}, {2, 2100}, {150, 90}, {8, 8}};
  c.alignment = CAUSALATTN_EXPLICIT_POSITIONS;
  c.q_pos_offsets = {250, 2099, 0, 3};
  c.kv_pos_offsets = {0, 10, 40, 0};
  c.window = 64;
  c.Test();
}

// V's head size apart from K's (DeepSeek's MLA): 192 / 128 prefill, 576 / 512 decode, odd sizes.
TEST_P(Serving, HeadDimV) {
  for (auto [d, dv] : {std::pair<int64_t, int64_t>{192, 128}, {64, 96}, {33, 7}, {576, 512}}) {
    ServingCase c;
    c.seqs = d == 576 ? std::vector<Seq>{{1, 1500}, {4, 300}, {60, 60}} : std::vector<Seq>{{100, 100}, {1, 2100}, {7, 900}};
    c.q_heads = 4;
    c.kv_heads = d == 576 ? 1 : 2;
    c.head_dim = d;
    c.head_dim_v = dv;
    c.kv_form = d == 64 ? KvForm::kPaged : KvForm::kPacked;
    c.sinks = d == 192;
    c.Test();
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, Serving, ::testing::ValuesIn(known_isas()),
                         [](const auto& info) { return info.param; });

// Split decode chunks and the row-group tasks of a mixed batch: the same bits for any thread count.
TEST(ServingThreads, SameBitsForAnyThreadCount) {
  ServingCase base;
  base.seqs = {{1, 5000}, {4, 3000}, {200, 900}, {2, 7}};
  base.q_heads = 8;
  base.kv_heads = 2;
  base.head_dim = 128;
  base.kv_form = KvForm::kPaged;
  base.window = 1500;
  std::vector<float> first_out, first_lse;
  for (int threads : {1, 2, 7, 0}) {
    ServingCase c = base;
    c.threads = threads;
    c.build();
    ASSERT_EQ(causalattn_attend_f32(&c.args), CAUSALATTN_OK) << causalattn_last_error();
    if (first_out.empty()) {
      first_out = c.out;
      first_lse = c.lse;
      continue;
    }
    EXPECT_EQ(std::memcmp(first_out.data(), c.out.data(), c.out.size() * sizeof(float)), 0) << threads << " threads";
    EXPECT_EQ(std::memcmp(first_lse.data(), c.lse.data(), c.lse.size() * sizeof(float)), 0) << threads << " threads";
  }
}

// A caller's workspace: sized by causalattn_attend_workspace_size, the same bits, and too small
// is an error.
TEST(ServingWorkspace, SameBitsAndSizeChecked) {
  ServingCase c;
  c.seqs = {{1, 4000}, {100, 300}};
  c.kv_form = KvForm::kPaged;
  c.build();
  ASSERT_EQ(causalattn_attend_f32(&c.args), CAUSALATTN_OK) << causalattn_last_error();
  const std::vector<float> expected = c.out;
  size_t bytes = 0;
  ASSERT_EQ(causalattn_attend_workspace_size(&c.args, &bytes), CAUSALATTN_OK) << causalattn_last_error();
  std::vector<unsigned char> workspace(bytes + 1);
  c.args.workspace = workspace.data() + 1;  // any alignment
  c.args.workspace_size = bytes;
  std::fill(c.out.begin(), c.out.end(), ServingCase::kSentinel);
  ASSERT_EQ(causalattn_attend_f32(&c.args), CAUSALATTN_OK) << causalattn_last_error();
  EXPECT_EQ(std::memcmp(expected.data(), c.out.data(), expected.size() * sizeof(float)), 0);
  c.args.workspace_size = bytes - 1;
  EXPECT_EQ(causalattn_attend_f32(&c.args), CAUSALATTN_ERROR_INVALID_OPTION);
  EXPECT_NE(std::string(causalattn_last_error()).find("workspace"), std::string::npos);
}

// Bad serving arguments: a status, a message naming the problem, outputs untouched.
class ServingErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    c.seqs = {{3, 40}, {1, 17}};
    c.kv_form = KvForm::kPaged;
    c.page_tokens = 8;
    c.build();
  }
  void Expect(int status, const std::string& words) {
    const std::vector<float> out_before = c.out, lse_before = c.lse;
    EXPECT_EQ(causalattn_attend_f32(&c.args), status);
    EXPECT_NE(std::string(causalattn_last_error()).find(words), std::string::npos)
        << "message: " << causalattn_last_error();
    EXPECT_EQ(std::memcmp(out_before.data(), c.out.data(), c.out.size() * sizeof(float)), 0);
    EXPECT_EQ(std::memcmp(lse_before.data(), c.lse.data(), c.lse.size() * sizeof(float)), 0);
  }
  ServingCase c;
};

TEST_F(ServingErrors, NullArgs) {
  EXPECT_EQ(causalattn_attend_f32(nullptr), CAUSALATTN_ERROR_NULL_POINTER);
  EXPECT_NE(std::string(causalattn_last_error()).find("args is NULL"), std::string::npos);
}

TEST_F(ServingErrors, OffsetsNotIncreasing) {
  c.cu_q = {0, 3, 2};
  Expect(CAUSALATTN_ERROR_INVALID_SHAPE, "cu_q_lens is not increasing");
}

TEST_F(ServingErrors, OffsetsNotFromZero) {
  c.cu_q = {1, 3, 4};
  Expect(CAUSALATTN_ERROR_INVALID_SHAPE, "cu_q_lens[0] must be 0");
}

TEST_F(ServingErrors, OffsetsBeyondCapacity) {
  c.cu_q = {0, 3, 40};
  Expect(CAUSALATTN_ERROR_INVALID_SHAPE, "exceeds shape.q_len");
}

TEST_F(ServingErrors, BlockTableEntryOutOfRange) {
  c.block_table[1] = static_cast<int32_t>(c.pages.num_pages);
  Expect(CAUSALATTN_ERROR_INVALID_SHAPE, "block_table[0][1]");
  c.block_table[1] = -1;
  Expect(CAUSALATTN_ERROR_INVALID_SHAPE, "block_table[0][1] = -1");
}

TEST_F(ServingErrors, LengthBeyondBlockTableCapacity) {
  c.kv_lens[1] = c.pages.block_table_stride * c.page_tokens + 1;
  Expect(CAUSALATTN_ERROR_INVALID_SHAPE, "beyond its block table row's capacity");
}

TEST_F(ServingErrors, LengthBeyondPaddedCapacity) {
  c.kv_form = KvForm::kPadded;
  c.build();
  c.kv_lens[0] = c.args.shape.kv_len + 1;
  Expect(CAUSALATTN_ERROR_INVALID_SHAPE, "kv_lens[0]");
}

TEST_F(ServingErrors, CausalNeedsKeysForEveryQuery) {
  c.kv_lens[1] = 0;
  Expect(CAUSALATTN_ERROR_INVALID_SHAPE, "sequence 1: causal attention aligned bottom-right needs q_len <= kv_len");
}

TEST_F(ServingErrors, BothLengthForms) {
  c.seq_lens.q_lens = c.q_lens.data();
  Expect(CAUSALATTN_ERROR_INVALID_SHAPE, "not both");
}

TEST_F(ServingErrors, PagedKeysWithPackedOffsets) {
  c.seq_lens.cu_kv_lens = c.cu_kv.data();
  Expect(CAUSALATTN_ERROR_INVALID_SHAPE, "paged keys take seq_lens->kv_lens");
}

TEST_F(ServingErrors, WindowNeedsCausal) {
  c.args.window = 4;
  c.args.options.flags = CAUSALATTN_NON_CAUSAL;
  Expect(CAUSALATTN_ERROR_INVALID_OPTION, "sliding window needs causal");
  c.args.options.flags = 0;
  c.args.window = -1;
  Expect(CAUSALATTN_ERROR_INVALID_OPTION, "window must be >= 0");
}

TEST_F(ServingErrors, NullBlockTable) {
  c.pages.block_table = nullptr;
  Expect(CAUSALATTN_ERROR_NULL_POINTER, "pages->block_table is NULL");
}

TEST_F(ServingErrors, BadPageSizes) {
  c.pages.page_tokens = 0;
  Expect(CAUSALATTN_ERROR_INVALID_SHAPE, "page_tokens (0)");
}

}  // namespace
}  // namespace causalattn::testing
