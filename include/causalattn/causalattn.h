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
/* Align the causal diagonal top-left: query i sees keys j <= i (PyTorch's is_causal when
 * q_len != kv_len); q_len may exceed kv_len. */
#define CAUSALATTN_TOP_LEFT 2u
/* Absolute positions (causalattn_attend_args): query i is at q_pos_offset + i, key j at
 * kv_pos_offset + j, and a query sees a key iff the key's position <= its own; the window and
 * ALiBi use the same positions. A worker holding keys [a, b) and queries [c, d) of a long sequence
 * computes exactly its part of the whole (see causalattn_attend_args.sinks for the sink). */
#define CAUSALATTN_EXPLICIT_POSITIONS 4u
/* Batch invariance: the output and LSE of query i of a sequence depend only on that query, the
 * sequence's keys and values it may see, its head, the call's options and dtypes, and the ISA;
 * never on how the sequence's queries are split into calls (one prefill, chunks of any size, one
 * token at a time), on the other sequences of the call, on paged or contiguous K/V, the page size
 * or block table, the thread count or a workspace. One arithmetic serves every query: the
 * row-block kernel's, over key splits of CAUSALATTN_INVARIANT_SPLIT_KEYS keys at fixed positions
 * merged in order (docs/batch-invariance.md is the specification). Without it nothing changes.
 * Not with dropout. Costs: see docs/performance.md. */
#define CAUSALATTN_BATCH_INVARIANT 8u
/* The key splits of CAUSALATTN_BATCH_INVARIANT: keys [s·n, (s+1)·n) of every sequence. */
#define CAUSALATTN_INVARIANT_SPLIT_KEYS 3072

typedef struct causalattn_options { /* all zeros: causal, default scale, all threads */
  uint32_t flags;                   /* 0, or CAUSALATTN_NON_CAUSAL, CAUSALATTN_TOP_LEFT,
                                       CAUSALATTN_EXPLICIT_POSITIONS (these two exclusive),
                                       CAUSALATTN_BATCH_INVARIANT */
  float scale;                      /* 0: 1/sqrt(head_dim); otherwise finite */
  int32_t num_threads;              /* 0: what the calling TBB arena allows; > 0: at most this many,
                                       and never more than oneTBB may run at once (its
                                       global_control max_allowed_parallelism: by default the
                                       cores this process may use) */
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

/* Largest head_dim (and head_dim_v) the kernels accept: DeepSeek MLA's decode takes 576. */
#define CAUSALATTN_MAX_HEAD_DIM 576

/* Most tokens a call's shape.q_len, shape.kv_len, page_tokens and any one sequence's key count
 * may be (2^32): far past any context length, and low enough that no position arithmetic can
 * overflow. */
#define CAUSALATTN_MAX_TOKENS (INT64_C(1) << 32)

/* Causal masking is aligned bottom-right: query i sees key j iff j <= i + (kv_len - q_len), so a
 * chunk of q_len new tokens at the end of a kv_len cache sees its whole past (q_len <= kv_len is
 * required in causal mode, unless the flags align it otherwise). Inputs are read only; out (and options->lse) are written only on
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
 * (8 · (2·head_dim + 99) · 48 floats with AVX-512, 533 KiB at head_dim 128, and 2 · 384 · head_dim
 * floats more, 384 KiB, where a row group copies K and V: 16- or 8-bit K or V, or f32 rows a
 * multiple of 2 KiB apart) allocated at a thread's first call, grown only for a larger head_dim,
 * freed when the thread exits. A caller's workspace is sized without the layouts, so it has room
 * for the copy whenever the call has a sequence of more than 8 queries. Decode-shaped
 * calls (q_len <= 8, see causalattn_attend_f32) also keep the partial results
 * of their key chunks in a buffer of the calling thread, (head_dim_v + 1) floats per query row per
 * 1024 keys, grown as needed. causalattn_forward_f32_with_workspace takes both from the caller
 * instead and allocates nothing.
 *
 * causalattn_workspace_size stores in *bytes what a call with this shape and options needs, for
 * the ISA in use: it depends on the shape and the thread count (options->num_threads, or with 0
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
 * head_dim, the outputs' head size (head_dim_v where V's differs; kv_heads and kv_len are not used). lse may be NULL. A row no part saw gets NaN and
 * LSE -inf, as from a call in which it saw no key. Parts are read in order, so the bits depend
 * on their order, not on threads. */
CAUSALATTN_API int causalattn_merge_f32(const causalattn_shape* shape, const causalattn_partial_f32* parts,
                                        int32_t count, float* out, causalattn_layout out_layout,
                                        float* lse /* NULL, or [batch][q_heads][q_len] */);

/* ---- Serving shapes: sequences of different lengths, paged KV caches, sliding windows ---- */

/* Per-sequence lengths of a batch for causalattn_attend_f32; shape.batch is the number of
 * sequences. Sequence s has q_len(s) queries and kv_len(s) keys, with its own causal alignment:
 * query i sees key j iff j <= i + kv_len(s) - q_len(s) (and, with a window, more).
 * Queries (and out, and lse) take one of three forms:
 *   cu_q_lens [batch + 1], from 0, non-decreasing: packed (flash_attn_varlen's cu_seqlens_q).
 *     Sequence s's query t is token cu_q_lens[s] + t of batch 0 of q and out; shape.q_len is the
 *     tokens q and out hold (cu_q_lens[batch] <= shape.q_len); lse is [q_heads][shape.q_len].
 *   q_lens [batch] (cu_q_lens NULL): padded. Sequence s's queries are tokens 0 .. q_lens[s] - 1
 *     of batch s; each q_lens[s] <= shape.q_len; lse is [batch][q_heads][shape.q_len].
 *   both NULL: every sequence has shape.q_len queries.
 * Keys take the same forms through cu_kv_lens (packed along the tokens of batch 0 of k and v)
 * or kv_lens (padded: tokens of batch s, or the sequence's pages with causalattn_kv_pages), or
 * neither (shape.kv_len each). Lengths may be 0. Tokens past a sequence's length are never read
 * or written. */
typedef struct causalattn_seq_lens {
  const int64_t* cu_q_lens;
  const int64_t* q_lens;
  const int64_t* cu_kv_lens;
  const int64_t* kv_lens;
  /* With CAUSALATTN_EXPLICIT_POSITIONS, NULL or [batch]: sequence s's positions of query 0 and
   * key 0, in place of the call's q_pos_offset and kv_pos_offset. */
  const int64_t* q_pos_offsets;
  const int64_t* kv_pos_offsets;
} causalattn_seq_lens;

/* A paged KV cache (the layout of vLLM's and llama.cpp's caches): K and V live in pages of
 * page_tokens tokens. For K (V alike) element d of token slot t of page p, KV head h, is at
 * k[p * k_layout.batch + h * k_layout.head + t * k_layout.token + d]: a page is addressed as a
 * batch of page_tokens tokens. Sequence s's key j lives in page
 * block_table[s * block_table_stride + j / page_tokens], slot j % page_tokens. Keys per sequence
 * come from seq_lens->kv_lens (or shape.kv_len) and must fit its block table row:
 * kv_len(s) <= block_table_stride * page_tokens. Results equal the contiguous layout's bit for bit. */
typedef struct causalattn_kv_pages {
  const int32_t* block_table; /* [batch][block_table_stride]; entries read: in [0, num_pages) */
  int64_t block_table_stride;
  int64_t page_tokens;        /* > 0 */
  int64_t num_pages;          /* pages that k and v hold */
} causalattn_kv_pages;

/* Dropout on the attention weights, as in training: each weight softmax(...)[i][j] is zeroed with
 * probability p and the others are multiplied by 1/(1 - p). Whether weight (query i, key j) of
 * sequence s, query head h is kept is a pure function of (seed, s, h, i, j), given by
 * causalattn_dropout_keep: the same for every thread count, tiling and ISA. i is the query's
 * index in its sequence (0 .. q_len(s) - 1), j the key's (0 .. kv_len(s) - 1). The log-sum-exp
 * (options.lse) is that of the weights before dropout. */
typedef struct causalattn_dropout {
  float p;       /* 0: no dropout; otherwise in (0, 1) */
  uint64_t seed;
} causalattn_dropout;

/* 1 if dropout (p, seed) keeps weight (query, key) of sequence `sequence`, query head `head`,
 * else 0: word key % 4 of Philox4x32-10 with counter {key / 4, query, head, sequence} (32-bit
 * words) and key {seed mod 2^32, seed / 2^32} is kept iff it is at least p * 2^32 (rounded down).
 * Arguments out of range (p not in [0, 1), negative or >= 2^32 indices) give 0. */
CAUSALATTN_API int causalattn_dropout_keep(float p, uint64_t seed, int64_t sequence, int64_t head, int64_t query,
                                           int64_t key);

/* Element types. Strides count elements of the tensor's dtype; for Q8_0 they count blocks of
 * ggml's block_q8_0 layout (an f16 scale d, then 32 int8 q; value d·q; 34 bytes), so a head_dim
 * row is head_dim / 32 blocks (head_dim a multiple of 32). F32, BF16 and F16 tensors must be
 * aligned to their element size, Q8_0 to 2 bytes. Inputs are widened to f32 exactly;
 * accumulation and softmax run in f32; f32 results are rounded to BF16 or F16 round-to-nearest-even
 * (NaN stays NaN, overflow becomes infinity). */
typedef enum causalattn_dtype {
  CAUSALATTN_DTYPE_F32 = 0,
  CAUSALATTN_DTYPE_BF16 = 1,
  CAUSALATTN_DTYPE_F16 = 2,
  CAUSALATTN_DTYPE_Q8_0 = 3 /* K and V only */
} causalattn_dtype;

/* Everything causalattn_attend takes. Zero-initialize, then set what you use; the fields
 * of causalattn_forward_f32 mean what they mean there. */
typedef struct causalattn_attend_args {
  causalattn_shape shape;
  const void* q;
  causalattn_layout q_layout;
  const void* k;
  causalattn_layout k_layout;
  const void* v;
  causalattn_layout v_layout;
  void* out;
  causalattn_layout out_layout;
  causalattn_options options;
  int64_t window;                   /* 0: none. > 0 (causal only): the query at position p sees
                                       keys at positions p - window < P <= p (positions as the
                                       flags align them: bottom-right p = i + kv_len - q_len) */
  const causalattn_seq_lens* seq_lens; /* NULL: every sequence has shape.q_len and shape.kv_len */
  const causalattn_kv_pages* pages;    /* NULL: K and V addressed through their layouts */
  void* workspace;                  /* NULL, or workspace_size bytes (causalattn_attend_workspace_size) */
  size_t workspace_size;
  causalattn_dropout dropout;       /* p = 0: none. With dropout every sequence runs the row-block
                                       kernel (no decode split) */
  /* The tensors' element types (0: F32). Q and out: F32, BF16 or F16; K and V: any, each its own
   * (an F16 K with a Q8_0 V is a llama.cpp cache). options.lse stays f32. */
  causalattn_dtype q_dtype, k_dtype, v_dtype, out_dtype;

  /* Model variants (zero: none). A score is s_ij = scale · q_i·k_j, then
   *   s_ij = softcap · tanh(s_ij / softcap)       with softcap > 0 (Gemma 2), then
   *   s_ij += -alibi_slopes[h] · (p_i - P_j)      with alibi_slopes (BLOOM, MPT), then masked,
   * where p_i and P_j are the positions of query i and key j: P_j = j and p_i = i + kv_len - q_len
   * (bottom-right), p_i = i (CAUSALATTN_TOP_LEFT), or the offsets (CAUSALATTN_EXPLICIT_POSITIONS).
   * A sink (gpt-oss) is one more logit per query head in the softmax's denominator, with no value:
   *   O_i = Σ_j e^(s_ij) V_j / (e^(sinks[h]) + Σ_j e^(s_ij)),
   * and options.lse is log(e^(sinks[h]) + Σ_j e^(s_ij)). The sink belongs to the part of a
   * sequence's keys that starts at position 0: a call adds it unless CAUSALATTN_EXPLICIT_POSITIONS
   * puts its first key elsewhere (kv_pos_offset > 0). Keys split over calls with explicit positions
   * and merged (causalattn_merge) so count it once; a row that sees no key of a call with the sink
   * gets out 0 and lse sinks[h]. The split decode chunks inside one call add it once too. */
  const float* sinks;               /* NULL, or [q_heads] logits: finite or -inf (no sink) */
  float softcap;                    /* 0: none; else finite and > 0 */
  const float* alibi_slopes;        /* NULL, or [q_heads] finite slopes */
  int64_t head_dim_v;               /* 0: head_dim. Else V's and out's head size (1 ..
                                       CAUSALATTN_MAX_HEAD_DIM): Q·K over head_dim, P·V over
                                       head_dim_v (DeepSeek's MLA: 192 / 128, 576 / 512) */
  int64_t q_pos_offset, kv_pos_offset; /* with CAUSALATTN_EXPLICIT_POSITIONS: the positions of
                                       query 0 and key 0, in [0, CAUSALATTN_MAX_TOKENS]; else 0 */
} causalattn_attend_args;

/* Attention over a batch of sequences with their own lengths, packed or padded, with K and V
 * contiguous or paged, optionally in a sliding window. causalattn_forward_f32 is this call with
 * only the shape, tensors and options set. Work is split by sizes alone, never by the thread
 * count, so results are bitwise identical for every thread count. Sequences of at most 8
 * queries (decode, small chunks) run a decode kernel: up to 8 query rows of one KV head (its query
 * heads × positions) share each key read, and the keys are cut into 1024-key chunks computed in
 * parallel and merged exactly (flash-decoding). Every argument, including the lengths and the
 * block table entries a sequence uses, is checked before anything is written. */
CAUSALATTN_API int causalattn_attend(const causalattn_attend_args* args);

/* causalattn_attend for f32 tensors only: a dtype other than F32 is refused with
 * CAUSALATTN_ERROR_UNSUPPORTED. */
CAUSALATTN_API int causalattn_attend_f32(const causalattn_attend_args* args);

/* Every check causalattn_attend(args) makes, with nothing computed or written: CAUSALATTN_OK iff
 * causalattn_attend(args) would run (save for running out of memory). For callers that must know
 * before they commit, such as the ranks of causalattn_mpi agreeing that each can run its part. */
CAUSALATTN_API int causalattn_attend_validate(const causalattn_attend_args* args);

/* The workspace bytes causalattn_attend(args) needs with args->workspace set: per-thread
 * kernel slots (as causalattn_workspace_size) plus room for the partial results of split decode
 * chunks. Reads the shape, options, window, lengths and pages of args; the tensors and their layouts
 * are not read. */
CAUSALATTN_API int causalattn_attend_workspace_size(const causalattn_attend_args* args, size_t* bytes);

/* causalattn_merge_f32 over partial outputs of any of F32, BF16, F16 (each its own, out_dtype
 * for the result); LSE stays f32. The merge computes in f32 on the widened partials. */
typedef struct causalattn_partial {
  const void* out;
  causalattn_layout out_layout;
  const float* lse;
  causalattn_dtype out_dtype;
} causalattn_partial;

CAUSALATTN_API int causalattn_merge(const causalattn_shape* shape, const causalattn_partial* parts, int32_t count,
                                    void* out, causalattn_layout out_layout, causalattn_dtype out_dtype,
                                    float* lse /* NULL, or [batch][q_heads][q_len] */);

/* Converts n contiguous elements from src (src_dtype) to dst (dst_dtype), as the kernels read and
 * write them: to F32 exactly; F32 to BF16 or F16 round-to-nearest-even (NaN kept NaN); BF16 and F16
 * to each other through F32; to Q8_0 as ggml's quantize_row_q8_0 does it (per block of 32:
 * d = max|x| / 127 stored as f16, q = round(x / d) half away from zero). With Q8_0 on either side
 * n is a multiple of 32 and dst holds n / 32 blocks of 34 bytes; non-finite values cannot be
 * quantized (CAUSALATTN_ERROR_INVALID_SHAPE). src and dst must not overlap. */
CAUSALATTN_API int causalattn_convert(const void* src, causalattn_dtype src_dtype, void* dst, causalattn_dtype dst_dtype,
                                      int64_t n);

/* A projection, as PyTorch's nn.Linear: y[i][f] = sum_j x[i][j] * weight[f][j] + bias[f] for
 * i < m, f < n, j < k. x is [m][k] with rows x_stride apart, weight is [n][k] (nn.Linear's
 * [out_features][in_features]) with rows weight_stride apart, bias is NULL or [n], y is [m][n]
 * with rows y_stride apart (y_stride >= n). y must not overlap x, weight or bias. Register-blocked
 * SIMD microkernels on the ISA in use; results are bitwise identical for every thread count
 * (num_threads as in causalattn_options). weight is packed on every call. */
CAUSALATTN_API int causalattn_linear_f32(int64_t m, int64_t n, int64_t k, const float* x, int64_t x_stride,
                                         const float* weight, int64_t weight_stride, const float* bias,
                                         float* y, int64_t y_stride, int32_t num_threads);

/* The same projection with x, weight, bias and y in bf16 (strides in elements, pointers aligned to
 * 2 bytes): the products and sums in f32, the bias added in f32, y rounded to nearest even. On the
 * amx ISA it runs on AMX tiles (which flush subnormal inputs and sums to zero); elsewhere x, weight
 * and bias are widened exactly and the f32 projection's result rounded. Bitwise identical for
 * every thread count. */
CAUSALATTN_API int causalattn_linear_bf16(int64_t m, int64_t n, int64_t k, const void* x, int64_t x_stride,
                                          const void* weight, int64_t weight_stride, const void* bias, void* y,
                                          int64_t y_stride, int32_t num_threads);

/* This thread's last failure as readable text; "" if no call on this thread has failed. */
CAUSALATTN_API const char* causalattn_last_error(void);

/* The name of ISA `index` (0, 1, ...) this build has kernels for, in the order the dispatcher
 * prefers them ("amx", "avx512", "avx512bf16", "avx2", "sse2" on x86-64; amx, whose AMX tile
 * kernels run all-bf16 prefill and the bf16 projection, only where the OS grants the tile state;
 * avx512bf16, whose BF16 dot-product kernel runs all-bf16 prefill, only when selected), whether or
 * not this CPU runs it; NULL past the last. */
CAUSALATTN_API const char* causalattn_known_isa(int32_t index);

/* The kernel ISA in use, one of causalattn_known_isa's names. Chosen once from the CPU's
 * features; the environment variable CAUSALATTN_ISA (read at the first call) may force a lower one. */
CAUSALATTN_API const char* causalattn_isa(void);

/* Queries the prefill kernel in use computes together, its row block (48 with AVX-512, 16 with
 * AVX2, 8 with SSE2): a chunked prefill whose chunks are multiples of it fills every lane. */
CAUSALATTN_API int32_t causalattn_prefill_block_queries(void);

/* Forces the ISA for this process (a causalattn_known_isa name; NULL or "" restores the best the
 * CPU has). Returns CAUSALATTN_ERROR_UNSUPPORTED for a name this CPU cannot run. Not meant to be
 * called while another thread is inside a call. */
CAUSALATTN_API int causalattn_set_isa(const char* name);

/* The library's version, "MAJOR.MINOR.PATCH". */
CAUSALATTN_API const char* causalattn_version(void);

#ifdef __cplusplus
}
#endif

#endif /* CAUSALATTN_CAUSALATTN_H */
