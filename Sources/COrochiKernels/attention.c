// Attention of one new token over the KV cache, fused: for each key/value head, one pass over
// its cached keys and values computes the scores, the softmax (online, as in flash attention:
// a running maximum and sum, the accumulator rescaled when the maximum grows) and the weighted
// sum of values, for all the query heads of its group at once, so the cache is read once per
// token. Key/value heads are split over the pool's threads.
#include "orochi_kernels.h"
#include "vecmath.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

enum { BLOCK = 64, MAX_GROUP = 8, MAX_DIM = 512 };


// ---------- portable primitives ----------
static inline float dot_p(const float *q, const void *row, int f16, int d) {
    float s = 0;
    if (f16) for (int i = 0; i < d; i++) s += q[i] * half_to_float(((const uint16_t *)row)[i]);
    else for (int i = 0; i < d; i++) s += q[i] * ((const float *)row)[i];
    return s;
}
static inline void axpy_p(float *acc, float p, const void *row, int f16, int d) {
    if (f16) for (int i = 0; i < d; i++) acc[i] += p * half_to_float(((const uint16_t *)row)[i]);
    else for (int i = 0; i < d; i++) acc[i] += p * ((const float *)row)[i];
}
static inline float expsum_p(float *s, int n, float m) {   // s[i] = exp(s[i] − m), returns Σ
    float sum = 0;
    for (int i = 0; i < n; i++) { s[i] = expf(s[i] - m); sum += s[i]; }
    return sum;
}
static inline float expf_p(float x) { return expf(x); }

#if defined(__x86_64__)
// ---------- AVX-512 primitives ----------
T512 static inline __m512 ldrow512(const void *row, int f16, int i, __mmask16 m) {
    return f16 ? _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)row + i))
               : _mm512_maskz_loadu_ps(m, (const float *)row + i);
}
T512 static inline float dot_512(const float *q, const void *row, int f16, int d) {
    __m512 a = _mm512_setzero_ps();
    for (int i = 0; i < d; i += 16) {
        __mmask16 m = d - i >= 16 ? 0xffff : (__mmask16)((1u << (d - i)) - 1);
        a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + i), ldrow512(row, f16, i, m), a);
    }
    return _mm512_reduce_add_ps(a);
}
T512 static inline void axpy_512(float *acc, float p, const void *row, int f16, int d) {
    __m512 pv = _mm512_set1_ps(p);
    for (int i = 0; i < d; i += 16) {
        __mmask16 m = d - i >= 16 ? 0xffff : (__mmask16)((1u << (d - i)) - 1);
        _mm512_mask_storeu_ps(acc + i, m, _mm512_fmadd_ps(pv, ldrow512(row, f16, i, m), _mm512_maskz_loadu_ps(m, acc + i)));
    }
}
T512 static inline float expsum_512(float *s, int n, float m) {
    __m512 mv = _mm512_set1_ps(m), sum = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 16) {
        __mmask16 mk = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, s + i), mv));
        e = _mm512_maskz_mov_ps(mk, e);
        _mm512_mask_storeu_ps(s + i, mk, e);
        sum = _mm512_add_ps(sum, e);
    }
    return _mm512_reduce_add_ps(sum);
}
T512 static inline float expf_512(float x) { return _mm512_cvtss_f32(exp512(_mm512_set1_ps(x))); }

// ---------- AVX2 primitives ----------
T256 static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
T256 static inline __m256 ldrow256(const void *row, int f16, int i) {
    return f16 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + i))) : _mm256_loadu_ps((const float *)row + i);
}
T256 static inline float dot_256(const float *q, const void *row, int f16, int d) {
    __m256 a = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= d; i += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), ldrow256(row, f16, i), a);
    float s = hsum8(a);
    for (; i < d; i++) s += q[i] * (f16 ? half_to_float(((const uint16_t *)row)[i]) : ((const float *)row)[i]);
    return s;
}
T256 static inline void axpy_256(float *acc, float p, const void *row, int f16, int d) {
    __m256 pv = _mm256_set1_ps(p);
    int i = 0;
    for (; i + 8 <= d; i += 8) _mm256_storeu_ps(acc + i, _mm256_fmadd_ps(pv, ldrow256(row, f16, i), _mm256_loadu_ps(acc + i)));
    for (; i < d; i++) acc[i] += p * (f16 ? half_to_float(((const uint16_t *)row)[i]) : ((const float *)row)[i]);
}
T256 static inline float expsum_256(float *s, int n, float m) {
    __m256 mv = _mm256_set1_ps(m), sum = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(s + i), mv));
        _mm256_storeu_ps(s + i, e);
        sum = _mm256_add_ps(sum, e);
    }
    float t = hsum8(sum);
    for (; i < n; i++) { s[i] = expf(s[i] - m); t += s[i]; }
    return t;
}
T256 static inline float expf_256(float x) { return expf(x); }
#endif

// Query heads of one key/value head taken in one pass: MAX_GROUP, fewer when their outputs would
// not fit the stack's MAX_GROUP × MAX_DIM floats (head sizes above MAX_DIM).
static inline int heads_per_pass(int d) {
    int fit = (MAX_GROUP * MAX_DIM) / d;
    return fit >= MAX_GROUP ? MAX_GROUP : fit < 1 ? 1 : fit;
}

// One key/value head and up to heads_per_pass(d) of its query heads: one pass over rows [first, first + n).
// A head larger than MAX_GROUP × MAX_DIM floats accumulates on the heap (no model this size runs hot).
#define ATTEND_GROUP(NAME, ATTR, DOT, AXPY, EXPSUM, EXPF)                                                  \
ATTR static void NAME(const float *q, int gh, int d, const char *keys, const char *values, int f16,        \
                      long first, long n, float scale, float *out) {                                       \
    const long rowBytes = (long)d * (f16 ? 2 : 4);                                                         \
    float stack[MAX_GROUP * MAX_DIM], s[MAX_GROUP][BLOCK], m[MAX_GROUP], l[MAX_GROUP];                     \
    float *acc = (long)gh * d <= MAX_GROUP * MAX_DIM ? stack : malloc((size_t)gh * (size_t)d * 4);         \
    if (!acc) { for (long i = 0; i < (long)gh * d; i++) out[i] = NAN; return; }                            \
    for (int h = 0; h < gh; h++) { m[h] = -INFINITY; l[h] = 0; memset(acc + (long)h * d, 0, (size_t)d * 4); } \
    for (long j0 = 0; j0 < n; j0 += BLOCK) {                                                               \
        int nb = n - j0 < BLOCK ? (int)(n - j0) : BLOCK;                                                   \
        const char *kb = keys + (first + j0) * rowBytes, *vb = values + (first + j0) * rowBytes;           \
        for (int j = 0; j < nb; j++)                                                                       \
            for (int h = 0; h < gh; h++) s[h][j] = DOT(q + h * d, kb + j * rowBytes, f16, d) * scale;      \
        for (int h = 0; h < gh; h++) {                                                                     \
            float bm = s[h][0];                                                                            \
            for (int j = 1; j < nb; j++) bm = s[h][j] > bm ? s[h][j] : bm;                                 \
            if (bm > m[h]) {                                                                               \
                float corr = m[h] == -INFINITY ? 0 : EXPF(m[h] - bm);                                      \
                l[h] *= corr;                                                                              \
                for (int i = 0; i < d; i++) acc[(long)h * d + i] *= corr;                                  \
                m[h] = bm;                                                                                 \
            }                                                                                              \
            l[h] += EXPSUM(s[h], nb, m[h]);                                                                \
        }                                                                                                  \
        for (int j = 0; j < nb; j++)                                                                       \
            for (int h = 0; h < gh; h++) AXPY(acc + (long)h * d, s[h][j], vb + j * rowBytes, f16, d);       \
    }                                                                                                      \
    for (int h = 0; h < gh; h++) {                                                                         \
        float inv = 1 / l[h];                                                                              \
        for (int i = 0; i < d; i++) out[(long)h * d + i] = acc[(long)h * d + i] * inv;                     \
    }                                                                                                      \
    if (acc != stack) free(acc);                                                                           \
}
ATTEND_GROUP(group_portable, , dot_p, axpy_p, expsum_p, expf_p)
#if defined(__x86_64__)
ATTEND_GROUP(group_512, T512, dot_512, axpy_512, expsum_512, expf_512)
ATTEND_GROUP(group_256, T256, dot_256, axpy_256, expsum_256, expf_256)
#endif

#if defined(__x86_64__)
// The common head sizes (32, 64, 128): the query and the output row live in registers over a
// block of keys, so that each cached row costs its loads and fused multiply-adds and nothing else.
#define ATTEND_FIXED(NAME, NV)                                                                              \
T512 static void NAME(const float *q, int gh, int d, const char *keys, const char *values, int f16,         \
                      long first, long n, float scale, float *out) {                                        \
    const long rowBytes = (long)d * (f16 ? 2 : 4);                                                          \
    float acc[MAX_GROUP][MAX_DIM], s[MAX_GROUP][BLOCK], m[MAX_GROUP], l[MAX_GROUP];                         \
    for (int h = 0; h < gh; h++) { m[h] = -INFINITY; l[h] = 0; memset(acc[h], 0, (size_t)d * 4); }          \
    for (long j0 = 0; j0 < n; j0 += BLOCK) {                                                                \
        int nb = n - j0 < BLOCK ? (int)(n - j0) : BLOCK;                                                    \
        const char *kb = keys + (first + j0) * rowBytes, *vb = values + (first + j0) * rowBytes;            \
        for (int h = 0; h < gh; h++) {                                                                      \
            __m512 qv[NV];                                                                                  \
            for (int v = 0; v < NV; v++) qv[v] = _mm512_loadu_ps(q + h * d + 16 * v);                       \
            for (int j = 0; j < nb; j++) {                                                                  \
                const char *row = kb + j * rowBytes;                                                        \
                __m512 a = _mm512_mul_ps(qv[0], ldrow512(row, f16, 0, 0xffff));                              \
                for (int v = 1; v < NV; v++) a = _mm512_fmadd_ps(qv[v], ldrow512(row, f16, 16 * v, 0xffff), a); \
                s[h][j] = _mm512_reduce_add_ps(a) * scale;                                                  \
            }                                                                                               \
            float bm = s[h][0];                                                                             \
            for (int j = 1; j < nb; j++) bm = s[h][j] > bm ? s[h][j] : bm;                                  \
            __m512 av[NV];                                                                                  \
            for (int v = 0; v < NV; v++) av[v] = _mm512_loadu_ps(acc[h] + 16 * v);                          \
            if (bm > m[h]) {                                                                                \
                float corr = m[h] == -INFINITY ? 0 : expf_512(m[h] - bm);                                   \
                l[h] *= corr;                                                                               \
                for (int v = 0; v < NV; v++) av[v] = _mm512_mul_ps(av[v], _mm512_set1_ps(corr));            \
                m[h] = bm;                                                                                  \
            }                                                                                               \
            l[h] += expsum_512(s[h], nb, m[h]);                                                             \
            for (int j = 0; j < nb; j++) {                                                                  \
                const char *row = vb + j * rowBytes;                                                        \
                __m512 p = _mm512_set1_ps(s[h][j]);                                                         \
                for (int v = 0; v < NV; v++) av[v] = _mm512_fmadd_ps(p, ldrow512(row, f16, 16 * v, 0xffff), av[v]); \
            }                                                                                               \
            for (int v = 0; v < NV; v++) _mm512_storeu_ps(acc[h] + 16 * v, av[v]);                          \
        }                                                                                                   \
    }                                                                                                       \
    for (int h = 0; h < gh; h++) {                                                                          \
        float inv = 1 / l[h];                                                                               \
        for (int i = 0; i < d; i++) out[h * d + i] = acc[h][i] * inv;                                       \
    }                                                                                                       \
}
ATTEND_FIXED(group_512_d32, 2)
ATTEND_FIXED(group_512_d64, 4)
ATTEND_FIXED(group_512_d128, 8)
#endif

typedef struct {
    const float *q; int heads, kv_heads, d; const char *keys, *values; int f16; long capacity, first, n; float scale; float *out;
} attention_job;

static void attention_part(void *ctx, int index, int count) {
    const attention_job *j = ctx;
    int group = j->heads / j->kv_heads, per = heads_per_pass(j->d);
    int chunks = (group + per - 1) / per;      // passes over the cache per key/value head
    int tasks = j->kv_heads * chunks;   // one per pool chunk
    int isa = orochi_isa();
    long headBytes = j->capacity * j->d * (j->f16 ? 2 : 4);
    for (int t = (int)((long)tasks * index / count); t < (int)((long)tasks * (index + 1) / count); t++) {
        int g = t / chunks, h0 = g * group + (t % chunks) * per;
        int gh = group - (t % chunks) * per; if (gh > per) gh = per;
        const char *k = j->keys + g * headBytes, *v = j->values + g * headBytes;
        const float *q = j->q + (long)h0 * j->d;
        float *out = j->out + (long)h0 * j->d;
#if defined(__x86_64__)
        if (isa == OROCHI_ISA_AVX512) {
            switch (j->d) {
            case 32: group_512_d32(q, gh, j->d, k, v, j->f16, j->first, j->n, j->scale, out); break;
            case 64: group_512_d64(q, gh, j->d, k, v, j->f16, j->first, j->n, j->scale, out); break;
            case 128: group_512_d128(q, gh, j->d, k, v, j->f16, j->first, j->n, j->scale, out); break;
            default: group_512(q, gh, j->d, k, v, j->f16, j->first, j->n, j->scale, out);
            }
            continue;
        }
        if (isa == OROCHI_ISA_AVX2) { group_256(q, gh, j->d, k, v, j->f16, j->first, j->n, j->scale, out); continue; }
#endif
        (void)isa;
        group_portable(q, gh, j->d, k, v, j->f16, j->first, j->n, j->scale, out);
    }
}

void orochi_attention_decode(const float *q, int heads, int kv_heads, int head_dim,
                             const void *keys, const void *values, int kv_dtype, long capacity,
                             long first, long n, float scale, float *out) {
    attention_job job = {q, heads, kv_heads, head_dim, keys, values, kv_dtype == OROCHI_F16, capacity, first, n, scale, out};
    // Short contexts: the whole cache is a few kilobytes, threads would cost more than they save.
    if ((long)kv_heads * n * head_dim < 16384 || orochi_pool_threads() == 1) attention_part(&job, 0, 1);
    else orochi_pool_run_chunks(attention_part, &job, kv_heads * ((heads / kv_heads + heads_per_pass(head_dim) - 1) / heads_per_pass(head_dim)));
}

// ---------- prefill: one tile of the online softmax ----------
// Flash attention's middle step between its two products (Attention.swift): the scores of a tile
// become probabilities against each row's running maximum, the row's running sum and its output
// so far are rescaled when that maximum grows, and keys the row must not see become 0. In C with
// vectors because it touches every score: at a head size of 32 it was a tenth of a prefill.

// The visible keys of the row at position `pos`, as indices into the tile: lo..hi (none when lo > hi).
static inline void visible(long pos, long c0, int n, long window, long *lo, long *hi) {
    long first = window > 0 && pos + 1 - window > c0 ? pos + 1 - window : c0;
    long last = pos < c0 + n - 1 ? pos : c0 + n - 1;
    *lo = first - c0; *hi = last - c0;
}

// Per kernel family: the largest of s[0..n) and o[0..d) *= c.
static inline float rowmax_p(const float *s, long n) {
    float t = -INFINITY;
    for (long j = 0; j < n; j++) if (s[j] > t) t = s[j];
    return t;
}
static inline void scale_p(float *o, float c, int d) { for (int i = 0; i < d; i++) o[i] *= c; }
#if defined(__x86_64__)
T512 static inline float rowmax_512(const float *s, long n) {
    __m512 t = _mm512_set1_ps(-INFINITY);
    for (long j = 0; j < n; j += 16) {
        __mmask16 mk = n - j >= 16 ? 0xffff : (__mmask16)((1u << (n - j)) - 1);
        t = _mm512_mask_max_ps(t, mk, t, _mm512_maskz_loadu_ps(mk, s + j));
    }
    return _mm512_reduce_max_ps(t);
}
T512 static inline void scale_512(float *o, float c, int d) {
    __m512 cv = _mm512_set1_ps(c);
    for (int i = 0; i < d; i += 16) {
        __mmask16 mk = d - i >= 16 ? 0xffff : (__mmask16)((1u << (d - i)) - 1);
        _mm512_mask_storeu_ps(o + i, mk, _mm512_mul_ps(cv, _mm512_maskz_loadu_ps(mk, o + i)));
    }
}
T256 static inline float rowmax_256(const float *s, long n) {
    __m256 t8 = _mm256_set1_ps(-INFINITY);
    long j = 0;
    for (; j + 8 <= n; j += 8) t8 = _mm256_max_ps(t8, _mm256_loadu_ps(s + j));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(t8), _mm256_extractf128_ps(t8, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    float t = _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
    for (; j < n; j++) if (s[j] > t) t = s[j];
    return t;
}
T256 static inline void scale_256(float *o, float c, int d) {
    __m256 cv = _mm256_set1_ps(c);
    int i = 0;
    for (; i + 8 <= d; i += 8) _mm256_storeu_ps(o + i, _mm256_mul_ps(cv, _mm256_loadu_ps(o + i)));
    for (; i < d; i++) o[i] *= c;
}
#endif

#define SOFTMAX_TILE(NAME, ATTR, ROWMAX, EXPSUM, SCALE)                                                   \
ATTR static void NAME(float *scores, int rows, int n, long c0, long pos0, long window,                    \
                      float *row_max, float *row_sum, float *out, long ldo, int d) {                      \
    for (int r = 0; r < rows; r++) {                                                                      \
        float *s = scores + (long)r * n, *o = out + (long)r * ldo;                                        \
        long lo, hi;                                                                                      \
        visible(pos0 + r, c0, n, window, &lo, &hi);                                                       \
        if (lo > hi) { memset(s, 0, (size_t)n * 4); continue; }                                           \
        float top = ROWMAX(s + lo, hi - lo + 1);                                                          \
        float m = row_max[r] > top ? row_max[r] : top;                                                    \
        float correction = row_max[r] == -INFINITY ? 0 : expf(row_max[r] - m);                            \
        memset(s, 0, (size_t)lo * 4);                                                                     \
        memset(s + hi + 1, 0, (size_t)(n - 1 - hi) * 4);                                                  \
        row_sum[r] = row_sum[r] * correction + EXPSUM(s + lo, (int)(hi - lo + 1), m);                     \
        row_max[r] = m;                                                                                   \
        if (correction != 1) SCALE(o, correction, d);                                                     \
    }                                                                                                     \
}
SOFTMAX_TILE(softmax_tile_portable, , rowmax_p, expsum_p, scale_p)
#if defined(__x86_64__)
SOFTMAX_TILE(softmax_tile_512, T512, rowmax_512, expsum_512, scale_512)
SOFTMAX_TILE(softmax_tile_256, T256, rowmax_256, expsum_256, scale_256)
#endif

void orochi_attention_softmax_tile(float *scores, int rows, int n, long c0, long pos0, long window,
                                   float *row_max, float *row_sum, float *out, long ldo, int d) {
#if defined(__x86_64__)
    switch (orochi_isa()) {
    case OROCHI_ISA_AVX512: softmax_tile_512(scores, rows, n, c0, pos0, window, row_max, row_sum, out, ldo, d); return;
    case OROCHI_ISA_AVX2: softmax_tile_256(scores, rows, n, c0, pos0, window, row_max, row_sum, out, ldo, d); return;
    }
#endif
    softmax_tile_portable(scores, rows, n, c0, pos0, window, row_max, row_sum, out, ldo, d);
}

// ---------- prefill: the tile's two products ----------
// S = scale·Q·Kᵀ with the keys in the vector lanes: K's tile is transposed once into Kᵀ [d, np]
// (np = n rounded up to 64, zero-padded, so every load is a whole vector), then each block of 4
// query rows × 64 keys (4 × 4 accumulators) takes, per dimension, 4 loads of Kᵀ and 4 broadcasts
// of Q for 16 fused multiply-adds. O += P·V with the head's dimensions in the lanes: each block of
// 4 rows × up to 64 dimensions takes, per key, up to 4 loads of V's row and 4 broadcasts of P.
// Neither packs anything else: the tile is already in cache, and at a head size of 32 packing was
// most of what sgemm did with it. A block of rows stops at the last key its last row sees (causal
// tiles on the diagonal are half empty).
enum { KT_BLOCK = 64, TILE_ROWS = 4 };

/// Keys [0, end) that rows r0..<r0+nr see at all: row r sees up to r + diagonal.
static inline int keys_seen(int r0, int nr, long diagonal, int n) {
    long end = (long)r0 + nr + diagonal;
    return end < 0 ? 0 : end > n ? n : (int)end;
}

long orochi_attention_kt_columns(int n) { return ((long)n + KT_BLOCK - 1) / KT_BLOCK * KT_BLOCK; }

static void transpose_keys(const float *k, int n, int d, float *kt, long np) {
    for (int dd = 0; dd < d; dd++) {
        float *row = kt + dd * np;
        for (int c = 0; c < n; c++) row[c] = k[(long)c * d + dd];
        for (long c = n; c < np; c++) row[c] = 0;
    }
}

#if defined(__x86_64__)
// The same by 16 × 16 tiles transposed in registers. Element by element, the transposes were 11 %
// of attention's time in a 2,048-token llama-130m prefill (each key tile is transposed again for
// every block of query rows that sees it).
T512 static void transpose_keys_512(const float *k, int n, int d, float *kt, long np) {
    long n16 = ((long)n + 15) / 16 * 16;                     // ≤ np (a multiple of 64)
    for (long c0 = 0; c0 < n; c0 += 16) {
        long rows = n - c0 < 16 ? n - c0 : 16;
        for (int d0 = 0; d0 < d; d0 += 16) {
            int cols = d - d0 < 16 ? d - d0 : 16;
            __mmask16 mk = (__mmask16)((1u << cols) - 1);
            __m512 r[16];
            for (long q = 0; q < 16; q++) r[q] = q < rows ? _mm512_maskz_loadu_ps(mk, k + (c0 + q) * d + d0) : _mm512_setzero_ps();
            transpose16(r);
            for (int i = 0; i < cols; i++) _mm512_storeu_ps(kt + (long)(d0 + i) * np + c0, r[i]);   // zeros past row n
        }
    }
    for (int dd = 0; dd < d; dd++) memset(kt + dd * np + n16, 0, (size_t)(np - n16) * 4);
}
#endif

static void scores_portable(const float *q, long ldq, int rows, const float *k, int n, int d, float scale,
                            long diagonal, float *s) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < keys_seen(r, 1, diagonal, n); c++) {
            float t = 0;
            for (int dd = 0; dd < d; dd++) t += q[r * ldq + dd] * k[(long)c * d + dd];
            s[(long)r * n + c] = t * scale;
        }
}

static void values_portable(const float *p, int rows, int n, long diagonal, const float *v, int d, float *o, long ldo) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < keys_seen(r, 1, diagonal, n); c++) {
            float w = p[(long)r * n + c];
            for (int i = 0; i < d; i++) o[r * ldo + i] += w * v[(long)c * d + i];
        }
}

#if defined(__x86_64__)
// Per family: a vector of W lanes, whole loads, and loads and stores of the first `count` lanes.
T512 static inline __mmask16 first512(int count) { return count >= 16 ? 0xffff : (__mmask16)((1u << count) - 1); }
T512 static inline __m512 ldn512(const float *p, int count) { return _mm512_maskz_loadu_ps(first512(count), p); }
T512 static inline void stn512(float *p, __m512 v, int count) { _mm512_mask_storeu_ps(p, first512(count), v); }
T256 static inline __m256i first256(int count) { return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)); }
T256 static inline __m256 ldn256(const float *p, int count) { return count >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, first256(count)); }
T256 static inline void stn256(float *p, __m256 v, int count) { if (count >= 8) _mm256_storeu_ps(p, v); else _mm256_maskstore_ps(p, first256(count), v); }

// S = scale·Q·Kᵀ from Kᵀ [d, np]: blocks of TILE_ROWS rows × NK vectors of keys (4 of 16 lanes with
// AVX-512's 32 registers; 2 of 8 with AVX2's 16, where 4 × 4 sums spilled to memory: 16–44 GFLOP/s
// on one core of an AMD EPYC forced to AVX2, against 94–102 for the AVX-512 build).
#define TILE_SCORES(NAME, ATTR, V, W, NK, LD, STN, SET1, FMA, MUL, ZERO)                                  \
ATTR static void NAME(const float *q, long ldq, int rows, const float *kt, long np, int n, int d, float scale, \
                      long diagonal, float *s) {                                                          \
    V sc = SET1(scale);                                                                                   \
    for (int r0 = 0; r0 < rows; r0 += TILE_ROWS) {                                                        \
        int nr = rows - r0 < TILE_ROWS ? rows - r0 : TILE_ROWS, seen = keys_seen(r0, nr, diagonal, n);    \
        const float *qr[TILE_ROWS];                                                                       \
        for (int i = 0; i < TILE_ROWS; i++) qr[i] = q + (r0 + (i < nr ? i : nr - 1)) * ldq;  /* a short block repeats its last row */ \
        for (int c = 0; c < seen; c += NK * W) {                                                          \
            V a[TILE_ROWS][NK];                                                                           \
            for (int i = 0; i < TILE_ROWS; i++) for (int v = 0; v < NK; v++) a[i][v] = ZERO();            \
            for (int dd = 0; dd < d; dd++) {                                                              \
                const float *kr = kt + dd * np + c;                                                       \
                V k[NK];                                                                                  \
                for (int v = 0; v < NK; v++) k[v] = LD(kr + v * W);                                       \
                for (int i = 0; i < TILE_ROWS; i++) {                                                     \
                    V qb = SET1(qr[i][dd]);                                                               \
                    for (int v = 0; v < NK; v++) a[i][v] = FMA(qb, k[v], a[i][v]);                        \
                }                                                                                         \
            }                                                                                             \
            for (int i = 0; i < TILE_ROWS; i++)         /* fixed counts with tests: see TILE_VALUES */    \
                for (int v = 0; v < NK; v++)                                                              \
                    if (i < nr && c + W * v < seen) STN(s + (long)(r0 + i) * n + c + W * v, MUL(a[i][v], sc), seen - c - W * v); \
        }                                                                                                 \
    }                                                                                                     \
}

// O += P·V over dimensions [d0, d0 + W·NV), the last vector holding `last` of them (1…W).
#define TILE_VALUES(NAME, ATTR, V, W, NV, LDN, STN, SET1, FMA, ZERO)                                      \
ATTR static void NAME(const float *p, int rows, int n, long diagonal, const float *v, int d, int d0, int last, \
                      float *o, long ldo) {                                                               \
    for (int r0 = 0; r0 < rows; r0 += TILE_ROWS) {                                                        \
        int nr = rows - r0 < TILE_ROWS ? rows - r0 : TILE_ROWS, seen = keys_seen(r0, nr, diagonal, n);    \
        const float *pr[TILE_ROWS];                                                                       \
        for (int i = 0; i < TILE_ROWS; i++) pr[i] = p + (long)(r0 + (i < nr ? i : nr - 1)) * n;          \
        V a[TILE_ROWS][NV];                                                                               \
        for (int i = 0; i < TILE_ROWS; i++)                                                               \
            for (int j = 0; j < NV; j++)                                                                  \
                a[i][j] = i < nr ? LDN(o + (r0 + i) * ldo + d0 + W * j, j == NV - 1 ? last : W) : ZERO(); \
        for (int c = 0; c < seen; c++) {                                                                  \
            const float *vr = v + (long)c * d + d0;                                                       \
            V vv[NV];                                                                                     \
            for (int j = 0; j < NV; j++) vv[j] = LDN(vr + W * j, j == NV - 1 ? last : W);                  \
            for (int i = 0; i < TILE_ROWS; i++) {                                                         \
                V pb = SET1(pr[i][c]);                                                                    \
                for (int j = 0; j < NV; j++) a[i][j] = FMA(pb, vv[j], a[i][j]);                           \
            }                                                                                             \
        }                                                                                                 \
        /* A fixed count with a test, not i < nr: with a bound only known at run time, the sums of */      \
        /* NV = 2 were kept in memory and stored after every multiply-add (half the speed).       */      \
        for (int i = 0; i < TILE_ROWS; i++)                                                               \
            if (i < nr)                                                                                   \
                for (int j = 0; j < NV; j++) STN(o + (r0 + i) * ldo + d0 + W * j, a[i][j], j == NV - 1 ? last : W); \
    }                                                                                                     \
}

// All d dimensions, 4 vectors at a time, then 2 and 1 for what is left.
#define TILE_VALUES_ALL(NAME, ATTR, W, V4, V2, V1)                                                         \
ATTR static void NAME(const float *p, int rows, int n, long diagonal, const float *v, int d, float *o, long ldo) { \
    int d0 = 0;                                                                                           \
    for (; d - d0 > 2 * W; d0 += 4 * W) {                                                                 \
        int left = d - d0;                                                                                \
        if (left > 3 * W) V4(p, rows, n, diagonal, v, d, d0, left >= 4 * W ? W : left - 3 * W, o, ldo);   \
        else { V2(p, rows, n, diagonal, v, d, d0, W, o, ldo); V1(p, rows, n, diagonal, v, d, d0 + 2 * W, left - 2 * W, o, ldo); } \
    }                                                                                                     \
    if (d - d0 > W) V2(p, rows, n, diagonal, v, d, d0, d - d0 - W, o, ldo);                               \
    else if (d > d0) V1(p, rows, n, diagonal, v, d, d0, d - d0, o, ldo);                                  \
}

// AVX2: 2 vectors at a time, then 1 (4 rows × 4 vectors of sums do not fit in 16 registers: spilled,
// the d = 64 tile ran at 8.6 GFLOP/s on one core of an AMD EPYC forced to AVX2).
#define TILE_VALUES_PAIRS(NAME, ATTR, W, V2, V1)                                                           \
ATTR static void NAME(const float *p, int rows, int n, long diagonal, const float *v, int d, float *o, long ldo) { \
    int d0 = 0;                                                                                           \
    for (; d - d0 > W; d0 += 2 * W) V2(p, rows, n, diagonal, v, d, d0, d - d0 >= 2 * W ? W : d - d0 - W, o, ldo); \
    if (d > d0) V1(p, rows, n, diagonal, v, d, d0, d - d0, o, ldo);                                       \
}

#define ZERO512() _mm512_setzero_ps()
#define ZERO256() _mm256_setzero_ps()
TILE_SCORES(scores_512, T512, __m512, 16, 4, _mm512_loadu_ps, stn512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_mul_ps, ZERO512)
TILE_SCORES(scores_256, T256, __m256, 8, 2, _mm256_loadu_ps, stn256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_mul_ps, ZERO256)
TILE_VALUES(values_512_v4, T512, __m512, 16, 4, ldn512, stn512, _mm512_set1_ps, _mm512_fmadd_ps, ZERO512)
TILE_VALUES(values_512_v2, T512, __m512, 16, 2, ldn512, stn512, _mm512_set1_ps, _mm512_fmadd_ps, ZERO512)
TILE_VALUES(values_512_v1, T512, __m512, 16, 1, ldn512, stn512, _mm512_set1_ps, _mm512_fmadd_ps, ZERO512)
TILE_VALUES(values_256_v2, T256, __m256, 8, 2, ldn256, stn256, _mm256_set1_ps, _mm256_fmadd_ps, ZERO256)
TILE_VALUES(values_256_v1, T256, __m256, 8, 1, ldn256, stn256, _mm256_set1_ps, _mm256_fmadd_ps, ZERO256)
TILE_VALUES_ALL(values_512, T512, 16, values_512_v4, values_512_v2, values_512_v1)
TILE_VALUES_PAIRS(values_256, T256, 8, values_256_v2, values_256_v1)
#endif

void orochi_attention_scores(const float *q, long ldq, int rows, const float *k, int n, int d, float scale,
                             long diagonal, float *kt, float *s) {
#if defined(__x86_64__)
    int isa = orochi_isa();
    if (isa != OROCHI_ISA_PORTABLE) {
        long np = orochi_attention_kt_columns(n);
        int seen = keys_seen(0, rows, diagonal, n);  // keys any row sees: only those are transposed
        if (isa == OROCHI_ISA_AVX512) transpose_keys_512(k, seen, d, kt, np); else transpose_keys(k, seen, d, kt, np);
        if (isa == OROCHI_ISA_AVX512) scores_512(q, ldq, rows, kt, np, n, d, scale, diagonal, s);
        else scores_256(q, ldq, rows, kt, np, n, d, scale, diagonal, s);
        return;
    }
#endif
    (void)kt;
    scores_portable(q, ldq, rows, k, n, d, scale, diagonal, s);
}

void orochi_attention_values(const float *p, int rows, int n, long diagonal, const float *v, int d, float *o, long ldo) {
#if defined(__x86_64__)
    switch (orochi_isa()) {
    case OROCHI_ISA_AVX512: values_512(p, rows, n, diagonal, v, d, o, ldo); return;
    case OROCHI_ISA_AVX2: values_256(p, rows, n, diagonal, v, d, o, ldo); return;
    }
#endif
    values_portable(p, rows, n, diagonal, v, d, o, ldo);
}
