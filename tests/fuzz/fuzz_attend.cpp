// libFuzzer target for the serving entry points: causalattn_attend (packed, padded and uniform
// queries and keys, paged caches with fuzzed block tables and page sizes, windows, dropout,
// decode shapes, caller workspaces, bf16 / f16 / q8_0 tensors, sinks, softcap, ALiBi, top-left
// and explicit positions, V with its own head size), causalattn_merge_f32 and
// causalattn_linear_f32.
// The first byte picks the entry point. A valid call must succeed and match the double
// reference; an invalid one must fail with a message and leave every output untouched. Built with
// ASan + UBSan by tools/fuzz.sh; tests/fuzz/attend.dict names the bytes that pick the paths.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "causalattn/causalattn.h"
#include "reference/reference.hpp"

namespace {

char g_call[1024];

[[noreturn]] void fail(const char* what, double got = 0, double expected = 0) {
  std::fprintf(stderr, "fuzz_attend: %s (got %g, expected %g)\n  call: %s\n  last error: %s\n", what, got, expected,
               g_call, causalattn_last_error());
  std::abort();
}

constexpr float kSentinel = -7777.0f;

// Moderate values most of the time (the reference comparison needs representable sums), the
// extremes now and then.
float decode_value(FuzzedDataProvider& in) {
  const uint8_t code = in.ConsumeIntegral<uint8_t>();
  switch (code) {
    case 252: return std::numeric_limits<float>::quiet_NaN();
    case 253: return std::numeric_limits<float>::infinity();
    case 254: return -std::numeric_limits<float>::infinity();
    case 255: return 1e30f;
    default: return (static_cast<float>(code) - 125.0f) / 32.0f;
  }
}

void fill(FuzzedDataProvider& in, std::vector<float>* t) {
  for (float& x : *t) x = in.remaining_bytes() > 0 ? decode_value(in) : 0.5f;
}

void expect_untouched(const std::vector<float>& t, const char* name) {
  for (float x : t)
    if (x != kSentinel) fail(name);
}

bool all_finite(const std::vector<float>& t) {
  return std::all_of(t.begin(), t.end(), [](float x) { return std::isfinite(x) && std::fabs(x) < 1e6f; });
}

// x stored as t, through the library's conversion (the call then reads the result), and x
// replaced by the values the call reads, widened back: the reference's inputs. Q8_0 needs finite
// values; false (x unchanged) when it cannot hold them.
bool store_as(std::vector<float>* x, causalattn_dtype t, std::vector<uint64_t>* stored) {
  const auto n = static_cast<int64_t>(x->size());
  const int64_t bytes = t == CAUSALATTN_DTYPE_Q8_0 ? n / 32 * 34 : 2 * n;
  stored->assign(static_cast<size_t>((bytes + 7) / 8), 0);
  if (causalattn_convert(x->data(), CAUSALATTN_DTYPE_F32, stored->data(), t, n) != CAUSALATTN_OK) {
    stored->clear();  // the call reads x as f32 then
    return false;
  }
  if (causalattn_convert(stored->data(), t, x->data(), CAUSALATTN_DTYPE_F32, n) != CAUSALATTN_OK) {
    fail("widening a stored tensor failed");
  }
  return true;
}

double max_abs(const std::vector<float>& t) {
  double m = 0;
  for (float x : t) m = std::max(m, std::fabs(static_cast<double>(x)));
  return m;
}

// ---- causalattn_attend_f32 ----

enum class Form : uint8_t { kUniform, kPadded, kPacked, kPaged };

enum class AttendBreak : uint8_t {
  kNone, kEntryOutOfRange, kNegativeEntry, kBeyondTableRow, kCuNotIncreasing, kCuNotFromZero, kWindowNonCausal,
  kWorkspaceTooSmall, kWorkspaceOverlapsOut, kDropoutOne, kNegativeThreads, kHugePageTokens, kQueriesPastKeys,
  kNanScale, kHugeBatch, kHugeKvLen, kBadSoftcap, kNanSlope, kInfiniteSink, kOffsetsWithoutFlag, kBothAlignments,
  kNegativeOffset, kCount
};

void fuzz_attend(FuzzedDataProvider& in) {
  const bool causal = in.ConsumeBool();
  const int64_t batch = in.ConsumeIntegralInRange<int64_t>(1, 3);
  const int64_t kv_heads = in.ConsumeIntegralInRange<int64_t>(1, 2);
  const int64_t q_heads = kv_heads * in.ConsumeIntegralInRange<int64_t>(1, 4);
  const int64_t dims[] = {1, 3, 16, 32, 33, 64, 80, 128};
  const int64_t D = dims[in.ConsumeIntegralInRange<int>(0, 7)];
  const int64_t Dv = in.ConsumeBool() ? dims[in.ConsumeIntegralInRange<int>(0, 7)] : D;  // V's own head size
  const auto q_form = static_cast<Form>(in.ConsumeIntegralInRange<uint8_t>(0, 2));
  const auto kv_form = static_cast<Form>(in.ConsumeIntegralInRange<uint8_t>(0, 3));
  const bool short_queries = in.ConsumeBool();  // decode shapes
  std::vector<int64_t> q_len(batch), kv_len(batch);
  for (int64_t b = 0; b < batch; ++b) {
    q_len[b] = in.ConsumeIntegralInRange<int64_t>(q_form == Form::kUniform ? 1 : 0, short_queries ? 8 : 60);
    if (q_form == Form::kUniform) q_len[b] = q_len[0];
    kv_len[b] = causal ? q_len[b] + in.ConsumeIntegralInRange<int64_t>(0, 70) : in.ConsumeIntegralInRange<int64_t>(0, 130);
    if (kv_form == Form::kUniform) kv_len[b] = std::max(kv_len[0], causal ? q_len[b] : 0);
  }
  if (kv_form == Form::kUniform) {
    const int64_t uniform = std::max<int64_t>(1, *std::max_element(kv_len.begin(), kv_len.end()));
    std::fill(kv_len.begin(), kv_len.end(), uniform);
  }
  const int64_t window = in.ConsumeBool() && causal ? in.ConsumeIntegralInRange<int64_t>(1, 40) : 0;
  const float drops[] = {0.0f, 0.0f, 0.1f, 0.5f};
  const float p_drop = drops[in.ConsumeIntegralInRange<int>(0, 3)];
  const uint64_t seed = in.ConsumeIntegral<uint64_t>();
  const float scales[] = {0.0f, 0.125f, 1.0f, 3.0f};
  const float scale = scales[in.ConsumeIntegralInRange<int>(0, 3)];
  const int32_t threads = in.ConsumeIntegralInRange<int32_t>(0, 3);
  const bool with_lse = in.ConsumeBool();
  const bool with_workspace = in.ConsumeBool();
  const int64_t page_tokens = in.ConsumeIntegralInRange<int64_t>(1, 17);
  const auto breakage = static_cast<AttendBreak>(in.ConsumeIntegralInRange<uint8_t>(0, 2 * static_cast<uint8_t>(AttendBreak::kCount)));
  // Model variants: sinks, softcap, ALiBi slopes, the alignment (explicit positions: small offsets,
  // queries before, among and after their keys).
  const bool with_sinks = in.ConsumeBool(), with_alibi = in.ConsumeBool();
  const bool invariant = in.ConsumeBool();  // CAUSALATTN_BATCH_INVARIANT (without dropout)
  const float caps[] = {0.0f, 0.0f, 1.0f, 5.0f, 30.0f};
  const float softcap = caps[in.ConsumeIntegralInRange<int>(0, 4)];
  const uint32_t alignments[] = {0u, 0u, CAUSALATTN_TOP_LEFT, CAUSALATTN_EXPLICIT_POSITIONS};
  const uint32_t alignment = alignments[in.ConsumeIntegralInRange<int>(0, 3)];
  const int64_t q_pos = alignment == CAUSALATTN_EXPLICIT_POSITIONS ? in.ConsumeIntegralInRange<int64_t>(0, 200) : 0;
  const int64_t kv_pos = alignment == CAUSALATTN_EXPLICIT_POSITIONS ? in.ConsumeIntegralInRange<int64_t>(0, 200) : 0;
  std::vector<float> sinks(static_cast<size_t>(q_heads)), slopes(static_cast<size_t>(q_heads));
  for (int64_t h = 0; h < q_heads; ++h) {
    sinks[h] = (static_cast<float>(in.ConsumeIntegral<uint8_t>()) - 128.0f) / 32.0f;
    slopes[h] = std::ldexp(1.0f, -in.ConsumeIntegralInRange<int>(0, 8));
  }
  // Element types: Q f32, bf16 or f16; K and V each any (q8_0 where D is whole blocks).
  const causalattn_dtype q_dtypes[] = {CAUSALATTN_DTYPE_F32, CAUSALATTN_DTYPE_BF16, CAUSALATTN_DTYPE_F16};
  const causalattn_dtype kv_dtypes[] = {CAUSALATTN_DTYPE_F32, CAUSALATTN_DTYPE_BF16, CAUSALATTN_DTYPE_F16,
                                        CAUSALATTN_DTYPE_Q8_0};
  const bool typed = in.ConsumeBool();
  causalattn_dtype q_dtype = q_dtypes[in.ConsumeIntegralInRange<int>(0, 2)];
  causalattn_dtype k_dtype = kv_dtypes[in.ConsumeIntegralInRange<int>(0, D % 32 == 0 ? 3 : 2)];
  causalattn_dtype v_dtype = kv_dtypes[in.ConsumeIntegralInRange<int>(0, Dv % 32 == 0 ? 3 : 2)];
  if (!typed) q_dtype = k_dtype = v_dtype = CAUSALATTN_DTYPE_F32;

  // Capacities of the tensors.
  int64_t q_cap = 0, kv_cap = 0;
  std::vector<int64_t> cu_q(batch + 1, 0), cu_kv(batch + 1, 0);
  for (int64_t b = 0; b < batch; ++b) {
    cu_q[b + 1] = cu_q[b] + q_len[b];
    cu_kv[b + 1] = cu_kv[b] + kv_len[b];
    q_cap = std::max(q_cap, q_len[b]);
    kv_cap = std::max(kv_cap, kv_len[b]);
  }
  const int64_t q_tokens = q_form == Form::kPacked ? std::max<int64_t>(1, cu_q[batch]) : std::max<int64_t>(1, q_cap);
  const int64_t q_batches = q_form == Form::kPacked ? 1 : batch;
  causalattn_attend_args a{};
  a.shape = {batch, q_heads, kv_heads, q_tokens, 1, D};
  // Q and out as [batches][tokens][heads][D or Dv] (interleaved), lse as the API says.
  a.q_layout = {q_tokens * q_heads * D, D, q_heads * D};
  a.out_layout = {q_tokens * q_heads * Dv, Dv, q_heads * Dv};
  a.head_dim_v = Dv;
  std::vector<float> q(static_cast<size_t>(q_batches * q_tokens * q_heads * D));
  std::vector<float> out(static_cast<size_t>(q_batches * q_tokens * q_heads * Dv), kSentinel),
      lse(static_cast<size_t>(q_batches * q_heads * q_tokens), kSentinel);

  // K and V: contiguous [batches][heads][tokens][D], or pages [num_pages][heads][page_tokens][D].
  std::vector<int32_t> table;
  causalattn_kv_pages pages{};
  int64_t kv_batches = batch, kv_tokens = std::max<int64_t>(1, kv_cap);
  if (kv_form == Form::kPacked) {
    kv_batches = 1;
    kv_tokens = std::max<int64_t>(1, cu_kv[batch]);
  }
  if (kv_form == Form::kPaged) {
    int64_t stride = 1;
    for (int64_t b = 0; b < batch; ++b) stride = std::max(stride, (kv_len[b] + page_tokens - 1) / page_tokens);
    stride += in.ConsumeIntegralInRange<int64_t>(0, 2);
    const int64_t num_pages = in.ConsumeIntegralInRange<int64_t>(1, 12);
    table.resize(static_cast<size_t>(batch * stride));
    for (int32_t& entry : table) entry = in.ConsumeIntegralInRange<int32_t>(0, static_cast<int32_t>(num_pages - 1));
    pages = {table.data(), stride, page_tokens, num_pages};
    kv_batches = num_pages;
    kv_tokens = page_tokens;
  }
  a.shape.kv_len = kv_form == Form::kPaged ? std::max<int64_t>(1, kv_cap) : kv_tokens;
  std::vector<float> k(static_cast<size_t>(kv_batches * kv_heads * kv_tokens * D)),
      v(static_cast<size_t>(kv_batches * kv_heads * kv_tokens * Dv));
  fill(in, &q);
  fill(in, &k);
  fill(in, &v);
  // The typed tensors, their strides in their units (q8_0: blocks of 32).
  std::vector<uint64_t> q_stored, k_stored, v_stored;
  if (q_dtype != CAUSALATTN_DTYPE_F32 && !store_as(&q, q_dtype, &q_stored)) q_dtype = CAUSALATTN_DTYPE_F32;
  if (k_dtype != CAUSALATTN_DTYPE_F32 && !store_as(&k, k_dtype, &k_stored)) k_dtype = CAUSALATTN_DTYPE_F32;
  if (v_dtype != CAUSALATTN_DTYPE_F32 && !store_as(&v, v_dtype, &v_stored)) v_dtype = CAUSALATTN_DTYPE_F32;
  const int64_t k_units = k_dtype == CAUSALATTN_DTYPE_Q8_0 ? D / 32 : D, v_units = v_dtype == CAUSALATTN_DTYPE_Q8_0 ? Dv / 32 : Dv;
  a.k_layout = {kv_heads * kv_tokens * k_units, kv_tokens * k_units, k_units};
  a.v_layout = {kv_heads * kv_tokens * v_units, kv_tokens * v_units, v_units};

  causalattn_seq_lens lens{};
  std::vector<int64_t> q_lens = q_len, kv_lens = kv_len;
  if (q_form == Form::kPadded) lens.q_lens = q_lens.data();
  if (q_form == Form::kPacked) lens.cu_q_lens = cu_q.data();
  if (kv_form == Form::kPadded || kv_form == Form::kPaged) lens.kv_lens = kv_lens.data();
  if (kv_form == Form::kPacked) lens.cu_kv_lens = cu_kv.data();
  a.seq_lens = q_form == Form::kUniform && kv_form == Form::kUniform ? nullptr : &lens;
  a.pages = kv_form == Form::kPaged ? &pages : nullptr;
  a.q = q_stored.empty() ? static_cast<const void*>(q.data()) : q_stored.data();
  a.k = k_stored.empty() ? static_cast<const void*>(k.data()) : k_stored.data();
  a.v = v_stored.empty() ? static_cast<const void*>(v.data()) : v_stored.data();
  a.q_dtype = q_dtype;
  a.k_dtype = k_dtype;
  a.v_dtype = v_dtype;
  a.out = out.data();
  a.options.flags = causal ? 0u : CAUSALATTN_NON_CAUSAL;
  a.options.scale = scale;
  a.options.num_threads = threads;
  a.options.lse = with_lse ? lse.data() : nullptr;
  a.window = window;
  a.dropout = {p_drop, seed};
  a.options.flags |= alignment;
  if (invariant && p_drop == 0.0f) a.options.flags |= CAUSALATTN_BATCH_INVARIANT;
  a.q_pos_offset = q_pos;
  a.kv_pos_offset = kv_pos;
  a.sinks = with_sinks ? sinks.data() : nullptr;
  a.alibi_slopes = with_alibi ? slopes.data() : nullptr;
  a.softcap = softcap;

  std::vector<unsigned char> workspace;
  if (with_workspace) {
    size_t bytes = 0;
    if (causalattn_attend_workspace_size(&a, &bytes) != CAUSALATTN_OK) fail("workspace size of a valid call failed");
    const size_t misalign = in.ConsumeIntegralInRange<size_t>(0, 63);
    workspace.resize(bytes + misalign);
    a.workspace = workspace.data() + misalign;
    a.workspace_size = bytes;
  }

  switch (breakage) {
    case AttendBreak::kEntryOutOfRange:
      if (a.pages == nullptr || kv_len[0] == 0) return;
      table[0] = static_cast<int32_t>(pages.num_pages);
      break;
    case AttendBreak::kNegativeEntry:
      if (a.pages == nullptr || kv_len[0] == 0) return;
      table[0] = -1 - in.ConsumeIntegral<uint8_t>();
      break;
    case AttendBreak::kBeyondTableRow:
      if (a.pages == nullptr) return;
      kv_lens[batch - 1] = pages.block_table_stride * page_tokens + 1;
      break;
    case AttendBreak::kCuNotIncreasing:
      if (lens.cu_q_lens == nullptr || batch < 2) return;
      cu_q[1] = cu_q[2] + 1;
      break;
    case AttendBreak::kCuNotFromZero:
      if (lens.cu_kv_lens == nullptr) return;
      cu_kv[0] = 1;
      break;
    case AttendBreak::kWindowNonCausal: a.window = 3; a.options.flags = CAUSALATTN_NON_CAUSAL; break;
    case AttendBreak::kWorkspaceTooSmall:
      if (a.workspace == nullptr) return;
      a.workspace_size -= 1;
      break;
    case AttendBreak::kWorkspaceOverlapsOut:
      a.workspace = out.data() + out.size() / 2;
      a.workspace_size = sizeof(float);
      break;
    case AttendBreak::kDropoutOne: a.dropout.p = 1.0f; break;
    case AttendBreak::kNegativeThreads: a.options.num_threads = -1 - in.ConsumeIntegral<uint8_t>(); break;
    case AttendBreak::kHugePageTokens:
      if (a.pages == nullptr) return;
      pages.page_tokens = std::numeric_limits<int64_t>::max() - in.ConsumeIntegral<uint8_t>();
      break;
    case AttendBreak::kQueriesPastKeys:
      // (Bottom-right only: the other alignments take more queries than keys.)
      if (!causal || alignment != 0u || q_form != Form::kUniform || kv_form != Form::kUniform) return;
      a.shape.q_len = a.shape.kv_len + 1;
      break;
    case AttendBreak::kNanScale: a.options.scale = std::numeric_limits<float>::quiet_NaN(); break;
    case AttendBreak::kHugeBatch:
      if (a.seq_lens != nullptr) return;  // the length arrays hold `batch` entries
      a.shape.batch = std::numeric_limits<int64_t>::max() / 2;
      break;
    case AttendBreak::kHugeKvLen:
      if (a.seq_lens != nullptr) return;
      a.shape.kv_len = std::numeric_limits<int64_t>::max() - in.ConsumeIntegral<uint16_t>();
      a.k_layout = a.v_layout = {0, 0, 0};
      break;
    case AttendBreak::kBadSoftcap: {
      const float bad[] = {-1.0f, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()};
      a.softcap = bad[in.ConsumeIntegralInRange<int>(0, 2)];
      break;
    }
    case AttendBreak::kNanSlope:
      slopes[q_heads - 1] = std::numeric_limits<float>::quiet_NaN();
      a.alibi_slopes = slopes.data();
      break;
    case AttendBreak::kInfiniteSink:
      sinks[0] = std::numeric_limits<float>::infinity();
      a.sinks = sinks.data();
      break;
    case AttendBreak::kOffsetsWithoutFlag:
      a.options.flags &= ~CAUSALATTN_EXPLICIT_POSITIONS;
      a.kv_pos_offset = 1 + in.ConsumeIntegral<uint8_t>();
      break;
    case AttendBreak::kBothAlignments: a.options.flags |= CAUSALATTN_TOP_LEFT | CAUSALATTN_EXPLICIT_POSITIONS; break;
    case AttendBreak::kNegativeOffset:
      a.options.flags = (a.options.flags & ~CAUSALATTN_TOP_LEFT) | CAUSALATTN_EXPLICIT_POSITIONS;
      a.q_pos_offset = -1 - in.ConsumeIntegral<uint8_t>();
      break;
    default: break;
  }
  const bool valid = breakage == AttendBreak::kNone || breakage >= AttendBreak::kCount;
  std::snprintf(g_call, sizeof g_call,
                "attend B=%lld Hq=%lld Hkv=%lld D=%lld Dv=%lld q_form=%d kv_form=%d causal=%d window=%lld p=%g "
                "threads=%d lse=%d workspace=%d page_tokens=%lld break=%d dtypes q=%d k=%d v=%d sinks=%d alibi=%d "
                "softcap=%g alignment=%u q_pos=%lld kv_pos=%lld",
                (long long)batch, (long long)q_heads, (long long)kv_heads, (long long)D, (long long)Dv, (int)q_form, (int)kv_form,
                causal, (long long)window, p_drop, threads, with_lse, with_workspace, (long long)page_tokens,
                (int)breakage, (int)q_dtype, (int)k_dtype, (int)v_dtype, with_sinks, with_alibi, softcap, alignment,
                (long long)q_pos, (long long)kv_pos);
  const std::vector<float> q_before = q, k_before = k;
  const std::vector<uint64_t> q_stored_before = q_stored, k_stored_before = k_stored;
  const int status = causalattn_attend(&a);
  if (std::memcmp(q.data(), q_before.data(), q.size() * sizeof(float)) != 0 ||
      std::memcmp(k.data(), k_before.data(), k.size() * sizeof(float)) != 0 || q_stored != q_stored_before ||
      k_stored != k_stored_before) {
    fail("a call wrote an input");
  }
  if (!valid) {
    if (status == CAUSALATTN_OK) fail("an invalid call succeeded", static_cast<double>(breakage));
    if (causalattn_last_error()[0] == '\0') fail("a failure without a message");
    expect_untouched(out, "a failed call wrote out");
    expect_untouched(lse, "a failed call wrote lse");
    return;
  }
  if (status != CAUSALATTN_OK) fail("a valid call failed", status);

  // Each sequence against the reference, its tensors gathered contiguous by this file's own
  // addressing. Only where fp32 represents the computation (finite, moderate inputs).
  if (!all_finite(q) || !all_finite(k) || !all_finite(v)) return;
  const double v_max = max_abs(v);
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t tq = q_len[b], tk = kv_len[b];
    if (tq == 0) continue;
    std::vector<float> qs(static_cast<size_t>(q_heads * tq * D)), ks(static_cast<size_t>(kv_heads * std::max<int64_t>(tk, 1) * D)),
        vs(static_cast<size_t>(kv_heads * std::max<int64_t>(tk, 1) * Dv));
    // Row (h, t) of a [tokens][heads][dims] tensor (Q: dims D, out: Dv).
    auto q_index = [&](int64_t h, int64_t t, int64_t dims) {
      return (q_form == Form::kPacked ? cu_q[b] + t : b * q_tokens + t) * q_heads * dims + h * dims;
    };
    for (int64_t h = 0; h < q_heads; ++h)
      for (int64_t t = 0; t < tq; ++t) std::memcpy(&qs[(h * tq + t) * D], &q[q_index(h, t, D)], D * sizeof(float));
    for (int64_t h = 0; h < kv_heads; ++h)
      for (int64_t t = 0; t < tk; ++t) {
        int64_t row = 0;  // in rows of [kv batches][heads][tokens]
        if (kv_form == Form::kPaged) {
          row = (table[b * pages.block_table_stride + t / page_tokens] * kv_heads + h) * page_tokens + t % page_tokens;
        } else if (kv_form == Form::kPacked) {
          row = h * kv_tokens + cu_kv[b] + t;
        } else {
          row = (b * kv_heads + h) * kv_tokens + t;
        }
        std::memcpy(&ks[(h * tk + t) * D], &k[row * D], D * sizeof(float));
        std::memcpy(&vs[(h * tk + t) * Dv], &v[row * Dv], Dv * sizeof(float));
      }
    const causalattn_shape s1{1, q_heads, kv_heads, tq, std::max<int64_t>(tk, 1), D};
    const causalattn_layout ql{q_heads * tq * D, tq * D, D}, kl{kv_heads * tk * D, tk * D, D},
        vl{kv_heads * tk * Dv, tk * Dv, Dv};
    const causalattn::reference::WeightMultiplier keep = [&](int64_t, int64_t h, int64_t i, int64_t j) {
      return causalattn_dropout_keep(p_drop, seed, b, h, i, j) ? 1.0 / (1.0 - p_drop) : 0.0;
    };
    causalattn::reference::Variant variant;
    variant.causal = causal;
    variant.scale = scale;
    variant.window = window;
    variant.dropout = p_drop > 0.0f ? &keep : nullptr;
    variant.alignment = alignment == CAUSALATTN_TOP_LEFT             ? causalattn::reference::Alignment::kTopLeft
                        : alignment == CAUSALATTN_EXPLICIT_POSITIONS ? causalattn::reference::Alignment::kExplicit
                                                                     : causalattn::reference::Alignment::kBottomRight;
    variant.q_pos = q_pos;
    variant.kv_pos = kv_pos;
    // The sink belongs to the keys that start at position 0.
    const bool sink_here = with_sinks && (alignment != CAUSALATTN_EXPLICIT_POSITIONS || kv_pos == 0);
    variant.sinks = sink_here ? sinks.data() : nullptr;
    variant.alibi_slopes = with_alibi ? slopes.data() : nullptr;
    variant.softcap = softcap;
    causalattn::reference::Result ref;
    if (tk == 0) {  // non-causal, no keys: NaN rows, LSE -inf; with a sink 0 and LSE the sink
      ref.out.assign(static_cast<size_t>(q_heads * tq * Dv), sink_here ? 0.0 : std::numeric_limits<double>::quiet_NaN());
      ref.lse.resize(static_cast<size_t>(q_heads * tq));
      for (int64_t h = 0; h < q_heads; ++h)
        for (int64_t t = 0; t < tq; ++t) ref.lse[h * tq + t] = sink_here ? sinks[h] : -std::numeric_limits<double>::infinity();
    } else {
      variant.head_dim_v = Dv;
      ref = causalattn::reference::attention(s1, qs.data(), ql, ks.data(), kl, vs.data(), vl, variant);
    }
    const double factor = std::max(1.0, ref.score_magnitude / 16.0) * (p_drop > 0.0f ? 1.0 / (1.0 - p_drop) : 1.0);
    // All-bf16 prefill on the amx and avx512bf16 ISAs rounds the weights P to bf16 (outside the
    // batch-invariant mode): 2^-8 of each, at most 2^-8 · max|v| (the kept weights' 1/(1-p) too).
    const std::string isa = causalattn_isa();
    const bool rounds_p = (isa == "amx" || isa == "avx512bf16" || isa == "neonbf16") && q_dtype == CAUSALATTN_DTYPE_BF16 &&
                          k_dtype == CAUSALATTN_DTYPE_BF16 && v_dtype == CAUSALATTN_DTYPE_BF16 &&
                          (a.options.flags & CAUSALATTN_BATCH_INVARIANT) == 0;
    const double tolerance = std::ldexp(1.0, -16) * std::max(v_max, 1.0) * factor +
                             (rounds_p ? std::ldexp(v_max, -8) * (p_drop > 0.0f ? 1.0 / (1.0 - p_drop) : 1.0) : 0.0);
    for (int64_t h = 0; h < q_heads; ++h)
      for (int64_t t = 0; t < tq; ++t) {
        for (int64_t d = 0; d < Dv; ++d) {
          const double expected = ref.out[(h * tq + t) * Dv + d], got = out[q_index(h, t, Dv) + d];
          if (std::isnan(expected) != std::isnan(got)) fail("NaN-ness of out differs from the reference", got, expected);
          if (!std::isnan(expected) && !(std::fabs(got - expected) <= tolerance)) fail("out differs from the reference", got, expected);
        }
        if (with_lse) {
          const int64_t row = q_form == Form::kPacked ? h * q_tokens + cu_q[b] + t : (b * q_heads + h) * q_tokens + t;
          const double expected = ref.lse[h * tq + t], got = lse[row];
          if (std::isinf(expected) ? got != expected : !(std::fabs(got - expected) <= tolerance * (1 + std::fabs(expected))))
            fail("lse differs from the reference", got, expected);
        }
      }
  }
  // Rows of out past each sequence's queries are never written.
  for (int64_t b = 0; b < q_batches; ++b)
    for (int64_t t = 0; t < q_tokens; ++t) {
      bool used = false;
      for (int64_t s = 0; s < batch; ++s) {
        used |= q_form == Form::kPacked ? (t >= cu_q[s] && t < cu_q[s + 1]) : (s == b && t < q_len[s]);
      }
      if (!used && out[(b * q_tokens + t) * q_heads * Dv] != kSentinel) fail("a row past the sequences was written");
    }
}

// ---- causalattn_merge_f32 ----

void fuzz_merge(FuzzedDataProvider& in) {
  causalattn_shape s{in.ConsumeIntegralInRange<int64_t>(1, 2), in.ConsumeIntegralInRange<int64_t>(1, 3), 1,
                     in.ConsumeIntegralInRange<int64_t>(1, 5), 1, in.ConsumeIntegralInRange<int64_t>(1, 40)};
  const int32_t count = in.ConsumeIntegralInRange<int32_t>(1, 5);
  const int64_t rows = s.batch * s.q_heads * s.q_len;
  const causalattn_layout layout{s.q_heads * s.q_len * s.head_dim, s.q_len * s.head_dim, s.head_dim};
  std::vector<std::vector<float>> outs(count, std::vector<float>(rows * s.head_dim)), lses(count, std::vector<float>(rows));
  for (int32_t p = 0; p < count; ++p) {
    fill(in, &outs[p]);
    for (float& x : lses[p]) {
      const uint8_t code = in.remaining_bytes() > 0 ? in.ConsumeIntegral<uint8_t>() : 0;
      x = code >= 200 ? -std::numeric_limits<float>::infinity() : (static_cast<float>(code) - 100.0f) / 8.0f;
    }
  }
  std::vector<causalattn_partial_f32> parts(count);
  for (int32_t p = 0; p < count; ++p) parts[p] = {outs[p].data(), layout, lses[p].data()};
  std::vector<float> out(rows * s.head_dim, kSentinel), lse(rows, kSentinel);
  const bool with_lse = in.ConsumeBool();
  int32_t call_count = count;
  float* out_ptr = out.data();
  causalattn_layout out_layout = layout;
  const uint8_t breakage = in.ConsumeIntegralInRange<uint8_t>(0, 12);
  switch (breakage) {
    case 1: call_count = 0; break;
    case 2: parts[0].lse = nullptr; break;
    case 3: out_ptr = outs[count - 1].data(); break;  // out aliases a part
    case 4: out_layout.token = -out_layout.token; break;
    case 5: s.head_dim = std::numeric_limits<int64_t>::max(); break;
    case 6: parts[count - 1].out_layout.batch = std::numeric_limits<int64_t>::max() / 2; if (s.batch == 1) return; break;
    default: break;
  }
  const bool valid = breakage == 0 || breakage > 6;
  std::snprintf(g_call, sizeof g_call, "merge B=%lld H=%lld T=%lld D=%lld count=%d break=%d", (long long)s.batch,
                (long long)s.q_heads, (long long)s.q_len, (long long)s.head_dim, count, breakage);
  const int status = causalattn_merge_f32(&s, parts.data(), call_count, out_ptr, out_layout, with_lse ? lse.data() : nullptr);
  if (!valid) {
    if (status == CAUSALATTN_OK) fail("an invalid merge succeeded", breakage);
    if (causalattn_last_error()[0] == '\0') fail("a failure without a message");
    expect_untouched(out, "a failed merge wrote out");
    expect_untouched(lse, "a failed merge wrote lse");
    return;
  }
  if (status != CAUSALATTN_OK) fail("a valid merge failed", status);
  for (int32_t p = 0; p < count; ++p)
    if (!all_finite(outs[p])) return;
  for (int64_t r = 0; r < rows; ++r) {
    double m = -std::numeric_limits<double>::infinity();
    for (int32_t p = 0; p < count; ++p) m = std::max(m, static_cast<double>(lses[p][r]));
    double sum = 0;
    for (int32_t p = 0; p < count; ++p) sum += std::isinf(lses[p][r]) ? 0.0 : std::exp(lses[p][r] - m);
    const double total = std::isinf(m) ? m : m + std::log(sum);
    if (with_lse && (std::isinf(total) ? lse[r] != total : !(std::fabs(lse[r] - total) <= 1e-5 * (1 + std::fabs(total)))))
      fail("merged lse differs", lse[r], total);
    double magnitude = 0;
    for (int32_t p = 0; p < count; ++p) magnitude = std::max(magnitude, max_abs(outs[p]));
    for (int64_t d = 0; d < s.head_dim; ++d) {
      double expected = 0;
      for (int32_t p = 0; p < count; ++p)
        if (!std::isinf(lses[p][r])) expected += std::exp(lses[p][r] - total) * outs[p][r * s.head_dim + d];
      const double got = out[r * s.head_dim + d];
      if (std::isinf(m) ? !std::isnan(got) : !(std::fabs(got - expected) <= 1e-5 * std::max(1.0, magnitude)))
        fail("merged out differs", got, expected);
    }
  }
}

// ---- causalattn_linear_f32 ----

void fuzz_linear(FuzzedDataProvider& in) {
  const int64_t m = in.ConsumeIntegralInRange<int64_t>(1, 40), n = in.ConsumeIntegralInRange<int64_t>(1, 70),
                k = in.ConsumeIntegralInRange<int64_t>(1, 50);
  int64_t x_stride = k + in.ConsumeIntegralInRange<int64_t>(0, 3), w_stride = k + in.ConsumeIntegralInRange<int64_t>(0, 3),
          y_stride = n + in.ConsumeIntegralInRange<int64_t>(0, 3);
  const bool with_bias = in.ConsumeBool();
  int32_t threads = in.ConsumeIntegralInRange<int32_t>(0, 3);
  std::vector<float> x(m * x_stride), w(n * w_stride), bias(n), y(m * y_stride, kSentinel);
  fill(in, &x);
  fill(in, &w);
  fill(in, &bias);
  const float* x_ptr = x.data();
  int64_t mm = m;
  const uint8_t breakage = in.ConsumeIntegralInRange<uint8_t>(0, 10);
  switch (breakage) {
    case 1: x_stride = k - 1; if (k == 1) return; break;
    case 2: y_stride = n - 1; if (n == 1) return; break;
    case 3: threads = -1; break;
    case 4: mm = 0; break;
    case 5: x_ptr = y.data(); break;
    case 6: mm = std::numeric_limits<int64_t>::max() / 2; break;
    default: break;
  }
  const bool valid = breakage == 0 || breakage > 6;
  std::snprintf(g_call, sizeof g_call, "linear m=%lld n=%lld k=%lld bias=%d threads=%d break=%d", (long long)m,
                (long long)n, (long long)k, with_bias, threads, breakage);
  const int status = causalattn_linear_f32(mm, n, k, x_ptr, x_stride, w.data(), w_stride, with_bias ? bias.data() : nullptr,
                                           y.data(), y_stride, threads);
  if (!valid) {
    if (status == CAUSALATTN_OK) fail("an invalid linear succeeded", breakage);
    if (causalattn_last_error()[0] == '\0') fail("a failure without a message");
    expect_untouched(y, "a failed linear wrote y");
    return;
  }
  if (status != CAUSALATTN_OK) fail("a valid linear failed", status);
  if (!all_finite(x) || !all_finite(w) || !all_finite(bias)) return;
  std::vector<float> xc(m * k), wc(n * k);
  for (int64_t i = 0; i < m; ++i) std::memcpy(&xc[i * k], &x[i * x_stride], k * sizeof(float));
  for (int64_t f = 0; f < n; ++f) std::memcpy(&wc[f * k], &w[f * w_stride], k * sizeof(float));
  const causalattn::reference::LinearResult ref =
      causalattn::reference::linear(xc.data(), m, k, wc.data(), n, with_bias ? bias.data() : nullptr);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t f = 0; f < n; ++f) {
      const double expected = ref.y[i * n + f], got = y[i * y_stride + f];
      // fp32's bound for a sum of k + 1 terms: (k + 2) · 2^-24 of the sum of their magnitudes.
      if (!(std::fabs(got - expected) <= std::ldexp(static_cast<double>(k + 2), -24) * ref.magnitude[i * n + f]))
        fail("y differs", got, expected);
      for (int64_t pad = n; pad < y_stride; ++pad)
        if (y[i * y_stride + pad] != kSentinel) fail("linear wrote y's padding");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  switch (in.ConsumeIntegralInRange<uint8_t>(0, 2)) {
    case 0: fuzz_attend(in); break;
    case 1: fuzz_merge(in); break;
    default: fuzz_linear(in); break;
  }
  return 0;
}
