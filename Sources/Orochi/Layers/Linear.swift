/// A linear layer y = x·Wᵀ (+ b), with one forward for any number of tokens: one token goes
/// through our matrix-vector kernel (weights read as stored, f16/bf16 widened in registers), a
/// few (a batch of sequences decoding together) through its multi-token form, which reads each
/// weight once per four tokens, many (a prefill) through sgemm. So decode and prefill run the
/// same code and cannot drift apart.
struct Linear {
    let weight: WeightMatrix                 // [out, in]
    let bias: UnsafePointer<Float>?          // [out]
    /// Up to this many tokens take the multi-token matrix-vector kernel, beyond it sgemm. sgemm
    /// on half-precision weights first widens the whole matrix to float32, which costs more than
    /// the kernel's passes up to about 64 tokens (llama-130m f16 prefill of 24 / 48 / 64 tokens:
    /// 740 / 810 / 845 tokens/s against 263–369 / 630 / 717 through sgemm); on float32 weights the
    /// two are even from 16 tokens on, and sgemm takes over.
    static let fewTokensHalf = 64, fewTokensF32 = 16
    var fewTokens: Int { weight.type == .f32 ? Self.fewTokensF32 : Self.fewTokensHalf }

    init(_ weight: WeightMatrix, bias: UnsafePointer<Float>? = nil) { self.weight = weight; self.bias = bias }

    var outputs: Int { weight.rows }
    var inputs: Int { weight.columns }

    /// Y[t, out] = X[t, in]·Wᵀ + b, or Y += … when `accumulate` (the residual add). `ldx` lets X
    /// be a strided view (e.g. the first columns of a wider row).
    @inline(__always)
    func callAsFunction(_ x: UnsafePointer<Float>, rows t: Int, ldx: Int? = nil, into y: UnsafeMutablePointer<Float>,
                        accumulate: Bool = false, widen: Widening) {
        if t == 1 {
            weight.matvec(x, into: y, accumulate: accumulate)
        } else if t <= fewTokens {
            weight.matvecMulti(x, rows: t, ldx: ldx, into: y, accumulate: accumulate)
        } else {
            weight.matmul(x, rows: t, ldx: ldx, into: y, accumulate: accumulate,
                          scratch: widen.buffer, scratchCount: Widening.floats)
        }
        if let bias { for i in 0..<t { Kernels.add(bias, into: y + i * outputs, count: outputs) } }
    }

    /// Two or three layers of the same input X[T, in] (a layer's q, k and v; its gate and up), each
    /// into its own Y[T, out]: as one job for the threads wherever our kernels take all of them
    /// (one token; a few; many through the multi-token kernel), which saves the threads a hand-off
    /// per matrix and shares their rows out more evenly; each alone otherwise (OpenBLAS's sgemm).
    static func together(_ x: UnsafePointer<Float>, rows t: Int, _ a: (Linear, UnsafeMutablePointer<Float>),
                         _ b: (Linear, UnsafeMutablePointer<Float>), _ c: (Linear, UnsafeMutablePointer<Float>)? = nil,
                         widen: Widening) {
        func ours(_ layer: Linear) -> Bool { t <= layer.fewTokens || layer.weight.takesOwnKernelForManyTokens }
        func weights(_ m: (Linear, UnsafeMutablePointer<Float>)) -> (WeightMatrix, UnsafeMutablePointer<Float>) { (m.0.weight, m.1) }
        if t == 1 || (ours(a.0) && ours(b.0) && (c.map { ours($0.0) } ?? true)) {
            WeightMatrix.products(x, rows: t, weights(a), weights(b), c.map(weights))
        } else {
            a.0(x, rows: t, into: a.1, widen: widen)
            b.0(x, rows: t, into: b.1, widen: widen)
            if let c { c.0(x, rows: t, into: c.1, widen: widen) }
            return                                                    // each added its bias
        }
        func addBias(_ m: (Linear, UnsafeMutablePointer<Float>)) {
            if let bias = m.0.bias { for i in 0..<t { Kernels.add(bias, into: m.1 + i * m.0.outputs, count: m.0.outputs) } }
        }
        addBias(a); addBias(b)
        if let c { addBias(c) }
    }
}

/// Prefill's scratch for half-precision weights: sgemm needs float32, so each matrix is widened a
/// block of rows at a time into this buffer (4 MiB, cache-sized) just before its product.
/// Allocated only for models that have half-precision weights.
final class Widening {
    static let floats = 1 << 20
    private let storage: FloatBuffer?
    var buffer: UnsafeMutablePointer<Float>? { storage?.pointer }
    init(matrices: [WeightMatrix]) {
        storage = matrices.contains { $0.type != .f32 } ? FloatBuffer(count: Self.floats) : nil
    }
}

/// The output head every architecture shares: the final RMSNorm, then logits = h·W_lmᵀ.
enum OutputHead {
    /// For a chunk of `rows` hidden states x[rows, D]: logits of every row into `allLogits`
    /// [rows, V] when given, else of the last row only. Either way `lastLogits` [V] ends up
    /// holding the last row's logits.
    static func logits(hidden x: UnsafePointer<Float>, rows t: Int, dim: Int,
                       finalNorm: Norm, eps: Float, lmHead: Linear,
                       scratch xb: UnsafeMutablePointer<Float>,        // [rows, D]
                       allLogits: UnsafeMutablePointer<Float>?, lastLogits: UnsafeMutablePointer<Float>, widen: Widening) {
        let vocab = lmHead.outputs
        if let allLogits {
            finalNorm(rows: t, x, into: xb, count: dim, eps: eps)
            lmHead(xb, rows: t, into: allLogits, widen: widen)
            lastLogits.update(from: allLogits + (t - 1) * vocab, count: vocab)
        } else {
            finalNorm(rows: 1, x + (t - 1) * dim, into: xb, count: dim, eps: eps)
            lmHead(xb, rows: 1, into: lastLogits, widen: widen)
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

    /// A batched decode step: one token per sequence, each a distinct sequence of `model` with
    /// room for one more token. Checked before any state changes.
    static func checkBatch(_ tokens: [Int], _ sequences: [SequenceState], of model: AnyObject, vocab: Int,
                           capacity: Int) throws {
        guard tokens.count == sequences.count, !tokens.isEmpty else {
            throw ModelError.badBatch("\(tokens.count) tokens for \(sequences.count) sequences: a batch needs one token per sequence, at least one")
        }
        try check(tokens, vocab: vocab)
        let owner = ObjectIdentifier(model)
        for (i, s) in sequences.enumerated() {
            guard s.owner == .some(owner) else { throw ModelError.badBatch("sequence \(i) belongs to another model") }
            guard s.position < capacity else { throw ModelError.contextOverflow(requested: s.position + 1, capacity: capacity) }
            for j in 0..<i where sequences[j] === s { throw ModelError.badBatch("sequence \(i) is also sequence \(j)") }
        }
    }

    /// Each row of a batch's logits [B, V] to its sequence.
    static func scatter(_ logits: UnsafePointer<Float>, to sequences: [SequenceState], vocab: Int) {
        for (i, s) in sequences.enumerated() { s.logits.pointer.update(from: logits + i * vocab, count: vocab) }
    }

    /// X[T, D] = embedding rows of `tokens` (widened to float32).
    @inline(__always)
    static func embed<C: Collection<Int>>(_ tokens: C, table: WeightMatrix, into x: UnsafeMutablePointer<Float>) {
        for (i, token) in tokens.enumerated() { table.row(token, into: x + i * table.columns) }
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

    /// A sample of the embedding for a model's fingerprint (every (count/512)-th value): the same
    /// shapes with other weights give another identity; the same weights stored as f16 or widened
    /// to f32 give the same one.
    static func fingerprintSample(_ w: WeightMatrix, into bytes: inout [UInt8]) {
        var value: Float = 0
        for i in Swift.stride(from: 0, to: w.count, by: max(1, w.count / 512)) {
            w.element(i, into: &value)
            bytes.appendFloats(&value, count: 1)
        }
    }
}
