// What this machine allows, measured with the kernels Orochi runs: the ceilings that the figures of
// `make bench-peer` are read against (docs/performance.md). Built and run by `make ceilings`.
//
//   fma       peak multiply-add rate of one core and of all threads (GFLOP/s): independent
//             chains of vector FMAs, nothing from memory
//   sgemm     a layer's product of M tokens at given shapes M×N×K (row-major X[M,K]·W[N,K]ᵀ) by
//             the kernel Orochi runs for it (orochi_gemm_uses_own_for): OpenBLAS's sgemm, loaded and
//             chosen as Orochi does (blas.c), or our multi-token kernel: the prefill ceiling
//   cycle     Orochi's one-token kernel (orochi_matvec, f32) over a working set of S MB of
//             matrices (on 2 MiB pages, as Orochi holds weights) read in the same order again and
//             again, as decode reads a model's weights:
//             below the last-level cache it runs from cache, above it from DRAM
//   scan      Mamba's selective scan (orochi_selective_scan), ns per state update
//
// Usage: ceilings [--threads T] [--gemm M×N×K,...] [--cycle MB,...] [--json]
// Every figure is the median of its repetitions, after a warm-up.
#include "orochi_kernels.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static int by_value(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }
static double median(double *v, int n) { qsort(v, n, sizeof *v, by_value); return v[n / 2]; }

static void *checked(size_t bytes) {
    void *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!p) { fprintf(stderr, "ceilings: cannot allocate %zu bytes\n", bytes); exit(1); }
    return p;
}

// ---------- fma: 12 independent chains, enough to cover the latency of two FMA pipes ----------
enum { FMA_ITERATIONS = 20000000 };
#if defined(__x86_64__)
#define FMA12(F) a[0] = F(a[0], b, c); a[1] = F(a[1], b, c); a[2] = F(a[2], b, c); a[3] = F(a[3], b, c); \
                 a[4] = F(a[4], b, c); a[5] = F(a[5], b, c); a[6] = F(a[6], b, c); a[7] = F(a[7], b, c); \
                 a[8] = F(a[8], b, c); a[9] = F(a[9], b, c); a[10] = F(a[10], b, c); a[11] = F(a[11], b, c);
__attribute__((target("avx512f"))) static double fma512(void) {
    __m512 a[12], b = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(1e-4f);
    for (int i = 0; i < 12; i++) a[i] = _mm512_set1_ps(i * 1e-3f);
    double t = now();
    for (long i = 0; i < FMA_ITERATIONS; i++) {
        FMA12(_mm512_fmadd_ps)
        __asm__ volatile("" : : "v"(a[0]), "v"(a[1]), "v"(a[2]), "v"(a[3]), "v"(a[4]), "v"(a[5]),
                                "v"(a[6]), "v"(a[7]), "v"(a[8]), "v"(a[9]), "v"(a[10]), "v"(a[11]));
    }
    t = now() - t;
    volatile float sink = _mm512_reduce_add_ps(a[0]); (void)sink;
    return FMA_ITERATIONS * 12.0 * 32 / t;
}
__attribute__((target("avx2,fma"))) static double fma256(void) {
    __m256 a[12], b = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(1e-4f);
    for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps(i * 1e-3f);
    double t = now();
    for (long i = 0; i < FMA_ITERATIONS; i++) {
        FMA12(_mm256_fmadd_ps)
        __asm__ volatile("" : : "x"(a[0]), "x"(a[1]), "x"(a[2]), "x"(a[3]), "x"(a[4]), "x"(a[5]),
                                "x"(a[6]), "x"(a[7]), "x"(a[8]), "x"(a[9]), "x"(a[10]), "x"(a[11]));
    }
    t = now() - t;
    volatile float sink = _mm256_cvtss_f32(a[0]); (void)sink;
    return FMA_ITERATIONS * 12.0 * 16 / t;
}
#endif
static double fma_one(void) {
#if defined(__x86_64__)
    if (orochi_isa() == OROCHI_ISA_AVX512) return fma512();
    if (orochi_isa() == OROCHI_ISA_AVX2) return fma256();
#endif
    return 0;
}
static void *fma_thread(void *out) { *(double *)out = fma_one(); return NULL; }
static double fma_all(int threads) {
    pthread_t t[64]; double r[64] = {0}, sum = 0;
    for (int i = 1; i < threads; i++) pthread_create(&t[i], NULL, fma_thread, &r[i]);
    r[0] = fma_one();
    for (int i = 1; i < threads; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < threads; i++) sum += r[i];
    return sum;
}

// ---------- sgemm at a layer's shape ----------
/// One product Y[m, n] = X[m, k]·W[n, k]ᵀ by the kernel Orochi runs for that shape.
static void layer_product(int own, long m, long n, long k, const float *x, const float *w, float *y) {
    if (own) orochi_matvec_multi(OROCHI_F32, w, n, k, k, x, k, m, y, n, 0);
    else orochi_sgemm(111, 112, (int)m, (int)n, (int)k, 1, x, (int)k, w, (int)k, 0, y, (int)n);
}

static double sgemm_rate(long m, long n, long k, int *own) {
    float *x = checked(4 * m * k), *w = checked(4 * n * k), *y = checked(4 * m * n);
    for (long i = 0; i < m * k; i++) x[i] = (float)(i % 97) * 1e-3f;
    for (long i = 0; i < n * k; i++) w[i] = (float)(i % 89) * 1e-3f;
    double flops = 2.0 * m * n * k, times[15];
    int reps = 0;
    *own = orochi_gemm_uses_own_for(n, k);
    layer_product(*own, m, n, k, x, w, y);              // warm-up
    for (double start = now(); reps < 15 && (reps < 5 || now() - start < 2); reps++) {
        double t = now();
        layer_product(*own, m, n, k, x, w, y);
        times[reps] = now() - t;
    }
    free(x); free(w); free(y);
    return flops / median(times, reps);
}

// ---------- one-token products over a working set read in a cycle ----------
static double cycle_bandwidth(double megabytes) {
    enum { K = 256, ROWS = 1024 };                          // 1 MiB matrices, a small layer's size
    long matrices = (long)(megabytes * 1e6 / (4.0 * K * ROWS) + 0.5);
    if (matrices < 1) matrices = 1;
    float **w = checked(sizeof(float *) * matrices), *x = checked(4 * K), *y = checked(4 * ROWS);
    for (int i = 0; i < K; i++) x[i] = 1.0f / (i + 1);
    // One block on 2 MiB pages, as Orochi holds a checkpoint's weights.
    size_t bytes = (size_t)matrices * 4 * K * ROWS;
    float *block = orochi_alloc_huge_pages(bytes);
    if (!block) { fprintf(stderr, "ceilings: cannot allocate %zu bytes\n", bytes); exit(1); }
    for (long m = 0; m < matrices; m++) {
        w[m] = block + m * (long)K * ROWS;
        for (long i = 0; i < (long)K * ROWS; i++) w[m][i] = (float)(i % 7) * 0.1f;
    }
    enum { MOST = 4000 };
    double *times = checked(sizeof(double) * MOST);
    int reps = 0;
    for (double start = now(); reps < MOST && (reps < 9 || now() - start < 0.6); reps++) {
        double t = now();
        for (long m = 0; m < matrices; m++) orochi_matvec(OROCHI_F32, w[m], ROWS, K, K, x, y, 0);
        times[reps] = now() - t;
    }
    free(block); free(w); free(x); free(y);
    double bytes_per_second = 4.0 * K * ROWS * matrices / median(times + 1, reps - 1);   // the first pass fills the cache
    free(times);
    return bytes_per_second;
}

// ---------- the selective scan ----------
static double scan_ns(long steps) {
    const long e = 1536; const int n = 16;
    float *x = checked(4 * steps * e), *delta = checked(4 * steps * e), *z = checked(4 * steps * e), *y = checked(4 * steps * e);
    float *b = checked(4 * steps * n), *c = checked(4 * steps * n), *bias = checked(4 * e), *d = checked(4 * e);
    float *a = checked(4 * e * n), *blocked = checked(4 * (e + 15) / 16 * 16 * n), *state = checked(4 * (e + 15) / 16 * 16 * n);
    for (long i = 0; i < steps * e; i++) { x[i] = (float)(i % 13) * 0.05f - 0.3f; delta[i] = (float)(i % 11) * 0.1f - 0.5f; z[i] = (float)(i % 7) * 0.1f; }
    for (long i = 0; i < steps * n; i++) { b[i] = (float)(i % 5) * 0.2f; c[i] = (float)(i % 3) * 0.3f; }
    for (long i = 0; i < e; i++) { bias[i] = -2; d[i] = 1; }
    for (long i = 0; i < e * n; i++) a[i] = -(float)(1 + i % n);
    orochi_block16(a, blocked, e, n);
    memset(state, 0, 4 * (e + 15) / 16 * 16 * n);
    double times[21];
    int reps = 0;
    for (double start = now(); reps < 21 && (reps < 5 || now() - start < 2); reps++) {
        double t = now();
        orochi_selective_scan(steps, e, n, x, e, delta, e, bias, blocked, b, c, n, d, z, e, state, y, e);
        times[reps] = now() - t;
    }
    free(x); free(delta); free(z); free(y); free(b); free(c); free(bias); free(d); free(a); free(blocked); free(state);
    return median(times, reps) * 1e9 / (steps * e * n);
}

// "a,b,c" → values; returns the count.
static int parse_list(const char *s, double *out, int most) {
    int count = 0;
    while (*s && count < most) {
        char *end;
        out[count++] = strtod(s, &end);
        if (end == s) { fprintf(stderr, "ceilings: bad number in '%s'\n", s); exit(2); }
        s = *end == ',' ? end + 1 : end;
    }
    return count;
}

int main(int argc, char **argv) {
    int threads = 2, json = 0, gemms = 0, cycles = 0;
    long shapes[32][3];
    double sets[32];
    const char *default_gemm = "512x768x768,512x2048x768,512x768x2048";
    const char *gemm_arg = default_gemm, *cycle_arg = "8,16,24,32,48,64,256";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--gemm") && i + 1 < argc) gemm_arg = argv[++i];
        else if (!strcmp(argv[i], "--cycle") && i + 1 < argc) cycle_arg = argv[++i];
        else { fprintf(stderr, "usage: ceilings [--threads T] [--gemm MxNxK,...] [--cycle MB,...] [--json]\n"); return 2; }
    }
    if (threads < 1 || threads > 64) { fprintf(stderr, "ceilings: --threads must be 1-64\n"); return 2; }
    for (const char *s = gemm_arg; *s && gemms < 32; gemms++) {
        char *end;
        for (int j = 0; j < 3; j++) {
            shapes[gemms][j] = strtol(s, &end, 10);
            if (end == s || shapes[gemms][j] < 1 || shapes[gemms][j] > 65536) { fprintf(stderr, "ceilings: bad shape in '%s' (M×N×K, each 1-65536)\n", s); return 2; }
            s = (*end == 'x' || *end == ',') ? end + 1 : end;
        }
    }
    cycles = parse_list(cycle_arg, sets, 32);
    for (int i = 0; i < cycles; i++)
        if (!(sets[i] > 0 && sets[i] <= 4096)) { fprintf(stderr, "ceilings: working sets must be 0-4096 MB\n"); return 2; }
    if (orochi_blas_load() != 0) { fprintf(stderr, "ceilings: %s\n", orochi_blas_error()); return 1; }
    orochi_blas_set_threads(threads);
    orochi_pool_set_threads(threads);

    double fma1 = fma_one(), fmaT = fma_all(threads);
    if (json) printf("{\"threads\": %d, \"isa\": \"%s\", \"blas\": \"%s\", \"fma_one_core\": %.4g, \"fma_all\": %.4g,\n \"sgemm\": [",
                     threads, orochi_isa_name(orochi_isa()), orochi_blas_core(), fma1, fmaT);
    else printf("threads %d, orochi kernels %s, OpenBLAS core %s\nfma peak: %.1f GFLOP/s on one core, %.1f on %d threads\n",
                threads, orochi_isa_name(orochi_isa()), orochi_blas_core(), fma1 / 1e9, fmaT / 1e9, threads);
    for (int i = 0; i < gemms; i++) {
        int own;
        double r = sgemm_rate(shapes[i][0], shapes[i][1], shapes[i][2], &own);
        const char *by = own ? "orochi" : "openblas";
        if (json) printf("%s{\"m\": %ld, \"n\": %ld, \"k\": %ld, \"flops\": %.4g, \"kernel\": \"%s\"}", i ? ", " : "", shapes[i][0], shapes[i][1], shapes[i][2], r, by);
        else printf("product %ldx%ldx%ld (%s): %.1f GFLOP/s (%.0f %% of the fma peak)\n", shapes[i][0], shapes[i][1], shapes[i][2], by, r / 1e9, fmaT > 0 ? 100 * r / fmaT : 0);
    }
    if (json) printf("],\n \"cycle\": [");
    for (int i = 0; i < cycles; i++) {
        double bw = cycle_bandwidth(sets[i]);
        if (json) printf("%s{\"megabytes\": %g, \"bytes_per_second\": %.4g}", i ? ", " : "", sets[i], bw);
        else printf("one-token products cycling over %g MB: %.1f GB/s\n", sets[i], bw / 1e9);
    }
    double scan_prefill = scan_ns(512), scan_decode = scan_ns(1);
    if (json) printf("],\n \"scan_ns_per_update\": {\"prefill512\": %.4g, \"decode\": %.4g}}\n", scan_prefill, scan_decode);
    else printf("selective scan (1,536 channels, state 16): %.3f ns per state update over 512 steps, %.3f for one step\n", scan_prefill, scan_decode);
    return 0;
}
