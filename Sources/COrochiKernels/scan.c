// Mamba's selective scan, fast: sixteen channels side by side in one vector (channels are
// independent), the N state values of those channels in N vectors that stay in registers while
// time advances, and every exponential, logarithm and sigmoid computed sixteen at a time.
// SelectiveScan.swift is the same recurrence written as the paper's equations; the tests hold
// this kernel to it.
//
// Layout "blocked by 16": a per-channel [E, N] array (A, the state) is stored as
// [⌈E/16⌉, N, 16]: block b, state s, lane i is channel 16b + i (padding channels are zero).
#include "orochi_kernels.h"
#include "vecmath.h"
#include <math.h>
#include <string.h>

void orochi_block16(const float *src, float *dst, long e, int n) {
    long blocks = (e + 15) / 16;
    memset(dst, 0, (size_t)(blocks * n * 16) * 4);
    for (long c = 0; c < e; c++)
        for (int s = 0; s < n; s++) dst[((c / 16) * n + s) * 16 + c % 16] = src[c * n + s];
}

void orochi_unblock16(const float *src, float *dst, long e, int n) {
    for (long c = 0; c < e; c++)
        for (int s = 0; s < n; s++) dst[c * n + s] = src[((c / 16) * n + s) * 16 + c % 16];
}

typedef struct {
    long steps, e; int n;
    const float *x; long ldx;
    const float *delta; long ldd;
    const float *bias, *a, *b, *c; long ldbc;
    const float *d, *z; long ldz;
    float *state, *y; long ldy;
    // Decode's step with dt_proj folded in (orochi_selective_scan_step): each chunk first computes
    // its channels' delta = W_dt · Δ_low into `delta_out` (which `delta` points to). dt_w NULL otherwise.
    int dt_dtype; const void *dt_w; long rank; const float *dt_low; float *delta_out;
} scan_job;

// Softplus as PyTorch computes it (threshold 20): log(1 + eˣ) = log(w)·u/(w − 1) with u = eˣ,
// w = 1 + u (Goldberg's accurate log1p), or x above 20.
static inline float softplus1(float x) {
    if (x > 20) return x;
    float u = expf(x), w = 1 + u;
    return w == 1 ? u : logf(w) * (u / (w - 1));
}

static void block_portable(const scan_job *j, long blk) {
    int n = j->n;
    const float *ab = j->a + blk * n * 16;
    float *hb = j->state + blk * n * 16;
    for (int i = 0; i < 16; i++) {
        long ch = blk * 16 + i;
        if (ch >= j->e) break;
        for (long t = 0; t < j->steps; t++) {
            float dt = softplus1(j->delta[t * j->ldd + ch] + j->bias[ch]), u = j->x[t * j->ldx + ch];
            const float *bt = j->b + t * j->ldbc, *ct = j->c + t * j->ldbc;
            float acc = 0;
            for (int s = 0; s < n; s++) {
                float h = expf(dt * ab[s * 16 + i]) * hb[s * 16 + i] + dt * u * bt[s];
                hb[s * 16 + i] = h;
                acc += h * ct[s];
            }
            float zz = j->z[t * j->ldz + ch];
            j->y[t * j->ldy + ch] = (acc + j->d[ch] * u) * (zz / (1 + expf(-zz)));
        }
    }
}

#if defined(__x86_64__)
T512 static inline __m512 softplus512(__m512 x) {
    __m512 u = exp512(x), w = _mm512_add_ps(u, _mm512_set1_ps(1.f));
    __m512 r = _mm512_mul_ps(log512(w), _mm512_div_ps(u, _mm512_sub_ps(w, _mm512_set1_ps(1.f))));
    r = _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(w, _mm512_set1_ps(1.f), _CMP_EQ_OQ), u);
    return _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(x, _mm512_set1_ps(20.f), _CMP_GT_OQ), x);
}
T512 static inline __m512 silu512(__m512 x) {
    return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.f), exp512(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}

// One step's inputs for 16 channels (`mk` the lanes that are channels): Δ = softplus(Δ before
// bias + bias) as Δ·log₂e for exp2_scan512, Δ·x, x, and the gate SiLU(z). The tiles compute these
// for all their steps (or blocks) before the recurrence.
T512 static inline void step_inputs512(__mmask16 mk, const float *delta, __m512 bias, const float *x, const float *z,
                                       __m512 *dt2, __m512 *du, __m512 *xv, __m512 *gate) {
    __m512 dt = softplus512(_mm512_add_ps(_mm512_maskz_loadu_ps(mk, delta), bias));
    *xv = _mm512_maskz_loadu_ps(mk, x);
    *du = _mm512_mul_ps(dt, *xv);
    *dt2 = _mm512_mul_ps(dt, _mm512_set1_ps(1.44269504088896341f));
    *gate = silu512(_mm512_maskz_loadu_ps(mk, z));
}

// exp(Δ·A) of the state update, as 2^x with x = (Δ·log₂e)·A: x = k + f with k = round(x) and
// f in [−½, ½] (exact), 2^f by a degree-6 polynomial (relative error < 1e-7, fitted to 2^f on
// [−½, ½] in float32), 2^k by scalef. Ten vector operations against exp512's fifteen: this is
// most of the scan's work, one per state value per step. No clamp is needed: x ≤ 0 here (Δ ≥ 0,
// A < 0), scalef gives 0 far below 2^−126 and +∞ above 2^128, and a NaN stays NaN.
// The polynomial, by Horner's rule, for a vector type's fused multiply-add and broadcast.
#define EXP2_POLY(FMA, SET1, f)                                                                           \
    FMA(FMA(FMA(FMA(FMA(FMA(SET1(1.5345810970757157e-4f), f, SET1(1.3399930903688073e-3f)), f,           \
                        SET1(9.618489071726799e-3f)), f, SET1(5.550328642129898e-2f)), f,                   \
                SET1(2.4022646248340607e-1f)), f, SET1(6.931471824645996e-1f)), f, SET1(1.f))
T512 static inline __m512 exp2_scan512(__m512 x) {
    __m512 k = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_sub_ps(x, k);
    return _mm512_scalef_ps(EXP2_POLY(_mm512_fmadd_ps, _mm512_set1_ps, f), k);
}

// The same 2^x for AVX2, which has no scalef: 2^k put into the exponent bits by integer addition.
// x is clamped at −126 (x ≤ 0 here), so k + 127 stays a valid exponent; what that changes is below
// 2^−126, beside terms of the state's size. The clamp keeps a NaN (max returns its second operand).
// Eleven vector operations against exp256's sixteen and its multiply by log₂e.
T256 static inline __m256 exp2_scan256(__m256 x) {
    x = _mm256_max_ps(_mm256_set1_ps(-126.f), x);
    __m256 k = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 f = _mm256_sub_ps(x, k), p = EXP2_POLY(_mm256_fmadd_ps, _mm256_set1_ps, f);
    return _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), _mm256_slli_epi32(_mm256_cvtps_epi32(k), 23)));
}

// block512_any's state loop has no compile-time count to unroll fully; that is expected.
#pragma clang diagnostic ignored "-Wpass-failed"

// A block's rows of Δ, x, z and y at step t: one cache line each, a row of the layer apart
// (6–12 KiB, across pages), which the hardware prefetchers do not follow, and often last written
// by the other core (the projections split rows between threads). Fetched SCAN_AHEAD steps early,
// the scan's share of a mamba-130m 512-token prefill fell from 18.6 % of the samples to 13.0 %
// (perf), and the instruction after the z load, from 36 % of the kernel's samples to 14 %; 16
// steps ahead did no better.
enum { SCAN_AHEAD = 8 };
static inline void prefetch_step(const scan_job *j, long t, long c0) {
    _mm_prefetch((const char *)(j->delta + t * j->ldd + c0), _MM_HINT_T0);
    _mm_prefetch((const char *)(j->x + t * j->ldx + c0), _MM_HINT_T0);
    _mm_prefetch((const char *)(j->z + t * j->ldz + c0), _MM_HINT_T0);
    _mm_prefetch((const char *)(j->y + t * j->ldy + c0), _MM_HINT_T0);
}

// One block of 16 channels over all steps. With NS (the state size) known at compile time the
// state loop unrolls and the NS state vectors stay in registers across time; A is read from the
// block's [N, 16] rows (L1) each step, as a memory operand of the multiply.
//
// Steps go in tiles of SCAN_TILE: first Δ = softplus(·), Δ·x and the gate SiLU(z) of every step of
// the tile (independent of one another), then the recurrence over the tile's steps. Computed at
// the top of each step instead, softplus's exp, log and division (~100 cycles of latency) sat in
// front of every step's state updates, and one step's work (~300 instructions) fills the
// processor's window, so the steps could not overlap: the kernel waited on latency rather than on
// its arithmetic. In tiles, 512 steps × 1,536 channels took 0.28–0.29 ns per state update on one
// core of an AMD EPYC against 0.35–0.37 (the best of 8 alternating runs each); 4 and 16 steps a
// tile did no better than 8.
enum { SCAN_TILE = 8 };
#define SCAN_BLOCK_512(NAME, NS)                                                                         \
T512 static void NAME(const scan_job *j, long blk) {                                                     \
    const int n = NS > 0 ? NS : j->n;                                                                    \
    long c0 = blk * 16;                                                                                  \
    __mmask16 mk = j->e - c0 >= 16 ? 0xffff : (__mmask16)((1u << (j->e - c0)) - 1);                      \
    const float *ab = j->a + blk * n * 16;                                                               \
    float *hb = j->state + blk * n * 16;                                                                 \
    __m512 h[NS > 0 ? NS : 64];                                                                          \
    _Pragma("clang loop unroll(full)")                                                                   \
    for (int s = 0; s < n; s++) h[s] = _mm512_loadu_ps(hb + s * 16);                                     \
    __m512 bias = _mm512_maskz_loadu_ps(mk, j->bias + c0), dv = _mm512_maskz_loadu_ps(mk, j->d + c0);    \
    __m512 dt2[SCAN_TILE], du[SCAN_TILE], xv[SCAN_TILE], gate[SCAN_TILE];    /* the tile's steps */      \
    for (long t0 = 0; t0 < j->steps; t0 += SCAN_TILE) {                                                  \
        int steps = j->steps - t0 < SCAN_TILE ? (int)(j->steps - t0) : SCAN_TILE;                       \
        for (int i = 0; i < steps; i++) {                                                                \
            long t = t0 + i;                                                                             \
            if (t + SCAN_AHEAD < j->steps) prefetch_step(j, t + SCAN_AHEAD, c0);                        \
            step_inputs512(mk, j->delta + t * j->ldd + c0, bias, j->x + t * j->ldx + c0, j->z + t * j->ldz + c0, \
                           &dt2[i], &du[i], &xv[i], &gate[i]);                                           \
        }                                                                                                \
        for (int i = 0; i < steps; i++) {                                                                \
            long t = t0 + i;                                                                             \
            __m512 acc = _mm512_setzero_ps();                                                            \
            const float *bt = j->b + t * j->ldbc, *ct = j->c + t * j->ldbc;                              \
            _Pragma("clang loop unroll(full)")                                                           \
            for (int s = 0; s < n; s++) {              /* h = exp(ΔA)·h + Δ·x·B,  y = C·h */             \
                __m512 decay = exp2_scan512(_mm512_mul_ps(dt2[i], _mm512_loadu_ps(ab + s * 16)));        \
                h[s] = _mm512_fmadd_ps(decay, h[s], _mm512_mul_ps(du[i], _mm512_set1_ps(bt[s])));        \
                acc = _mm512_fmadd_ps(h[s], _mm512_set1_ps(ct[s]), acc);                                 \
            }                                                                                            \
            _mm512_mask_storeu_ps(j->y + t * j->ldy + c0, mk, _mm512_mul_ps(_mm512_fmadd_ps(dv, xv[i], acc), gate[i])); \
        }                                                                                                \
    }                                                                                                    \
    _Pragma("clang loop unroll(full)")                                                                   \
    for (int s = 0; s < n; s++) _mm512_storeu_ps(hb + s * 16, _mm512_maskz_mov_ps(mk, h[s]));            \
}
SCAN_BLOCK_512(block512_n16, 16)
SCAN_BLOCK_512(block512_any, 0)

// Decode's single step over blocks [first, end): with no time loop to overlap, blocks take the
// place of the tile's steps: softplus, Δ·x and the gate of SCAN_TILE blocks first, then their state
// updates (the state read from and written back to memory: it is one step).
#define SCAN_STEP_512(NAME, NS)                                                                          \
T512 static void NAME(const scan_job *j, long first, long end) {                                         \
    const int n = NS > 0 ? NS : j->n;                                                                    \
    __m512 dt2[SCAN_TILE], du[SCAN_TILE], xv[SCAN_TILE], gate[SCAN_TILE];   /* the tile's blocks */      \
    __mmask16 mk[SCAN_TILE];                                                                             \
    for (long b0 = first; b0 < end; b0 += SCAN_TILE) {                                                   \
        int blocks = end - b0 < SCAN_TILE ? (int)(end - b0) : SCAN_TILE;                                 \
        for (int i = 0; i < blocks; i++) {                                                               \
            long c0 = (b0 + i) * 16;                                                                     \
            mk[i] = j->e - c0 >= 16 ? 0xffff : (__mmask16)((1u << (j->e - c0)) - 1);                     \
            step_inputs512(mk[i], j->delta + c0, _mm512_maskz_loadu_ps(mk[i], j->bias + c0), j->x + c0, j->z + c0, \
                           &dt2[i], &du[i], &xv[i], &gate[i]);                                           \
        }                                                                                                \
        for (int i = 0; i < blocks; i++) {                                                               \
            long c0 = (b0 + i) * 16;                                                                     \
            const float *ab = j->a + (b0 + i) * n * 16;                                                  \
            float *hb = j->state + (b0 + i) * n * 16;                                                    \
            __m512 acc = _mm512_setzero_ps();                                                            \
            _Pragma("clang loop unroll(full)")                                                           \
            for (int s = 0; s < n; s++) {              /* h = exp(ΔA)·h + Δ·x·B,  y = C·h */             \
                __m512 decay = exp2_scan512(_mm512_mul_ps(dt2[i], _mm512_loadu_ps(ab + s * 16)));        \
                __m512 h = _mm512_fmadd_ps(decay, _mm512_loadu_ps(hb + s * 16), _mm512_mul_ps(du[i], _mm512_set1_ps(j->b[s]))); \
                _mm512_storeu_ps(hb + s * 16, _mm512_maskz_mov_ps(mk[i], h));                            \
                acc = _mm512_fmadd_ps(h, _mm512_set1_ps(j->c[s]), acc);                                  \
            }                                                                                            \
            __m512 dv = _mm512_maskz_loadu_ps(mk[i], j->d + c0);                                         \
            _mm512_mask_storeu_ps(j->y + c0, mk[i], _mm512_mul_ps(_mm512_fmadd_ps(dv, xv[i], acc), gate[i])); \
        }                                                                                                \
    }                                                                                                    \
}
SCAN_STEP_512(step512_n16, 16)
SCAN_STEP_512(step512_any, 0)

// AVX2: a block of 16 channels as two halves of 8 lanes, one after the other. The N state vectors
// of a half no longer fit in the 16 registers with the step's temporaries; they live in L1.
T256 static inline __m256 softplus256(__m256 x) {
    __m256 one = _mm256_set1_ps(1.f), u = exp256(x), w = _mm256_add_ps(u, one);
    __m256 r = _mm256_mul_ps(log256(w), _mm256_div_ps(u, _mm256_sub_ps(w, one)));
    r = _mm256_blendv_ps(r, u, _mm256_cmp_ps(w, one, _CMP_EQ_OQ));
    return _mm256_blendv_ps(r, x, _mm256_cmp_ps(x, _mm256_set1_ps(20.f), _CMP_GT_OQ));
}
T256 static inline __m256 silu256(__m256 x) {
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.f), exp256(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

// step_inputs512 for 8 channels.
T256 static inline void step_inputs256(__m256i mk, const float *delta, __m256 bias, const float *x, const float *z,
                                       __m256 *dt2, __m256 *du, __m256 *xv, __m256 *gate) {
    __m256 dt = softplus256(_mm256_add_ps(_mm256_maskload_ps(delta, mk), bias));
    *xv = _mm256_maskload_ps(x, mk);
    *du = _mm256_mul_ps(dt, *xv);
    *dt2 = _mm256_mul_ps(dt, _mm256_set1_ps(1.44269504088896341f));
    *gate = silu256(_mm256_maskload_ps(z, mk));
}

// In tiles of SCAN_TILE steps, as the AVX-512 kernel (softplus, Δ·x and the gate first).
T256 static void block256(const scan_job *j, long blk) {
    const int n = j->n;
    __m256 dt2[SCAN_TILE], du[SCAN_TILE], xv[SCAN_TILE], gate[SCAN_TILE];      // the tile's steps
    for (int half = 0; half < 2; half++) {
        long c0 = blk * 16 + half * 8;
        if (c0 >= j->e) break;
        long valid = j->e - c0 < 8 ? j->e - c0 : 8;
        __m256i mk = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)valid), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        const float *ab = j->a + blk * n * 16 + half * 8;
        float *hb = j->state + blk * n * 16 + half * 8;
        __m256 h[64];
        for (int s = 0; s < n; s++) h[s] = _mm256_loadu_ps(hb + s * 16);
        __m256 bias = _mm256_maskload_ps(j->bias + c0, mk), dv = _mm256_maskload_ps(j->d + c0, mk);
        for (long t0 = 0; t0 < j->steps; t0 += SCAN_TILE) {
            int steps = j->steps - t0 < SCAN_TILE ? (int)(j->steps - t0) : SCAN_TILE;
            for (int i = 0; i < steps; i++) {
                long t = t0 + i;
                if (t + SCAN_AHEAD < j->steps) prefetch_step(j, t + SCAN_AHEAD, c0);
                step_inputs256(mk, j->delta + t * j->ldd + c0, bias, j->x + t * j->ldx + c0, j->z + t * j->ldz + c0,
                               &dt2[i], &du[i], &xv[i], &gate[i]);
            }
            for (int i = 0; i < steps; i++) {
                long t = t0 + i;
                __m256 acc = _mm256_setzero_ps();
                const float *bt = j->b + t * j->ldbc, *ct = j->c + t * j->ldbc;
                for (int s = 0; s < n; s++) {          /* h = exp(ΔA)·h + Δ·x·B,  y = C·h */
                    h[s] = _mm256_fmadd_ps(exp2_scan256(_mm256_mul_ps(dt2[i], _mm256_loadu_ps(ab + s * 16))), h[s],
                                           _mm256_mul_ps(du[i], _mm256_set1_ps(bt[s])));
                    acc = _mm256_fmadd_ps(h[s], _mm256_set1_ps(ct[s]), acc);
                }
                _mm256_maskstore_ps(j->y + t * j->ldy + c0, mk, _mm256_mul_ps(_mm256_fmadd_ps(dv, xv[i], acc), gate[i]));
            }
        }
        for (int s = 0; s < n; s++) _mm256_storeu_ps(hb + s * 16, _mm256_and_ps(h[s], _mm256_castsi256_ps(mk)));   // padding stays 0
    }
}

// Decode's single step over blocks [first, end), as step512: SCAN_TILE half-blocks of 8 channels
// at a time, their softplus, Δ·x and gates first, then their state updates.
T256 static void step256(const scan_job *j, long first, long end) {
    const int n = j->n;
    __m256 dt2[SCAN_TILE], du[SCAN_TILE], xv[SCAN_TILE], gate[SCAN_TILE];
    __m256i mk[SCAN_TILE];
    long h0 = first * 2, h1 = end * 2 < (j->e + 7) / 8 ? end * 2 : (j->e + 7) / 8;   // halves with channels
    for (long u0 = h0; u0 < h1; u0 += SCAN_TILE) {
        int units = h1 - u0 < SCAN_TILE ? (int)(h1 - u0) : SCAN_TILE;
        for (int i = 0; i < units; i++) {
            long c0 = (u0 + i) * 8, valid = j->e - c0 < 8 ? j->e - c0 : 8;
            mk[i] = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)valid), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
            step_inputs256(mk[i], j->delta + c0, _mm256_maskload_ps(j->bias + c0, mk[i]), j->x + c0, j->z + c0,
                           &dt2[i], &du[i], &xv[i], &gate[i]);
        }
        for (int i = 0; i < units; i++) {
            long c0 = (u0 + i) * 8, blk = c0 / 16, half = (c0 % 16) / 8;
            const float *ab = j->a + blk * n * 16 + half * 8;
            float *hb = j->state + blk * n * 16 + half * 8;
            __m256 acc = _mm256_setzero_ps();
            for (int s = 0; s < n; s++) {              /* h = exp(ΔA)·h + Δ·x·B,  y = C·h */
                __m256 h = _mm256_fmadd_ps(exp2_scan256(_mm256_mul_ps(dt2[i], _mm256_loadu_ps(ab + s * 16))), _mm256_loadu_ps(hb + s * 16),
                                           _mm256_mul_ps(du[i], _mm256_set1_ps(j->b[s])));
                _mm256_storeu_ps(hb + s * 16, _mm256_and_ps(h, _mm256_castsi256_ps(mk[i])));   // padding stays 0
                acc = _mm256_fmadd_ps(h, _mm256_set1_ps(j->c[s]), acc);
            }
            _mm256_maskstore_ps(j->y + c0, mk[i], _mm256_mul_ps(_mm256_fmadd_ps(_mm256_maskload_ps(j->d + c0, mk[i]), xv[i], acc), gate[i]));
        }
    }
}
#endif

static void scan_part(void *ctx, int index, int count) {
    const scan_job *j = ctx;
    long blocks = (j->e + 15) / 16;
    long first = orochi_pool_guided_start(blocks, index, count), end = orochi_pool_guided_start(blocks, index + 1, count);
    if (j->dt_w && first < end) {
        long c1 = end * 16 < j->e ? end * 16 : j->e;
        orochi_matvec_rows(j->dt_dtype, j->dt_w, first * 16, c1, j->rank, j->rank, j->dt_low, j->delta_out, 0);
    }
#if defined(__x86_64__)
    if (j->steps == 1 && orochi_isa() == OROCHI_ISA_AVX512 && j->n <= 64) {
        if (j->n == 16) step512_n16(j, first, end); else step512_any(j, first, end);
        return;
    }
    if (j->steps == 1 && orochi_isa() == OROCHI_ISA_AVX2 && j->n <= 64) { step256(j, first, end); return; }
#endif
    for (long blk = first; blk < end; blk++) {
#if defined(__x86_64__)
        if (orochi_isa() == OROCHI_ISA_AVX512 && j->n <= 64) {
            if (j->n == 16) block512_n16(j, blk); else block512_any(j, blk);
            continue;
        }
        if (orochi_isa() == OROCHI_ISA_AVX2 && j->n <= 64) { block256(j, blk); continue; }
#endif
        block_portable(j, blk);
    }
}

static void run_scan(scan_job *job) {
    long blocks = (job->e + 15) / 16;
    // One token of a small model is a few microseconds of work: threads would cost more than they save.
    if (blocks < 2 || job->steps * job->e * job->n < (1 << 12) || orochi_pool_threads() == 1) { scan_part(job, 0, 1); return; }
    int chunks = OROCHI_POOL_HOME_CHUNKS * orochi_pool_threads();   // a home per thread, as orochi_matvec
    orochi_pool_run_chunks(scan_part, job, blocks < chunks ? (int)blocks : chunks);
}

void orochi_selective_scan(long steps, long e, int n, const float *x, long ldx, const float *delta, long ldd,
                           const float *delta_bias, const float *a_blocked, const float *b, const float *c, long ldbc,
                           const float *d, const float *z, long ldz, float *state_blocked, float *y, long ldy) {
    scan_job job = {steps, e, n, x, ldx, delta, ldd, delta_bias, a_blocked, b, c, ldbc, d, z, ldz, state_blocked, y, ldy,
                    0, NULL, 0, NULL, NULL};
    run_scan(&job);
}

void orochi_selective_scan_step(long e, int n, const float *x, int dt_dtype, const void *dt_w, long rank, const float *dt_low,
                                float *delta, const float *delta_bias, const float *a_blocked, const float *b, const float *c,
                                const float *d, const float *z, float *state_blocked, float *y) {
    scan_job job = {1, e, n, x, e, delta, e, delta_bias, a_blocked, b, c, n, d, z, e, state_blocked, y, e,
                    dt_dtype, dt_w, rank, dt_low, delta};
    run_scan(&job);
}

// ---------- the mixer's causal conv (and SiLU) ----------
typedef struct {
    long steps, e; int k;
    const float *x; long ldx;
    const float *w, *bias, *past; int silu;
    float *u;
    long c_begin, c_end;         // the channels computed (all: 0, e); e is the rows' stride
} conv_job;

/// Input row `src` (negative: from the history, −1 the newest).
static inline const float *conv_row(const conv_job *j, long src) {
    return src < 0 ? j->past + (j->k - 1 + src) * j->e : j->x + src * j->ldx;
}

/// Rows t0..<t1, channels c0..<c_end, one at a time.
static void conv_channels_portable(const conv_job *j, long t0, long t1, long c0) {
    for (long t = t0; t < t1; t++) {
        float *out = j->u + t * j->e;
        for (long c = c0; c < j->c_end; c++) {
            float acc = j->bias ? j->bias[c] : 0;
            for (int tap = 0; tap < j->k; tap++) acc += j->w[tap * j->e + c] * conv_row(j, t - (j->k - 1) + tap)[c];
            out[c] = j->silu ? acc / (1 + expf(-acc)) : acc;
        }
    }
}

#if defined(__x86_64__)
T512 static void conv_rows_512(const conv_job *j, long t0, long t1) {
    for (long t = t0; t < t1; t++) {
        float *out = j->u + t * j->e;
        for (long c = j->c_begin; c < j->c_end; c += 16) {
            __mmask16 m = j->c_end - c >= 16 ? 0xffff : (__mmask16)((1u << (j->c_end - c)) - 1);
            __m512 acc = j->bias ? _mm512_maskz_loadu_ps(m, j->bias + c) : _mm512_setzero_ps();
            for (int tap = 0; tap < j->k; tap++)
                acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, j->w + tap * j->e + c),
                                      _mm512_maskz_loadu_ps(m, conv_row(j, t - (j->k - 1) + tap) + c), acc);
            if (j->silu) acc = silu512(acc);
            _mm512_mask_storeu_ps(out + c, m, acc);
        }
    }
}

T256 static void conv_rows_256(const conv_job *j, long t0, long t1) {
    long whole = j->c_begin + (j->c_end - j->c_begin) / 8 * 8;
    for (long t = t0; t < t1; t++) {
        float *out = j->u + t * j->e;
        for (long c = j->c_begin; c < whole; c += 8) {
            __m256 acc = j->bias ? _mm256_loadu_ps(j->bias + c) : _mm256_setzero_ps();
            for (int tap = 0; tap < j->k; tap++)
                acc = _mm256_fmadd_ps(_mm256_loadu_ps(j->w + tap * j->e + c), _mm256_loadu_ps(conv_row(j, t - (j->k - 1) + tap) + c), acc);
            if (j->silu) acc = silu256(acc);
            _mm256_storeu_ps(out + c, acc);
        }
    }
    if (whole < j->c_end) conv_channels_portable(j, t0, t1, whole);   // the last few channels
}
#endif

static void conv_part(void *ctx, int index, int count) {
    const conv_job *j = ctx;
    long t0 = j->steps * index / count, t1 = j->steps * (index + 1) / count;
#if defined(__x86_64__)
    switch (orochi_isa()) {
    case OROCHI_ISA_AVX512: conv_rows_512(j, t0, t1); return;
    case OROCHI_ISA_AVX2: conv_rows_256(j, t0, t1); return;
    }
#endif
    conv_channels_portable(j, t0, t1, j->c_begin);
}

void orochi_causal_conv(long steps, long e, int k, const float *x, long ldx, const float *w, const float *bias,
                        const float *past, int silu, float *u) {
    conv_job job = {steps, e, k, x, ldx, w, bias, past, silu, u, 0, e};
    // Decode's one row is a few hundred nanoseconds: threads would cost more than they save.
    if (steps < 2 || steps * e * k < (1 << 16) || orochi_pool_threads() == 1) { conv_part(&job, 0, 1); return; }
    int chunks = 2 * orochi_pool_threads();
    orochi_pool_run_chunks(conv_part, &job, steps < chunks ? (int)steps : chunks);
}

// ---------- decode's in_proj and conv step as one job ----------
typedef struct { long e; const float *in_bias; float *xz; conv_job conv; float *past; } in_conv_job;

/// Rows [r0, r1) of in_proj are done: their bias, then the conv step of the channels among them
/// (rows below E are x_in) and those channels' conv state moved on by one input.
static void in_conv_rows(void *ctx, long r0, long r1) {
    const in_conv_job *j = ctx;
    if (j->in_bias) for (long r = r0; r < r1; r++) j->xz[r] += j->in_bias[r];
    long c1 = r1 < j->e ? r1 : j->e;
    if (r0 >= c1) return;
    conv_job conv = j->conv;
    conv.c_begin = r0; conv.c_end = c1;
    conv_part(&conv, 0, 1);
    int kept = conv.k - 1;
    for (int row = 0; row + 1 < kept; row++) memcpy(j->past + row * j->e + r0, j->past + (row + 1) * j->e + r0, 4 * (size_t)(c1 - r0));
    if (kept > 0) memcpy(j->past + (kept - 1) * j->e + r0, j->xz + r0, 4 * (size_t)(c1 - r0));
}

void orochi_mamba_in_conv_step(int dtype, const void *w_in, long e, long dim, const float *in_bias, const float *h, float *xz,
                               int k, const float *conv_w, const float *conv_bias, float *past, float *u) {
    in_conv_job job = {e, in_bias, xz, {1, e, k, xz, 2 * e, conv_w, conv_bias, past, 1, u, 0, e}, past};
    orochi_matvec_then(dtype, w_in, 2 * e, dim, dim, h, xz, 0, in_conv_rows, &job);
}
