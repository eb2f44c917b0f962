// Builds against the installed C++ API: one causal head whose values are all 2 must output 2,
// and a MultiHeadAttention whose value and output weights are zero must output its out_proj bias.
#include <causalattn/causalattn.hpp>
#include <causalattn/modules.hpp>

#include <cmath>
#include <cstdio>
#include <vector>

int main() {
  const int64_t T = 5, D = 8;
  std::vector<float> q(T * D, 0.1f), k(T * D, 0.2f), v(T * D, 2.0f), out(T * D);
  causalattn::forward(causalattn::ConstTensor::bhtd(q.data(), 1, 1, T, D),
                      causalattn::ConstTensor::bhtd(k.data(), 1, 1, T, D),
                      causalattn::ConstTensor::bhtd(v.data(), 1, 1, T, D),
                      causalattn::Tensor::bhtd(out.data(), 1, 1, T, D));
  for (float x : out) {
    if (std::fabs(x - 2.0f) > 1e-6f) return 1;
  }

  causalattn::MultiHeadAttention mha(6, 8, 16, 0.0f, 2);
  causalattn::StateDict state = mha.state_dict();
  state["out_proj.weight"].data.assign(64, 0.0f);
  state["out_proj.bias"].data.assign(8, 0.5f);
  mha.load_state_dict(state);
  mha.eval();
  for (float y : mha.forward(std::vector<float>(2 * T * 6, 1.0f), 2, T)) {
    if (y != 0.5f) return 1;
  }
  std::printf("C++ consumer: ok (%s)\n", causalattn::isa().c_str());
  return 0;
}
