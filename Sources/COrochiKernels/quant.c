// GGUF's block-quantized weights: quantization equal bit for bit to ggml's reference (at the end),
// dequantization equal bit for bit to gguf-py's, and products with an 8-bit quantized input as
// llama.cpp computes them (integer dot products per block, one float scale per block). Two builds
// of the products — AVX2 (also taken on AVX-512 CPUs) and portable C, the same integer arithmetic —
// chosen at run time.
//
// Two forms of quantized input (orochi_quantize_activation), each one row of k values:
//   per 32 (Q4_0 … Q8_0):  int8 q[k] | float d[k/32] | float s[k/32]   (x ≈ d·q, s = d·Σq)
//   per 256 (K-quants):    int8 q[k] | float d[k/256] | int16 bsums[k/16]   (Σq per 16)
// The sums carry a format's offset: a block of w = d_w·u + m_w (u unsigned) gives
// Σ w·x = d_w·d_x·Σ u·q + m_w·s, so the integer part is one unsigned × signed byte product
// (maddubs), and Q4_0's −8 or Q6_K's −32 cost nothing per weight.
#include "orochi_kernels.h"
#include "vecmath.h"
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#define AINLINE static inline __attribute__((always_inline))

int orochi_quant_is_quantized(int dtype) { return orochi_quant_block_bytes(dtype) != 0; }

long orochi_quant_block_weights(int dtype) {
    if (dtype >= OROCHI_Q2_K && dtype <= OROCHI_Q6_K) return 256;
    return orochi_quant_block_bytes(dtype) ? 32 : 0;
}

long orochi_quant_block_bytes(int dtype) {
    switch (dtype) {
    case OROCHI_Q4_0: return 18;
    case OROCHI_Q4_1: return 20;
    case OROCHI_Q5_0: return 22;
    case OROCHI_Q5_1: return 24;
    case OROCHI_Q8_0: return 34;
    case OROCHI_Q2_K: return 84;
    case OROCHI_Q3_K: return 110;
    case OROCHI_Q4_K: return 144;
    case OROCHI_Q5_K: return 176;
    case OROCHI_Q6_K: return 210;
    default: return 0;
    }
}

static inline int is_k_quant(int dtype) { return dtype >= OROCHI_Q2_K; }
static inline float half_at(const uint8_t *p) { uint16_t h; memcpy(&h, p, 2); return half_to_float(h); }

// ---------- unpacking, shared by dequantization and the portable products ----------
// A 32-weight block as unsigned values u (Q8_0: its signed values) with w = d·(u − offset) + m,
// where m is the stored minimum of Q4_1 and Q5_1 (0 for the others).
static inline void unpack32(int dtype, const uint8_t *b, int u[32], float *d, float *m, int *offset) {
    *d = half_at(b); *m = 0; *offset = 0;
    const uint8_t *qs = b + 2;
    uint32_t qh = 0;
    switch (dtype) {
    case OROCHI_Q4_0: *offset = 8; break;
    case OROCHI_Q4_1: *m = half_at(b + 2); qs = b + 4; break;
    case OROCHI_Q5_0: *offset = 16; memcpy(&qh, b + 2, 4); qs = b + 6; break;
    case OROCHI_Q5_1: *m = half_at(b + 2); memcpy(&qh, b + 4, 4); qs = b + 8; break;
    default: for (int i = 0; i < 32; i++) u[i] = (int8_t)b[2 + i]; return;   // Q8_0
    }
    for (int i = 0; i < 16; i++) {   // low nibbles are weights 0–15, high nibbles 16–31; bit i of qh is weight i's fifth
        u[i] = (qs[i] & 15) | (int)((qh >> i) & 1) << 4;
        u[i + 16] = (qs[i] >> 4) | (int)((qh >> (i + 16)) & 1) << 4;
    }
}

// A K-quant super-block's scales per 16 weights: w = d·sc·u − dmin·mn for weight i in group i/16
// (Q3_K, Q6_K: dmin = d and mn = offset·sc, their u − offset being signed).
static inline void k_scales(int dtype, const uint8_t *b, int16_t sc[16], int16_t mn[16], float *d, float *dmin) {
    switch (dtype) {
    case OROCHI_Q2_K:   // scales[16] qs[64] d dmin: a scale (low nibble) and a minimum (high) per 16
        for (int i = 0; i < 16; i++) { sc[i] = b[i] & 15; mn[i] = b[i] >> 4; }
        *d = half_at(b + 80); *dmin = half_at(b + 82);
        return;
    case OROCHI_Q3_K:   // hmask[32] qs[64] scales[12] d: 6-bit signed scales, 4 low bits in bytes 0–7, 2 high in 8–11
        for (int i = 0; i < 16; i++) {
            const uint8_t *s = b + 96;
            int low = i < 8 ? s[i] & 15 : s[i - 8] >> 4, high = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
            sc[i] = (int16_t)((low | high << 4) - 32); mn[i] = (int16_t)(4 * sc[i]);
        }
        *d = half_at(b + 108); *dmin = *d;
        return;
    case OROCHI_Q4_K: case OROCHI_Q5_K: {   // d dmin scales[12] …: 6-bit scale and minimum per 32
        const uint8_t *s = b + 4;
        for (int j = 0; j < 8; j++) {
            int scale = j < 4 ? s[j] & 63 : (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
            int min = j < 4 ? s[j + 4] & 63 : (s[j + 4] >> 4) | (s[j] >> 6) << 4;
            sc[2 * j] = sc[2 * j + 1] = (int16_t)scale; mn[2 * j] = mn[2 * j + 1] = (int16_t)min;
        }
        *d = half_at(b); *dmin = half_at(b + 2);
        return;
    }
    default:            // Q6_K: ql[128] qh[64] scales[16] (int8) d
        for (int i = 0; i < 16; i++) { sc[i] = (int8_t)b[192 + i]; mn[i] = (int16_t)(32 * sc[i]); }
        *d = half_at(b + 208); *dmin = *d;
    }
}

// A super-block's 256 unsigned values, weight 32g + l in group g (g = 4h + j for the formats that
// keep two bits per byte: half h of the block, bit pair j).
static inline void unpack_k(int dtype, const uint8_t *b, uint8_t u[256]) {
    for (int g = 0; g < 8; g++) {
        int h = g / 4, j = g % 4;
        for (int l = 0; l < 32; l++) {
            uint8_t v;
            switch (dtype) {
            case OROCHI_Q2_K: v = (b[16 + 32 * h + l] >> (2 * j)) & 3; break;
            case OROCHI_Q3_K: v = ((b[32 + 32 * h + l] >> (2 * j)) & 3) | ((b[l] >> g) & 1) << 2; break;
            case OROCHI_Q4_K: v = (b[16 + 32 * (g / 2) + l] >> (4 * (g & 1))) & 15; break;
            case OROCHI_Q5_K: v = ((b[48 + 32 * (g / 2) + l] >> (4 * (g & 1))) & 15) | ((b[16 + l] >> g) & 1) << 4; break;
            default: v = ((b[64 * h + 32 * (j & 1) + l] >> (4 * (j >> 1))) & 15) | ((b[128 + 32 * h + l] >> (2 * j)) & 3) << 4;   // Q6_K
            }
            u[32 * g + l] = v;
        }
    }
}

// ---------- dequantization ----------
// gguf-py computes in float32 with numpy, one rounding per operation: d·q + m is a product, rounded,
// then a sum, rounded. Fusing them into an FMA would change the last bit, so contraction is off here.
static void dequantize_blocks(int dtype, const uint8_t *src, float *dst, long blocks) {
#pragma STDC FP_CONTRACT OFF
#pragma clang fp contract(off)
    long bytes = orochi_quant_block_bytes(dtype);
    for (long i = 0; i < blocks; i++, src += bytes) {
        if (!is_k_quant(dtype)) {
            int u[32], offset; float d, m;
            unpack32(dtype, src, u, &d, &m, &offset);
            float *out = dst + 32 * i;
            if (dtype == OROCHI_Q4_1 || dtype == OROCHI_Q5_1) for (int l = 0; l < 32; l++) out[l] = d * (float)u[l] + m;
            else for (int l = 0; l < 32; l++) out[l] = d * (float)(u[l] - offset);
            continue;
        }
        uint8_t u[256]; int16_t sc[16], mn[16]; float d, dmin;
        k_scales(dtype, src, sc, mn, &d, &dmin);
        unpack_k(dtype, src, u);
        float *out = dst + 256 * i;
        for (int s = 0; s < 16; s++) {
            float ds = d * (float)sc[s];
            if (dtype == OROCHI_Q3_K || dtype == OROCHI_Q6_K) {
                int offset = dtype == OROCHI_Q3_K ? 4 : 32;
                for (int l = 0; l < 16; l++) out[16 * s + l] = ds * (float)(u[16 * s + l] - offset);
            } else {
                float dm = dmin * (float)mn[s];
                for (int l = 0; l < 16; l++) out[16 * s + l] = ds * (float)u[16 * s + l] - dm;
            }
        }
    }
}

void orochi_dequantize(int dtype, const void *src, float *dst, long count) {
    dequantize_blocks(dtype, src, dst, count / orochi_quant_block_weights(dtype));
}

void orochi_dequantize_rows(int dtype, const void *w, long r0, long r1, long k, float *dst) {
    long row_bytes = k / orochi_quant_block_weights(dtype) * orochi_quant_block_bytes(dtype);
    orochi_dequantize(dtype, (const uint8_t *)w + r0 * row_bytes, dst, (r1 - r0) * k);
}

// ---------- input quantization ----------
size_t orochi_quant_activation_bytes(int dtype, long k) {
    size_t bytes = is_k_quant(dtype) ? (size_t)(k + 4 * (k / 256) + 2 * (k / 16)) : (size_t)(k + 8 * (k / 32));
    return (bytes + 63) & ~(size_t)63;
}
static inline const float *act_d(const uint8_t *xq, long k) { return (const float *)(xq + k); }
static inline const float *act_s(const uint8_t *xq, long k) { return (const float *)(xq + k) + k / 32; }
static inline const int16_t *act_bsums(const uint8_t *xq, long k) { return (const int16_t *)(xq + k + 4 * (k / 256)); }

// Each block of `size` values: d = max|x| / 127, q = x · (127 / max|x|) rounded to nearest even
// (the same products and rounding in both builds, so both give the same bytes).
static void quantize_portable(const float *x, uint8_t *xq, long k, int size) {
    float *d = (float *)(xq + k), *s = d + k / 32;
    int16_t *bsums = (int16_t *)(xq + k + 4 * (k / 256));
    for (long b = 0; b < k / size; b++) {
        const float *xb = x + b * size;
        float amax = 0;
        for (int i = 0; i < size; i++) amax = fabsf(xb[i]) > amax ? fabsf(xb[i]) : amax;
        // A block so small that 127 / amax overflows quantizes to zeros, the same in every family.
        float id = amax != 0 && 127.f / amax < INFINITY ? 127.f / amax : 0.f;
        d[b] = amax / 127.f;
        int sum = 0;
        for (int i = 0; i < size; i++) {
            int q = (int)lrintf(xb[i] * id);
            ((int8_t *)xq)[b * size + i] = (int8_t)q;
            sum += q;
            if (size == 256 && i % 16 == 15) { bsums[b * 16 + i / 16] = (int16_t)sum; sum = 0; }
        }
        if (size == 32) s[b] = d[b] * (float)sum;
    }
}

#if defined(__x86_64__)
T256 static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
T256 static inline int hsum256_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    return _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32(s, 1)));
}

T256 static void quantize_avx2(const float *x, uint8_t *xq, long k, int size) {
    float *d = (float *)(xq + k), *s = d + k / 32;
    int16_t *bsums = (int16_t *)(xq + k + 4 * (k / 256));
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (long b = 0; b < k / size; b++) {
        const float *xb = x + b * size;
        __m256 mx = _mm256_setzero_ps();
        for (int i = 0; i < size; i += 8) mx = _mm256_max_ps(mx, _mm256_and_ps(_mm256_loadu_ps(xb + i), abs_mask));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        float amax = _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
        float id = amax != 0 && 127.f / amax < INFINITY ? 127.f / amax : 0.f;   // as the portable family
        d[b] = amax / 127.f;
        __m256 vid = _mm256_set1_ps(id);
        __m256i sum = _mm256_setzero_si256();
        for (int i = 0; i < size; i += 32) {
            __m256i q0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + i), vid));
            __m256i q1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + i + 8), vid));
            __m256i q2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + i + 16), vid));
            __m256i q3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + i + 24), vid));
            __m256i s01 = _mm256_packs_epi32(q0, q1), s23 = _mm256_packs_epi32(q2, q3);   // int16, lanes interleaved
            __m256i a = _mm256_add_epi32(q0, q1), c = _mm256_add_epi32(q2, q3);            // values i…i+15, i+16…i+31
            if (size == 256) {
                __m256i h = _mm256_hadd_epi32(a, c);
                h = _mm256_hadd_epi32(h, h);   // each 128-bit lane: its half of Σa, its half of Σc, repeated
                __m128i t = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
                bsums[b * 16 + i / 16] = (int16_t)_mm_cvtsi128_si32(t);
                bsums[b * 16 + i / 16 + 1] = (int16_t)_mm_extract_epi32(t, 1);
            } else {
                sum = _mm256_add_epi32(sum, _mm256_add_epi32(a, c));
            }
            __m256i q8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(s01, s23), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_storeu_si256((__m256i *)(xq + b * size + i), q8);
        }
        if (size == 32) s[b] = d[b] * (float)hsum256_i32(sum);
    }
}
#endif

void orochi_quantize_activation(int dtype, const float *x, void *xq, long k) {
    int size = is_k_quant(dtype) ? 256 : 32;
#if defined(__x86_64__)
    if (orochi_isa() >= OROCHI_ISA_AVX2) { quantize_avx2(x, xq, k, size); return; }
#endif
    quantize_portable(x, xq, k, size);
}

// ---------- products, portable ----------
// Rows r0..<r1 against `nt` quantized inputs `stride` bytes apart, outputs `ldy` apart.
static void rows_portable(int dtype, const uint8_t *w, long r0, long r1, long k, const uint8_t *xq, long stride, int nt,
                          float *y, long ldy, int acc) {
    long bw = orochi_quant_block_weights(dtype), bb = orochi_quant_block_bytes(dtype), nb = k / bw;
    for (long r = r0; r < r1; r++) {
        const uint8_t *row = w + r * nb * bb;
        float sum[4] = {0, 0, 0, 0};
        for (long b = 0; b < nb; b++) {
            const uint8_t *blk = row + b * bb;
            if (!is_k_quant(dtype)) {
                int u[32], offset; float d, m;
                unpack32(dtype, blk, u, &d, &m, &offset);
                if (offset) m = -(float)offset * d;
                for (int t = 0; t < nt; t++) {
                    const uint8_t *x = xq + t * stride;
                    const int8_t *q = (const int8_t *)x + 32 * b;
                    int dot = 0;
                    for (int l = 0; l < 32; l++) dot += u[l] * q[l];
                    sum[t] += d * act_d(x, k)[b] * (float)dot + m * act_s(x, k)[b];
                }
                continue;
            }
            uint8_t u[256]; int16_t sc[16], mn[16]; float d, dmin;
            k_scales(dtype, blk, sc, mn, &d, &dmin);
            unpack_k(dtype, blk, u);
            for (int t = 0; t < nt; t++) {
                const uint8_t *x = xq + t * stride;
                const int8_t *q = (const int8_t *)x + 256 * b;
                const int16_t *bs = act_bsums(x, k) + 16 * b;
                int dot = 0, mins = 0;
                for (int s = 0; s < 16; s++) {
                    int part = 0;
                    for (int l = 0; l < 16; l++) part += u[16 * s + l] * q[16 * s + l];
                    dot += sc[s] * part; mins += mn[s] * bs[s];
                }
                float dx = act_d(x, k)[b];
                sum[t] += d * dx * (float)dot - dmin * dx * (float)mins;
            }
        }
        for (int t = 0; t < nt; t++) y[t * ldy + r] = acc ? y[t * ldy + r] + sum[t] : sum[t];
    }
}

#if defined(__x86_64__)
// ---------- products, AVX2 ----------
// 16 bytes → 32 values: low nibbles (weights 0–15), then high nibbles (16–31).
T256 static inline __m256i nibbles16(const uint8_t *p) {
    __m128i b = _mm_loadu_si128((const __m128i *)p);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(b, 4), b), _mm256_set1_epi8(15));
}
// 32 bits → 32 bytes, byte i = `value` where bit i is set, else 0 (Q5's fifth bits).
T256 static inline __m256i bits32(const uint8_t *p, char value) {
    uint32_t v; memcpy(&v, p, 4);
    __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32((int)v),
                                         _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0));
    __m256i bit = _mm256_set1_epi64x(0x8040201008040201);
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit), _mm256_set1_epi8(value));
}
T256 static inline float half_f16c(const uint8_t *p) { uint16_t h; memcpy(&h, p, 2); return _cvtsh_ss(h); }

// A 32-weight block as u (unsigned; Q8_0: signed) with w = d·u + m.
T256 AINLINE __m256i unpack32_avx2(int dtype, const uint8_t *b, float *d, float *m) {
    switch (dtype) {
    case OROCHI_Q4_0: *d = half_f16c(b); *m = -8 * *d; return nibbles16(b + 2);
    case OROCHI_Q5_0: *d = half_f16c(b); *m = -16 * *d; return _mm256_or_si256(nibbles16(b + 6), bits32(b + 2, 16));
    case OROCHI_Q4_1: case OROCHI_Q5_1: {
        uint32_t dm; memcpy(&dm, b, 4);
        __m128 both = _mm_cvtph_ps(_mm_cvtsi32_si128((int)dm));
        *d = _mm_cvtss_f32(both); *m = _mm_cvtss_f32(_mm_movehdup_ps(both));
        return dtype == OROCHI_Q4_1 ? nibbles16(b + 4) : _mm256_or_si256(nibbles16(b + 8), bits32(b + 4, 16));
    }
    default: *d = half_f16c(b); *m = 0; return _mm256_loadu_si256((const __m256i *)(b + 2));   // Q8_0
    }
}

// Block b of a row against NT inputs (a compile-time count, 1–4): unpacked once, then per input one
// byte product (maddubs; Q8_0's signed weights by the sign trick, |w| · sign(w)·q), pairs summed
// (madd), scaled by d_w·d_x into the float sums A; the offset m·s into the scalar sums SIDE.
T256 AINLINE void block32_avx2(int dtype, int nt, const uint8_t *blk, long b, const uint8_t *xq, long stride,
                               const float *const xd[4], const float *const xs[4], __m256 a[4], float side[4]) {
    float d, m;
    __m256i u = unpack32_avx2(dtype, blk, &d, &m);
    __m256i au = dtype == OROCHI_Q8_0 ? _mm256_sign_epi8(u, u) : u;
    for (int t = 0; t < nt; t++) {
        __m256i q = _mm256_loadu_si256((const __m256i *)(xq + t * stride + 32 * b));
        if (dtype == OROCHI_Q8_0) q = _mm256_sign_epi8(q, u);
        __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(au, q), _mm256_set1_epi16(1)));
        a[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * xd[t][b]), p, a[t]);
        if (dtype != OROCHI_Q8_0) side[t] += m * xs[t][b];
    }
}

// One weight row at a time; for one input, two blocks per step into two sets of sums, so that
// neither's latency paces the loop (the sets' indices are constants: indexed by b & 1, the sums
// lived on the stack).
T256 AINLINE void rows32_avx2(int dtype, int nt, const uint8_t *w, long r0, long r1, long k, const uint8_t *xq, long stride,
                              float *y, long ldy, int acc) {
    const long bb = orochi_quant_block_bytes(dtype), nb = k / 32;
    const float *xd[4], *xs[4];
    for (int t = 0; t < nt; t++) { xd[t] = act_d(xq + t * stride, k); xs[t] = act_s(xq + t * stride, k); }
    for (long r = r0; r < r1; r++) {
        const uint8_t *row = w + r * nb * bb;
        __m256 a0[4], a1[4];
        float s0[4], s1[4];
        for (int t = 0; t < nt; t++) { a0[t] = a1[t] = _mm256_setzero_ps(); s0[t] = s1[t] = 0; }
        long b = 0;
        if (nt == 1)   // several inputs are independent sums already; two sets of them would not fit in registers
            for (; b + 2 <= nb; b += 2) {
                block32_avx2(dtype, nt, row + b * bb, b, xq, stride, xd, xs, a0, s0);
                block32_avx2(dtype, nt, row + (b + 1) * bb, b + 1, xq, stride, xd, xs, a1, s1);
            }
        for (; b < nb; b++) block32_avx2(dtype, nt, row + b * bb, b, xq, stride, xd, xs, a0, s0);
        for (int t = 0; t < nt; t++) {
            float v = hsum256(_mm256_add_ps(a0[t], a1[t])) + (s0[t] + s1[t]);
            float *out = y + t * ldy + r;
            *out = acc ? *out + v : v;
        }
    }
}

// Group g (weights 32g … 32g + 31) of a K-quant super-block as unsigned bytes; `high` holds the
// block's 32 bytes of extra bits (Q3_K's hmask, Q5_K's qh).
T256 AINLINE __m256i unpack_k_avx2(int dtype, const uint8_t *b, int g, __m256i high) {
    const int h = g / 4, j = g % 4;
    const __m256i bit = _mm256_set1_epi8((char)(1 << g));
#define LOAD32(p) _mm256_loadu_si256((const __m256i *)(p))
#define HIGH_BIT(value) _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(high, bit), bit), _mm256_set1_epi8(value))
    switch (dtype) {
    case OROCHI_Q2_K: return _mm256_and_si256(_mm256_srli_epi16(LOAD32(b + 16 + 32 * h), 2 * j), _mm256_set1_epi8(3));
    case OROCHI_Q3_K:
        return _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(LOAD32(b + 32 + 32 * h), 2 * j), _mm256_set1_epi8(3)), HIGH_BIT(4));
    case OROCHI_Q4_K: return _mm256_and_si256(_mm256_srli_epi16(LOAD32(b + 16 + 32 * (g / 2)), 4 * (g & 1)), _mm256_set1_epi8(15));
    case OROCHI_Q5_K:
        return _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(LOAD32(b + 48 + 32 * (g / 2)), 4 * (g & 1)), _mm256_set1_epi8(15)),
                               HIGH_BIT(16));
    default: {   // Q6_K: four bits from ql, two from qh moved up to bits 4–5 (shifts within 16-bit lanes never carry in
                 // bits from the neighbouring byte that survive the mask)
        __m256i low = _mm256_and_si256(_mm256_srli_epi16(LOAD32(b + 64 * h + 32 * (j & 1)), 4 * (j >> 1)), _mm256_set1_epi8(15));
        __m256i qh = LOAD32(b + 128 + 32 * h);
        qh = j < 2 ? _mm256_slli_epi16(qh, 4 - 2 * j) : _mm256_srli_epi16(qh, 2 * j - 4);
        return _mm256_or_si256(low, _mm256_and_si256(qh, _mm256_set1_epi8(0x30)));
    }
    }
#undef HIGH_BIT
#undef LOAD32
}

// A K-quant super-block's scales in registers: `lanes` holds in element g of its low 128-bit lane the
// scale of weights 32g … 32g + 15 and in its high lane that of 32g + 16 … 32g + 31 (int16; one byte
// shuffle broadcasts group g's), `mins` the 16 values mn of k_scales in order, for Σ mn·bsums.
T256 AINLINE void k_scales_avx2(int dtype, const uint8_t *b, __m256i *lanes, __m256i *mins, float *d, float *dmin) {
    uint32_t w0, w1, w2;
    switch (dtype) {
    case OROCHI_Q2_K: {   // scale: low nibble, minimum: high nibble, per 16
        __m128i s = _mm_loadu_si128((const __m128i *)b);
        __m128i even_odd = _mm_shuffle_epi8(_mm_and_si128(s, _mm_set1_epi8(15)), _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15));
        *lanes = _mm256_cvtepu8_epi16(even_odd);
        *mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s, 4), _mm_set1_epi8(15)));
        *d = half_f16c(b + 80); *dmin = half_f16c(b + 82);
        return;
    }
    case OROCHI_Q3_K: {   // 4 low bits: bytes 0–7 (low nibbles: scales 0–7, high: 8–15), 2 high bits: bytes 8–11
        memcpy(&w0, b + 96, 4); memcpy(&w1, b + 100, 4); memcpy(&w2, b + 104, 4);
        const uint32_t lo = 0x0f0f0f0f, hi = 0x03030303;
        __m128i s = _mm_setr_epi32((int)((w0 & lo) | (w2 & hi) << 4), (int)((w1 & lo) | (w2 >> 2 & hi) << 4),
                                   (int)((w0 >> 4 & lo) | (w2 >> 4 & hi) << 4), (int)((w1 >> 4 & lo) | (w2 >> 6 & hi) << 4));
        s = _mm_sub_epi8(s, _mm_set1_epi8(32));
        *lanes = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(s, _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15)));
        *mins = _mm256_slli_epi16(_mm256_cvtepi8_epi16(s), 2);
        *d = half_f16c(b + 108); *dmin = *d;
        return;
    }
    case OROCHI_Q4_K: case OROCHI_Q5_K: {   // 6-bit scales and minima per 32: low bits in bytes 0–3 and 4–7, the rest in 8–11
        memcpy(&w0, b + 4, 4); memcpy(&w1, b + 8, 4); memcpy(&w2, b + 12, 4);
        const uint32_t six = 0x3f3f3f3f, lo = 0x0f0f0f0f, top = 0x30303030;
        __m128i s = _mm_setr_epi32((int)(w0 & six), (int)((w2 & lo) | (w0 >> 2 & top)),           // scales 0–3, 4–7
                                   (int)(w1 & six), (int)((w2 >> 4 & lo) | (w1 >> 2 & top)));      // minima 0–3, 4–7
        *lanes = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(s));
        *mins = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(s, s));
        *d = half_f16c(b); *dmin = half_f16c(b + 2);
        return;
    }
    default: {            // Q6_K: int8 scales per 16
        __m128i s = _mm_loadu_si128((const __m128i *)(b + 192));
        *lanes = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(s, _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15)));
        *mins = _mm256_slli_epi16(_mm256_cvtepi8_epi16(s), 5);
        *d = half_f16c(b + 208); *dmin = *d;
    }
    }
}

// One weight row at a time against NT inputs: per super-block, per group of 32 the byte products
// (maddubs) weighted by the 16-weight scales (madd) into 32-bit integer sums, then once per
// super-block d_w·d_x · Σ − dmin·d_x · Σ mn·bsums.
T256 AINLINE void rowsk_avx2(int dtype, int nt, const uint8_t *w, long r0, long r1, long k, const uint8_t *xq, long stride,
                             float *y, long ldy, int acc) {
    const long bb = orochi_quant_block_bytes(dtype), nb = k / 256;
    const float *xd[4]; const int16_t *xb[4];
    for (int t = 0; t < nt; t++) { xd[t] = act_d(xq + t * stride, k); xb[t] = act_bsums(xq + t * stride, k); }
    for (long r = r0; r < r1; r++) {
        const uint8_t *row = w + r * nb * bb;
        __m256 a[4];
        for (int t = 0; t < nt; t++) a[t] = _mm256_setzero_ps();
        for (long b = 0; b < nb; b++) {
            const uint8_t *blk = row + b * bb;
            __m256i lanes, mins; float d, dmin;
            k_scales_avx2(dtype, blk, &lanes, &mins, &d, &dmin);
            __m256i high = dtype == OROCHI_Q3_K ? _mm256_loadu_si256((const __m256i *)blk)
                         : dtype == OROCHI_Q5_K ? _mm256_loadu_si256((const __m256i *)(blk + 16)) : _mm256_setzero_si256();
            __m256i sum[4];
            for (int t = 0; t < nt; t++) sum[t] = _mm256_setzero_si256();
            for (int g = 0; g < 8; g++) {
                __m256i u = unpack_k_avx2(dtype, blk, g, high);
                __m256i scale = _mm256_shuffle_epi8(lanes, _mm256_set1_epi16((short)(0x0100 + 0x0202 * g)));
                for (int t = 0; t < nt; t++) {
                    __m256i q = _mm256_loadu_si256((const __m256i *)(xq + t * stride + 256 * b + 32 * g));
                    sum[t] = _mm256_add_epi32(sum[t], _mm256_madd_epi16(_mm256_maddubs_epi16(u, q), scale));
                }
            }
            for (int t = 0; t < nt; t++) {
                __m256i m = _mm256_madd_epi16(mins, _mm256_loadu_si256((const __m256i *)(xb[t] + 16 * b)));
                a[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * xd[t][b]), _mm256_cvtepi32_ps(sum[t]), a[t]);
                a[t] = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * xd[t][b]), _mm256_cvtepi32_ps(m), a[t]);
            }
        }
        for (int t = 0; t < nt; t++) {
            float v = hsum256(a[t]);
            float *out = y + t * ldy + r;
            *out = acc ? *out + v : v;
        }
    }
}

// The kernels for each type and 1–4 inputs, and their table AVX2_ROWS[type index][inputs − 1].
typedef void (*qrows_fn)(const uint8_t *, long, long, long, const uint8_t *, long, float *, long, int);
#define QROWS(NAME, GENERIC, DTYPE, NT)                                                                       \
    T256 static void NAME(const uint8_t *w, long r0, long r1, long k, const uint8_t *xq, long stride, float *y, \
                          long ldy, int acc) { GENERIC(DTYPE, NT, w, r0, r1, k, xq, stride, y, ldy, acc); }
#define QROWS_TYPE(T, GENERIC)                                                                                \
    QROWS(rows_##T##_1, GENERIC, OROCHI_##T, 1) QROWS(rows_##T##_2, GENERIC, OROCHI_##T, 2)                    \
    QROWS(rows_##T##_3, GENERIC, OROCHI_##T, 3) QROWS(rows_##T##_4, GENERIC, OROCHI_##T, 4)
#define QROWS_ENTRY(T) {rows_##T##_1, rows_##T##_2, rows_##T##_3, rows_##T##_4}
QROWS_TYPE(Q4_0, rows32_avx2) QROWS_TYPE(Q4_1, rows32_avx2) QROWS_TYPE(Q5_0, rows32_avx2)
QROWS_TYPE(Q5_1, rows32_avx2) QROWS_TYPE(Q8_0, rows32_avx2)
QROWS_TYPE(Q2_K, rowsk_avx2) QROWS_TYPE(Q3_K, rowsk_avx2) QROWS_TYPE(Q4_K, rowsk_avx2)
QROWS_TYPE(Q5_K, rowsk_avx2) QROWS_TYPE(Q6_K, rowsk_avx2)
static const qrows_fn AVX2_ROWS[10][4] = {
    QROWS_ENTRY(Q4_0), QROWS_ENTRY(Q4_1), QROWS_ENTRY(Q5_0), QROWS_ENTRY(Q5_1), QROWS_ENTRY(Q8_0),
    QROWS_ENTRY(Q2_K), QROWS_ENTRY(Q3_K), QROWS_ENTRY(Q4_K), QROWS_ENTRY(Q5_K), QROWS_ENTRY(Q6_K),
};
static int type_index(int dtype) {
    switch (dtype) {
    case OROCHI_Q4_0: return 0;
    case OROCHI_Q4_1: return 1;
    case OROCHI_Q5_0: return 2;
    case OROCHI_Q5_1: return 3;
    case OROCHI_Q8_0: return 4;
    default: return 5 + (dtype - OROCHI_Q2_K);
    }
}
#endif

/// Rows r0..<r1 against `nt` (1–4) quantized inputs `stride` bytes apart.
static void rows_any(int dtype, const uint8_t *w, long r0, long r1, long k, const uint8_t *xq, long stride, int nt,
                     float *y, long ldy, int acc) {
#if defined(__x86_64__)
    if (orochi_isa() >= OROCHI_ISA_AVX2) { AVX2_ROWS[type_index(dtype)][nt - 1](w, r0, r1, k, xq, stride, y, ldy, acc); return; }
#endif
    rows_portable(dtype, w, r0, r1, k, xq, stride, nt, y, ldy, acc);
}

void orochi_qmatvec_rows(int dtype, const void *w, long r0, long r1, long k, const void *xq, float *y, int acc) {
    rows_any(dtype, w, r0, r1, k, xq, 0, 1, y, 0, acc);
}

// ---------- threaded ----------
void *orochi_quant_input(int slot, size_t bytes) {
    static _Thread_local void *buffers[3];
    static _Thread_local size_t capacity[3];
    if (bytes > capacity[slot]) {
        free(buffers[slot]);
        size_t rounded = (bytes + 4095) & ~(size_t)4095;
        buffers[slot] = aligned_alloc(64, rounded);
        capacity[slot] = buffers[slot] ? rounded : 0;
        // A product without its input has no result to give: stop rather than leave y unwritten.
        if (!buffers[slot]) { fprintf(stderr, "orochi: out of memory for %zu bytes of quantized input\n", bytes); abort(); }
    }
    return buffers[slot];
}

typedef struct { int dtype; const uint8_t *w; long n, k; const uint8_t *xq; long stride, m; float *y; long ldy; int acc; } qjob;

/// Rows r0..<r1 for all m inputs: for more than four, the groups of four take turns on tiles of 16
/// rows, which stay in L1 for the next group, so the weights come from memory once.
static void qrows_multi(const qjob *j, long r0, long r1) {
    long tile = j->m > 4 ? 16 : r1 - r0;
    for (long rt = r0; rt < r1; rt += tile) {
        long rt1 = r1 - rt < tile ? r1 : rt + tile;
        for (long i = 0; i < j->m; i += 4) {
            int nt = j->m - i < 4 ? (int)(j->m - i) : 4;
            rows_any(j->dtype, j->w, rt, rt1, j->k, j->xq + i * j->stride, j->stride, nt, j->y + i * j->ldy, j->ldy, j->acc);
        }
    }
}

static void qjob_part(void *ctx, int index, int count) {
    const qjob *j = ctx;
    long blocks = (j->n + 15) / 16;   // row ranges in multiples of 16, as matvec.c's
    long r0 = orochi_pool_guided_start(blocks, index, count) * 16, r1 = orochi_pool_guided_start(blocks, index + 1, count) * 16;
    if (r1 > j->n) r1 = j->n;
    if (r0 < r1) qrows_multi(j, r0, r1);
}

enum { QPARALLEL_MIN_WEIGHTS = 1 << 13 };   // as matvec.c's PARALLEL_MIN_WEIGHTS

void orochi_qmatvec_multi(int dtype, const void *w, long n, long k, const float *x, long ldx, long m,
                          float *y, long ldy, int acc) {
    long stride = (long)orochi_quant_activation_bytes(dtype, k);
    uint8_t *xq = orochi_quant_input(0, (size_t)(stride * m));
    for (long i = 0; i < m; i++) orochi_quantize_activation(dtype, x + i * ldx, xq + i * stride, k);
    qjob job = {dtype, w, n, k, xq, stride, m, y, ldy, acc};
    if (n * k < QPARALLEL_MIN_WEIGHTS || n < 32 || orochi_pool_threads() == 1) { qrows_multi(&job, 0, n); return; }
    long blocks = (n + 15) / 16;
    int chunks = OROCHI_POOL_HOME_CHUNKS * orochi_pool_threads();   // a home of shrinking chunks per thread (pool.c)
    orochi_pool_run_chunks(qjob_part, &job, blocks < chunks ? (int)blocks : chunks);
}

void orochi_qmatvec(int dtype, const void *w, long n, long k, const float *x, float *y, int acc) {
    orochi_qmatvec_multi(dtype, w, n, k, x, k, 1, y, n, acc);
}

// ---------- weight quantization ----------
// ggml's reference quantizers without an importance matrix (quantize_row_*_ref, what llama-quantize
// writes then), equal bit for bit: the same float operations in the same order, each rounded on its
// own as ggml-base computes them (built without FMA), so contraction is off from here to the end.
#pragma STDC FP_CONTRACT OFF
#pragma clang fp contract(off)

static inline void put_half(uint8_t *p, float f) { uint16_t h = float_to_half(f); memcpy(p, &h, 2); }
static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

// ggml's nearest_int: x + 1.5·2²³ leaves round-half-even(x) in the low mantissa bits (|x| < 2²²).
static inline int nearest_int(float x) {
    float v = x + 12582912.f; int i; memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}

// float → int8 as ggml-base's x86 code converts (C leaves it undefined out of range): truncated to
// int32, NaN and out of range to INT_MIN, and the low byte kept. Matters for blocks so small that
// 1/d is infinite.
static inline int trunc8(float v) { return v > -2147483904.f && v < 2147483648.f ? (int8_t)(int32_t)v : 0; }

// One 32-weight block. Q4_0/Q5_0: d = the value of largest magnitude / −8 (−16), which so maps to 0;
// q = trunc(x/d + offset + ½). Q4_1/Q5_1: d = (max − min) / 15 (31) above m = min. Q8_0: d = max|x|
// / 127, q = roundf(x/d) (half away from zero).
static void quantize32(int dtype, const float *x, uint8_t *b) {
    float d, id;
    uint8_t u[32];
    if (dtype == OROCHI_Q8_0) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = amax > fabsf(x[j]) ? amax : fabsf(x[j]);
        d = amax / 127; id = d ? 1.0f / d : 0.0f;
        put_half(b, d);
        for (int j = 0; j < 32; j++) b[2 + j] = (uint8_t)trunc8(roundf(x[j] * id));
        return;
    }
    int nmax = dtype == OROCHI_Q4_0 || dtype == OROCHI_Q4_1 ? 15 : 31;
    if (dtype == OROCHI_Q4_0 || dtype == OROCHI_Q5_0) {
        float amax = 0, max = 0;
        for (int j = 0; j < 32; j++) if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
        int offset = (nmax + 1) / 2;
        d = max / -offset; id = d ? 1.0f / d : 0.0f;
        for (int j = 0; j < 32; j++) { int q = trunc8(x[j] * id + (offset + 0.5f)); u[j] = (uint8_t)(q < nmax ? q : nmax); }
        put_half(b, d);
    } else {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < 32; j++) { if (x[j] < min) min = x[j]; if (x[j] > max) max = x[j]; }
        d = (max - min) / nmax; id = d ? 1.0f / d : 0.0f;
        for (int j = 0; j < 32; j++) { int q = trunc8((x[j] - min) * id + 0.5f); u[j] = (uint8_t)(q < nmax ? q : nmax); }
        put_half(b, d); put_half(b + 2, min);
    }
    // The layouts unpack32 reads: qh (bit i: weight i's fifth bit) after the halves, then nibbles.
    uint8_t *qs = b + (dtype == OROCHI_Q4_0 ? 2 : dtype == OROCHI_Q5_1 ? 8 : dtype == OROCHI_Q5_0 ? 6 : 4);
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        if (nmax == 15) { qs[j] = (uint8_t)(u[j] | u[j + 16] << 4); continue; }
        qs[j] = (uint8_t)((u[j] & 15) | (u[j + 16] & 15) << 4);
        qh |= (uint32_t)((u[j] >> 4) & 1) << j | (uint32_t)((u[j + 16] >> 4) & 1) << (j + 16);
    }
    if (nmax == 31) memcpy(qs - 4, &qh, 4);
}

// ggml's make_qkx2_quants: x ≈ scale·L − the_min (L in 0…nmax) minimizing the weighted error
// (absolute with use_mad, else squared) over nstep + 1 trial scales, each refit by least squares.
static float make_qkx2_quants(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min, uint8_t *Laux,
                              float rmin, float rdelta, int nstep, int use_mad) {
    float min = x[0], max = x[0], sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i]; sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) { memset(L, 0, (size_t)n); *the_min = -min; return 0.f; }
    float iscale = nmax / (max - min), scale = 1 / iscale, best_error = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clampi(nearest_int(iscale * (x[i] - min)), 0, nmax);
        float diff = scale * L[i] + min - x[i];
        best_error += w[i] * (use_mad ? fabsf(diff) : diff * diff);
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * l; sum_l2 += w[i] * l * l; sum_xl += w[i] * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D <= 0) continue;
        float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D, this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
        if (this_min > 0) { this_min = 0; this_scale = sum_xl / sum_l2; }
        float cur_error = 0;
        for (int i = 0; i < n; i++) {
            float diff = this_scale * Laux[i] + this_min - x[i];
            cur_error += w[i] * (use_mad ? fabsf(diff) : diff * diff);
        }
        if (cur_error < best_error) { memcpy(L, Laux, (size_t)n); best_error = cur_error; scale = this_scale; min = this_min; }
    }
    *the_min = -min;
    return scale;
}

// ggml's make_qx_quants with rmse_type 1 (weights x²) and no importance: L − nmax in −nmax…nmax−1,
// the scale refit by least squares over 19 trial scales. Returns the (signed) scale.
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) if (fabsf(x[i]) > amax) { amax = fabsf(x[i]); max = x[i]; }
    if (amax < 1e-15f) { memset(L, 0, (size_t)n); return 0.f; }
    float iscale = -nmax / max, sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l; suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f, best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
            float w = x[i] * x[i];
            sumlx += w * x[i] * l; suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) L[i] = (int8_t)(nmax + clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2; best = scale * sumlx;
        }
    }
    return scale;
}

// ggml's make_q3_quants with do_rmse: a first rounding, then up to 5 passes moving single values
// where that lowers the x²-weighted error. L − nmax in −nmax…nmax−1 (all 0 for a zero group).
static float make_q3_quants(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) if (fabsf(x[i]) > amax) { amax = fabsf(x[i]); max = x[i]; }
    if (amax < 1e-15f) { memset(L, 0, (size_t)n); return 0.f; }
    float iscale = -nmax / max, sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        float w = x[i] * x[i];
        sumlx += w * x[i] * l; suml2 += w * l * l;
    }
    for (int itry = 0, changed = 1; itry < 5 && changed; itry++) {
        changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i], slx = sumlx - w * x[i] * L[i];
            if (slx <= 0) continue;
            float sl2 = suml2 - w * L[i] * L[i];
            int l = clampi(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
            if (l == L[i]) continue;
            slx += w * x[i] * l; sl2 += w * l * l;
            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) { L[i] = (int8_t)l; sumlx = slx; suml2 = sl2; changed = 1; }
        }
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// 256 values of 0–3 → Q2_K/Q3_K's qs: weight 32g + l at bits 2(g % 4) of byte 32(g / 4) + l.
static void pack2(const uint8_t *L, uint8_t *qs) {
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *q = L + 128 * h + l;
            qs[32 * h + l] = (uint8_t)(q[0] | q[32] << 2 | q[64] << 4 | q[96] << 6);
        }
}

// Q2_K (scales[16] qs[64] d dmin): per 16 weights a fitted scale and minimum (absolute error,
// weights |x|), both quantized to 4 bits against the largest; then the weights requantized.
static void quantize_q2_k(const float *x, uint8_t *b) {
    uint8_t L[256], Laux[16], *sc = b;
    float w[16], mins[16], scales[16], max_scale = 0, max_min = 0;
    for (int j = 0; j < 16; j++) {
        for (int l = 0; l < 16; l++) w[l] = fabsf(x[16 * j + l]);
        scales[j] = make_qkx2_quants(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, 1);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    memset(sc, 0, 16);
    if (max_scale > 0) {
        float iscale = 15.f / max_scale;
        for (int j = 0; j < 16; j++) sc[j] = (uint8_t)nearest_int(iscale * scales[j]);
    }
    put_half(b + 80, max_scale > 0 ? max_scale / 15.f : 0.f);
    if (max_min > 0) {
        float iscale = 15.f / max_min;
        for (int j = 0; j < 16; j++) sc[j] = (uint8_t)(sc[j] | nearest_int(iscale * mins[j]) << 4);
    }
    put_half(b + 82, max_min > 0 ? max_min / 15.f : 0.f);
    float d0 = half_at(b + 80), m0 = half_at(b + 82);
    for (int j = 0; j < 16; j++) {
        float d = d0 * (sc[j] & 15);
        if (!d) continue;
        float dm = m0 * (sc[j] >> 4);
        for (int i = 0; i < 16; i++) L[16 * j + i] = (uint8_t)clampi(nearest_int((x[16 * j + i] + dm) / d), 0, 3);
    }
    pack2(L, b + 16);
}

// Q3_K (hmask[32] qs[64] scales[12] d): per 16 weights a signed scale, quantized to 6 bits against
// the one of largest magnitude; values −4…3 stored as 2 low bits and a high bit.
static void quantize_q3_k(const float *x, uint8_t *b) {
    int8_t L[256];
    float scales[16], max_scale = 0, amax = 0;
    uint8_t *s = b + 96;
    for (int j = 0; j < 16; j++) {
        scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
        if (fabsf(scales[j]) > amax) { amax = fabsf(scales[j]); max_scale = scales[j]; }
    }
    memset(s, 0, 12);
    if (max_scale) {
        float iscale = -32.f / max_scale;
        for (int j = 0; j < 16; j++) {
            int8_t l = (int8_t)nearest_int(iscale * scales[j]);   // ggml keeps it in an int8_t first
            l = (int8_t)(clampi(l, -32, 31) + 32);
            if (j < 8) s[j] = l & 15; else s[j - 8] |= (uint8_t)((l & 15) << 4);
            s[8 + j % 4] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
        }
        put_half(b + 108, 1 / iscale);
    } else put_half(b + 108, 0.f);
    float d0 = half_at(b + 108);
    for (int j = 0; j < 16; j++) {
        int8_t sc = (int8_t)(j < 8 ? s[j] & 15 : s[j - 8] >> 4);
        sc = (int8_t)((sc | ((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4) - 32);
        float d = d0 * sc;
        if (!d) continue;
        for (int i = 0; i < 16; i++) L[16 * j + i] = (int8_t)(clampi(nearest_int(x[16 * j + i] / d), -4, 3) + 4);
    }
    memset(b, 0, 32);
    for (int j = 0; j < 256; j++) if (L[j] > 3) { b[j % 32] |= (uint8_t)(1 << (j / 32)); L[j] -= 4; }
    pack2((const uint8_t *)L, b + 32);
}

// Q4_K / Q5_K (d dmin scales[12] [qh[32]] qs[128]): per 32 weights a scale and minimum fitted with
// weights √mean(x²) + |x| (squared error), both quantized to 6 bits; then the weights requantized.
static void quantize_q45_k(int dtype, const float *x, uint8_t *b) {
    int q4 = dtype == OROCHI_Q4_K, nmax = q4 ? 15 : 31;
    uint8_t L[256], Laux[32], *s = b + 4;
    float w[32], mins[8], scales[8], max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        const float *xj = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += xj[l] * xj[l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) w[l] = av_x + fabsf(xj[l]);
        scales[j] = make_qkx2_quants(32, nmax, xj, w, L + 32 * j, &mins[j], Laux, q4 ? -1.f : -0.5f, 0.1f, q4 ? 20 : 15, 0);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f, inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < 8; j++) {   // k_scales' layout: 6 bits each, the high two of 4–7 atop bytes 0–7
        uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]), lm = (uint8_t)nearest_int(inv_min * mins[j]);
        ls = ls < 63 ? ls : 63; lm = lm < 63 ? lm : 63;
        if (j < 4) { s[j] = ls; s[j + 4] = lm; }
        else { s[j + 4] = (uint8_t)((ls & 15) | (lm & 15) << 4); s[j - 4] |= (uint8_t)((ls >> 4) << 6); s[j] |= (uint8_t)((lm >> 4) << 6); }
    }
    put_half(b, max_scale / 63.f); put_half(b + 2, max_min / 63.f);
    float d0 = half_at(b), m0 = half_at(b + 2);
    for (int j = 0; j < 8; j++) {
        int sc = j < 4 ? s[j] & 63 : (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
        int mn = j < 4 ? s[j + 4] & 63 : (s[j + 4] >> 4) | (s[j] >> 6) << 4;
        float d = d0 * sc;
        if (!d) continue;
        float dm = m0 * mn;
        for (int i = 0; i < 32; i++) L[32 * j + i] = (uint8_t)clampi(nearest_int((x[32 * j + i] + dm) / d), 0, nmax);
    }
    uint8_t *qh = b + 16, *qs = b + (q4 ? 16 : 48);   // unpack_k's layout
    memset(b + 16, 0, q4 ? 128 : 160);
    for (int g = 0; g < 8; g++)
        for (int l = 0; l < 32; l++) {
            int v = L[32 * g + l];
            qs[32 * (g / 2) + l] |= (uint8_t)((v & 15) << (4 * (g & 1)));
            if (!q4) qh[l] |= (uint8_t)((v >> 4) << g);
        }
}

// Q6_K (ql[128] qh[64] scales[16] d): per 16 weights a signed scale (make_qx_quants), quantized to
// int8 against the one of largest magnitude (−128); values −32…31 as 4 low and 2 high bits.
static void quantize_q6_k(const float *x, uint8_t *b) {
    int8_t L[256], *sc = (int8_t *)(b + 192);
    float scales[16], max_scale = 0, max_abs_scale = 0;
    for (int j = 0; j < 16; j++) {
        scales[j] = make_qx_quants(16, 32, x + 16 * j, L + 16 * j);
        if (fabsf(scales[j]) > max_abs_scale) { max_abs_scale = fabsf(scales[j]); max_scale = scales[j]; }
    }
    memset(b, 0, 210);
    if (max_abs_scale < 1e-15f) return;   // ggml writes an all-zero block
    float iscale = -128.f / max_scale;
    put_half(b + 208, 1 / iscale);
    for (int j = 0; j < 16; j++) { int l = nearest_int(iscale * scales[j]); sc[j] = (int8_t)(l < 127 ? l : 127); }
    float d0 = half_at(b + 208);
    for (int j = 0; j < 16; j++) {
        float d = d0 * sc[j];
        if (!d) continue;
        for (int i = 0; i < 16; i++) L[16 * j + i] = (int8_t)(clampi(nearest_int(x[16 * j + i] / d), -32, 31) + 32);
    }
    for (int g = 0; g < 8; g++)
        for (int l = 0; l < 32; l++) {
            int h = g / 4, j = g % 4, v = L[32 * g + l];
            b[64 * h + 32 * (j & 1) + l] |= (uint8_t)((v & 15) << (4 * (j >> 1)));
            b[128 + 32 * h + l] |= (uint8_t)((v >> 4) << (2 * j));
        }
}

int orochi_quantize_rows(int dtype, const float *src, void *dst, long rows, long k) {
    long bw = orochi_quant_block_weights(dtype), bb = orochi_quant_block_bytes(dtype);
    if (!bw) return -1;
    uint8_t *b = dst;
    for (long i = 0; i < rows * (k / bw); i++, src += bw, b += bb) {
        switch (dtype) {
        case OROCHI_Q2_K: quantize_q2_k(src, b); break;
        case OROCHI_Q3_K: quantize_q3_k(src, b); break;
        case OROCHI_Q4_K: case OROCHI_Q5_K: quantize_q45_k(dtype, src, b); break;
        case OROCHI_Q6_K: quantize_q6_k(src, b); break;
        default: quantize32(dtype, src, b);
        }
    }
    return 0;
}
