// Vector exponential and logarithm for the C kernels (AVX-512 and AVX2 builds), after Cephes:
// relative error ~2e-7 over the float range used here; and a 16 × 16 transpose in registers (the
// multi-token kernel's weight panels, prefill attention's key tiles). Internal to COrochiKernels.
#ifndef OROCHI_VECMATH_H
#define OROCHI_VECMATH_H
#include <stdint.h>
#include <string.h>

/// IEEE half → float, exactly (normals, subnormals, ±0, ±inf, NaN): the portable build and the
/// tails of the vector loops; the vector code converts in registers (F16C / AVX-512).
static inline float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0x1f) bits = sign | 0x7f800000u | (mant << 13);
    else if (exp != 0) bits = sign | ((exp + 112) << 23) | (mant << 13);
    else if (mant == 0) bits = sign;
    else { int e = -1; do { mant <<= 1; e++; } while (!(mant & 0x400)); bits = sign | ((uint32_t)(112 - e) << 23) | ((mant & 0x3ff) << 13); }
    float f; memcpy(&f, &bits, 4); return f;
}

/// float → IEEE half, rounded to nearest even (NaN → the quiet NaN 0x7e00 with its sign), as ggml's
/// ggml_fp32_to_fp16 for all 2³² inputs: the portable build, and the quantizers' block scales.
static inline uint16_t float_to_half(float f) {
    uint32_t x; memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, absx = x & 0x7fffffff;
    if (absx > 0x7f800000) return (uint16_t)(sign | 0x7e00);
    if (absx >= 0x477ff000) return (uint16_t)(sign | 0x7c00);                  // ±inf, or rounds to it
    if (absx < 0x38800000) {   // a subnormal half: the 24-bit significand × 2^(e − 126) in units of 2⁻²⁴
        if (absx < 0x33000000) return (uint16_t)sign;
        uint32_t mant = (absx & 0x7fffff) | 0x800000;
        int shift = 125 - (int)(absx >> 23);
        uint32_t half = mant >> (shift + 1), rem = mant & ((1u << (shift + 1)) - 1), mid = 1u << shift;
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = ((absx - 0x38000000) >> 13), rem = absx & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++;
    return (uint16_t)(sign | half);
}

#if defined(__x86_64__)
#include <immintrin.h>
#define T512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))
#define T256 __attribute__((target("avx2,fma,f16c")))

// r[j] = column j of the 16 rows r[0..15] (a 16 × 16 transpose in registers): pairs of rows
// interleaved, then pairs of pairs, then 128-bit lanes gathered in two steps; 64 shuffles.
T512 static inline void transpose16(__m512 r[16]) {
    __m512 t[16], u[16];
    for (int q = 0; q < 16; q += 2) { t[q] = _mm512_unpacklo_ps(r[q], r[q + 1]); t[q + 1] = _mm512_unpackhi_ps(r[q], r[q + 1]); }
    for (int g = 0; g < 16; g += 4) {              // u[g + s], lane L: rows g..g+3 at column 4L + s
        u[g] = _mm512_shuffle_ps(t[g], t[g + 2], 0x44); u[g + 1] = _mm512_shuffle_ps(t[g], t[g + 2], 0xEE);
        u[g + 2] = _mm512_shuffle_ps(t[g + 1], t[g + 3], 0x44); u[g + 3] = _mm512_shuffle_ps(t[g + 1], t[g + 3], 0xEE);
    }
    for (int s = 0; s < 4; s++) {
        __m512 v0 = _mm512_shuffle_f32x4(u[s], u[4 + s], 0x88), v1 = _mm512_shuffle_f32x4(u[s], u[4 + s], 0xDD);
        __m512 w0 = _mm512_shuffle_f32x4(u[8 + s], u[12 + s], 0x88), w1 = _mm512_shuffle_f32x4(u[8 + s], u[12 + s], 0xDD);
        r[s] = _mm512_shuffle_f32x4(v0, w0, 0x88); r[4 + s] = _mm512_shuffle_f32x4(v1, w1, 0x88);
        r[8 + s] = _mm512_shuffle_f32x4(v0, w0, 0xDD); r[12 + s] = _mm512_shuffle_f32x4(v1, w1, 0xDD);
    }
}

// eˣ by Cephes' polynomial (relative error ~2e-7), as SelectiveScan.exp on the Swift side.
T512 static inline __m512 exp512(__m512 x) {
    // Clamped with x as the second operand: max/min return it when it is NaN, so NaN stays NaN
    // (a NaN weight must reach the finite-logits check, not turn into e⁻⁸⁷).
    x = _mm512_min_ps(_mm512_set1_ps(88.f), _mm512_max_ps(_mm512_set1_ps(-87.f), x));
    __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT);
    __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fmadd_ps(k, _mm512_set1_ps(2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    __m512 e = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.f));
    return _mm512_scalef_ps(e, k);
}
// Cephes logf's tail for any vector type: returns log(1 + m) + e·ln 2 for m in [√½ − 1, √2 − 1]
// (a degree-9 polynomial; ln 2 in two parts).
#define CEPHES_LOG(V, m, e, FMA, FNMADD, MUL, ADD, SET1)                                                 \
    V z = MUL(m, m), y = SET1(7.0376836292E-2f);                                                        \
    y = FMA(y, m, SET1(-1.1514610310E-1f)); y = FMA(y, m, SET1(1.1676998740E-1f));                       \
    y = FMA(y, m, SET1(-1.2420140846E-1f)); y = FMA(y, m, SET1(1.4249322787E-1f));                       \
    y = FMA(y, m, SET1(-1.6668057665E-1f)); y = FMA(y, m, SET1(2.0000714765E-1f));                       \
    y = FMA(y, m, SET1(-2.4999993993E-1f)); y = FMA(y, m, SET1(3.3333331174E-1f));                       \
    y = MUL(MUL(y, m), z);                                                                               \
    y = FMA(e, SET1(-2.12194440e-4f), y);                                                                \
    y = FNMADD(z, SET1(0.5f), y);                                                                        \
    return FMA(e, SET1(0.693359375f), ADD(m, y))

// log x for x > 0 (Cephes logf): x = m·2ᵉ with m in [√½, √2), then a degree-9 polynomial in m − 1.
T512 static inline __m512 log512(__m512 x) {
    __m512 m = _mm512_getmant_ps(x, _MM_MANT_NORM_p5_1, _MM_MANT_SIGN_src);      // [0.5, 1)
    __m512 e = _mm512_add_ps(_mm512_getexp_ps(x), _mm512_set1_ps(1.f));
    __mmask16 small = _mm512_cmp_ps_mask(m, _mm512_set1_ps(0.707106781186547524f), _CMP_LT_OQ);
    e = _mm512_mask_sub_ps(e, small, e, _mm512_set1_ps(1.f));
    m = _mm512_mask_add_ps(m, small, m, m);
    m = _mm512_sub_ps(m, _mm512_set1_ps(1.f));
    CEPHES_LOG(__m512, m, e, _mm512_fmadd_ps, _mm512_fnmadd_ps, _mm512_mul_ps, _mm512_add_ps, _mm512_set1_ps);
}

T256 static inline __m256 exp256(__m256 x) {
    x = _mm256_min_ps(_mm256_set1_ps(88.f), _mm256_max_ps(_mm256_set1_ps(-87.f), x));   // NaN stays NaN, as in exp512
    __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fmadd_ps(k, _mm256_set1_ps(2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    __m256 e = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.f));
    __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(e, _mm256_castsi256_ps(bits));
}
// log x for normal x > 0, as log512 (Cephes logf); the exponent and mantissa split by bit operations.
T256 static inline __m256 log256(__m256 x) {
    __m256i bits = _mm256_castps_si256(x);
    __m256 e = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(126)));
    __m256 m = _mm256_castsi256_ps(_mm256_or_si256(_mm256_and_si256(bits, _mm256_set1_epi32(0x007fffff)),
                                                   _mm256_set1_epi32(0x3f000000)));                   // [0.5, 1)
    __m256 small = _mm256_cmp_ps(m, _mm256_set1_ps(0.707106781186547524f), _CMP_LT_OQ);
    e = _mm256_sub_ps(e, _mm256_and_ps(small, _mm256_set1_ps(1.f)));
    m = _mm256_add_ps(m, _mm256_and_ps(small, m));
    m = _mm256_sub_ps(m, _mm256_set1_ps(1.f));
    CEPHES_LOG(__m256, m, e, _mm256_fmadd_ps, _mm256_fnmadd_ps, _mm256_mul_ps, _mm256_add_ps, _mm256_set1_ps);
}
#endif
#endif
