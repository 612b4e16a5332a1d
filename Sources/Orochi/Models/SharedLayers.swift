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

/// The input side every architecture shares: token checks, the embedding lookup, and cutting a
/// long prefill into chunks that bound the scratch memory.
enum InputSide {
    /// Every id must index the vocabulary; checked before any state changes.
    @inline(__always)
    static func check(_ token: Int, vocab: Int) throws {
        guard token >= 0 && token < vocab else { throw ModelError.tokenOutOfRange(token: token, vocabSize: vocab) }
    }

    static func check(_ tokens: [Int], vocab: Int) throws {
        for t in tokens { try check(t, vocab: vocab) }
    }

    /// X[T, D] = embedding rows of `tokens`.
    @inline(__always)
    static func embed(_ tokens: ArraySlice<Int>, table: UnsafePointer<Float>, dim: Int, into x: UnsafeMutablePointer<Float>) {
        for (i, token) in tokens.enumerated() { (x + i * dim).update(from: table + token * dim, count: dim) }
    }

    /// Calls `body` on consecutive chunks of at most `chunk` tokens, with the matching rows of
    /// `allLogits` [T, V] when given.
    static func inChunks(_ tokens: [Int], chunk: Int, vocab: Int, allLogits: UnsafeMutablePointer<Float>?,
                         _ body: (ArraySlice<Int>, UnsafeMutablePointer<Float>?) -> Void) {
        var start = 0
        while start < tokens.count {
            let end = min(tokens.count, start + chunk)
            body(tokens[start..<end], allLogits.map { $0 + start * vocab })
            start = end
        }
    }
}
