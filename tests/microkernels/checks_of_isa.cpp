// The microkernels of one ISA against scalar loops and double, compiled once per row of the ISA
// table with that row's flags (tests/CMakeLists.txt), as the library's kernels are. Everything
// here has internal linkage and uses no inline library code the other objects also use (no std
// containers or strings): an out-of-line copy compiled with AVX-512 flags must never be the one
// a test on another ISA calls. The test driver (test_microkernels.cpp, baseline flags) calls these
// only when the CPU runs the ISA.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "kernels/attention_microkernels.hpp"
#include "microkernels/checks.hpp"

namespace {

using Arch = CAUSALATTN_ARCH;
using causalattn::kernels::Blocking;
using causalattn::kernels::IsaTraits;
using causalattn::kernels::Vec;
using V = Vec<Arch>;
constexpr int W = Blocking<Arch>::kLanes;
constexpr int R = Blocking<Arch>::kRows;
constexpr int QV = Blocking<Arch>::kQueryVectors;

// A fixed pseudo-random stream, values in [-2, 2).
struct Stream {
  uint64_t state;
  float next() {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<float>(static_cast<double>(state >> 40) / static_cast<double>(1ull << 24) * 4.0 - 2.0);
  }
};

// Units in the last place of x (a normal float).
double ulp_of(double x) { return std::ldexp(1.0, std::ilogb(x) - 23); }

// e^y against double over [-87.33, 0] (every 2^-20 of the way and every float of [-2^-20, 0]'s
// first 2^16) and over (0, 8·ln 2] (2^18 points), within the bound of simd.hpp's contract: 2 ulp with FMA; without, |y| + 2 ulp
// (y·log2 e is rounded first: an error of half an ulp of t = y·log2 e moves 2^t by ln 2 · that,
// at most |y| ulp of the result); special values exactly.
// *worst: the largest error in ulp beyond |y| without FMA (with FMA: the largest error).
bool check_exp(char* why, int size, double* worst) {
  *worst = 0;
  alignas(64) float y[W], e[W];
  auto run = [&](float first, float step, int64_t count, float last = 0.0f) {
    for (int64_t i = 0; i < count; i += W) {
      for (int l = 0; l < W; ++l) y[l] = std::fmin(last, first + step * static_cast<float>(i + l));
      V v = V::load_aligned(y);
      causalattn::kernels::exp_nonpositive<Arch, 1>(&v);
      v.store_aligned(e);
      for (int l = 0; l < W; ++l) {
        const double exact = std::exp(static_cast<double>(y[l]));
        const double ulps = std::fabs(e[l] - exact) / ulp_of(exact);
        const double rounding = IsaTraits<Arch>::kFusedMultiplyAdd ? 0.0 : std::fabs(y[l]);
        const double bound = 2.0 + rounding;
        if (ulps - rounding > *worst) *worst = ulps - rounding;
        if (!(ulps <= bound)) {
          std::snprintf(why, size, "exp(%.9g) = %.9g, exact %.17g: %.3f ulp > %.3f", y[l], e[l], exact, ulps, bound);
          return false;
        }
      }
    }
    return true;
  };
  // Also (0, 8·ln 2]: the weights of the AMX kernel's softmax, whose rescale slack lets them reach 2^8.
  const float slack = 8.0f * 0.693147181f;
  if (!run(-87.33f, 87.33f / (1 << 20), int64_t{1} << 20) || !run(-1.0f / (1 << 20), std::ldexp(1.0f, -36), 1 << 16) ||
      !run(0.0f, slack / (1 << 18), int64_t{1} << 18, slack)) {
    return false;
  }
  const float specials[] = {-INFINITY, -1e30f, -88.03f, -100.0f, NAN, 0.0f, -0.0f};
  for (const float s : specials) {
    for (int l = 0; l < W; ++l) y[l] = s;
    V v = V::load_aligned(y);
    causalattn::kernels::exp_nonpositive<Arch, 1>(&v);
    v.store_aligned(e);
    const bool ok = std::isnan(s) ? std::isnan(e[0]) : s <= -88.03f ? e[0] == 0.0f && !std::signbit(e[0]) : e[0] == 1.0f;
    if (!ok) {
      std::snprintf(why, size, "exp(%g) = %g", s, e[0]);
      return false;
    }
  }
  return true;
}

// cap · tanh(s / cap) against double, the error in units of cap: within 2^-21 (softcap's contract
// in simd.hpp) for caps 1, 30 and 50 over s / cap in [-20, 20] every 2^-16 and every float of
// [-2^-10, 2^-10]'s first 2^16 steps; tanh(±inf) = ±1 and NaN exactly. *worst: the largest error
// in units of cap.
bool check_softcap(char* why, int size, double* worst) {
  *worst = 0;
  alignas(64) float s[W], y[W];
  const float caps[] = {1.0f, 30.0f, 50.0f};
  for (const float cap : caps) {
    auto run = [&](float first, float step, int64_t count) {
      for (int64_t i = 0; i < count; i += W) {
        for (int l = 0; l < W; ++l) s[l] = cap * (first + step * static_cast<float>(i + l));
        causalattn::kernels::softcap<Arch>(V::load_aligned(s), V(cap), V(1.0f / cap)).store_aligned(y);
        for (int l = 0; l < W; ++l) {
          const double exact = static_cast<double>(cap) * std::tanh(static_cast<double>(s[l]) / cap);
          const double error = std::fabs(y[l] - exact) / cap;
          if (error > *worst) *worst = error;
          if (!(error <= std::ldexp(1.0, -21))) {
            std::snprintf(why, size, "softcap(%.9g, cap %g) = %.9g, exact %.17g: error %.3g cap", s[l], cap, y[l], exact,
                          error);
            return false;
          }
        }
      }
      return true;
    };
    if (!run(-20.0f, 40.0f / (1 << 21), int64_t{1} << 21) || !run(-1.0f / 1024, std::ldexp(1.0f, -25), 1 << 16)) {
      return false;
    }
    const float specials[][2] = {{INFINITY, 1.0f}, {-INFINITY, -1.0f}, {1e30f, 1.0f}, {-1e30f, -1.0f}, {0.0f, 0.0f}};
    for (const auto& [x, tanh_x] : specials) {
      for (int l = 0; l < W; ++l) s[l] = x;
      causalattn::kernels::softcap<Arch>(V::load_aligned(s), V(cap), V(1.0f / cap)).store_aligned(y);
      if (y[0] != cap * tanh_x) {
        std::snprintf(why, size, "softcap(%g, cap %g) = %g, expected %g", x, cap, y[0], cap * tanh_x);
        return false;
      }
    }
    for (int l = 0; l < W; ++l) s[l] = NAN;
    causalattn::kernels::softcap<Arch>(V::load_aligned(s), V(cap), V(1.0f / cap)).store_aligned(y);
    if (!std::isnan(y[0])) {
      std::snprintf(why, size, "softcap(NaN) = %g", y[0]);
      return false;
    }
  }
  return true;
}

// The W x W transpose, exactly.
bool check_transpose(char* why, int size) {
  alignas(64) float block[W * W], out[W * W];
  for (int i = 0; i < W * W; ++i) block[i] = static_cast<float>(i) + 0.25f;
  V rows[W];
  for (int r = 0; r < W; ++r) rows[r] = V::load_aligned(block + r * W);
  causalattn::kernels::transpose_square<Arch>(rows);
  for (int r = 0; r < W; ++r) rows[r].store_aligned(out + r * W);
  for (int r = 0; r < W; ++r)
    for (int c = 0; c < W; ++c)
      if (out[r * W + c] != block[c * W + r]) {
        std::snprintf(why, size, "transpose: [%d][%d] = %g, expected %g", r, c, out[r * W + c], block[c * W + r]);
        return false;
      }
  return true;
}

// One multiply-add as the ISA's fmadd rounds it.
float scalar_fmadd(float a, float b, float c) {
  if constexpr (IsaTraits<Arch>::kFusedMultiplyAdd) {
    return std::fma(a, b, c);
  } else {
    const float product = a * b;  // two roundings (this file is built with -ffp-contract=off)
    return product + c;
  }
}

constexpr int kMaxDim = 70;
constexpr int kMaxKeys = 8;

// score_block for NK keys and query vectors from QV0, bit for bit against the scalar loop over d
// in the same order, and the running maximum it keeps.
template <int NK, int QV0>
bool check_score_block(int64_t head_dim, Stream& rng, char* why, int size) {
  alignas(64) static float qt[kMaxDim * R], st[kMaxKeys * R], k[kMaxKeys][kMaxDim];
  for (int64_t i = 0; i < head_dim * R; ++i) qt[i] = rng.next();
  const float* krows[NK];
  for (int j = 0; j < NK; ++j) {
    for (int64_t d = 0; d < head_dim; ++d) k[j][d] = rng.next();
    krows[j] = k[j];
  }
  V max[QV];
  for (V& m : max) m = V(-INFINITY);
  causalattn::kernels::score_block<Arch, NK, QV0>(qt, head_dim, krows, st, max);
  for (int j = 0; j < NK; ++j)
    for (int lane = QV0 * W; lane < R; ++lane) {
      float expected = 0.0f;
      for (int64_t d = 0; d < head_dim; ++d) expected = scalar_fmadd(qt[d * R + lane], k[j][d], expected);
      if (std::memcmp(&expected, &st[j * R + lane], sizeof expected) != 0) {
        std::snprintf(why, size, "score_block<%d keys, from vector %d>, D=%lld: st[%d][%d] = %.9g, scalar %.9g", NK,
                      QV0, static_cast<long long>(head_dim), j, lane, st[j * R + lane], expected);
        return false;
      }
    }
  alignas(64) float m[W];
  for (int qv = QV0; qv < QV; ++qv) {
    max[qv].store_aligned(m);
    for (int l = 0; l < W; ++l) {
      float expected = -INFINITY;
      for (int j = 0; j < NK; ++j) expected = std::fmax(expected, st[j * R + qv * W + l]);
      if (m[l] != expected) {
        std::snprintf(why, size, "score_block max of vector %d lane %d = %g, expected %g", qv, l, m[l], expected);
        return false;
      }
    }
  }
  return true;
}

// output_block for ND dims without masking, with and without the rescale alpha, bit for bit
// against the scalar loop over keys in the same order.
template <int ND, int QV0>
bool check_output_block(int64_t n, Stream& rng, char* why, int size) {
  alignas(64) static float pt[kMaxKeys * R], ot[ND * R], expected[ND * R], v[kMaxKeys][ND], alpha_f[R];
  for (int64_t i = 0; i < n * R; ++i) pt[i] = rng.next();
  const float* vrows[kMaxKeys];
  for (int64_t j = 0; j < n; ++j) {
    for (int d = 0; d < ND; ++d) v[j][d] = rng.next();
    vrows[j] = v[j];
  }
  for (int i = 0; i < R; ++i) alpha_f[i] = rng.next();
  V alpha[QV];
  for (int qv = 0; qv < QV; ++qv) alpha[qv] = V::load_unaligned(alpha_f + qv * W);
  const causalattn::kernels::DiagonalMask<Arch> no_mask{};
  const bool rescales[] = {false, true};
  for (const bool rescale : rescales) {
    for (int i = 0; i < ND * R; ++i) ot[i] = expected[i] = rng.next();
    causalattn::kernels::output_block<Arch, ND, causalattn::kernels::Masking::kNone, QV0>(
        pt, n, vrows, 0, rescale ? alpha : nullptr, no_mask, ot);
    for (int d = 0; d < ND; ++d)
      for (int lane = QV0 * W; lane < R; ++lane) {
        float acc = rescale ? expected[d * R + lane] * alpha_f[lane] : 0.0f;
        for (int64_t j = 0; j < n; ++j) acc = scalar_fmadd(pt[j * R + lane], v[j][d], acc);
        if (std::memcmp(&acc, &ot[d * R + lane], sizeof acc) != 0) {
          std::snprintf(why, size, "output_block<%d dims, from vector %d>, %lld keys, rescale %d: ot[%d][%d] = %.9g, scalar %.9g",
                        ND, QV0, static_cast<long long>(n), rescale, d, lane, ot[d * R + lane], acc);
          return false;
        }
      }
  }
  return true;
}

// Every block size the kernels instantiate (full blocks and every remainder), from every first
// query vector, over head dims and key counts around the block edges.
bool check_blocks(char* why, int size) {
  Stream rng{20261201};
  bool ok = true;
  causalattn::kernels::for_each_index<QV>([&](auto qv0) {
    causalattn::kernels::for_each_index<Blocking<Arch>::kKeyBlock>([&](auto nk) {
      const int64_t dims[] = {1, 3, 16, 17, 64, 70};
      for (const int64_t d : dims) ok = ok && check_score_block<nk() + 1, qv0()>(d, rng, why, size);
    });
    causalattn::kernels::for_each_index<Blocking<Arch>::kDimBlock>([&](auto nd) {
      const int64_t keys[] = {1, 2, 5, 8};
      for (const int64_t n : keys) ok = ok && check_output_block<nd() + 1, qv0()>(n, rng, why, size);
    });
  });
  return ok;
}

}  // namespace

extern const causalattn::testing::MicrokernelChecks CAUSALATTN_CHECKS;
const causalattn::testing::MicrokernelChecks CAUSALATTN_CHECKS = {CAUSALATTN_ISA_NAME, check_exp, check_softcap,
                                                                  check_transpose, check_blocks};
