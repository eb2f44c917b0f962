// Hashes the output and LSE bits of a fixed list of calls through the public C API, on every ISA
// this CPU runs: causal, non-causal, windows, dropout, GQA, queries fewer than keys, decode
// shapes, paged caches, packed and padded varlen batches, one and two threads. tools/same-bits.sh
// builds it against two revisions of the library and compares the lines: a change that claims
// "same bits" must leave every line alone.
// Usage: hash_outputs [CASES]   (default 1000 per ISA); prints "isa case kind status hash".
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "causalattn/causalattn.h"

namespace {

uint64_t fnv1a(const void* data, size_t bytes, uint64_t h = 1469598103934665603ull) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < bytes; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

enum Kind { kCausal, kNonCausal, kWindow, kDropout, kGqaChunk, kDecode, kPaged, kPacked, kPadded, kKinds };
const char* const kKindNames[] = {"causal", "non-causal", "window", "dropout", "gqa-chunk",
                                  "decode", "paged", "packed", "padded"};

// One call, drawn from `rng`; returns its status and the hash of out and lse.
uint64_t run_case(std::mt19937_64& rng, Kind kind, int* status) {
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  const int64_t dims[] = {1, 8, 16, 31, 64, 80, 96, 128, 160};
  const int64_t D = dims[pick(0, 8)];
  const int64_t batch = kind == kPacked || kind == kPadded || kind == kPaged ? pick(1, 4) : pick(1, 2);
  const int64_t kv_heads = pick(1, 2), q_heads = kv_heads * (kind == kGqaChunk || kind == kDecode ? pick(2, 8) : pick(1, 2));
  std::vector<int64_t> q_len(batch), kv_len(batch);
  for (int64_t b = 0; b < batch; ++b) {
    q_len[b] = kind == kDecode ? pick(1, 8) : pick(1, 150);
    kv_len[b] = kind == kNonCausal ? pick(1, 300) : q_len[b] + (kind == kDecode ? pick(0, 3000) : pick(0, 200));
  }
  if (kind != kPacked && kind != kPadded && kind != kPaged) {
    for (int64_t b = 1; b < batch; ++b) q_len[b] = q_len[0], kv_len[b] = kv_len[0];
  }
  int64_t q_tokens = 0, kv_tokens = 0, q_total = 0, kv_total = 0;
  std::vector<int64_t> cu_q(batch + 1, 0), cu_kv(batch + 1, 0);
  for (int64_t b = 0; b < batch; ++b) {
    q_tokens = std::max(q_tokens, q_len[b]);
    kv_tokens = std::max(kv_tokens, kv_len[b]);
    cu_q[b + 1] = q_total += q_len[b];
    cu_kv[b + 1] = kv_total += kv_len[b];
  }
  const bool packed = kind == kPacked;
  const int64_t q_batches = packed ? 1 : batch, q_cap = packed ? q_total : q_tokens;
  causalattn_attend_args a{};
  a.shape = {batch, q_heads, kv_heads, q_cap, packed ? kv_total : kv_tokens, D};
  // Q and out interleaved ([B, T, H, D]), as a QKV projection writes them.
  a.q_layout = a.out_layout = {q_cap * q_heads * D, D, q_heads * D};
  std::vector<float> q(static_cast<size_t>(q_batches * q_cap * q_heads * D));
  std::vector<float> out(q.size(), 0.0f), lse(static_cast<size_t>(q_batches * q_heads * q_cap), 0.0f);
  const int64_t kv_cap = a.shape.kv_len, kv_batches = packed ? 1 : batch;
  std::vector<float> k(static_cast<size_t>(kv_batches * kv_heads * kv_cap * D)), v(k.size());
  a.k_layout = a.v_layout = {kv_heads * kv_cap * D, kv_cap * D, D};
  std::vector<int32_t> table;
  causalattn_kv_pages pages{};
  if (kind == kPaged) {
    const int64_t page_tokens = pick(1, 40), stride = (kv_tokens + page_tokens - 1) / page_tokens;
    const int64_t num_pages = batch * stride;
    table.resize(static_cast<size_t>(num_pages));
    for (int64_t i = 0; i < num_pages; ++i) table[i] = static_cast<int32_t>(i);
    std::shuffle(table.begin(), table.end(), rng);
    pages = {table.data(), stride, page_tokens, num_pages};
    k.assign(static_cast<size_t>(num_pages * kv_heads * page_tokens * D), 0.0f);
    v.assign(k.size(), 0.0f);
    a.k_layout = a.v_layout = {kv_heads * page_tokens * D, page_tokens * D, D};
    a.pages = &pages;
  }
  std::normal_distribution<float> normal;
  for (auto* t : {&q, &k, &v})
    for (float& x : *t) x = normal(rng);
  causalattn_seq_lens lens{};
  if (kind == kPacked) lens.cu_q_lens = cu_q.data(), lens.cu_kv_lens = cu_kv.data();
  if (kind == kPadded || kind == kPaged) lens.q_lens = q_len.data(), lens.kv_lens = kv_len.data();
  if (kind == kPacked || kind == kPadded || kind == kPaged) a.seq_lens = &lens;
  a.q = q.data();
  a.k = k.data();
  a.v = v.data();
  a.out = out.data();
  a.options.flags = kind == kNonCausal ? CAUSALATTN_NON_CAUSAL : 0u;
  a.options.scale = pick(0, 3) == 0 ? 0.3f : 0.0f;
  a.options.num_threads = static_cast<int32_t>(pick(1, 2));
  a.options.lse = lse.data();
  if (kind == kWindow) a.window = pick(1, 100);
  if (kind == kDropout) a.dropout = {0.25f, static_cast<uint64_t>(pick(0, 1 << 30))};
  *status = causalattn_attend_f32(&a);
  return fnv1a(lse.data(), lse.size() * sizeof(float), fnv1a(out.data(), out.size() * sizeof(float)));
}

}  // namespace

int main(int argc, char** argv) {
  const int cases = argc > 1 ? std::atoi(argv[1]) : 1000;
  for (const char* isa : {"avx512", "avx2", "sse2"}) {
    if (causalattn_set_isa(isa) != CAUSALATTN_OK) {
      std::printf("%s skipped (not supported by this CPU)\n", isa);
      continue;
    }
    std::mt19937_64 rng(20261201);  // the same calls for every ISA and revision
    for (int c = 0; c < cases; ++c) {
      const Kind kind = static_cast<Kind>(c % kKinds);
      int status = 0;
      const uint64_t hash = run_case(rng, kind, &status);
      std::printf("%s %d %s %d %016llx\n", isa, c, kKindNames[kind], status, static_cast<unsigned long long>(hash));
    }
  }
  causalattn_set_isa(nullptr);
  return 0;
}
