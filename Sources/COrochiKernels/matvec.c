// Matrix-vector products for one token, with weights in their stored type (f32, f16 or bf16;
// GGUF's quantized formats are handed to quant.c's kernels at each entry point):
// half-precision rows are widened in registers, so decode reads 2 bytes per weight, not 4.
// Three builds of each kernel — AVX-512, AVX2 + FMA + F16C, portable C — chosen at run time.
#include "orochi_kernels.h"
#include "vecmath.h"
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

// ---------- portable ----------
static inline float bf16_to_float(uint16_t h) { uint32_t bits = (uint32_t)h << 16; float f; memcpy(&f, &bits, 4); return f; }
static inline float load_any(int dtype, const void *w, long i) {
    switch (dtype) {
    case OROCHI_F16: return half_to_float(((const uint16_t *)w)[i]);
    case OROCHI_BF16: return bf16_to_float(((const uint16_t *)w)[i]);
    default: return ((const float *)w)[i];
    }
}

static void rows_portable(int dtype, const void *w, long r0, long r1, long k, long ldw, const float *x, float *y, int acc) {
    for (long r = r0; r < r1; r++) {
        float s = 0;
        if (dtype == OROCHI_F32) {
            const float *row = (const float *)w + r * ldw;
            for (long j = 0; j < k; j++) s += row[j] * x[j];
        } else {
            for (long j = 0; j < k; j++) s += load_any(dtype, w, r * ldw + j) * x[j];
        }
        y[r] = acc ? y[r] + s : s;
    }
}

#if defined(__x86_64__)
// ---------- AVX-512 ----------
T512 static inline __m512 ld512_f32(const void *p, long j) { return _mm512_loadu_ps((const float *)p + j); }
T512 static inline __m512 ld512_f16(const void *p, long j) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)p + j))); }
T512 static inline __m512 ld512_bf16(const void *p, long j) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)((const uint16_t *)p + j))), 16));
}
T512 static inline __m512 ldm512_f32(const void *p, long j, __mmask16 m) { return _mm512_maskz_loadu_ps(m, (const float *)p + j); }
T512 static inline __m512 ldm512_f16(const void *p, long j, __mmask16 m) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)p + j)); }
T512 static inline __m512 ldm512_bf16(const void *p, long j, __mmask16 m) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, (const uint16_t *)p + j)), 16));
}

// One row at a time, front to back: the matrix is read as one sequential stream, which the
// hardware prefetchers follow best. Four rows interleaved (with software prefetch of the next four)
// read a 49 MB f16 matrix at 11.9 GB/s on one core of an AMD EPYC whose memory was shared with other
// work; this order at 25.7 GB/s (llama.cpp's order too). Four 16-lane sums per row, a masked tail.
// f32 rows; half-precision rows below (ROWS512_HALF), in the same order. The f32 rows also fetch
// the lines 8 KiB ahead of the ones they read (PREFETCH_AHEAD): with that and the loops' own
// indices, the one-token products of llama-130m and mamba-130m, f32, from DRAM, took 5–8 % less
// time (paired medians of 61 interleaved passes, AMD EPYC, 2 threads; 1–4 KiB gained less), and a
// 6.4M model's, from the L3, 2 % less (4 KiB was 8 % slower there). f16 rows read 20 % slower
// with the same prefetches, so they have none.
enum { PREFETCH_AHEAD = 8192 };
#define ROWS512(NAME, LD, LDM, ESZ)                                                                        \
T512 static void NAME(const void *w, long r0, long r1, long k, long ldw, const float *x, float *y, int acc) { \
    const char *base = (const char *)w;                                                                    \
    long k64 = k & ~63L, k16 = k & ~15L;                                                                   \
    __mmask16 tail = (__mmask16)((1u << (k - k16)) - 1);                                                   \
    for (long r = r0; r < r1; r++) {                                                                       \
        const void *w0 = base + (r * ldw) * ESZ;                                                           \
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                                        \
        /* Each loop its own index: sharing one, the compiler kept a second pointer for the */           \
        /* 16-wide loop up to date in this one, and the two extra operations cost 6–9 %.    */           \
        for (long j = 0; j < k64; j += 64) {                                                               \
            const char *ahead = (const char *)w0 + j * ESZ + PREFETCH_AHEAD;   /* a hint: never faults */   \
            for (int line = 0; line < 64 * ESZ; line += 64) _mm_prefetch(ahead + line, _MM_HINT_T0);       \
            a0 = _mm512_fmadd_ps(LD(w0, j), _mm512_loadu_ps(x + j), a0);                                   \
            a1 = _mm512_fmadd_ps(LD(w0, j + 16), _mm512_loadu_ps(x + j + 16), a1);                         \
            a2 = _mm512_fmadd_ps(LD(w0, j + 32), _mm512_loadu_ps(x + j + 32), a2);                         \
            a3 = _mm512_fmadd_ps(LD(w0, j + 48), _mm512_loadu_ps(x + j + 48), a3);                         \
        }                                                                                                  \
        for (long j = k64; j < k16; j += 16) a0 = _mm512_fmadd_ps(LD(w0, j), _mm512_loadu_ps(x + j), a0);  \
        if (tail) a1 = _mm512_fmadd_ps(LDM(w0, k16, tail), _mm512_maskz_loadu_ps(tail, x + k16), a1);      \
        float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));      \
        y[r] = acc ? y[r] + s : s;                                                                         \
    }                                                                                                      \
}
ROWS512(rows512_f32, ld512_f32, ldm512_f32, 4)

// Half-precision rows, each cache line one 512-bit load widened in two halves: against ROWS512's
// one 256-bit load per 16 weights, this read a 230 MB f16 working set at 27.6–29.7 GB/s instead of
// 25.4–27.6 (interleaved, AMD EPYC, 2 threads), within 2–5 % of the f32 kernel on the same bytes.
// Four rows at a time, each read front to back in turn (still one sequential stream), their four
// sums reduced together. From the caches (a small model's weights) widening, not bytes, is the
// limit, and a row of 256 weights is only 16 widenings with their multiply-adds: reducing each
// row on its own took a fifth of the time. Rows of 256 f16 weights cycling over 12.6 MB (from the
// L3), AMD EPYC: one core 19.6–20.2 Gweights/s row by row, 22.3–24.6 four at a time; 2 threads
// 38.2–39.6 and 44.3–46.4 (bf16 39.0–39.4 and 43.2–46.4; widening with multiply-add alone peaks
// at 29–30 per core). From DRAM (230 MB) the two read alike. The AVX2 kernel gained nothing so.
T512 static inline __m512 widen_lo_f16(__m512i h) { return _mm512_cvtph_ps(_mm512_castsi512_si256(h)); }
T512 static inline __m512 widen_hi_f16(__m512i h) { return _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1)); }
T512 static inline __m512 widen_lo_bf16(__m512i h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(h)), 16));
}
T512 static inline __m512 widen_hi_bf16(__m512i h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(h, 1)), 16));
}
/// [Σ s0, Σ s1, Σ s2, Σ s3]: the 256-bit halves added, then the 128-bit quarters, pairing rows as
/// they halve, then within each row's four lanes.
T512 static inline __m128 sum4_512(__m512 s0, __m512 s1, __m512 s2, __m512 s3) {
    __m512 t01 = _mm512_add_ps(_mm512_shuffle_f32x4(s0, s1, 0x44), _mm512_shuffle_f32x4(s0, s1, 0xee));
    __m512 t23 = _mm512_add_ps(_mm512_shuffle_f32x4(s2, s3, 0x44), _mm512_shuffle_f32x4(s2, s3, 0xee));
    __m512 u = _mm512_add_ps(_mm512_shuffle_f32x4(t01, t23, 0x88), _mm512_shuffle_f32x4(t01, t23, 0xdd));
    u = _mm512_add_ps(u, _mm512_permute_ps(u, 0x4e));
    u = _mm512_add_ps(u, _mm512_permute_ps(u, 0xb1));
    return _mm512_castps512_ps128(_mm512_permutexvar_ps(_mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 8, 4, 0), u));
}
#define ROWS512_HALF(NAME, LD, LDM, LO, HI)                                                                \
T512 static inline __m512 NAME##_row(const uint16_t *w0, long k64, long k16, __mmask16 tail, const float *x) { \
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                                            \
    for (long j = 0; j < k64; j += 64) {                /* each loop its own index, as in ROWS512 */      \
        __m512i h = _mm512_loadu_si512(w0 + j), g = _mm512_loadu_si512(w0 + j + 32);                        \
        a0 = _mm512_fmadd_ps(LO(h), _mm512_loadu_ps(x + j), a0);                                           \
        a1 = _mm512_fmadd_ps(HI(h), _mm512_loadu_ps(x + j + 16), a1);                                      \
        a2 = _mm512_fmadd_ps(LO(g), _mm512_loadu_ps(x + j + 32), a2);                                      \
        a3 = _mm512_fmadd_ps(HI(g), _mm512_loadu_ps(x + j + 48), a3);                                      \
    }                                                                                                      \
    for (long j = k64; j < k16; j += 16) a0 = _mm512_fmadd_ps(LD(w0, j), _mm512_loadu_ps(x + j), a0);      \
    if (tail) a1 = _mm512_fmadd_ps(LDM(w0, k16, tail), _mm512_maskz_loadu_ps(tail, x + k16), a1);          \
    return _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));                                    \
}                                                                                                          \
T512 static void NAME(const void *w, long r0, long r1, long k, long ldw, const float *x, float *y, int acc) { \
    long k64 = k & ~63L, k16 = k & ~15L;                                                                   \
    __mmask16 tail = (__mmask16)((1u << (k - k16)) - 1);                                                   \
    const uint16_t *base = (const uint16_t *)w;                                                            \
    long r = r0;                                                                                           \
    for (; r + 4 <= r1; r += 4) {                                                                          \
        __m512 s0 = NAME##_row(base + r * ldw, k64, k16, tail, x);                                         \
        __m512 s1 = NAME##_row(base + (r + 1) * ldw, k64, k16, tail, x);                                   \
        __m512 s2 = NAME##_row(base + (r + 2) * ldw, k64, k16, tail, x);                                   \
        __m512 s3 = NAME##_row(base + (r + 3) * ldw, k64, k16, tail, x);                                   \
        __m128 s = sum4_512(s0, s1, s2, s3);                                                               \
        _mm_storeu_ps(y + r, acc ? _mm_add_ps(_mm_loadu_ps(y + r), s) : s);                                \
    }                                                                                                      \
    for (; r < r1; r++) {                                                                                  \
        float s = _mm512_reduce_add_ps(NAME##_row(base + r * ldw, k64, k16, tail, x));                     \
        y[r] = acc ? y[r] + s : s;                                                                         \
    }                                                                                                      \
}
ROWS512_HALF(rows512_f16, ld512_f16, ldm512_f16, widen_lo_f16, widen_hi_f16)
ROWS512_HALF(rows512_bf16, ld512_bf16, ldm512_bf16, widen_lo_bf16, widen_hi_bf16)

// ---------- AVX2 + FMA + F16C ----------
T256 static inline __m256 ld256_f32(const void *p, long j) { return _mm256_loadu_ps((const float *)p + j); }
T256 static inline __m256 ld256_f16(const void *p, long j) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + j))); }
T256 static inline __m256 ld256_bf16(const void *p, long j) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + j))), 16));
}
T256 static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// One row at a time, front to back, as ROWS512 (a sequential stream for the hardware prefetchers).
#define ROWS256(NAME, LD, DT)                                                                              \
T256 static void NAME(const void *w, long r0, long r1, long k, long ldw, const float *x, float *y, int acc) { \
    const char *base = (const char *)w;                                                                    \
    const long esz = DT == OROCHI_F32 ? 4 : 2;                                                             \
    long k32 = k & ~31L, k8 = k & ~7L;                                                                     \
    for (long r = r0; r < r1; r++) {                                                                       \
        const void *w0 = base + (r * ldw) * esz;                                                           \
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                                        \
        long j = 0;                                                                                        \
        for (; j < k32; j += 32) {                                                                         \
            a0 = _mm256_fmadd_ps(LD(w0, j), _mm256_loadu_ps(x + j), a0);                                   \
            a1 = _mm256_fmadd_ps(LD(w0, j + 8), _mm256_loadu_ps(x + j + 8), a1);                           \
            a2 = _mm256_fmadd_ps(LD(w0, j + 16), _mm256_loadu_ps(x + j + 16), a2);                         \
            a3 = _mm256_fmadd_ps(LD(w0, j + 24), _mm256_loadu_ps(x + j + 24), a3);                         \
        }                                                                                                  \
        for (; j < k8; j += 8) a0 = _mm256_fmadd_ps(LD(w0, j), _mm256_loadu_ps(x + j), a0);                \
        float s = hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));                    \
        for (; j < k; j++) s += load_any(DT, w0, j) * x[j];                                                \
        y[r] = acc ? y[r] + s : s;                                                                         \
    }                                                                                                      \
}
ROWS256(rows256_f32, ld256_f32, OROCHI_F32)
ROWS256(rows256_f16, ld256_f16, OROCHI_F16)
ROWS256(rows256_bf16, ld256_bf16, OROCHI_BF16)
#endif

/// A quantized format's rows on the calling thread: x quantized into this thread's buffer first.
static void quant_rows(int dtype, const void *w, long r0, long r1, long k, const float *x, float *y, int acc) {
    void *xq = orochi_quant_input(0, orochi_quant_activation_bytes(dtype, k));
    orochi_quantize_activation(dtype, x, xq, k);
    orochi_qmatvec_rows(dtype, w, r0, r1, k, xq, y, acc);
}

void orochi_matvec_rows(int dtype, const void *w, long r0, long r1, long k, long ldw, const float *x, float *y, int acc) {
    if (orochi_quant_is_quantized(dtype)) { quant_rows(dtype, w, r0, r1, k, x, y, acc); return; }
#if defined(__x86_64__)
    switch (orochi_isa()) {
    case OROCHI_ISA_AVX512:
        if (dtype == OROCHI_F16) rows512_f16(w, r0, r1, k, ldw, x, y, acc);
        else if (dtype == OROCHI_BF16) rows512_bf16(w, r0, r1, k, ldw, x, y, acc);
        else rows512_f32(w, r0, r1, k, ldw, x, y, acc);
        return;
    case OROCHI_ISA_AVX2:
        if (dtype == OROCHI_F16) rows256_f16(w, r0, r1, k, ldw, x, y, acc);
        else if (dtype == OROCHI_BF16) rows256_bf16(w, r0, r1, k, ldw, x, y, acc);
        else rows256_f32(w, r0, r1, k, ldw, x, y, acc);
        return;
    }
#endif
    rows_portable(dtype, w, r0, r1, k, ldw, x, y, acc);
}

typedef struct {
    int dtype; const void *w; long n, k, ldw; const float *x; float *y; int acc;
    void (*then)(void *, long, long); void *then_ctx;
} matvec_job;

static void matvec_part(void *ctx, int index, int count) {
    const matvec_job *j = ctx;
    // Row ranges in multiples of 16, so that each thread streams whole cache lines of its rows.
    long blocks = (j->n + 15) / 16;
    long r0 = orochi_pool_guided_start(blocks, index, count) * 16, r1 = orochi_pool_guided_start(blocks, index + 1, count) * 16;
    if (r1 > j->n) r1 = j->n;
    if (r0 >= r1) return;
    orochi_matvec_rows(j->dtype, j->w, r0, r1, j->k, j->ldw, j->x, j->y, j->acc);
    if (j->then) j->then(j->then_ctx, r0, r1);
}

/// Below this many weights a product runs on the calling thread: handing it to the pool
/// costs about as much as it saves. At 2^15, a 6.4M Mamba's x_proj (48 × 512) and dt_proj
/// (512 × 16) ran on the caller while the other thread waited: at 2^13 its decode ran 3 % (f32)
/// to 11 % (f16) faster (paired runs, AMD EPYC, 2 threads).
enum { PARALLEL_MIN_WEIGHTS = 1 << 13 };

void orochi_matvec(int dtype, const void *w, long n, long k, long ldw, const float *x, float *y, int acc) {
    orochi_matvec_then(dtype, w, n, k, ldw, x, y, acc, NULL, NULL);
}

void orochi_matvec_then(int dtype, const void *w, long n, long k, long ldw, const float *x, float *y, int acc,
                        void (*then)(void *ctx, long r0, long r1), void *ctx) {
    if (orochi_quant_is_quantized(dtype)) {        // rows are whole blocks, k the row's weights (ldw = k)
        orochi_qmatvec(dtype, w, n, k, x, y, acc);
        if (then) then(ctx, 0, n);
        return;
    }
    if (n * k < PARALLEL_MIN_WEIGHTS || n < 32 || orochi_pool_threads() == 1) {
        orochi_matvec_rows(dtype, w, 0, n, k, ldw, x, y, acc);
        if (then) then(ctx, 0, n);
        return;
    }
    matvec_job job = {dtype, w, n, k, ldw, x, y, acc, then, ctx};
    long blocks = (n + 15) / 16;
    int chunks = OROCHI_POOL_HOME_CHUNKS * orochi_pool_threads();   // a home of shrinking chunks per thread (pool.c)
    orochi_pool_run_chunks(matvec_part, &job, blocks < chunks ? (int)blocks : chunks);
}

// ---------- a few tokens at once (a batch of sequences decoding together) ----------
// Y[i, r] = Σ_j W[r, j] · X[i, j] for up to 8 rows of X: each weight is loaded (and widened) once
// for four rows of X, so B sequences decoding together read the weights ⌈B/4⌉ times, not B times.
// AVX-512: four weight rows × NB inputs of sums in registers (16 + 4 + 1 of the 32 zmm at NB = 4).
#if defined(__x86_64__)
#define MULTI512(NAME, LD, LDM, ESZ, NB)                                                                   \
T512 static void NAME(const void *w, long r0, long r1, long k, long ldw, const float *x, long ldx,       \
                      float *y, long ldy, int acc) {                                                       \
    const char *base = (const char *)w;                                                                    \
    long k16 = k & ~15L;                                                                                   \
    __mmask16 tail = (__mmask16)((1u << (k - k16)) - 1);                                                   \
    long r = r0;                                                                                           \
    for (; r < r1; r += 4) {                                                                               \
        int nr = r1 - r < 4 ? (int)(r1 - r) : 4;                                                           \
        const void *wr[4];                                                                                 \
        for (int q = 0; q < 4; q++) wr[q] = base + ((r + (q < nr ? q : 0)) * ldw) * ESZ;                   \
        __m512 s[4][NB];                                                                                   \
        for (int q = 0; q < 4; q++) for (int i = 0; i < NB; i++) s[q][i] = _mm512_setzero_ps();            \
        long j = 0;                                                                                        \
        for (; j < k16; j += 16) {                                                                         \
            __m512 w0 = LD(wr[0], j), w1 = LD(wr[1], j), w2 = LD(wr[2], j), w3 = LD(wr[3], j);             \
            for (int i = 0; i < NB; i++) {                                                                 \
                __m512 xi = _mm512_loadu_ps(x + i * ldx + j);                                              \
                s[0][i] = _mm512_fmadd_ps(w0, xi, s[0][i]); s[1][i] = _mm512_fmadd_ps(w1, xi, s[1][i]);    \
                s[2][i] = _mm512_fmadd_ps(w2, xi, s[2][i]); s[3][i] = _mm512_fmadd_ps(w3, xi, s[3][i]);    \
            }                                                                                              \
        }                                                                                                  \
        if (tail) {                                                                                        \
            __m512 w0 = LDM(wr[0], j, tail), w1 = LDM(wr[1], j, tail), w2 = LDM(wr[2], j, tail), w3 = LDM(wr[3], j, tail); \
            for (int i = 0; i < NB; i++) {                                                                 \
                __m512 xi = _mm512_maskz_loadu_ps(tail, x + i * ldx + j);                                  \
                s[0][i] = _mm512_fmadd_ps(w0, xi, s[0][i]); s[1][i] = _mm512_fmadd_ps(w1, xi, s[1][i]);    \
                s[2][i] = _mm512_fmadd_ps(w2, xi, s[2][i]); s[3][i] = _mm512_fmadd_ps(w3, xi, s[3][i]);    \
            }                                                                                              \
        }                                                                                                  \
        for (int q = 0; q < nr; q++)                                                                       \
            for (int i = 0; i < NB; i++) {                                                                 \
                float v = _mm512_reduce_add_ps(s[q][i]);                                                   \
                float *out = y + i * ldy + r + q;                                                          \
                *out = acc ? *out + v : v;                                                                 \
            }                                                                                              \
    }                                                                                                      \
}

// A family of kernels: KERNEL (MULTI512 or ROW512) for f32, f16 and bf16 weights and 1-4 tokens,
// and its table NAME[dtype][tokens - 1].
typedef void (*multi_fn)(const void *, long, long, long, long, const float *, long, float *, long, int);
#define FOR_TOKENS(KERNEL, NAME, T, LD, LDM, ESZ) \
    KERNEL(NAME##_##T##_1, LD, LDM, ESZ, 1) KERNEL(NAME##_##T##_2, LD, LDM, ESZ, 2) \
    KERNEL(NAME##_##T##_3, LD, LDM, ESZ, 3) KERNEL(NAME##_##T##_4, LD, LDM, ESZ, 4)
#define KERNEL_FAMILY(KERNEL, NAME)                                                                       \
    FOR_TOKENS(KERNEL, NAME, f32, ld512_f32, ldm512_f32, 4)                                                \
    FOR_TOKENS(KERNEL, NAME, f16, ld512_f16, ldm512_f16, 2)                                                \
    FOR_TOKENS(KERNEL, NAME, bf16, ld512_bf16, ldm512_bf16, 2)                                             \
    static const multi_fn NAME[3][4] = {                                                                   \
        {NAME##_f32_1, NAME##_f32_2, NAME##_f32_3, NAME##_f32_4},                                          \
        {NAME##_f16_1, NAME##_f16_2, NAME##_f16_3, NAME##_f16_4},                                          \
        {NAME##_bf16_1, NAME##_bf16_2, NAME##_bf16_3, NAME##_bf16_4},                                      \
    };
KERNEL_FAMILY(MULTI512, multi512)

// One weight row × NB tokens: the rows are read front to back, one sequential stream (see ROWS512),
// each row loaded (and widened) once for NB tokens. For the few tokens of a batched decode, whose
// products stream the weights from memory: four rows interleaved made batch 2 as slow as two
// batches of one.
#define ROW512(NAME, LD, LDM, ESZ, NB)                                                                    \
T512 static void NAME(const void *w, long r0, long r1, long k, long ldw, const float *x, long ldx,       \
                      float *y, long ldy, int acc) {                                                       \
    const char *base = (const char *)w;                                                                    \
    long k32 = k & ~31L, k16 = k & ~15L;                                                                   \
    __mmask16 tail = (__mmask16)((1u << (k - k16)) - 1);                                                   \
    for (long r = r0; r < r1; r++) {                                                                       \
        const void *w0 = base + (r * ldw) * ESZ;                                                           \
        __m512 s0[NB], s1[NB];                                                                             \
        for (int i = 0; i < NB; i++) { s0[i] = _mm512_setzero_ps(); s1[i] = s0[i]; }                       \
        long j = 0;                                                                                        \
        for (; j < k32; j += 32) {                                                                         \
            __m512 wa = LD(w0, j), wb = LD(w0, j + 16);                                                    \
            for (int i = 0; i < NB; i++) {                                                                 \
                s0[i] = _mm512_fmadd_ps(wa, _mm512_loadu_ps(x + i * ldx + j), s0[i]);                      \
                s1[i] = _mm512_fmadd_ps(wb, _mm512_loadu_ps(x + i * ldx + j + 16), s1[i]);                 \
            }                                                                                              \
        }                                                                                                  \
        for (; j < k16; j += 16) {                                                                         \
            __m512 wa = LD(w0, j);                                                                         \
            for (int i = 0; i < NB; i++) s0[i] = _mm512_fmadd_ps(wa, _mm512_loadu_ps(x + i * ldx + j), s0[i]); \
        }                                                                                                  \
        if (tail) {                                                                                        \
            __m512 wa = LDM(w0, j, tail);                                                                  \
            for (int i = 0; i < NB; i++) s1[i] = _mm512_fmadd_ps(wa, _mm512_maskz_loadu_ps(tail, x + i * ldx + j), s1[i]); \
        }                                                                                                  \
        for (int i = 0; i < NB; i++) {                                                                     \
            float v = _mm512_reduce_add_ps(_mm512_add_ps(s0[i], s1[i]));                                   \
            float *out = y + i * ldy + r;                                                                  \
            *out = acc ? *out + v : v;                                                                     \
        }                                                                                                  \
    }                                                                                                      \
}
KERNEL_FAMILY(ROW512, row512)
#endif

#if defined(__x86_64__)
// Many tokens as a matrix product proper: 64 weight rows at a time are packed, widened to f32, as
// a panel Wᵀ [k, 64], and each block of 4 tokens × 64 rows keeps its 16 sums in registers: per
// input column, 4 loads of the panel, 4 broadcasts of X and 16 fused multiply-adds, no horizontal
// sums. Against the dot-product kernels above (one sum per weight row and token, reduced across
// the vector at the end): at k = 48 (Mamba's dt_proj) 184 GFLOP/s against 46, whose reductions
// cost more than the products; at 512 × 2048 × 768 (a Llama MLP) 183–200 against 162; at 128 rows
// (a 6.4M Llama's k and v, two panels) 191–214 against 105–137. Narrower products (fewer than 128
// rows, k ≥ 128: x_proj's 80) stay with the dot-product kernels, which read each weight row once
// for all the tokens of a block and won there (144–160 against 63–116): one or two panels, the
// second mostly empty, would leave a thread idle.
enum { PANEL = 64, PANEL_TOKENS = 4 };

/// Whether a product of m tokens, n rows and inner size k takes the panels.
static inline int use_panels(long m, long n, long k) {
    return orochi_isa() == OROCHI_ISA_AVX512 && m > 16 && orochi_panel_shape(n, k);
}

/// This thread's panel, k × 64 floats (kept between calls: a prefill's products all reuse it).
static float *panel_scratch(long k) {
    static _Thread_local float *buffer = NULL;
    static _Thread_local long capacity = 0;
    if (k * PANEL > capacity) {                  // k ≤ OROCHI_PANEL_MAX_K: at most 1 MiB
        free(buffer);
        buffer = aligned_alloc(64, (size_t)(k * PANEL) * 4);
        capacity = buffer ? k * PANEL : 0;
    }
    return buffer;
}

// panel[j, c] = W[n0 + c, j] widened to f32, for c < nb (0 beyond, up to 64), j < k: tiles of 16
// rows × 16 columns loaded (masked at the edges), transposed in registers, stored as panel rows.
// Element by element, this packing was 8 % of the panel kernel's time.
T512 static void pack_panel_512(int dtype, const void *w, long n0, long nb, long k, long ldw, float *panel) {
    for (long c0 = 0; c0 < PANEL; c0 += 16) {
        long rows = nb - c0 < 0 ? 0 : nb - c0 < 16 ? nb - c0 : 16;
        for (long j0 = 0; j0 < k; j0 += 16) {
            long cols = k - j0 < 16 ? k - j0 : 16;
            __mmask16 mk = (__mmask16)((1u << cols) - 1);
            __m512 r[16];
            for (long q = 0; q < 16; q++) {
                if (q >= rows) { r[q] = _mm512_setzero_ps(); continue; }
                const char *row = (const char *)w + (n0 + c0 + q) * ldw * (dtype == OROCHI_F32 ? 4 : 2);
                r[q] = dtype == OROCHI_F16 ? ldm512_f16(row, j0, mk) : dtype == OROCHI_BF16 ? ldm512_bf16(row, j0, mk)
                                                                  : ldm512_f32(row, j0, mk);
            }
            transpose16(r);
            for (long i = 0; i < cols; i++) _mm512_store_ps(panel + (j0 + i) * PANEL + c0, r[i]);
        }
    }
}

T512 static void panels_512(int dtype, const void *w, long r0, long r1, long k, long ldw, const float *x, long ldx,
                            long m, float *y, long ldy, int acc, float *panel) {
    for (long n0 = r0; n0 < r1; n0 += PANEL) {
        long nb = r1 - n0 < PANEL ? r1 - n0 : PANEL;
        pack_panel_512(dtype, w, n0, nb, k, ldw, panel);
        __mmask16 mk[4];
        for (int v = 0; v < 4; v++) { long left = nb - 16 * v; mk[v] = left >= 16 ? 0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1); }
        for (long t0 = 0; t0 < m; t0 += PANEL_TOKENS) {
            int nt = m - t0 < PANEL_TOKENS ? (int)(m - t0) : PANEL_TOKENS;
            const float *xr[PANEL_TOKENS];
            for (int i = 0; i < PANEL_TOKENS; i++) xr[i] = x + (t0 + (i < nt ? i : nt - 1)) * ldx;   // a short block repeats its last token
            __m512 a[PANEL_TOKENS][4];
            for (int i = 0; i < PANEL_TOKENS; i++) for (int v = 0; v < 4; v++) a[i][v] = _mm512_setzero_ps();
            for (long j = 0; j < k; j++) {
                const float *pr = panel + j * PANEL;
                __m512 p0 = _mm512_load_ps(pr), p1 = _mm512_load_ps(pr + 16), p2 = _mm512_load_ps(pr + 32), p3 = _mm512_load_ps(pr + 48);
                for (int i = 0; i < PANEL_TOKENS; i++) {
                    __m512 xb = _mm512_set1_ps(xr[i][j]);
                    a[i][0] = _mm512_fmadd_ps(xb, p0, a[i][0]); a[i][1] = _mm512_fmadd_ps(xb, p1, a[i][1]);
                    a[i][2] = _mm512_fmadd_ps(xb, p2, a[i][2]); a[i][3] = _mm512_fmadd_ps(xb, p3, a[i][3]);
                }
            }
            for (int i = 0; i < nt; i++)
                for (int v = 0; v < 4; v++) {
                    if (!mk[v]) break;
                    float *out = y + (t0 + i) * ldy + n0 + 16 * v;
                    __m512 r = acc ? _mm512_add_ps(a[i][v], _mm512_maskz_loadu_ps(mk[v], out)) : a[i][v];
                    _mm512_mask_storeu_ps(out, mk[v], r);
                }
        }
    }
}
#endif

/// Rows r0..<r1 of Y for `m` rows of X (any m: groups of four); the product has n rows in all.
static void multi_rows(int dtype, const void *w, long n, long r0, long r1, long k, long ldw, const float *x, long ldx,
                       long m, float *y, long ldy, int acc) {
#if defined(__x86_64__)
    if (orochi_isa() == OROCHI_ISA_AVX512) {
        int t = dtype == OROCHI_F16 ? 1 : dtype == OROCHI_BF16 ? 2 : 0;
        if (m <= 16) {
            // A batched decode: rows front to back, each for every group of four tokens in turn
            // over a tile of 16 rows (in L1 when the next group reads it).
            for (long rt = r0; rt < r1; rt += 16) {
                long rt1 = r1 - rt < 16 ? r1 : rt + 16;
                for (long i = 0; i < m; i += 4) {
                    long nb = m - i < 4 ? m - i : 4;
                    row512[t][nb - 1](w, rt, rt1, k, ldw, x + i * ldx, ldx, y + i * ldy, ldy, acc);
                }
            }
            return;
        }
        if (use_panels(m, n, k)) {
            float *panel = panel_scratch(k);
            if (panel) { panels_512(dtype, w, r0, r1, k, ldw, x, ldx, m, y, ldy, acc, panel); return; }
        }
        // More than four tokens: the groups of four take turns on a tile of rows small enough to
        // stay in L1/L2 (16 rows: 24 KiB of f16 at k = 768), so the weights come from memory once
        // per step, not once per group. Many tokens (a prefill through this kernel) go in blocks
        // of 64, whose inputs (192 KiB at k = 768) stay in L2 while the row tiles pass over them.
        long tile = m > 4 ? 16 : r1 - r0;
        for (long i0 = 0; i0 < m; i0 += 64) {
            long i1 = m - i0 < 64 ? m : i0 + 64;
            for (long rt = r0; rt < r1; rt += tile) {
                long rt1 = r1 - rt < tile ? r1 : rt + tile;
                for (long i = i0; i < i1; i += 4) {
                    long nb = i1 - i < 4 ? i1 - i : 4;
                    multi512[t][nb - 1](w, rt, rt1, k, ldw, x + i * ldx, ldx, y + i * ldy, ldy, acc);
                }
            }
        }
        return;
    }
#endif
    // AVX2 and portable: one pass over the rows per token (registers are too few to share loads).
    for (long i = 0; i < m; i++) orochi_matvec_rows(dtype, w, r0, r1, k, ldw, x + i * ldx, y + i * ldy, acc);
}

typedef struct { int dtype; const void *w; long n, k, ldw; const float *x; long ldx, m; float *y; long ldy; int acc; } multi_job;

/// Rows are handed out in units of 16 (the dot-product kernels' tile) or 64 (a panel).
static inline long row_unit(long m, long n, long k) {
#if defined(__x86_64__)
    if (use_panels(m, n, k)) return PANEL;
#endif
    return 16;
}

static void multi_part(void *ctx, int index, int count) {
    const multi_job *j = ctx;
    long unit = row_unit(j->m, j->n, j->k), blocks = (j->n + unit - 1) / unit;
    long r0 = blocks * index / count * unit, r1 = blocks * (index + 1) / count * unit;
    if (r1 > j->n) r1 = j->n;
    if (r0 < r1) multi_rows(j->dtype, j->w, j->n, r0, r1, j->k, j->ldw, j->x, j->ldx, j->m, j->y, j->ldy, j->acc);
}

void orochi_matvec_multi(int dtype, const void *w, long n, long k, long ldw, const float *x, long ldx, long m,
                         float *y, long ldy, int acc) {
    if (orochi_quant_is_quantized(dtype)) { orochi_qmatvec_multi(dtype, w, n, k, x, ldx, m, y, ldy, acc); return; }
    if (n * k < PARALLEL_MIN_WEIGHTS || n < 32 || orochi_pool_threads() == 1) {
        multi_rows(dtype, w, n, 0, n, k, ldw, x, ldx, m, y, ldy, acc);
        return;
    }
    multi_job job = {dtype, w, n, k, ldw, x, ldx, m, y, ldy, acc};
    long unit = row_unit(m, n, k), blocks = (n + unit - 1) / unit;
    // Panels: one per chunk, so that the threads share them evenly (llama-130m's 768 rows are 12
    // panels; in 8 chunks, of one or two panels, one thread often did 7 of them, the other 5).
    long chunks = unit == PANEL ? blocks : 4 * orochi_pool_threads();
    if (chunks > 0xffff) chunks = 0xffff;
    orochi_pool_run_chunks(multi_part, &job, blocks < chunks ? (int)blocks : (int)chunks);
}

// ---------- a group of products of the same input (a layer's q, k and v; its gate and up) ----------
typedef struct { const orochi_group_product *p; int count; long k; const float *x; long ldx, m; int acc; long units; } group_job;

/// The rows a group hands out at a time: 16 for one token (the one-token kernel's blocks), else
/// the multi-token kernel's unit for that product (a panel, or 16 rows).
static inline long group_unit(const group_job *j, long n) { return j->m == 1 ? 16 : row_unit(j->m, n, j->k); }

// The group's row units as one sequence, product after product (a unit never spans two): chunk
// `index` takes its share of them, through the kernel the product would take alone.
static void group_part(void *ctx, int index, int count) {
    const group_job *j = ctx;
    long u0 = j->m == 1 ? orochi_pool_guided_start(j->units, index, count) : j->units * index / count;
    long u1 = j->m == 1 ? orochi_pool_guided_start(j->units, index + 1, count) : j->units * (index + 1) / count, first = 0;
    for (int i = 0; i < j->count && first < u1; i++) {
        const orochi_group_product *p = j->p + i;
        long unit = group_unit(j, p->n), units = (p->n + unit - 1) / unit;
        long s = u0 > first ? u0 - first : 0, e = u1 - first < units ? u1 - first : units;
        long r0 = s * unit, r1 = e * unit < p->n ? e * unit : p->n;
        if (s < e && j->m == 1) orochi_matvec_rows(p->dtype, p->w, r0, r1, j->k, p->ldw, j->x, p->y, j->acc);
        else if (s < e) multi_rows(p->dtype, p->w, p->n, r0, r1, j->k, p->ldw, j->x, j->ldx, j->m, p->y, p->n, j->acc);
        first += units;
    }
}

static group_job make_group(const orochi_group_product *products, int count, long k, const float *x, long ldx, long m, int acc) {
    group_job job = {products, count, k, x, ldx, m, acc, 0};
    for (int i = 0; i < count; i++) { long unit = group_unit(&job, products[i].n); job.units += (products[i].n + unit - 1) / unit; }
    return job;
}

/// Whether a group holds a quantized product: those go one by one through quant.c's kernels.
static int group_quantized(const orochi_group_product *products, int count) {
    for (int i = 0; i < count; i++) if (orochi_quant_is_quantized(products[i].dtype)) return 1;
    return 0;
}

/// A group whose products are all quantized: x quantized once per format, then every product's
/// rows, 16 at a time, as one job for the threads (one hand-off for q, k and v, not three).
typedef struct { const orochi_group_product *p; int count; long k; const void *xq[3]; int acc; long units; } qgroup_job;

static void qgroup_part(void *ctx, int index, int count) {
    const qgroup_job *j = ctx;
    long u0 = orochi_pool_guided_start(j->units, index, count), u1 = orochi_pool_guided_start(j->units, index + 1, count), first = 0;
    for (int i = 0; i < j->count && first < u1; i++) {
        const orochi_group_product *p = j->p + i;
        long units = (p->n + 15) / 16;
        long s = u0 > first ? u0 - first : 0, e = u1 - first < units ? u1 - first : units;
        if (s < e) orochi_qmatvec_rows(p->dtype, p->w, s * 16, e * 16 < p->n ? e * 16 : p->n, j->k, j->xq[i], p->y, j->acc);
        first += units;
    }
}

static int all_quantized(const orochi_group_product *products, int count) {
    for (int i = 0; i < count; i++) if (!orochi_quant_is_quantized(products[i].dtype)) return 0;
    return 1;
}

void orochi_matvec_group(const orochi_group_product *products, int count, long k, const float *x, int acc) {
    if (count <= 3 && all_quantized(products, count)) {
        qgroup_job job = {products, count, k, {0}, acc, 0};
        for (int i = 0; i < count; i++) {
            int same = -1;
            for (int q = 0; q < i; q++) if (products[q].dtype == products[i].dtype) { same = q; break; }
            if (same >= 0) { job.xq[i] = job.xq[same]; }
            else {
                void *xq = orochi_quant_input(i, orochi_quant_activation_bytes(products[i].dtype, k));
                orochi_quantize_activation(products[i].dtype, x, xq, k);
                job.xq[i] = xq;
            }
            job.units += (products[i].n + 15) / 16;
        }
        if (orochi_pool_threads() == 1 || job.units < 2) { qgroup_part(&job, 0, 1); return; }
        int chunks = OROCHI_POOL_HOME_CHUNKS * orochi_pool_threads();
        orochi_pool_run_chunks(qgroup_part, &job, job.units < chunks ? (int)job.units : chunks);
        return;
    }
    if (group_quantized(products, count)) {
        for (int i = 0; i < count; i++) orochi_matvec(products[i].dtype, products[i].w, products[i].n, k, products[i].ldw, x, products[i].y, acc);
        return;
    }
    group_job job = make_group(products, count, k, x, k, 1, acc);
    long weights = 0;
    for (int i = 0; i < count; i++) weights += products[i].n * k;
    if (weights < PARALLEL_MIN_WEIGHTS || job.units < 2 || orochi_pool_threads() == 1) { group_part(&job, 0, 1); return; }
    int chunks = OROCHI_POOL_HOME_CHUNKS * orochi_pool_threads();   // as orochi_matvec: a home per thread
    orochi_pool_run_chunks(group_part, &job, job.units < chunks ? (int)job.units : chunks);
}

void orochi_matvec_multi_group(const orochi_group_product *products, int count, long k, const float *x, long ldx,
                               long m, int acc) {
    if (group_quantized(products, count)) {
        for (int i = 0; i < count; i++)
            orochi_matvec_multi(products[i].dtype, products[i].w, products[i].n, k, products[i].ldw, x, ldx, m, products[i].y, products[i].n, acc);
        return;
    }
    group_job job = make_group(products, count, k, x, ldx, m, acc);
    if (job.units < 2 || orochi_pool_threads() == 1) { group_part(&job, 0, 1); return; }
    // One unit per chunk (as orochi_matvec_multi's panels), so that the threads share them evenly.
    orochi_pool_run_chunks(group_part, &job, job.units < 0xffff ? (int)job.units : 0xffff);
}

// ---------- conversions ----------
#if defined(__x86_64__)
T512 static void to_f32_512(int dtype, const void *src, float *dst, long count) {
    long i = 0;
    for (; i + 16 <= count; i += 16)
        _mm512_storeu_ps(dst + i, dtype == OROCHI_F16 ? ld512_f16(src, i) : ld512_bf16(src, i));
    for (; i < count; i++) dst[i] = load_any(dtype, src, i);
}
T256 static void to_f32_256(int dtype, const void *src, float *dst, long count) {
    long i = 0;
    for (; i + 8 <= count; i += 8)
        _mm256_storeu_ps(dst + i, dtype == OROCHI_F16 ? ld256_f16(src, i) : ld256_bf16(src, i));
    for (; i < count; i++) dst[i] = load_any(dtype, src, i);
}
T256 static void f32_to_f16_256(const float *src, uint16_t *dst, long count) {
    long i = 0;
    for (; i + 8 <= count; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < count; i++) {
        __m128 v = _mm_set_ss(src[i]);
        dst[i] = (uint16_t)_mm_extract_epi16(_mm_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT), 0);
    }
}
#endif

void orochi_to_f32(int dtype, const void *src, float *dst, long count) {
    if (orochi_quant_is_quantized(dtype)) { orochi_dequantize(dtype, src, dst, count); return; }
    if (dtype == OROCHI_F32) { memcpy(dst, src, (size_t)count * 4); return; }
#if defined(__x86_64__)
    if (orochi_isa() == OROCHI_ISA_AVX512) { to_f32_512(dtype, src, dst, count); return; }
    if (orochi_isa() == OROCHI_ISA_AVX2) { to_f32_256(dtype, src, dst, count); return; }
#endif
    for (long i = 0; i < count; i++) dst[i] = load_any(dtype, src, i);
}

void orochi_f32_to_f16(const float *src, uint16_t *dst, long count) {
#if defined(__x86_64__)
    if (orochi_isa() >= OROCHI_ISA_AVX2) { f32_to_f16_256(src, dst, count); return; }
#endif
    for (long i = 0; i < count; i++) dst[i] = float_to_half(src[i]);
}
