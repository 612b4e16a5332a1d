import COrochiKernels

/// How a weight is held in memory: as the file stores it, or widened to float32. Floats are
/// f32, f16, bf16 (also the KV cache's element types); the rest are GGUF's block-quantized
/// formats, rows of blocks of 32 or 256 weights that share scales. Every kernel reads a format
/// through its code: the block size and bytes below are all the rest of the code needs to know.
public enum WeightType: String, Sendable, CaseIterable {
    case f32, f16, bf16
    case q8_0, q4_0, q4_1, q5_0, q5_1, q2_K = "q2_k", q3_K = "q3_k", q4_K = "q4_k", q5_K = "q5_k", q6_K = "q6_k"

    public var code: Int32 {
        switch self {
        case .f32: return Int32(OROCHI_F32)
        case .f16: return Int32(OROCHI_F16)
        case .bf16: return Int32(OROCHI_BF16)
        case .q8_0: return Int32(OROCHI_Q8_0)
        case .q4_0: return Int32(OROCHI_Q4_0)
        case .q4_1: return Int32(OROCHI_Q4_1)
        case .q5_0: return Int32(OROCHI_Q5_0)
        case .q5_1: return Int32(OROCHI_Q5_1)
        case .q2_K: return Int32(OROCHI_Q2_K)
        case .q3_K: return Int32(OROCHI_Q3_K)
        case .q4_K: return Int32(OROCHI_Q4_K)
        case .q5_K: return Int32(OROCHI_Q5_K)
        case .q6_K: return Int32(OROCHI_Q6_K)
        }
    }
    /// The element types of floats: what tests of the float kernels go through.
    public static let floats: [WeightType] = [.f32, .f16, .bf16]
    public var isQuantized: Bool { blockValues > 1 }
    /// Weights per block (1 for the float types) and bytes per block.
    public var blockValues: Int {
        switch self {
        case .f32, .f16, .bf16: return 1
        case .q8_0, .q4_0, .q4_1, .q5_0, .q5_1: return 32
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K: return 256
        }
    }
    public var blockBytes: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        case .q8_0: return 34
        case .q4_0: return 18
        case .q4_1: return 20
        case .q5_0: return 22
        case .q5_1: return 24
        case .q2_K: return 84
        case .q3_K: return 110
        case .q4_K: return 144
        case .q5_K: return 176
        case .q6_K: return 210
        }
    }
    /// Bytes of one element of a float type (the KV cache's types); quantized formats have none.
    public var byteSize: Int {
        precondition(!isQuantized, "a quantized format has no per-element size: use rowBytes")
        return blockBytes
    }
    /// Bytes of a row of `columns` weights (a whole number of blocks: checked at load).
    public func rowBytes(_ columns: Int) -> Int { columns / blockValues * blockBytes }
    /// Bits per weight, for reports: 4.5 for Q4_0, 8.5 for Q8_0.
    public var bitsPerWeight: Double { Double(blockBytes * 8) / Double(blockValues) }
}

/// A weight matrix W[rows, columns], row-major, in its stored type: a view into the mapped
/// checkpoint (or a buffer owned by whoever built it). Half-precision matrices stay half: decode
/// widens them in registers; prefill widens one matrix at a time into a scratch buffer for sgemm.
public struct WeightMatrix: @unchecked Sendable {
    public let raw: UnsafeRawPointer
    public let type: WeightType
    public let rows: Int
    public let columns: Int

    public init(raw: UnsafeRawPointer, type: WeightType, rows: Int, columns: Int) {
        self.raw = raw; self.type = type; self.rows = rows; self.columns = columns
    }

    public init(_ f32: UnsafePointer<Float>, rows: Int, columns: Int) {
        self.init(raw: UnsafeRawPointer(f32), type: .f32, rows: rows, columns: columns)
    }

    public var count: Int { rows * columns }
    /// Rows first..<first + count of this matrix, a view (a fused projection's parts, one expert
    /// of a stacked tensor).
    public func rows(_ first: Int, count: Int) -> WeightMatrix {
        precondition(first >= 0 && count >= 0 && first + count <= rows, "rows \(first)..<\(first + count) of \(rows)")
        return WeightMatrix(raw: raw + first * rowBytes, type: type, rows: count, columns: columns)
    }
    public var bytes: Int { rows * rowBytes }
    /// Bytes of one row.
    public var rowBytes: Int { type.rowBytes(columns) }

    /// y[rows] = W · x[columns] (or y += …): one token.
    @inline(__always)
    public func matvec(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, accumulate: Bool = false) {
        orochi_matvec(type.code, raw, rows, columns, columns, x, y, accumulate ? 1 : 0)
    }

    /// Y_i[m, rows_i] = X[m, columns] · W_iᵀ through two or three matrices of the same inputs (a
    /// layer's q, k and v; its gate and up) as one job for the threads: one hand-off for all of them
    /// instead of one per matrix, which a small model's decode feels, and their rows shared out
    /// evenly. One token takes the one-token kernel, more the multi-token kernel (the caller has
    /// decided that it, not OpenBLAS, should take them). Allocates nothing.
    public static func products(_ x: UnsafePointer<Float>, rows m: Int, _ a: (WeightMatrix, UnsafeMutablePointer<Float>),
                                _ b: (WeightMatrix, UnsafeMutablePointer<Float>),
                                _ c: (WeightMatrix, UnsafeMutablePointer<Float>)? = nil) {
        precondition(a.0.columns == b.0.columns && (c == nil || c!.0.columns == a.0.columns), "a group's matrices share their inputs")
        func product(_ m: (WeightMatrix, UnsafeMutablePointer<Float>)) -> orochi_group_product {
            orochi_group_product(dtype: m.0.type.code, w: m.0.raw, n: m.0.rows, ldw: m.0.columns, y: m.1)
        }
        var products = (product(a), product(b), c.map(product) ?? product(b))
        let count: Int32 = c == nil ? 2 : 3, k = a.0.columns
        withUnsafeMutablePointer(to: &products) {
            $0.withMemoryRebound(to: orochi_group_product.self, capacity: 3) {
                if m == 1 { orochi_matvec_group($0, count, k, x, 0) } else { orochi_matvec_multi_group($0, count, k, x, k, m, 0) }
            }
        }
    }

    /// Whether products of many tokens through this matrix take our multi-token kernel rather than
    /// OpenBLAS (orochi_gemm_uses_own_for: the CPU, the OpenBLAS core and the shape decide).
    public var takesOwnKernelForManyTokens: Bool { orochi_gemm_uses_own_for(rows, columns) != 0 }

    /// Y[m, rows] = X[m, columns] · Wᵀ (or Y += …) for a few tokens (a batch of sequences
    /// decoding together): the weights in their stored type, each read once per four tokens.
    public func matvecMulti(_ x: UnsafePointer<Float>, rows m: Int, ldx: Int? = nil,
                            into y: UnsafeMutablePointer<Float>, ldy: Int? = nil, accumulate: Bool = false) {
        orochi_matvec_multi(type.code, raw, rows, columns, columns, x, ldx ?? columns, m, y, ldy ?? rows, accumulate ? 1 : 0)
    }

    /// Y[m, rows] = X[m, columns] · Wᵀ (or Y += …): many tokens through sgemm. Half-precision
    /// weights are widened a block of rows at a time into `scratch` (`scratchCount` floats, at
    /// least one row), which stays in cache for the product that follows.
    public func matmul(_ x: UnsafePointer<Float>, rows m: Int, ldx: Int? = nil,
                       into y: UnsafeMutablePointer<Float>, ldy: Int? = nil, accumulate: Bool = false,
                       scratch: UnsafeMutablePointer<Float>?, scratchCount: Int) {
        let ldy = ldy ?? rows
        if orochi_gemm_uses_own_for(rows, columns) != 0 {
            // OpenBLAS runs SSE kernels on an AVX-512 CPU (BLAS.isWeak), or the product is short
            // (Mamba's dt_proj) or small (a 6.4M model's layers): our multi-token kernel, on the
            // weights as stored, does it faster.
            matvecMulti(x, rows: m, ldx: ldx, into: y, ldy: ldy, accumulate: accumulate)
            return
        }
        if type == .f32 {
            BLAS.matmul(x, rows: m, inner: columns, ldx: ldx, weight: raw.assumingMemoryBound(to: Float.self),
                        outputs: rows, into: y, ldy: ldy, accumulate: accumulate)
            return
        }
        guard let scratch, scratchCount >= columns else { preconditionFailure("half-precision weights need a widening buffer of a row or more") }
        let block = scratchCount / columns
        var r0 = 0
        while r0 < rows {
            let r1 = min(rows, r0 + block)
            orochi_to_f32(type.code, raw + r0 * rowBytes, scratch, (r1 - r0) * columns)
            BLAS.matmul(x, rows: m, inner: columns, ldx: ldx, weight: scratch, outputs: r1 - r0,
                        into: y + r0, ldy: ldy, accumulate: accumulate)
            r0 = r1
        }
    }

    /// Row `r` as float32 into `out` [columns] (an embedding lookup).
    @inline(__always)
    public func row(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        orochi_to_f32(type.code, raw + r * rowBytes, out, columns)
    }

    /// The `i`-th value in row-major order, as float32.
    public func element(_ i: Int, into out: UnsafeMutablePointer<Float>) {
        guard type.isQuantized else { orochi_to_f32(type.code, raw + i * type.blockBytes, out, 1); return }
        withUnsafeTemporaryAllocation(of: Float.self, capacity: type.blockValues) { block in
            let b = i / type.blockValues
            orochi_to_f32(type.code, raw + b * type.blockBytes, block.baseAddress!, type.blockValues)
            out.pointee = block[i % type.blockValues]
        }
    }

    /// Every value as float32 into `out` [count].
    public func widen(into out: UnsafeMutablePointer<Float>) {
        orochi_to_f32(type.code, raw, out, count)
    }
}

/// Float32 → IEEE half (round to nearest even), `count` values.
public func narrowToHalf(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<UInt16>, count: Int) {
    orochi_f32_to_f16(src, dst, count)
}

/// Attention of one new token over a KV cache [kvHeads, capacity, headDim] in f32 or f16:
/// scores, softmax and the weighted sum of values in one pass over rows first..<first + count,
/// for every query head (q, out: [heads, headDim]). See attention.c.
@inline(__always)
public func attendOneToken(q: UnsafePointer<Float>, heads: Int, kvHeads: Int, headDim: Int,
                           keys: UnsafeRawPointer, values: UnsafeRawPointer, cacheType: WeightType, capacity: Int,
                           first: Int, count: Int, scale: Float, into out: UnsafeMutablePointer<Float>) {
    orochi_attention_decode(q, Int32(heads), Int32(kvHeads), Int32(headDim), keys, values, cacheType.code,
                            capacity, first, count, scale, out)
}

/// Prefill attention's online softmax over one tile of scores [rows, keys] (see attention.c): row r
/// is the query at position `firstPosition + r` against keys `firstKey ..< firstKey + keys`, seeing
/// those at most `window` positions back (nil: all earlier ones). Visible scores become
/// exp(s − running maximum), the others 0; each row's running maximum and sum, and its output so
/// far (`headDim` floats, `outStride` apart), are updated as the maximum grows.
@inline(__always)
public func softmaxTile(_ scores: UnsafeMutablePointer<Float>, rows: Int, keys: Int, firstKey: Int, firstPosition: Int,
                        window: Int?, rowMax: UnsafeMutablePointer<Float>, rowSum: UnsafeMutablePointer<Float>,
                        out: UnsafeMutablePointer<Float>, outStride: Int, headDim: Int) {
    orochi_attention_softmax_tile(scores, Int32(rows), Int32(keys), firstKey, firstPosition, window ?? 0,
                                  rowMax, rowSum, out, outStride, Int32(headDim))
}

/// Prefill attention's first product over one tile (see attention.c): S[rows, keys] =
/// scale · Q[rows, headDim] · K[keys, headDim]ᵀ, Q rows `queryStride` apart, K and S contiguous.
/// Row r sees keys up to r + `diagonal` (causal; nil: all): scores no row of its 4-row block sees
/// are left unwritten. `transposedKeys` is scratch of `headDim × attentionKeyColumns(keys)` floats.
@inline(__always)
public func attentionScores(_ q: UnsafePointer<Float>, queryStride: Int, rows: Int, keys k: UnsafePointer<Float>, count n: Int,
                            headDim: Int, scale: Float, diagonal: Int? = nil, transposedKeys: UnsafeMutablePointer<Float>,
                            into s: UnsafeMutablePointer<Float>) {
    orochi_attention_scores(q, queryStride, Int32(rows), k, Int32(n), Int32(headDim), scale, diagonal ?? n, transposedKeys, s)
}

/// Columns of the transposed-key scratch for a tile of `keys` keys.
public func attentionKeyColumns(_ keys: Int) -> Int { orochi_attention_kt_columns(Int32(keys)) }

/// Prefill attention's second product over one tile: O[rows, headDim] += P[rows, keys] ·
/// V[keys, headDim], P and V contiguous, O rows `outStride` apart. Row r sees keys up to
/// r + `diagonal` (nil: all), and P must be 0 past that (keys no row of a 4-row block sees are skipped).
@inline(__always)
public func attentionValues(_ p: UnsafePointer<Float>, rows: Int, keys n: Int, diagonal: Int? = nil, values v: UnsafePointer<Float>,
                            headDim: Int, into o: UnsafeMutablePointer<Float>, outStride: Int) {
    orochi_attention_values(p, Int32(rows), Int32(n), diagonal ?? n, v, Int32(headDim), o, outStride)
}

/// Float32 rows → `type`'s blocks as llama.cpp's reference quantizers write them (no importance
/// matrix): `rows` × `columns` values, `columns` a multiple of the block size; dst holds
/// rows · type.rowBytes(columns) bytes. False for a type with no quantizer.
public func quantizeRows(_ type: WeightType, _ src: UnsafePointer<Float>, into dst: UnsafeMutableRawPointer,
                         rows: Int, columns: Int) -> Bool {
    precondition(type.isQuantized && columns % type.blockValues == 0, "quantizeRows: \(columns) columns of \(type)")
    return orochi_quantize_rows(type.code, src, dst, rows, columns) == 0
}
