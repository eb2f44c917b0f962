// libFuzzer target for causalattn_forward_f32: decodes shapes, strides, options and values
// (NaN, ±Inf, huge and tiny magnitudes included) from its input. A valid call must succeed and
// match the double reference; an invalid one must fail with a message and leave every output
// untouched. Built with ASan + UBSan by tools/fuzz.sh.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "causalattn/causalattn.h"
#include "reference/reference.hpp"

namespace {

// The call being checked, printed with a failure.
char g_call[512];

[[noreturn]] void fail(const char* what, double got = 0, double expected = 0) {
  std::fprintf(stderr, "fuzz_forward: %s (got %g, expected %g)\n  call: %s\n", what, got, expected, g_call);
  std::abort();
}

float decode_value(FuzzedDataProvider& in) {
  const uint8_t code = in.ConsumeIntegral<uint8_t>();
  switch (code) {
    case 250: return std::numeric_limits<float>::quiet_NaN();
    case 251: return std::numeric_limits<float>::infinity();
    case 252: return -std::numeric_limits<float>::infinity();
    case 253: return 1e30f;
    case 254: return -3e38f;
    case 255: return 1e-30f;
    default: return (static_cast<float>(code) - 125.0f) / 32.0f;
  }
}

enum class LayoutKind : uint8_t { kBHTD, kBTHD, kPadded };

causalattn_layout make_layout(LayoutKind kind, int64_t heads, int64_t tokens, int64_t dim, int64_t pad) {
  switch (kind) {
    case LayoutKind::kBHTD: return {heads * tokens * dim, tokens * dim, dim};
    case LayoutKind::kBTHD: return {tokens * heads * dim, dim, heads * dim};
    case LayoutKind::kPadded: break;
  }
  const int64_t token = dim + pad, head = tokens * token + pad;
  return {heads * head + pad, head, token};
}

int64_t elements(const causalattn_layout& l, int64_t batch, int64_t heads, int64_t tokens, int64_t dim) {
  return (batch - 1) * l.batch + (heads - 1) * l.head + (tokens - 1) * l.token + dim;
}

// The ways a call can be invalid; kNone leaves it valid.
enum class Break : uint8_t {
  kNone, kZeroSize, kOverflow, kHeadsNotMultiple, kQueriesPastKeys, kNegativeStride, kOverlappingRows,
  kOutIsQ, kNullPointer, kUnknownFlag, kBadScale, kNegativeThreads, kHeadDimTooLarge, kLseIsOut, kCount
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const bool causal = in.ConsumeBool();
  causalattn_shape s{};
  s.batch = in.ConsumeIntegralInRange<int64_t>(1, 2);
  s.kv_heads = in.ConsumeIntegralInRange<int64_t>(1, 2);
  s.q_heads = s.kv_heads * in.ConsumeIntegralInRange<int64_t>(1, 3);
  s.q_len = in.ConsumeIntegralInRange<int64_t>(1, 40);
  s.kv_len = causal ? s.q_len + in.ConsumeIntegralInRange<int64_t>(0, 40) : in.ConsumeIntegralInRange<int64_t>(1, 80);
  s.head_dim = in.ConsumeIntegralInRange<int64_t>(1, 72);
  const auto q_kind = static_cast<LayoutKind>(in.ConsumeIntegralInRange<uint8_t>(0, 2));
  const auto kv_kind = static_cast<LayoutKind>(in.ConsumeIntegralInRange<uint8_t>(0, 2));
  const auto out_kind = static_cast<LayoutKind>(in.ConsumeIntegralInRange<uint8_t>(0, 2));
  const int64_t pad = in.ConsumeIntegralInRange<int64_t>(0, 9);
  causalattn_layout ql = make_layout(q_kind, s.q_heads, s.q_len, s.head_dim, pad);
  causalattn_layout kl = make_layout(kv_kind, s.kv_heads, s.kv_len, s.head_dim, pad);
  causalattn_layout ol = make_layout(out_kind, s.q_heads, s.q_len, s.head_dim, pad);

  causalattn_options options{};
  options.flags = causal ? 0u : CAUSALATTN_NON_CAUSAL;
  const float scales[] = {0.0f, 0.125f, 1.0f, 3.0f, 1e-30f, 1e30f};
  options.scale = scales[in.ConsumeIntegralInRange<int>(0, 5)];
  options.num_threads = in.ConsumeIntegralInRange<int32_t>(0, 3);
  const bool with_lse = in.ConsumeBool();
  const auto breakage = static_cast<Break>(in.ConsumeIntegralInRange<uint8_t>(0, 2 * static_cast<uint8_t>(Break::kCount)));

  std::vector<float> q(elements(ql, s.batch, s.q_heads, s.q_len, s.head_dim));
  std::vector<float> k(elements(kl, s.batch, s.kv_heads, s.kv_len, s.head_dim));
  std::vector<float> v(k.size());
  for (auto* t : {&q, &k, &v})
    for (float& x : *t) x = decode_value(in);
  constexpr float kSentinel = -7777.0f;
  std::vector<float> out(elements(ol, s.batch, s.q_heads, s.q_len, s.head_dim), kSentinel);
  std::vector<float> lse(s.batch * s.q_heads * s.q_len, kSentinel);
  options.lse = with_lse ? lse.data() : nullptr;

  // Break the call, or not, after the buffers are sized for the valid one.
  const causalattn_shape* shape = &s;
  const float *qp = q.data(), *kp = k.data(), *vp = v.data();
  float* outp = out.data();
  switch (breakage) {
    case Break::kZeroSize: s.head_dim = -static_cast<int64_t>(in.ConsumeIntegralInRange<int>(0, 3)); break;
    case Break::kOverflow: s.batch = std::numeric_limits<int64_t>::max() / 3; break;
    case Break::kHeadsNotMultiple: s.kv_heads = 2; s.q_heads = 3; break;
    case Break::kQueriesPastKeys: options.flags = 0; s.q_len = s.kv_len + 1; break;
    case Break::kNegativeStride: kl.token = -kl.token; break;
    case Break::kOverlappingRows: s.q_len = std::max<int64_t>(s.q_len, 2); ol.token = 0; s.kv_len = std::max(s.kv_len, s.q_len); break;
    case Break::kOutIsQ: outp = q.data(); ol = ql; break;
    case Break::kNullPointer: vp = nullptr; break;
    case Break::kUnknownFlag: options.flags |= 1u << 7; break;
    case Break::kBadScale: options.scale = std::numeric_limits<float>::quiet_NaN(); break;
    case Break::kNegativeThreads: options.num_threads = -1; break;
    case Break::kHeadDimTooLarge: s.head_dim = CAUSALATTN_MAX_HEAD_DIM + 1; break;
    case Break::kLseIsOut: options.lse = out.data(); break;
    default: break;  // kNone and every code past kCount: a valid call, most of the time
  }
  const bool valid = breakage == Break::kNone || breakage >= Break::kCount;
  const std::vector<float> q_before = q;
  std::snprintf(g_call, sizeof g_call,
                "B=%lld Hq=%lld Hkv=%lld Tq=%lld Tk=%lld D=%lld q{%lld,%lld,%lld} kv{%lld,%lld,%lld} "
                "out{%lld,%lld,%lld} flags=%u scale=%g threads=%d lse=%d break=%d",
                (long long)s.batch, (long long)s.q_heads, (long long)s.kv_heads, (long long)s.q_len,
                (long long)s.kv_len, (long long)s.head_dim, (long long)ql.batch, (long long)ql.head,
                (long long)ql.token, (long long)kl.batch, (long long)kl.head, (long long)kl.token,
                (long long)ol.batch, (long long)ol.head, (long long)ol.token, options.flags, options.scale,
                options.num_threads, options.lse != nullptr, static_cast<int>(breakage));
  const int status = causalattn_forward_f32(shape, qp, ql, kp, kl, vp, kl, outp, ol, &options);

  if (!valid) {
    if (status == CAUSALATTN_OK) fail("an invalid call succeeded", static_cast<double>(breakage));
    if (causalattn_last_error()[0] == '\0') fail("a failure without a message");
    for (float x : out)
      if (x != kSentinel) fail("a failed call wrote out");
    for (float x : lse)
      if (x != kSentinel) fail("a failed call wrote lse");
    if (std::memcmp(q.data(), q_before.data(), q.size() * sizeof(float)) != 0) fail("a failed call wrote q");
    return 0;
  }
  if (status != CAUSALATTN_OK) {
    std::fprintf(stderr, "%s\n", causalattn_last_error());
    fail("a valid call failed", status);
  }

  // Against the reference where fp32 can represent the computation: scaled queries, dot
  // products and value sums below FLT_MAX, and no scaled query element below FLT_MIN (the kernel
  // multiplies Q by the scale first: such an element would lose its bits, and 0 · ±Inf is NaN).
  const double scale = options.scale != 0.0f ? options.scale : 1.0 / std::sqrt(static_cast<double>(s.head_dim));
  double q_max = 0, k_max = 0, v_max = 0, q_min = std::numeric_limits<double>::infinity();
  for (float x : q) {
    if (std::isfinite(x)) q_max = std::max(q_max, std::fabs(static_cast<double>(x)));
    if (x != 0.0f) q_min = std::min(q_min, std::fabs(static_cast<double>(x)));
  }
  for (float x : k) if (std::isfinite(x)) k_max = std::max(k_max, std::fabs(static_cast<double>(x)));
  for (float x : v) if (std::isfinite(x)) v_max = std::max(v_max, std::fabs(static_cast<double>(x)));
  const bool representable = q_max * scale < 1e37 && q_min * scale >= std::numeric_limits<float>::min() &&
                             q_max * scale * k_max * s.head_dim < 1e37 && v_max * s.kv_len < 1e37;
  const causalattn::reference::Result ref =
      causalattn::reference::attention(s, q.data(), ql, k.data(), kl, v.data(), kl, causal, options.scale);
  // The tests' bound (tests/attention_tester.hpp): 2^-16 · max|v| · max(1, S/16), S the largest
  // scaled Σ|q_d·k_d|; where an infinite input makes S infinite, the bound on the finite terms.
  const double finite_scores = std::isfinite(ref.score_magnitude) ? ref.score_magnitude : q_max * scale * k_max * s.head_dim;
  const double factor = std::max(1.0, finite_scores / 16.0);
  const double tolerance = std::ldexp(1.0, -16) * v_max * factor;
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t h = 0; h < s.q_heads; ++h)
      for (int64_t i = 0; i < s.q_len; ++i)
        for (int64_t d = 0; d < s.head_dim; ++d) {
          const double expected = ref.out[((b * s.q_heads + h) * s.q_len + i) * s.head_dim + d];
          const double got = out[b * ol.batch + h * ol.head + i * ol.token + d];
          if (!representable) continue;
          if (std::isfinite(expected) != std::isfinite(got)) fail("finiteness differs from the reference", got, expected);
          if (std::isfinite(expected) && !(std::fabs(got - expected) <= tolerance)) fail("out differs from the reference", got, expected);
        }
  if (with_lse && representable) {
    for (size_t i = 0; i < lse.size(); ++i) {
      const double expected = ref.lse[i];
      if (std::isnan(expected) != std::isnan(lse[i])) fail("lse NaN-ness differs from the reference", lse[i], expected);
      if (std::isfinite(expected) && !(std::fabs(lse[i] - expected) <= std::ldexp(1.0, -16) * factor * (1 + std::fabs(expected))))
        fail("lse differs from the reference", lse[i], expected);
    }
  }
  return 0;
}
