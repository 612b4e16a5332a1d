// Streaming read bandwidth: the roofline of a decode step, whose weights (and KV cache) are
// read once per token. Every thread of the pool sums its share of one buffer.
#include "orochi_kernels.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

typedef struct { const float *data; long count; float result[64]; } read_job;

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static float sum512(const float *p, long n) {
    __m512 a = _mm512_setzero_ps(), b = a, c = a, d = a;
    for (long i = 0; i + 64 <= n; i += 64) {
        a = _mm512_add_ps(a, _mm512_load_ps(p + i)); b = _mm512_add_ps(b, _mm512_load_ps(p + i + 16));
        c = _mm512_add_ps(c, _mm512_load_ps(p + i + 32)); d = _mm512_add_ps(d, _mm512_load_ps(p + i + 48));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a, b), _mm512_add_ps(c, d)));
}
__attribute__((target("avx2"))) static float sum256(const float *p, long n) {
    __m256 a = _mm256_setzero_ps(), b = a, c = a, d = a;
    for (long i = 0; i + 32 <= n; i += 32) {
        a = _mm256_add_ps(a, _mm256_load_ps(p + i)); b = _mm256_add_ps(b, _mm256_load_ps(p + i + 8));
        c = _mm256_add_ps(c, _mm256_load_ps(p + i + 16)); d = _mm256_add_ps(d, _mm256_load_ps(p + i + 24));
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(a, b), _mm256_add_ps(c, d));
    float t[8]; _mm256_storeu_ps(t, s);
    return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}
#endif

static void read_part(void *ctx, int index, int count) {
    read_job *j = ctx;
    long per = (j->count / count) & ~63L;
    const float *p = j->data + per * index;
    float s = 0;
#if defined(__x86_64__)
    if (orochi_isa() == OROCHI_ISA_AVX512) s = sum512(p, per);
    else if (orochi_isa() == OROCHI_ISA_AVX2) s = sum256(p, per);
    else
#endif
    for (long i = 0; i < per; i++) s += p[i];
    j->result[index] = s;
}

static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

double orochi_read_bandwidth(size_t bytes, int reps) {
    if (reps < 1) reps = 1;
    if (reps > 64) reps = 64;
    bytes &= ~(size_t)255;
    float *data = aligned_alloc(64, bytes);
    if (!data) return 0;
    memset(data, 0, bytes);                     // resident before timing
    read_job job = {data, (long)(bytes / 4), {0}};
    double rates[64];
    orochi_pool_run(read_part, &job);           // warm-up
    for (int r = 0; r < reps; r++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        orochi_pool_run(read_part, &job);
        clock_gettime(CLOCK_MONOTONIC, &b);
        double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9;
        rates[r] = s > 0 ? (double)bytes / s : 0;
    }
    free(data);
    qsort(rates, (size_t)reps, sizeof(double), cmp);
    return rates[reps / 2];
}
