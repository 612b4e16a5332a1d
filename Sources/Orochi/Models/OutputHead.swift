/// The output head every architecture shares: the final RMSNorm, then logits = h·W_lmᵀ.
enum OutputHead {
    /// For a prefill chunk of `rows` hidden states x[rows, D]: logits of every row into
    /// `allLogits` [rows, V] (one sgemm) when given, else of the last row only (one sgemv).
    /// Either way `lastLogits` [V] ends up holding the last row's logits.
    static func logits(hidden x: UnsafePointer<Float>, rows t: Int, dim: Int, vocab: Int,
                       finalNorm: UnsafePointer<Float>, eps: Float, lmHead: UnsafePointer<Float>,
                       scratch xb: UnsafeMutablePointer<Float>,        // [rows, D]
                       allLogits: UnsafeMutablePointer<Float>?, lastLogits: UnsafeMutablePointer<Float>) {
        if let allLogits {
            Kernels.rmsNorm(rows: t, x, weight: finalNorm, into: xb, count: dim, eps: eps)
            BLAS.matmul(xb, rows: t, inner: dim, weight: lmHead, outputs: vocab, into: allLogits)
            lastLogits.update(from: allLogits + (t - 1) * vocab, count: vocab)
        } else {
            Kernels.rmsNorm(x + (t - 1) * dim, weight: finalNorm, into: xb, count: dim, eps: eps)
            BLAS.matvec(lmHead, outputs: vocab, inner: dim, xb, into: lastLogits)
        }
    }
}
