// CPU features, read once, and the kernel family chosen from them.
#include "orochi_kernels.h"
#include <string.h>
#include <stdio.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif

static int detected = -1;   // the best family the CPU supports
static int forced = -1;     // a family set by orochi_set_isa
static char features[256];

#if defined(__x86_64__)
static int xgetbv_ok(unsigned mask) {
    unsigned eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return (eax & mask) == mask;
}
#endif

static void detect(void) {
    if (detected >= 0) return;
    int isa = OROCHI_ISA_PORTABLE;
    features[0] = 0;
#if defined(__x86_64__)
    unsigned a, b, c, d;
    int osxsave = 0, avx = 0, fma = 0, f16c = 0, avx2 = 0, f = 0, bw = 0, vl = 0, dq = 0, bf16 = 0, amx = 0;
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        osxsave = (c >> 27) & 1; avx = (c >> 28) & 1; fma = (c >> 12) & 1; f16c = (c >> 29) & 1;
    }
    // The OS must save the vector registers: YMM (bits 1, 2) and, for AVX-512, opmask and ZMM (5–7).
    int ymm = osxsave && xgetbv_ok(0x6), zmm = osxsave && xgetbv_ok(0xE6);
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        avx2 = (b >> 5) & 1; f = (b >> 16) & 1; dq = (b >> 17) & 1; bw = (b >> 30) & 1; vl = (b >> 31) & 1;
        amx = (d >> 24) & 1;   // AMX-TILE
    }
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) bf16 = (a >> 5) & 1;
    snprintf(features, sizeof features, "%s%s%s%s%s%s%s%s%s%s",
             avx2 && ymm ? "avx2 " : "", fma ? "fma " : "", f16c ? "f16c " : "",
             f && zmm ? "avx512f " : "", bw && zmm ? "avx512bw " : "", vl && zmm ? "avx512vl " : "",
             dq && zmm ? "avx512dq " : "", bf16 && zmm ? "avx512bf16 " : "", amx ? "amx " : "",
             avx ? "" : "(no avx) ");
    size_t len = strlen(features);
    if (len && features[len - 1] == ' ') features[len - 1] = 0;
    if (avx && avx2 && fma && f16c && ymm) isa = OROCHI_ISA_AVX2;
    if (isa == OROCHI_ISA_AVX2 && f && bw && vl && dq && zmm) isa = OROCHI_ISA_AVX512;
#endif
    detected = isa;
}

int orochi_isa(void) {
    detect();
    return forced >= 0 ? forced : detected;
}

int orochi_set_isa(int isa) {
    detect();
    forced = (isa >= 0 && isa <= detected) ? isa : -1;
    return orochi_isa();
}

const char *orochi_isa_name(int isa) {
    switch (isa) {
    case OROCHI_ISA_AVX512: return "avx512";
    case OROCHI_ISA_AVX2: return "avx2";
    default: return "portable";
    }
}

const char *orochi_cpu_features(void) {
    detect();
    return features;
}
