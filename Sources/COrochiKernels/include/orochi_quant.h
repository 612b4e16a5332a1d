// GGUF's block-quantized weights (ggml's Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and the K-quants Q2_K–Q6_K):
// quantization, dequantization and one-token products (quant.c). Blocks are laid out exactly as
// ggml stores them (ggml-common.h); a row of k weights is k / orochi_quant_block_weights blocks,
// back to back.
//
// Products follow llama.cpp's scheme: the input is quantized once to 8 bits (per 32 values for the
// 32-weight formats, per 256 for the K-quants, with block sums where the format has an offset), and
// each block is an integer dot product scaled once. k must be a multiple of the format's block size
// (callers check); like every kernel here, these neither allocate in their loops nor check bounds.
#ifndef OROCHI_QUANT_H
#define OROCHI_QUANT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Quantized weight types: 100 + the ggml type id (Orochi's own OROCHI_F32/F16/BF16 are 0–2, and
/// BF16's 2 is ggml's Q4_0).
enum {
    OROCHI_Q4_0 = 102, OROCHI_Q4_1 = 103, OROCHI_Q5_0 = 106, OROCHI_Q5_1 = 107, OROCHI_Q8_0 = 108,
    OROCHI_Q2_K = 110, OROCHI_Q3_K = 111, OROCHI_Q4_K = 112, OROCHI_Q5_K = 113, OROCHI_Q6_K = 114,
};

/// 1 for the quantized types above, 0 otherwise.
int orochi_quant_is_quantized(int dtype);
/// Weights per block: 32, 256 for the K-quants, 0 for a type that is not quantized.
long orochi_quant_block_weights(int dtype);
/// Bytes per block (Q4_0 18, Q4_1 20, Q5_0 22, Q5_1 24, Q8_0 34, Q2_K 84, Q3_K 110, Q4_K 144,
/// Q5_K 176, Q6_K 210), 0 for a type that is not quantized.
long orochi_quant_block_bytes(int dtype);

/// dst[count] = the weights of count / block_weights blocks at src, equal bit for bit to gguf-py's
/// gguf.quants.dequantize (the same float operations in the same order, none fused).
void orochi_dequantize(int dtype, const void *src, float *dst, long count);
/// Rows r0..<r1 of a [n, k] matrix of `dtype` into dst [(r1 − r0), k] (prefill widens blocks of rows
/// for sgemm; the embedding table reads one row).
void orochi_dequantize_rows(int dtype, const void *w, long r0, long r1, long k, float *dst);

/// Quantizes rows × k floats (row-major, k a multiple of the block size) into dtype's blocks, as
/// ggml's quantize_row_<type>_ref does with no importance matrix: llama-quantize's bytes, bit for bit.
/// Every type above (Q2_K and Q3_K included). Returns 0, or -1 for a type it cannot quantize.
/// Allocates nothing; one thread.
int orochi_quantize_rows(int dtype, const float *src, void *dst, long rows, long k);

/// Bytes of one row of k activations quantized for dtype's products (a multiple of 64).
size_t orochi_quant_activation_bytes(int dtype, long k);
/// x[k] → xq, the form dtype's products read: 8-bit values with a float scale per 32 (per 256 for
/// the K-quants) and block sums. The same bytes from every kernel family.
void orochi_quantize_activation(int dtype, const float *x, void *xq, long k);

/// y[r] (+)= row r of W · x for r in r0..<r1 on the calling thread, x quantized by
/// orochi_quantize_activation. Row r starts at w + r · (k / block_weights) · block_bytes.
void orochi_qmatvec_rows(int dtype, const void *w, long r0, long r1, long k, const void *xq, float *y, int accumulate);
/// This thread's buffer `slot` (0–2) for quantized inputs, of at least `bytes`: kept between calls,
/// grown on demand, never freed (a product's input, or each format's in a group). Aborts when
/// memory for it cannot be had.
void *orochi_quant_input(int slot, size_t bytes);
/// y[n] (+)= W[n, k] · x[k]: x quantized once on the calling thread (into a buffer of its own, kept
/// between calls), rows split over the pool's threads when the matrix is large enough to pay for it.
void orochi_qmatvec(int dtype, const void *w, long n, long k, const float *x, float *y, int accumulate);
/// Y[i, :] (+)= W · X[i, :] for m rows of X (`ldx` apart) into rows of Y (`ldy` apart): all m rows
/// quantized once, each weight row unpacked once per four tokens; threaded like orochi_qmatvec.
void orochi_qmatvec_multi(int dtype, const void *w, long n, long k, const float *x, long ldx, long m,
                          float *y, long ldy, int accumulate);

#ifdef __cplusplus
}
#endif
#endif
