// OpenBLAS, loaded by us rather than linked.
//
// Why: OpenBLAS picks its kernels once, in a constructor that runs when the library is loaded —
// before main() of a program linked against it — from its own table of CPUs or from the
// OPENBLAS_CORETYPE variable. Debian's 0.3.21 does not know recent CPUs (an Intel Xeon with
// AMX, AMD Zen 5) and falls back to its SSE3 "Prescott" kernels there, 2–4× slower. A linked
// program can only fix that by having its user set the variable before starting it. So we load
// the library with dlopen at the first matrix product, after choosing the core type from the
// CPU's features (cpuid): SkylakeX with AVX-512, Haswell with AVX2 + FMA, OpenBLAS's own choice
// otherwise. A user's own OPENBLAS_CORETYPE is respected as it is. The variable is restored
// afterwards, so that processes we start see the environment they were given.
//
// OPENBLAS_THREAD_TIMEOUT likewise: after a product, OpenBLAS's idle threads call sched_yield in
// a loop for 2^28 TSC cycles (about 0.1 s) before they sleep. Between products Orochi runs its own
// threads (the selective scan, attention's tiles), and with as many cores as threads the spinning
// one takes a core from them: in mamba-130m's 512-token prefill the scan took 20-22 % of the pass
// with the default and 13-14 % with 2^16 cycles (about 25 µs), the pass 0.69-0.74 s against
// 0.66-0.67 s (three alternating pairs, `orochi bench --breakdown-contexts 512`). So we set 2^16
// unless the user set a value.
#include "orochi_kernels.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
typedef void (*sgemv_fn)(int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
typedef void (*set_threads_fn)(int);
typedef int (*get_threads_fn)(void);
typedef char *(*get_string_fn)(void);

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int status = -1;
static char error[512];
static char reason[256];
static char idle_reason[160];
static sgemm_fn p_sgemm;
static sgemv_fn p_sgemv;
static set_threads_fn p_set_threads;
static get_threads_fn p_get_threads;
static get_string_fn p_corename, p_config;

const char *orochi_blas_preferred_core(void) {
    switch (orochi_isa()) {
    case OROCHI_ISA_AVX512: return "SkylakeX";
    case OROCHI_ISA_AVX2: return "Haswell";
    default: return NULL;
    }
}

static void classify_core(void);

static void load(void) {
    const char *user = getenv("OPENBLAS_CORETYPE");
    int ours = 0;
    if (user && *user) {
        snprintf(reason, sizeof reason, "OPENBLAS_CORETYPE=%s set by the user", user);
    } else {
        const char *best = orochi_blas_preferred_core();
        if (best) {
            setenv("OPENBLAS_CORETYPE", best, 1);
            ours = 1;
            snprintf(reason, sizeof reason, "chosen by orochi for its %s kernels, from the CPU's features (%s)",
                     orochi_isa_name(orochi_isa()), orochi_cpu_features());
        } else {
            snprintf(reason, sizeof reason, "OpenBLAS's own choice (orochi's %s kernels: no AVX2 on this CPU, or not asked for)",
                     orochi_isa_name(orochi_isa()));
        }
    }
    enum { IDLE_CYCLES_LOG2 = 16 };
    const char *user_timeout = getenv("OPENBLAS_THREAD_TIMEOUT");
    int our_timeout = 0;
    if (user_timeout && *user_timeout) {
        snprintf(idle_reason, sizeof idle_reason, "OPENBLAS_THREAD_TIMEOUT=%s set by the user", user_timeout);
    } else {
        char value[8];
        snprintf(value, sizeof value, "%d", IDLE_CYCLES_LOG2);
        setenv("OPENBLAS_THREAD_TIMEOUT", value, 1);
        our_timeout = 1;
        snprintf(idle_reason, sizeof idle_reason, "OPENBLAS_THREAD_TIMEOUT=%d set by orochi: idle threads sleep after 2^%d cycles",
                 IDLE_CYCLES_LOG2, IDLE_CYCLES_LOG2);
    }
    const char *names[] = {"libopenblas.so.0", "libopenblas.so", "libopenblasp.so.0", NULL};
    void *h = NULL;
    for (int i = 0; names[i] && !h; i++) h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (ours) unsetenv("OPENBLAS_CORETYPE");
    if (our_timeout) unsetenv("OPENBLAS_THREAD_TIMEOUT");
    if (!h) {
        snprintf(error, sizeof error, "cannot load OpenBLAS (libopenblas.so.0): %s; install it with 'apt-get install libopenblas-dev'", dlerror());
        return;
    }
    p_sgemm = (sgemm_fn)dlsym(h, "cblas_sgemm");
    p_sgemv = (sgemv_fn)dlsym(h, "cblas_sgemv");
    p_set_threads = (set_threads_fn)dlsym(h, "openblas_set_num_threads");
    p_get_threads = (get_threads_fn)dlsym(h, "openblas_get_num_threads");
    p_corename = (get_string_fn)dlsym(h, "openblas_get_corename");
    p_config = (get_string_fn)dlsym(h, "openblas_get_config");
    if (!p_sgemm || !p_sgemv || !p_set_threads || !p_get_threads) {
        snprintf(error, sizeof error, "the loaded OpenBLAS lacks cblas_sgemm, cblas_sgemv or openblas_set_num_threads");
        return;
    }
    status = 0;
    classify_core();
}

int orochi_blas_load(void) {
    pthread_once(&once, load);
    return status;
}

const char *orochi_blas_error(void) { orochi_blas_load(); return error; }
const char *orochi_blas_core_reason(void) { orochi_blas_load(); return reason; }
const char *orochi_blas_idle_reason(void) { orochi_blas_load(); return idle_reason; }
const char *orochi_blas_core(void) { return orochi_blas_load() == 0 && p_corename ? p_corename() : ""; }
const char *orochi_blas_config(void) { return orochi_blas_load() == 0 && p_config ? p_config() : ""; }

static void need(void) {
    if (orochi_blas_load() != 0) {
        fprintf(stderr, "orochi: %s\n", error);
        exit(1);
    }
}

// OpenBLAS's cores without AVX (its names, openblas_get_corename()). On a CPU with AVX-512 their
// sgemm runs at a fraction of what the CPU does: OPENBLAS_CORETYPE=Prescott gave llama-130m's
// prefill a quarter of the SkylakeX kernels' speed.
static const char *const sse_cores[] = {
    "Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "Katmai", "Coppermine", "Northwood",
    "Banias", "Opteron", "Opteron_SSE3", "Barcelona", "Bobcat", "Nano", "Unknown", NULL,
};
static int gemm_mode = 0;
static int core_is_sse = 0;                   // set once, when the library is loaded

static void classify_core(void) {
    const char *core = p_corename ? p_corename() : "";
    for (int i = 0; sse_cores[i]; i++)
        if (strcasecmp(core, sse_cores[i]) == 0) core_is_sse = 1;
}

int orochi_blas_is_weak(void) {
    // The ISA is read each time: tests force kernel families.
    return orochi_blas_load() == 0 && core_is_sse && orochi_isa() == OROCHI_ISA_AVX512;
}

void orochi_set_gemm_mode(int mode) { gemm_mode = mode; }

int orochi_gemm_uses_own(void) {
    if (gemm_mode == 1) return 1;
    if (gemm_mode == 2) return 0;
    return orochi_blas_is_weak();
}

int orochi_gemm_uses_own_for(long n, long k) {
    if (orochi_gemm_uses_own()) return 1;
    if (gemm_mode != 0 || orochi_isa() != OROCHI_ISA_AVX512) return 0;
    return n * k <= OROCHI_SMALL_PRODUCT || orochi_panel_shape(n, k);
}

void orochi_blas_set_threads(int threads) { need(); p_set_threads(threads); }
int orochi_blas_threads(void) { need(); return p_get_threads(); }

enum { ROW_MAJOR = 101 };

void orochi_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                  const float *b, int ldb, float beta, float *c, int ldc) {
    need();
    p_sgemm(ROW_MAJOR, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void orochi_sgemv(int trans, int m, int n, float alpha, const float *a, int lda, const float *x,
                  float beta, float *y) {
    need();
    p_sgemv(ROW_MAJOR, trans, m, n, alpha, a, lda, x, 1, beta, y, 1);
}
