// causalattn_peak_memory METHOD T D HEADS THREADS: runs one prefill with METHOD ("causal": our
// kernel, "textbook": the OpenBLAS textbook path) and prints one JSON line with the process's
// peak resident memory and the bytes of its inputs and outputs. One call per process, because
// a process's peak only grows: tools/report.sh runs it once per (method, T).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "causalattn/causalattn.h"
#include "textbook_blas.hpp"

namespace {

// VmHWM: the peak resident set of this process so far, in bytes.
long long peak_rss_bytes() {
  std::ifstream status("/proc/self/status");
  std::string key;
  long long kib = -1;
  while (status >> key) {
    if (key == "VmHWM:") {
      status >> kib;
      break;
    }
    status.ignore(1 << 12, '\n');
  }
  return kib * 1024;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: %s causal|textbook T D HEADS THREADS\n", argv[0]);
    return 2;
  }
  const std::string method = argv[1];
  const int64_t t = std::atoll(argv[2]), d = std::atoll(argv[3]), heads = std::atoll(argv[4]);
  const int threads = std::atoi(argv[5]);
  if ((method != "causal" && method != "textbook") || t <= 0 || d <= 0 || heads <= 0 || threads <= 0) {
    std::fprintf(stderr, "bad arguments\n");
    return 2;
  }
  const size_t elements = static_cast<size_t>(heads * t * d);
  // Filled (so resident) before the baseline is read: inputs and output count once.
  std::vector<float> q(elements, 0.5f), k(elements, 0.25f), v(elements, 1.0f), out(elements, 0.0f);
  const long long before = peak_rss_bytes();
  if (method == "causal") {
    const causalattn_shape shape{1, heads, heads, t, t, d};
    const causalattn_layout layout{heads * t * d, t * d, d};
    causalattn_options options{};
    options.num_threads = threads;
    if (causalattn_forward_f32(&shape, q.data(), layout, k.data(), layout, v.data(), layout, out.data(), layout,
                               &options) != CAUSALATTN_OK) {
      std::fprintf(stderr, "%s\n", causalattn_last_error());
      return 1;
    }
  } else {
    causalattn::bench::TextbookBlasAttention textbook;
    textbook.run(heads, t, d, q.data(), k.data(), v.data(), out.data(), threads);
  }
  std::printf(
      "{\"method\": \"%s\", \"T\": %lld, \"D\": %lld, \"heads\": %lld, \"threads\": %d, "
      "\"peak_rss_bytes\": %lld, \"rss_before_call_bytes\": %lld, \"tensor_bytes\": %zu}\n",
      method.c_str(), static_cast<long long>(t), static_cast<long long>(d), static_cast<long long>(heads), threads,
      peak_rss_bytes(), before, 4 * elements * sizeof(float));
  return 0;
}
