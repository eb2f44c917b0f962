// llama.cpp's CPU flash attention (ggml_flash_attn_ext) on the report's shapes, for
// tools/peers_bench.py: checked against our double reference at the given size, or timed.
// Built only with -DCAUSALATTN_GGML_SOURCE=<ggml source tree> (tools/report.sh --with-peers
// fetches it from PyPI's llama-cpp-python sdist). Prints one JSON object.
//   causalattn_ggml_attention --mode check|time --q-len T --kv-len S --dim D --heads H
//       --kv-heads Hkv --kv-type f16|f32|q8_0 --threads N --reps R
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "causalattn/causalattn.h"
#include "ggml-cpu.h"
#include "ggml.h"
#include "reference/reference.hpp"

namespace {

struct Options {
  std::string mode = "time", kv_type = "f16";
  int64_t q_len = 256, kv_len = 256, dim = 128, heads = 8, kv_heads = 8;
  int threads = 1, reps = 5;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    if (key == "--mode") o.mode = value;
    else if (key == "--kv-type") o.kv_type = value;
    else if (key == "--q-len") o.q_len = std::atoll(value.c_str());
    else if (key == "--kv-len") o.kv_len = std::atoll(value.c_str());
    else if (key == "--dim") o.dim = std::atoll(value.c_str());
    else if (key == "--heads") o.heads = std::atoll(value.c_str());
    else if (key == "--kv-heads") o.kv_heads = std::atoll(value.c_str());
    else if (key == "--threads") o.threads = std::atoi(value.c_str());
    else if (key == "--reps") o.reps = std::atoi(value.c_str());
  }
  return o;
}

std::vector<float> random_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> x(n);
  for (float& e : x) e = normal(rng);
  return x;
}

// Stores x into t in t's type (ggml's own rounding and quantization), then reads t back into x
// as f32: the values the tensor holds, which the reference then sees.
void store(ggml_tensor* t, std::vector<float>& x, int64_t row) {
  const auto n = static_cast<int64_t>(x.size());
  if (t->type == GGML_TYPE_F32) {
    std::memcpy(t->data, x.data(), x.size() * sizeof(float));
    return;
  }
  ggml_quantize_chunk(t->type, x.data(), t->data, 0, n / row, row, nullptr);
  ggml_get_type_traits(t->type)->to_float(t->data, x.data(), n);
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  const int64_t T = o.q_len, S = o.kv_len, D = o.dim, H = o.heads, Hkv = o.kv_heads;
  const ggml_type kv = o.kv_type == "f16" ? GGML_TYPE_F16 : o.kv_type == "q8_0" ? GGML_TYPE_Q8_0 : GGML_TYPE_F32;
  const std::vector<float> q = random_values(static_cast<size_t>(H * T * D), 1);
  std::vector<float> k = random_values(static_cast<size_t>(Hkv * S * D), 2),
                     v = random_values(static_cast<size_t>(Hkv * S * D), 3);

  const size_t bytes = static_cast<size_t>((H * T * D * 3 + Hkv * S * D * 2 * 4 + S * T) * 4) + (size_t{64} << 20);
  ggml_init_params params = {bytes, nullptr, false};
  ggml_context* ctx = ggml_init(params);
  // ggml's order is innermost first: [D, tokens, heads] is our [heads][tokens][D].
  ggml_tensor* tq = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, D, T, H);
  ggml_tensor* tk = ggml_new_tensor_3d(ctx, kv, D, S, Hkv);
  ggml_tensor* tv = ggml_new_tensor_3d(ctx, kv, D, S, Hkv);
  ggml_tensor* mask = ggml_new_tensor_2d(ctx, GGML_TYPE_F16, S, T);
  std::memcpy(tq->data, q.data(), q.size() * sizeof(float));
  store(tk, k, D);
  store(tv, v, D);
  // Causal, aligned bottom-right as ours: query i sees key j iff j <= i + S - T.
  auto* m = static_cast<ggml_fp16_t*>(mask->data);
  for (int64_t i = 0; i < T; ++i) {
    for (int64_t j = 0; j < S; ++j) m[i * S + j] = ggml_fp32_to_fp16(j <= i + S - T ? 0.0f : -INFINITY);
  }
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  ggml_tensor* out = ggml_flash_attn_ext(ctx, tq, tk, tv, mask, scale, 0.0f, 0.0f);
  ggml_cgraph* graph = ggml_new_graph(ctx);
  ggml_build_forward_expand(graph, out);

  std::vector<double> seconds;
  for (int r = 0; r < (o.mode == "check" ? 1 : o.reps); ++r) {
    const auto start = std::chrono::steady_clock::now();
    if (ggml_graph_compute_with_ctx(ctx, graph, o.threads) != GGML_STATUS_SUCCESS) {
      std::printf("{\"error\": \"ggml_graph_compute failed\"}\n");
      return 1;
    }
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  if (o.mode == "check") {
    // The result is [D, heads, tokens]: element (d, h, i) at (i * H + h) * D + d.
    const auto ref = causalattn::reference::attention({1, H, Hkv, T, S, D}, q.data(), {H * T * D, T * D, D}, k.data(),
                                                      {Hkv * S * D, S * D, D}, v.data(), {Hkv * S * D, S * D, D},
                                                      true, 0.0);
    double worst = 0, v_max = 0;
    for (float x : v) v_max = std::max(v_max, static_cast<double>(std::fabs(x)));
    const auto* res = static_cast<const float*>(out->data);
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t i = 0; i < T; ++i) {
        for (int64_t d = 0; d < D; ++d) {
          const double got = res[(i * H + h) * D + d], want = ref.out[static_cast<size_t>((h * T + i) * D + d)];
          worst = std::isfinite(got) ? std::max(worst, std::fabs(got - want)) : INFINITY;
        }
      }
    }
    std::printf("{\"peer\": \"ggml\", \"kv_type\": \"%s\", \"max_error\": %.3g, \"v_max\": %.3g}\n", o.kv_type.c_str(),
                worst, v_max);
  } else {
    std::sort(seconds.begin(), seconds.end());
    std::printf("{\"peer\": \"ggml\", \"kv_type\": \"%s\", \"best\": %.6f, \"median\": %.6f}\n", o.kv_type.c_str(),
                seconds.front(), seconds[seconds.size() / 2]);
  }
  ggml_free(ctx);
  return 0;
}
