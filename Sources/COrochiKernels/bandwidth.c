// Streaming read bandwidth: the roofline of a decode step, whose weights (and KV cache) are
// read once per token. Every thread of the pool sums its share of one buffer.
#include "orochi_kernels.h"
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

typedef struct { const float *data; long count; float result[64]; } read_job;

#if defined(__x86_64__)
// Four streams at once (the four quarters of the part), each prefetched 1 KiB ahead: the access
// pattern of the matrix-vector kernels, which read four rows at a time and prefetch the next four.
// A single prefetch-less stream measures the core's latency-bound share, not the memory's.
__attribute__((target("avx512f"))) static float sum512(const float *p, long n) {
    long q = (n / 4) & ~63L;
    const float *p0 = p, *p1 = p + q, *p2 = p + 2 * q, *p3 = p + 3 * q;
    __m512 a = _mm512_setzero_ps(), b = a, c = a, d = a;
    for (long i = 0; i + 16 <= q; i += 16) {
        _mm_prefetch((const char *)(p0 + i) + 1024, _MM_HINT_T0); _mm_prefetch((const char *)(p1 + i) + 1024, _MM_HINT_T0);
        _mm_prefetch((const char *)(p2 + i) + 1024, _MM_HINT_T0); _mm_prefetch((const char *)(p3 + i) + 1024, _MM_HINT_T0);
        a = _mm512_add_ps(a, _mm512_load_ps(p0 + i)); b = _mm512_add_ps(b, _mm512_load_ps(p1 + i));
        c = _mm512_add_ps(c, _mm512_load_ps(p2 + i)); d = _mm512_add_ps(d, _mm512_load_ps(p3 + i));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a, b), _mm512_add_ps(c, d)));
}
__attribute__((target("avx2"))) static float sum256(const float *p, long n) {
    long q = (n / 4) & ~63L;
    const float *p0 = p, *p1 = p + q, *p2 = p + 2 * q, *p3 = p + 3 * q;
    __m256 a = _mm256_setzero_ps(), b = a, c = a, d = a;
    for (long i = 0; i + 8 <= q; i += 8) {
        if ((i & 15) == 0) {
            _mm_prefetch((const char *)(p0 + i) + 1024, _MM_HINT_T0); _mm_prefetch((const char *)(p1 + i) + 1024, _MM_HINT_T0);
            _mm_prefetch((const char *)(p2 + i) + 1024, _MM_HINT_T0); _mm_prefetch((const char *)(p3 + i) + 1024, _MM_HINT_T0);
        }
        a = _mm256_add_ps(a, _mm256_load_ps(p0 + i)); b = _mm256_add_ps(b, _mm256_load_ps(p1 + i));
        c = _mm256_add_ps(c, _mm256_load_ps(p2 + i)); d = _mm256_add_ps(d, _mm256_load_ps(p3 + i));
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(a, b), _mm256_add_ps(c, d));
    float t[8]; _mm256_storeu_ps(t, s);
    return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}
#endif

static void read_part(void *ctx, int index, int count) {
    read_job *j = ctx;
    long per = (j->count / count) & ~255L;
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

static double measure(float *data, size_t bytes, int reps, int parallel) {
    read_job job = {data, (long)(bytes / 4), {0}};
    double rates[64];
    if (parallel) orochi_pool_run(read_part, &job); else read_part(&job, 0, 1);   // warm-up
    for (int r = 0; r < reps; r++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        if (parallel) orochi_pool_run(read_part, &job); else read_part(&job, 0, 1);
        clock_gettime(CLOCK_MONOTONIC, &b);
        double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9;
        rates[r] = s > 0 ? (double)bytes / s : 0;
    }
    qsort(rates, (size_t)reps, sizeof(double), cmp);
    return rates[reps / 2];
}

void *orochi_alloc_huge_pages(size_t bytes) {
    size_t huge = (size_t)2 << 20, length = (bytes + huge - 1) / huge * huge;
    void *p = aligned_alloc(huge, length ? length : huge);
#if defined(MADV_HUGEPAGE)
    if (p) madvise(p, length, MADV_HUGEPAGE);
#endif
    return p;
}

double orochi_read_bandwidth(size_t bytes, int reps) {
    if (reps < 1) reps = 1;
    if (reps > 64) reps = 64;
    bytes &= ~(size_t)255;
    float *data = orochi_alloc_huge_pages(bytes);   // the roofline read as decode reads weights
    if (!data) return 0;
    memset(data, 0, bytes);                     // resident before timing
    double one = measure(data, bytes, reps, 0), all = orochi_pool_threads() > 1 ? measure(data, bytes, reps, 1) : one;
    free(data);
    return one > all ? one : all;               // the roofline: the most this machine reads, on one thread or all
}
