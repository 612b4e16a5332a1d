// A small thread pool for the one-token kernels. Decode issues dozens of short parallel jobs per
// token (a matrix-vector product takes microseconds), so waking threads through the kernel each
// time would cost more than the work: workers spin for a while after each job (100 µs: the gap
// between the products of one token; longer spins cost more than they save on a machine shared
// with other work, where a spinning worker takes the core its own caller needs), then sleep on a
// condition variable until the next job.
//
// A job is cut into chunks that the caller and the workers claim one at a time, so that a worker
// the OS has not scheduled yet never holds the caller up: the caller runs the chunks nobody
// claimed and returns once every claimed chunk is done. The chunks are grouped in homes (three
// consecutive chunks, an equal share of the rows: orochi_pool_guided_start), and thread t claims
// the chunks of its own homes first (home h is thread h mod threads'), front to back, then what
// is left of the others', back to front, from one word per home (generation | front | back). So
// each thread reads the same rows of a matrix token after token, and finds them in its own
// core's caches more often. A 6.4M model's weights (25 MB in f32) fill most of the last-level
// cache, shared with other machines here: one-token products cycling over 26 MB read 97–103 GB/s
// with the rows claimed in one shared order and 116–122 with each thread on the same half every
// time, 45 (median of 5) with the halves swapped every pass (AMD EPYC, 2 threads). In the engine
// the gain is smaller, as the threads still trade the last, small chunks: decode +1.4 % and
// +4.6 % (mamba-6m f32, two sets of paired runs), +4.3 % (llama-6m f32), +1.6 % (llama-6m f16).
// A worker that wakes late finds the generation moved on and goes back to waiting.
#include "orochi_kernels.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

enum { MAX_THREADS = 64 };

static int threads = 1;                       // wanted, the caller included
static int started = 0;                       // workers running
static pthread_mutex_t busy = PTHREAD_MUTEX_INITIALIZER;    // one job at a time
static pthread_mutex_t sleep_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static _Atomic uint64_t claim;                // generation << 32 | threads << 24 | homes << 16 | chunk count
static _Atomic uint64_t home_word[OROCHI_POOL_MAX_HOMES];   // per home: generation << 32 | front << 16 | back
static atomic_int done;                       // chunks finished in this generation
static atomic_int sleepers;
static void (*job_fn)(void *, int, int);
static void *job_ctx;
// On a machine busy with other work, a worker can be preempted holding a chunk, and the caller then
// waits out the OS's time slice. When the caller waits longer for the others than it worked itself,
// the next jobs run on the caller alone (256 of them, doubling up to 16,384 while it keeps
// happening, halving back when it stops): a busy machine then costs a thread, not a time slice.
static int solo_left = 0, solo_next = 256;
static unsigned recent = 0;                   // one bit per recent parallel job: 1 if it stalled

static inline uint32_t gen_of(uint64_t w) { return (uint32_t)(w >> 32); }
static inline int threads_of(uint64_t w) { return (int)((w >> 24) & 0xff); }
static inline int homes_of(uint64_t w) { return (int)((w >> 16) & 0xff); }
static inline int count_of(uint64_t w) { return (int)(w & 0xffff); }
static inline int front_of(uint64_t w) { return (int)((w >> 16) & 0xffff); }
static inline int back_of(uint64_t w) { return (int)(w & 0xffff); }

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/// Claims the first (from_back: the last) unclaimed chunk of home `h` in generation `g`; -1 if none.
static int claim_in(int h, uint32_t g, int from_back) {
    uint64_t w = atomic_load_explicit(&home_word[h], memory_order_acquire);
    for (;;) {
        if (gen_of(w) != g || front_of(w) >= back_of(w)) return -1;
        uint64_t next = from_back ? w - 1 : w + (1u << 16);
        if (atomic_compare_exchange_weak_explicit(&home_word[h], &w, next, memory_order_acq_rel, memory_order_acquire))
            return from_back ? back_of(w) - 1 : front_of(w);
    }
}

/// Claims and runs chunks of generation `g` as thread `self` until none is left: its own homes'
/// front to back, then the others' back to front.
static void work(uint32_t g, int self) {
    uint64_t c = atomic_load_explicit(&claim, memory_order_acquire);
    if (gen_of(c) != g) return;
    int homes = homes_of(c), count = count_of(c), team = threads_of(c);
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < homes; i++) {
            int h = pass == 0 ? self + i * team : (self + 1 + i) % homes;
            if (pass == 0 && h >= homes) break;
            int index;
            while ((index = claim_in(h, g, pass)) >= 0) {
                // The chunk is ours and not done, so the caller is still waiting: job_fn and job_ctx are this job's.
                job_fn(job_ctx, index, count);
                atomic_fetch_add_explicit(&done, 1, memory_order_release);
            }
        }
    }
}

static void *worker(void *arg) {
    int self = (int)(intptr_t)arg;
    uint32_t seen = gen_of(atomic_load(&claim));
    for (;;) {
        uint32_t g;
        int spins = 0;
        double start = 0;
        while ((g = gen_of(atomic_load_explicit(&claim, memory_order_acquire))) == seen) {
            CPU_RELAX();
            if (++spins == 1024) {
                spins = 0;
                if (start == 0) start = now();
                else if (now() - start > 1e-4) {
                    pthread_mutex_lock(&sleep_lock);
                    atomic_fetch_add(&sleepers, 1);
                    while (gen_of(atomic_load(&claim)) == seen) pthread_cond_wait(&wake, &sleep_lock);
                    atomic_fetch_sub(&sleepers, 1);
                    pthread_mutex_unlock(&sleep_lock);
                    start = 0;
                }
            }
        }
        seen = g;
        work(g, self);
    }
    return NULL;
}

void orochi_pool_set_threads(int n) {
    if (n < 1) n = 1;
    if (n > MAX_THREADS) n = MAX_THREADS;
    threads = n;
}

int orochi_pool_threads(void) { return threads; }

void orochi_pool_run_chunks(void (*fn)(void *, int, int), void *ctx, int chunks) {
    if (chunks > 0xffff) chunks = 0xffff;
    if (chunks <= 1 || threads <= 1 || pthread_mutex_trylock(&busy) != 0) {
        for (int i = 0; i < chunks; i++) fn(ctx, i, chunks);
        return;
    }
    if (solo_left > 0) {
        solo_left--;
        pthread_mutex_unlock(&busy);
        for (int i = 0; i < chunks; i++) fn(ctx, i, chunks);
        return;
    }
    while (started < threads - 1) {           // workers are started once and kept
        pthread_t t;
        if (pthread_create(&t, NULL, worker, (void *)(intptr_t)(started + 1)) != 0) break;
        pthread_detach(t);
        started++;
    }
    job_fn = fn; job_ctx = ctx;
    atomic_store_explicit(&done, 0, memory_order_relaxed);
    uint32_t g = gen_of(atomic_load(&claim)) + 1;
    int homes = orochi_pool_homes(chunks);
    for (int h = 0; h < homes; h++) {          // home h: its chunks [front, back), none claimed yet
        uint64_t front = (uint64_t)orochi_pool_home_first(chunks, h), back = (uint64_t)orochi_pool_home_first(chunks, h + 1);
        atomic_store_explicit(&home_word[h], ((uint64_t)g << 32) | front << 16 | back, memory_order_relaxed);
    }
    int team = started + 1;
    atomic_store_explicit(&claim, ((uint64_t)g << 32) | ((uint64_t)team << 24) | ((uint64_t)homes << 16) | (uint64_t)chunks,
                          memory_order_seq_cst);
    if (atomic_load(&sleepers) > 0) {
        pthread_mutex_lock(&sleep_lock);
        pthread_cond_broadcast(&wake);
        pthread_mutex_unlock(&sleep_lock);
    }
    double start = now();
    work(g, 0);
    double mine = now();
    for (int spins = 0; atomic_load_explicit(&done, memory_order_acquire) < chunks; spins++) {
        if (spins < 4096) CPU_RELAX(); else sched_yield();   // a claimed chunk's thread was preempted
    }
    double waited = now() - mine;
    // Solo mode answers a core taken by other work for a while (another process), not a worker
    // preempted now and then by short bursts (a server's network threads between tokens, where
    // going solo for thousands of jobs cost a third of the throughput): it starts only when 4 of
    // the last 16 jobs waited so.
    int stalled = waited > 50e-6 && waited > mine - start;
    recent = (recent << 1) | (unsigned)stalled;
    if (stalled && __builtin_popcount(recent & 0xffffu) >= 4) {
        solo_left = solo_next;
        recent = 0;
        if (solo_next < 16384) solo_next *= 2;
    } else if (solo_next > 256 && waited < 5e-6) {
        solo_next--;                                          // drifts back while jobs run smoothly
    }
    pthread_mutex_unlock(&busy);
}

void orochi_pool_run(void (*fn)(void *, int, int), void *ctx) {
    orochi_pool_run_chunks(fn, ctx, threads);
}
