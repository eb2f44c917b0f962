/* causalattn: SIMD CPU kernels for causal (autoregressive) self-attention. C ABI, C99. */
#ifndef CAUSALATTN_CAUSALATTN_H
#define CAUSALATTN_CAUSALATTN_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define CAUSALATTN_API __attribute__((visibility("default")))
#else
#define CAUSALATTN_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Sizes. Q is [batch][q_heads][q_len][head_dim]; K and V are [batch][kv_heads][kv_len][head_dim].
 * Query head h reads KV head h / (q_heads / kv_heads) (grouped-query attention). */
typedef struct causalattn_shape {
  int64_t batch, q_heads, kv_heads, q_len, kv_len, head_dim;
} causalattn_shape;

/* Element strides of the batch, head and token dimensions; head_dim is contiguous.
 * [B,H,T,D] is {H*T*D, T*D, D}; the interleaved [B,T,H,D] is {T*H*D, D, H*D}. */
typedef struct causalattn_layout {
  int64_t batch, head, token;
} causalattn_layout;

/* Attend to every key, not only to keys at or before the query's position. */
#define CAUSALATTN_NON_CAUSAL 1u

typedef struct causalattn_options { /* all zeros: causal, default scale, all threads */
  uint32_t flags;                   /* 0 or CAUSALATTN_NON_CAUSAL */
  float scale;                      /* 0: 1/sqrt(head_dim); otherwise finite */
  int32_t num_threads;              /* 0: what the calling TBB arena allows; >0: at most this many */
  float* lse;                       /* NULL, or [batch][q_heads][q_len] contiguous: natural-log
                                       log-sum-exp of each row's scaled, masked scores */
} causalattn_options;

/* Status codes. Every failure also sets a message for causalattn_last_error(). */
typedef enum causalattn_status {
  CAUSALATTN_OK = 0,
  CAUSALATTN_ERROR_NULL_POINTER = 1,   /* a required pointer is NULL */
  CAUSALATTN_ERROR_INVALID_SHAPE = 2,  /* a size <= 0, too large, or inconsistent */
  CAUSALATTN_ERROR_INVALID_LAYOUT = 3, /* a negative stride, overflow, overlapping output rows */
  CAUSALATTN_ERROR_INVALID_OPTION = 4, /* unknown flag, non-finite scale, negative threads */
  CAUSALATTN_ERROR_ALIASING = 5,       /* an output overlaps an input or the other output */
  CAUSALATTN_ERROR_UNSUPPORTED = 6,    /* e.g. an ISA this CPU lacks */
  CAUSALATTN_ERROR_INTERNAL = 7        /* out of memory or another runtime failure */
} causalattn_status;

/* Largest head_dim the kernels accept. */
#define CAUSALATTN_MAX_HEAD_DIM 512

/* Causal masking is aligned bottom-right: query i sees key j iff j <= i + (kv_len - q_len), so a
 * chunk of q_len new tokens at the end of a kv_len cache sees its whole past (q_len <= kv_len is
 * required in causal mode). Inputs are read only; out (and options->lse) are written only on
 * success: on failure they are untouched. out must not overlap q, k, v or lse.
 * Results are bitwise identical for every thread count.
 * Returns CAUSALATTN_OK (0), or a causalattn_status describing the first problem found. */
CAUSALATTN_API int causalattn_forward_f32(const causalattn_shape* shape,
                                          const float* q, causalattn_layout q_layout,
                                          const float* k, causalattn_layout k_layout,
                                          const float* v, causalattn_layout v_layout,
                                          float* out, causalattn_layout out_layout,
                                          const causalattn_options* options /* NULL: defaults */);

/* Caller-owned workspace, for engines whose hot path must not allocate.
 * causalattn_forward_f32 keeps its kernel workspace per thread: a bounded buffer
 * (8 · (2·head_dim + 99) · 32 floats with AVX-512, about 360 KiB at head_dim 128) allocated at a
 * thread's first call, grown only for a larger head_dim, freed when the thread exits.
 * causalattn_forward_f32_with_workspace takes it from the caller instead and allocates nothing.
 *
 * causalattn_workspace_size stores in *bytes what a call with this shape and options needs, for
 * the ISA in use: it depends on head_dim and the thread count (options->num_threads, or with 0
 * the calling TBB arena's concurrency: query from the arena you will call from). */
CAUSALATTN_API int causalattn_workspace_size(const causalattn_shape* shape,
                                             const causalattn_options* options /* NULL: defaults */,
                                             size_t* bytes);

/* causalattn_forward_f32 with a workspace of workspace_size bytes, any alignment, used by this
 * call alone while it runs. A workspace smaller than causalattn_workspace_size's answer gives
 * CAUSALATTN_ERROR_INVALID_OPTION. */
CAUSALATTN_API int causalattn_forward_f32_with_workspace(const causalattn_shape* shape,
                                                         const float* q, causalattn_layout q_layout,
                                                         const float* k, causalattn_layout k_layout,
                                                         const float* v, causalattn_layout v_layout,
                                                         float* out, causalattn_layout out_layout,
                                                         const causalattn_options* options,
                                                         void* workspace, size_t workspace_size);

/* One partial result for causalattn_merge_f32: the output and LSE of a call over one part of
 * the keys, as causalattn_forward_f32 writes them. A part that saw no key of a row (an empty or
 * fully masked part) has LSE -inf there; its output row is then ignored. */
typedef struct causalattn_partial_f32 {
  const float* out;              /* [batch][q_heads][q_len][head_dim] through out_layout */
  causalattn_layout out_layout;
  const float* lse;              /* [batch][q_heads][q_len] contiguous */
} causalattn_partial_f32;

/* Merges `count` partial results over disjoint key ranges of the same queries into the result
 * over their union: out = Σ_p exp(lse_p - lse) · out_p, lse = log Σ_p exp(lse_p). This is split-KV
 * (flash-decoding) across threads, sockets or machines. shape gives batch, q_heads, q_len and
 * head_dim (kv_heads and kv_len are not used). lse may be NULL. A row no part saw gets NaN and
 * LSE -inf, as from a call in which it saw no key. Parts are read in order, so the bits depend
 * on their order, not on threads. */
CAUSALATTN_API int causalattn_merge_f32(const causalattn_shape* shape, const causalattn_partial_f32* parts,
                                        int32_t count, float* out, causalattn_layout out_layout,
                                        float* lse /* NULL, or [batch][q_heads][q_len] */);

/* This thread's last failure as readable text; "" if no call on this thread has failed. */
CAUSALATTN_API const char* causalattn_last_error(void);

/* The kernel ISA in use: "avx512", "avx2" or "sse2". Chosen once from the CPU's features; the
 * environment variable CAUSALATTN_ISA (read at the first call) may force a lower one. */
CAUSALATTN_API const char* causalattn_isa(void);

/* Forces the ISA for this process ("avx512", "avx2", "sse2"; NULL or "" restores the best the CPU
 * has). Returns CAUSALATTN_ERROR_UNSUPPORTED for a name this CPU cannot run. Not meant to be
 * called while another thread is inside causalattn_forward_f32. */
CAUSALATTN_API int causalattn_set_isa(const char* name);

/* The library's version, "MAJOR.MINOR.PATCH". */
CAUSALATTN_API const char* causalattn_version(void);

#ifdef __cplusplus
}
#endif

#endif /* CAUSALATTN_CAUSALATTN_H */
