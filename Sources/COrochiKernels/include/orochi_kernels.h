// Orochi's C kernels: what Swift cannot express well — CPU feature dispatch, intrinsics for
// half-precision conversions in registers, a spinning thread pool for one-token kernels, and
// loading OpenBLAS ourselves so that we choose its kernels (see blas.c).
//
// Contract of every kernel: buffers are validated by the caller (sizes come from a checked
// model configuration); no kernel allocates on the heap or checks bounds.
#ifndef OROCHI_KERNELS_H
#define OROCHI_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---- CPU features and the kernel family chosen from them (cpu.c) ----
enum { OROCHI_ISA_PORTABLE = 0, OROCHI_ISA_AVX2 = 1, OROCHI_ISA_AVX512 = 2 };
/// The instruction set our kernels run with: AVX-512 (F, BW, VL, DQ), AVX2 + FMA + F16C, or portable C.
int orochi_isa(void);
/// Forces a kernel family (tests, benchmarks); a family the CPU lacks is ignored. Returns the family in force.
int orochi_set_isa(int isa);
/// "avx512", "avx2" or "portable".
const char *orochi_isa_name(int isa);
/// The CPU's features relevant to us, e.g. "avx2 fma f16c avx512f avx512bw avx512vl avx512dq avx512bf16 amx".
const char *orochi_cpu_features(void);

// ---- OpenBLAS, loaded at first use after choosing its core type (blas.c) ----
/// Loads OpenBLAS if not yet loaded; returns 0, or -1 with `orochi_blas_error()` set.
int orochi_blas_load(void);
const char *orochi_blas_error(void);
/// openblas_get_corename(), e.g. "SkylakeX" ("" if not loaded).
const char *orochi_blas_core(void);
/// openblas_get_config(), e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY SkylakeX MAX_THREADS=64".
const char *orochi_blas_config(void);
/// Why this core: "OPENBLAS_CORETYPE=… set by the user" or "chosen by orochi: …".
const char *orochi_blas_core_reason(void);
/// How OpenBLAS's idle threads wait and who chose it, e.g. "OPENBLAS_THREAD_TIMEOUT=16 set by orochi: …" (blas.c says why).
const char *orochi_blas_idle_reason(void);
/// The core type Orochi would request for this CPU (NULL: leave it to OpenBLAS).
const char *orochi_blas_preferred_core(void);
/// 1 when the loaded OpenBLAS runs kernels older than the CPU's own (an SSE core such as
/// Prescott, chosen by OPENBLAS_CORETYPE or by an OpenBLAS that does not know the CPU) on a CPU
/// where our AVX-512 multi-token kernel is faster: products of many tokens then take ours.
int orochi_blas_is_weak(void);
/// Who computes products of many tokens: 0 decides by orochi_blas_is_weak (the default), 1 always
/// our kernel, 2 always OpenBLAS (tests compare the two).
void orochi_set_gemm_mode(int mode);
int orochi_gemm_uses_own(void);
/// On an AVX-512 CPU our multi-token kernel takes, even beside good OpenBLAS kernels: products with
/// an inner size below OROCHI_SHORT_K (Mamba's dt_proj, k = 16–48: 1.4× OpenBLAS SkylakeX's
/// sgemm), products of at most OROCHI_SMALL_PRODUCT weights (a 6.4M-parameter Mamba's whole
/// 512-token prefill 1.2–1.7×: OpenBLAS's threading costs as much as the arithmetic there), and
/// every product its packed panels take (at least OROCHI_PANEL_MIN_ROWS rows, inner size at most
/// OROCHI_PANEL_MAX_K): with the panels packed by 16 × 16 register transposes, the layer products
/// of llama-130m and mamba-130m (n 768–3072, k 768–2048, 256 and 512 tokens) ran at 157–204
/// GFLOP/s against OpenBLAS SkylakeX's 126–182, interleaved on an AMD EPYC with 2 threads; only
/// 256 × 768 × 1536 was 4 % slower, and 768 × 768 even.
enum { OROCHI_SHORT_K = 128, OROCHI_SMALL_PRODUCT = 1 << 19, OROCHI_PANEL_MIN_ROWS = 128, OROCHI_PANEL_MAX_K = 4096 };
/// The shapes the multi-token kernel's packed panels take (n weight rows, inner size k).
static inline int orochi_panel_shape(long n, long k) {
    return k < OROCHI_SHORT_K || (n >= OROCHI_PANEL_MIN_ROWS && k <= OROCHI_PANEL_MAX_K);
}
/// orochi_gemm_uses_own for a product of n weight rows and inner size k.
int orochi_gemm_uses_own_for(long n, long k);
void orochi_blas_set_threads(int threads);
int orochi_blas_threads(void);
/// Row-major cblas_sgemm / cblas_sgemv with the CBLAS enum values 111 (no transpose), 112 (transpose).
void orochi_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                  const float *b, int ldb, float beta, float *c, int ldc);
void orochi_sgemv(int trans, int m, int n, float alpha, const float *a, int lda, const float *x,
                  float beta, float *y);

// ---- thread pool for one-token kernels (pool.c) ----
/// Threads used by our own parallel kernels (the calling thread included); clamped to 1…64.
void orochi_pool_set_threads(int threads);
int orochi_pool_threads(void);
/// Runs fn(ctx, i, chunks) for every i in 0..<chunks (at most 65,535) on the pool's threads and
/// the caller, chunks claimed one at a time, and returns when all are done. If the pool is busy
/// (another thread is using it), the caller runs every chunk itself.
///
/// Chunks come in homes of OROCHI_POOL_HOME_CHUNKS consecutive indices (orochi_pool_homes), and
/// each thread (the caller is thread 0) first claims the chunks of its own homes (home h belongs to
/// thread h mod threads), front to back, then takes what is left of the others', back to front. So
/// a kernel whose chunk i always covers the same rows has each thread read the same rows token
/// after token, while a thread that falls behind still has its last chunks taken from it.
void orochi_pool_run_chunks(void (*fn)(void *ctx, int index, int count), void *ctx, int chunks);
/// The same with one chunk per thread.
void orochi_pool_run(void (*fn)(void *ctx, int index, int count), void *ctx);
enum { OROCHI_POOL_HOME_CHUNKS = 3, OROCHI_POOL_MAX_HOMES = 64 };
/// The homes of a job of `count` chunks: ⌈count / 3⌉, or one when that exceeds 64 (a job of many
/// small units, e.g. a batch's panels, where the order of claims does not matter).
static inline int orochi_pool_homes(int count) {
    int homes = (count + OROCHI_POOL_HOME_CHUNKS - 1) / OROCHI_POOL_HOME_CHUNKS;
    return homes > OROCHI_POOL_MAX_HOMES ? 1 : homes;
}
/// The first chunk of home `home` of a job of `count` chunks (home = the number of homes: count).
static inline int orochi_pool_home_first(int count, int home) {
    if (orochi_pool_homes(count) == 1) return home == 0 ? 0 : count;
    int first = home * OROCHI_POOL_HOME_CHUNKS;
    return first < count ? first : count;
}
/// Where chunk `index` of `count` starts among `total` units (index = count: total). Each home
/// takes an equal slice of the units, cut into chunks that shrink as they go, a fraction
/// 1 − (1 − i/c)² of the slice before its chunk i of c: the owner claims the big ones first, and a
/// thread that has finished its own takes the small ones last, so that whichever finishes first
/// waits for a small chunk only. Against equal chunks (4 per thread), shrinking chunks, 3 per
/// thread over the whole range: llama-6m decode +12 %, mamba-6m f16 +5 %; a home per thread on
/// top of that (each thread reading the same rows every token): see pool.c.
static inline long orochi_pool_guided_start(long total, int index, int count) {
    if (index >= count) return total;
    int homes = orochi_pool_homes(count);
    int home = homes == 1 ? 0 : index / OROCHI_POOL_HOME_CHUNKS;
    int first = orochi_pool_home_first(count, home);
    long chunks = orochi_pool_home_first(count, home + 1) - first;
    long begin = total * home / homes, end = total * (home + 1) / homes, left = chunks - (index - first);
    return end - (end - begin) * left * left / (chunks * chunks);
}

// ---- weights in their stored type ----
enum { OROCHI_F32 = 0, OROCHI_F16 = 1, OROCHI_BF16 = 2 };

/// y[n] = W[n, k] · x[k] (or y += …) for W in f32, f16 or bf16, rows `ldw` elements apart.
/// Threaded over rows through the pool when the matrix is large enough to pay for it.
void orochi_matvec(int dtype, const void *w, long n, long k, long ldw, const float *x, float *y, int accumulate);
/// orochi_matvec, then then(ctx, r0, r1) for each range of rows [r0, r1) (multiples of 16 apart
/// from the last), by the thread that computed them, as soon as they are: a product and the
/// element-wise step that only needs its own rows, as one job for the threads (decode's in_proj and
/// Mamba's conv step). The ranges cover 0..<n once each.
void orochi_matvec_then(int dtype, const void *w, long n, long k, long ldw, const float *x, float *y, int accumulate,
                        void (*then)(void *ctx, long r0, long r1), void *ctx);
/// Y[i, :] (+)= W · X[i, :] for m rows of X (`ldx` apart) into rows of Y (`ldy` apart): a few tokens
/// at once (batched decode), each weight read once per four tokens; threaded like orochi_matvec.
void orochi_matvec_multi(int dtype, const void *w, long n, long k, long ldw, const float *x, long ldx, long m,
                         float *y, long ldy, int accumulate);
/// One of the products of orochi_matvec_group: y[n] (+)= W[n, k] · x, rows `ldw` elements apart.
typedef struct { int dtype; const void *w; long n, ldw; float *y; } orochi_group_product;
/// Several one-token products of the same x[k] (a layer's q, k and v; its gate and up), their rows
/// handed to the pool as one job: one hand-off for the group instead of one per matrix.
void orochi_matvec_group(const orochi_group_product *products, int count, long k, const float *x, int accumulate);
/// Products of m tokens X[m, k] (rows `ldx` apart) through several matrices at once (a layer's q,
/// k and v; its gate and up), Y_i[m, n_i] (+)= X · W_iᵀ, their row units handed to the pool as one
/// job; threaded like orochi_matvec_multi.
void orochi_matvec_multi_group(const orochi_group_product *products, int count, long k, const float *x, long ldx,
                               long m, int accumulate);
/// The same on the calling thread only, over rows [row_begin, row_end).
void orochi_matvec_rows(int dtype, const void *w, long row_begin, long row_end, long k, long ldw,
                        const float *x, float *y, int accumulate);
/// dst[i] = float(src[i]) for f32, f16 or bf16 sources.
void orochi_to_f32(int dtype, const void *src, float *dst, long count);
/// dst[i] = half(src[i]) (round to nearest even).
void orochi_f32_to_f16(const float *src, uint16_t *dst, long count);

// ---- attention for one new token over the cache (attention.c) ----
/// For every query head h (group = heads / kv_heads query heads share kv head h / group):
///   out_h[d] = Σ_j softmax_j(scale · q_h · K_g[j]) · V_g[j],  j over `n` cached rows starting at row `first`.
/// keys / values: [kv_heads, capacity, d] in f32 or f16 (`kv_dtype`); q, out: [heads, d].
/// One pass over each kv head's keys and values (online softmax), the group's query heads together,
/// kv heads split over the pool's threads. head_dim ≤ 512.
void orochi_attention_decode(const float *q, int heads, int kv_heads, int head_dim,
                             const void *keys, const void *values, int kv_dtype, long capacity,
                             long first, long n, float scale, float *out);

/// Prefill attention's two products over one tile, register-blocked for head sizes of 32–128 (where
/// a general sgemm spends much of its time packing, and OpenBLAS's SSE kernels are slow):
///   orochi_attention_scores: S[rows, n] = scale · Q[rows, d] · K[n, d]ᵀ  (Q rows `ldq` apart, K rows
///     d apart, S rows n apart); `kt` is scratch for Kᵀ, d × orochi_attention_kt_columns(n) floats;
///   orochi_attention_values: O[rows, d] += P[rows, n] · V[n, d]  (P rows n apart, V rows d apart,
///     O rows `ldo` apart).
/// Causal tiles: row r sees keys up to r + `diagonal` (tile indices; pass n or more for all). Both
/// skip keys no row of a 4-row block sees: S there is left unwritten, and P must be 0 there (the
/// softmax tile makes it so).
long orochi_attention_kt_columns(int n);
void orochi_attention_scores(const float *q, long ldq, int rows, const float *k, int n, int d, float scale,
                             long diagonal, float *kt, float *s);
void orochi_attention_values(const float *p, int rows, int n, long diagonal, const float *v, int d, float *o, long ldo);
/// Prefill attention's online softmax over one tile (flash attention, between S = scale·Q·Kᵀ and O += P·V).
/// scores [rows, n]: row r is the query at position pos0 + r against keys c0 … c0 + n − 1; it sees keys
/// max(c0, pos − window + 1 when window > 0) … min(pos, c0 + n − 1). For each row, with m = max(row_max,
/// its visible scores) and c = exp(row_max − m) (0 while row_max is −∞): visible scores ← exp(s − m), the
/// others ← 0; row_sum ← row_sum·c + Σ; row_max ← m; its output row (d floats, at out + r·ldo) ← ·c.
void orochi_attention_softmax_tile(float *scores, int rows, int n, long c0, long pos0, long window,
                                   float *row_max, float *row_sum, float *out, long ldo, int d);

// ---- Mamba's selective scan (scan.c) ----
/// Per-channel [E, N] arrays ↔ the scan's layout [⌈E/16⌉, N, 16] (channel 16b + i at block b, lane i; padding zero).
void orochi_block16(const float *src, float *dst, long e, int n);
void orochi_unblock16(const float *src, float *dst, long e, int n);
/// For every channel c < e and step t < steps, with h the channel's N state values:
///   Δ = softplus(delta[t,c] + delta_bias[c]);  h ← exp(Δ·A[c]) ⊙ h + Δ·x[t,c]·B[t];
///   y[t,c] = (C[t]·h + D[c]·x[t,c]) · SiLU(z[t,c])
/// a_blocked, state_blocked: blocked by 16 (see above); b, c: rows of N, `ldbc` apart. Channels split
/// over the pool's threads when the work pays for it.
void orochi_selective_scan(long steps, long e, int n, const float *x, long ldx, const float *delta, long ldd,
                           const float *delta_bias, const float *a_blocked, const float *b, const float *c, long ldbc,
                           const float *d, const float *z, long ldz, float *state_blocked, float *y, long ldy);

/// One step (one token) of orochi_selective_scan with dt_proj folded in, as one job for the
/// threads: each first computes delta[c] = W_dt[c, :] · dt_low for its channels (W_dt: [E, rank] of
/// `dt_dtype`, dt_low: [rank]; `delta`: [E] scratch), then scans them. x, z, y: [E]; b, c: [N].
void orochi_selective_scan_step(long e, int n, const float *x, int dt_dtype, const void *dt_w, long rank, const float *dt_low,
                                float *delta, const float *delta_bias, const float *a_blocked, const float *b, const float *c,
                                const float *d, const float *z, float *state_blocked, float *y);

/// Decode's in_proj and conv step for one token as one job for the threads: xz[2E] = W_in · h
/// (+ in_bias, which may be NULL); as each thread finishes rows of x_in (rows below E) it computes
/// those channels' u[c] = SiLU(conv_bias[c] + Σ_{j<K−1} w[j,c]·past[j,c] + w[K−1,c]·xz[c]) and
/// moves their conv state on (past[j,c] ← past[j+1,c], past[K−2,c] ← xz[c]). The same arithmetic
/// as orochi_matvec, then orochi_causal_conv over one step and the state update.
/// w_in: [2E, dim] of `dtype`; conv_w: [K, E]; conv_bias: [E] or NULL; past: [K−1, E]; u: [E].
void orochi_mamba_in_conv_step(int dtype, const void *w_in, long e, long dim, const float *in_bias, const float *h, float *xz,
                               int k, const float *conv_w, const float *conv_bias, float *past, float *u);

/// Mamba's causal depthwise conv over time, then SiLU when `silu` is set (the mixer's U):
///   u[t,c] = SiLU(bias[c] + Σ_{j<k} w[j,c] · x[t−(k−1)+j, c])   for t < steps, c < e,
/// where rows before the first come from `past`, the last k−1 inputs (oldest first, rows of e).
/// x: rows `ldx` apart; w: [k, e]; bias: [e] or NULL; u: [steps, e], not aliasing x or past.
/// Rows split over the pool's threads when the work pays for it. `past` is not updated here.
void orochi_causal_conv(long steps, long e, int k, const float *x, long ldx, const float *w, const float *bias,
                        const float *past, int silu, float *u);

// ---- measurements (bandwidth.c) ----
/// Streaming read bandwidth in bytes/s over `bytes` (rounded to 256): the median of `reps` reads on
/// one thread and on the pool's threads, the higher of the two.
double orochi_read_bandwidth(size_t bytes, int reps);
/// `bytes` of memory on 2 MiB pages where Linux offers them (aligned_alloc, rounded up to whole
/// pages, advised MADV_HUGEPAGE), as Orochi holds weights (HugePageRegion); free() it. NULL when
/// the allocation fails. For the measurements, so that they read memory as decode does.
void *orochi_alloc_huge_pages(size_t bytes);

#ifdef __cplusplus
}
#endif
#include "orochi_quant.h"
#endif
