// Memory discipline of the forward path: after a thread's first call, its calls allocate nothing;
// with a caller-owned workspace even the first call allocates nothing, and parallel calls too. Every heap allocation of
// the process (malloc and friends, hence operator new and TBB's allocations too) is counted by
// interposing glibc's allocator in this test binary.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "attention_tester.hpp"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CAUSALATTN_COUNTS_ALLOCATIONS 0  // the sanitizers own malloc
#else
#define CAUSALATTN_COUNTS_ALLOCATIONS 1
#endif

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_allocations{0};
}  // namespace

#if CAUSALATTN_COUNTS_ALLOCATIONS
namespace {
void count() {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void __libc_free(void*);

void* malloc(size_t n) { count(); return __libc_malloc(n); }
void* calloc(size_t n, size_t size) { count(); return __libc_calloc(n, size); }
void* realloc(void* p, size_t n) { count(); return __libc_realloc(p, n); }
void* memalign(size_t alignment, size_t n) { count(); return __libc_memalign(alignment, n); }
void* aligned_alloc(size_t alignment, size_t n) { count(); return __libc_memalign(alignment, n); }
int posix_memalign(void** p, size_t alignment, size_t n) {
  count();
  *p = __libc_memalign(alignment, n);
  return *p != nullptr ? 0 : ENOMEM;
}
void free(void* p) { __libc_free(p); }
}
#endif

namespace causalattn::testing {
namespace {

// Allocations made while `body` runs, by any thread.
template <class Body>
long allocations_during(Body&& body) {
  g_allocations = 0;
  g_counting = true;
  body();
  g_counting = false;
  return g_allocations.load();
}

class Allocations : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!CAUSALATTN_COUNTS_ALLOCATIONS) GTEST_SKIP() << "allocations are not counted under sanitizers";
  }
};

const causalattn_shape kShape{2, 4, 2, 200, 200, 64};

// One thread: after the first call (its thread workspace), calls allocate nothing.
TEST_F(Allocations, RepeatedSerialCallsAllocateNothing) {
  Problem p(kShape, Layout::kBHTD, 1);
  ASSERT_EQ(p.run(0, 0.0f, 1, true), CAUSALATTN_OK);
  const long n = allocations_during([&] {
    for (int i = 0; i < 5; ++i) ASSERT_EQ(p.run(i % 2 ? CAUSALATTN_NON_CAUSAL : 0u, 0.0f, 1, true), CAUSALATTN_OK);
  });
  EXPECT_EQ(n, 0);
}

// Several threads: a TBB worker allocates its thread workspace the first time it runs one of our
// tasks, which depends on scheduling; with the caller's workspace, repeated calls allocate
// nothing at all (the first one sets up the calling thread's arena).
TEST_F(Allocations, RepeatedParallelCallsWithAWorkspaceAllocateNothing) {
  for (int threads : {2, 0}) {
    Problem p(kShape, Layout::kBHTD, 1);
    causalattn_options options{};
    options.num_threads = threads;
    options.lse = p.lse.data();
    size_t bytes = 0;
    ASSERT_EQ(causalattn_workspace_size(&kShape, &options, &bytes), CAUSALATTN_OK);
    std::vector<unsigned char> workspace(bytes);
    auto call = [&] { return p.run_with_workspace(options, workspace.data(), workspace.size()); };
    ASSERT_EQ(call(), CAUSALATTN_OK);
    const long n = allocations_during([&] {
      for (int i = 0; i < 5; ++i) ASSERT_EQ(call(), CAUSALATTN_OK);
    });
    EXPECT_EQ(n, 0) << threads << " threads";
  }
}

TEST_F(Allocations, CallerWorkspaceFirstCallAllocatesNothing) {
  Problem warm(kShape, Layout::kBHTD, 2);
  ASSERT_EQ(warm.run(0, 0.0f, 1, false), CAUSALATTN_OK);  // the process's one-time ISA dispatch
  // A fresh thread has no thread workspace: with the caller's, its first call allocates nothing.
  std::thread fresh([] {
    Problem p(kShape, Layout::kBHTD, 3);
    causalattn_options options{};
    options.num_threads = 1;
    size_t bytes = 0;
    ASSERT_EQ(causalattn_workspace_size(&kShape, &options, &bytes), CAUSALATTN_OK);
    std::vector<unsigned char> workspace(bytes);
    const long n = allocations_during([&] {
      ASSERT_EQ(p.run_with_workspace(options, workspace.data(), workspace.size()), CAUSALATTN_OK);
    });
    EXPECT_EQ(n, 0);
    // The counter works: the same thread's first call without one allocates its thread workspace.
    EXPECT_GT(allocations_during([&] { ASSERT_EQ(p.run(0, 0.0f, 1, false), CAUSALATTN_OK); }), 0);
  });
  fresh.join();
}

// Serving shapes with the caller's workspace, from a fresh thread: decode (split chunks whose
// partials live in the workspace), a packed varlen batch and a paged cache; the first call after
// the size query allocates nothing, and neither do repeated ones.
TEST_F(Allocations, ServingShapesWithAWorkspaceAllocateNothing) {
  Problem warm(kShape, Layout::kBHTD, 2);
  ASSERT_EQ(warm.run(0, 0.0f, 1, false), CAUSALATTN_OK);  // the process's one-time ISA dispatch
  std::thread fresh([] {
    const int64_t H = 8, Hkv = 2, D = 64, kv_cap = 2100;
    std::vector<float> q(3 * 8 * H * D, 0.5f), k(3 * Hkv * kv_cap * D, 0.25f), v(k.size(), 1.0f);
    std::vector<float> out(q.size()), lse(3 * H * 8);
    std::vector<int64_t> cu_q = {0, 4, 5, 8}, q_lens = {4, 1, 3}, kv_lens = {2100, 37, 1500};
    std::vector<int32_t> table(3 * 33);
    for (size_t i = 0; i < table.size(); ++i) table[i] = static_cast<int32_t>((i * 7) % table.size());
    for (int form = 0; form < 3; ++form) {
      SCOPED_TRACE(form == 0 ? "decode" : form == 1 ? "packed varlen" : "paged");
      causalattn_attend_args a{};
      causalattn_seq_lens lens{};
      causalattn_kv_pages pages{table.data(), 33, 64, static_cast<int64_t>(table.size())};
      a.q = q.data();
      a.k = k.data();
      a.v = v.data();
      a.out = out.data();
      a.options.lse = lse.data();
      if (form == 0) {  // one sequence of 4 queries against 2100 keys
        a.shape = {1, H, Hkv, 4, kv_cap, D};
        a.q_layout = a.out_layout = {H * 4 * D, 4 * D, D};
        a.k_layout = a.v_layout = {Hkv * kv_cap * D, kv_cap * D, D};
      } else if (form == 1) {  // packed queries, padded keys
        lens.cu_q_lens = cu_q.data();
        lens.kv_lens = kv_lens.data();
        a.seq_lens = &lens;
        a.shape = {3, H, Hkv, 8, kv_cap, D};
        a.q_layout = a.out_layout = {8 * H * D, D, H * D};
        a.k_layout = a.v_layout = {Hkv * kv_cap * D, kv_cap * D, D};
      } else {  // padded queries, a paged cache of 64-token pages
        lens.q_lens = q_lens.data();
        lens.kv_lens = kv_lens.data();
        a.seq_lens = &lens;
        a.pages = &pages;
        a.shape = {3, H, Hkv, 4, kv_cap, D};
        a.q_layout = a.out_layout = {H * 4 * D, 4 * D, D};
        a.k_layout = a.v_layout = {Hkv * 64 * D, 64 * D, D};
        k.resize(static_cast<size_t>(table.size() * Hkv * 64 * D), 0.25f);
        v.resize(k.size(), 1.0f);
        a.k = k.data();
        a.v = v.data();
      }
      for (const int threads : {1, 2}) {
        a.options.num_threads = threads;
        size_t bytes = 0;
        ASSERT_EQ(causalattn_attend_workspace_size(&a, &bytes), CAUSALATTN_OK) << causalattn_last_error();
        std::vector<unsigned char> workspace(bytes);
        a.workspace = workspace.data();
        a.workspace_size = bytes;
        ASSERT_EQ(causalattn_attend_f32(&a), CAUSALATTN_OK) << causalattn_last_error();  // sets up the arena
        const long n = allocations_during([&] {
          for (int i = 0; i < 3; ++i) ASSERT_EQ(causalattn_attend_f32(&a), CAUSALATTN_OK);
        });
        EXPECT_EQ(n, 0) << threads << " threads";
      }
    }
  });
  fresh.join();
}

// The caller's workspace changes where scratch lives, never the bits; too small a one is refused.
TEST(Workspace, SameBitsAndSizeChecked) {
  for (int threads : {1, 2, 0}) {
    Problem plain(kShape, Layout::kBTHD, 4);
    ASSERT_EQ(plain.run(0, 0.0f, threads, true), CAUSALATTN_OK);
    Problem p(kShape, Layout::kBTHD, 4);
    causalattn_options options{};
    options.num_threads = threads;
    options.lse = p.lse.data();
    size_t bytes = 0;
    ASSERT_EQ(causalattn_workspace_size(&kShape, &options, &bytes), CAUSALATTN_OK);
    std::vector<unsigned char> workspace(bytes + 1);
    auto call = [&](size_t size) {
      // Offset by one byte: any alignment is accepted.
      return p.run_with_workspace(options, workspace.data() + 1, size);
    };
    ASSERT_EQ(call(bytes - 1), CAUSALATTN_ERROR_INVALID_OPTION);
    EXPECT_NE(std::string(causalattn_last_error()).find("workspace"), std::string::npos) << causalattn_last_error();
    for (float x : p.out) ASSERT_EQ(x, -12345.0f);  // untouched
    ASSERT_EQ(call(bytes), CAUSALATTN_OK) << causalattn_last_error();
    EXPECT_EQ(std::memcmp(plain.out.data(), p.out.data(), p.out.size() * sizeof(float)), 0) << threads;
    EXPECT_EQ(std::memcmp(plain.lse.data(), p.lse.data(), p.lse.size() * sizeof(float)), 0) << threads;
  }
  causalattn_options options{};
  size_t bytes = 0;
  EXPECT_EQ(causalattn_workspace_size(nullptr, &options, &bytes), CAUSALATTN_ERROR_NULL_POINTER);
  Problem p(kShape, Layout::kBHTD, 5);
  EXPECT_EQ(causalattn_forward_f32_with_workspace(&p.shape, p.q.data(), p.q_layout, p.k.data(), p.k_layout,
                                                  p.v.data(), p.v_layout, p.out.data(), p.out_layout, nullptr,
                                                  nullptr, 1 << 20),
            CAUSALATTN_ERROR_NULL_POINTER);
}

}  // namespace
}  // namespace causalattn::testing
