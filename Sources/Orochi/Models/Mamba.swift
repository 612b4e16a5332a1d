import Foundation

// Mamba-1 (Gu & Dao 2023, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces"),
// as in transformers' MambaForCausalLM (modeling_mamba.py, its slow path). Read top to bottom:
//
//   x = embed[token]
//   for each layer (a residual block around the mixer):
//       h = RMSNorm(x)
//       x_in, z = split(h·W_inᵀ)                     the SSM branch and the gate         [B, L, E] ×2
//       u = SiLU(conv1d(x_in))                        causal depthwise conv over time      [B, L, E]
//       Δ_low, B, C = split(u·W_xᵀ)                   selection: Δ, B, C depend on input   [B, L, R], [B, L, N] ×2
//       Δ = softplus(Δ_low·W_dtᵀ + b_dt)                                                   [B, L, E]
//       A = −exp(A_log)                               fixed, diagonal per channel          [E, N]
//       Ā = exp(ΔA),  B̄u = ΔBu                        discretisation (zero-order hold)     [B, L, E, N]
//       h_t = Ā_t h_{t−1} + B̄_t u_t,  y_t = C_t h_t + D u_t       the selective scan        [B, L, E]
//       x = x + (y ⊙ SiLU(z))·W_outᵀ
//   logits = RMSNorm(x)·W_lmᵀ
//
// Shape letters as in the paper: B batch (always 1 here), L tokens (a prefill chunk), D hidden
// size, E = expand·D inner channels (the paper's ED), N state size, R rank of Δ, K conv kernel,
// V vocabulary. The state does not grow with L: per layer a conv state [K−1, E] (the last K−1
// inputs) and an SSM state [E, N], so decode costs the same at any depth.

/// config.json of a Mamba model, with the Hugging Face key names and transformers' defaults.
public struct MambaConfig: Decodable, Sendable {
    /// `time_step_rank`: an integer, or "auto" = ⌈D/16⌉.
    public enum TimeStepRank: Decodable, Sendable, Equatable {
        case auto
        case value(Int)
        case invalid(String)
        public init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let v = try? c.decode(Int.self) { self = .value(v) }
            else if let s = try? c.decode(String.self) { self = s == "auto" ? .auto : .invalid(s) }
            else { self = .invalid("a non-integer") }
        }
    }

    public var model_type: String?
    public var hidden_size: Int
    public var num_hidden_layers: Int
    public var vocab_size: Int
    public var state_size: Int
    public var expand: Int
    public var conv_kernel: Int
    public var time_step_rank: TimeStepRank
    public var intermediate_size: Int?
    public var use_conv_bias: Bool
    public var use_bias: Bool
    public var layer_norm_epsilon: Double
    /// Residuals in float32: always the case here, every activation is float32.
    public var residual_in_fp32: Bool
    public var tie_word_embeddings: Bool
    public var hidden_act: String?

    /// In code, e.g. a benchmark preset: `MambaConfig(hidden_size: 768, num_hidden_layers: 24, vocab_size: 32000)`.
    public init(hidden_size: Int = 768, num_hidden_layers: Int = 24, vocab_size: Int = 50280,
                state_size: Int = 16, expand: Int = 2, conv_kernel: Int = 4,
                time_step_rank: TimeStepRank = .auto, intermediate_size: Int? = nil,
                use_conv_bias: Bool = true, use_bias: Bool = false, layer_norm_epsilon: Double = 1e-5,
                residual_in_fp32: Bool = true, tie_word_embeddings: Bool = true) {
        model_type = "mamba"
        self.hidden_size = hidden_size; self.num_hidden_layers = num_hidden_layers; self.vocab_size = vocab_size
        self.state_size = state_size; self.expand = expand; self.conv_kernel = conv_kernel
        self.time_step_rank = time_step_rank; self.intermediate_size = intermediate_size
        self.use_conv_bias = use_conv_bias; self.use_bias = use_bias; self.layer_norm_epsilon = layer_norm_epsilon
        self.residual_in_fp32 = residual_in_fp32; self.tie_word_embeddings = tie_word_embeddings
        hidden_act = "silu"
    }

    enum CodingKeys: String, CodingKey {
        case model_type, hidden_size, num_hidden_layers, vocab_size, state_size, expand, conv_kernel, time_step_rank,
             intermediate_size, use_conv_bias, use_bias, layer_norm_epsilon, residual_in_fp32, tie_word_embeddings, hidden_act
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(hidden_size: try c.decode(Int.self, forKey: .hidden_size),
                  num_hidden_layers: try c.decode(Int.self, forKey: .num_hidden_layers),
                  vocab_size: try c.decode(Int.self, forKey: .vocab_size))
        model_type = try c.decodeIfPresent(String.self, forKey: .model_type)
        state_size = try c.decodeIfPresent(Int.self, forKey: .state_size) ?? state_size
        expand = try c.decodeIfPresent(Int.self, forKey: .expand) ?? expand
        conv_kernel = try c.decodeIfPresent(Int.self, forKey: .conv_kernel) ?? conv_kernel
        time_step_rank = try c.decodeIfPresent(TimeStepRank.self, forKey: .time_step_rank) ?? .auto
        intermediate_size = try c.decodeIfPresent(Int.self, forKey: .intermediate_size)
        use_conv_bias = try c.decodeIfPresent(Bool.self, forKey: .use_conv_bias) ?? use_conv_bias
        use_bias = try c.decodeIfPresent(Bool.self, forKey: .use_bias) ?? use_bias
        layer_norm_epsilon = try c.decodeIfPresent(Double.self, forKey: .layer_norm_epsilon) ?? layer_norm_epsilon
        residual_in_fp32 = try c.decodeIfPresent(Bool.self, forKey: .residual_in_fp32) ?? residual_in_fp32
        tie_word_embeddings = try c.decodeIfPresent(Bool.self, forKey: .tie_word_embeddings) ?? tie_word_embeddings
        hidden_act = try c.decodeIfPresent(String.self, forKey: .hidden_act)
    }

    /// E: inner channels.
    public var innerSize: Int { intermediate_size ?? expand * hidden_size }
    /// R: the rank of Δ's projection.
    public var dtRank: Int {
        if case let .value(v) = time_step_rank { return v }
        return hidden_size / 16 + (hidden_size % 16 == 0 ? 0 : 1)
    }

    /// Checks the sizes before any tensor is read, naming the offending key.
    func validate(path: String) throws {
        func positive(_ v: Int, _ key: String) throws {
            guard v > 0 else { throw LoadError.badConfig(path: path, detail: "'\(key)' must be positive, found \(v)") }
        }
        try positive(hidden_size, "hidden_size")
        try positive(num_hidden_layers, "num_hidden_layers")
        try positive(vocab_size, "vocab_size")
        try positive(state_size, "state_size")
        try positive(conv_kernel, "conv_kernel")
        if intermediate_size == nil { try positive(expand, "expand") }
        try positive(try checkedInnerSize(path: path), intermediate_size == nil ? "expand" : "intermediate_size")
        if case let .invalid(s) = time_step_rank {
            throw LoadError.badConfig(path: path, detail: "'time_step_rank' must be an integer or \"auto\", found \(s)")
        }
        try positive(dtRank, "time_step_rank")
        if let act = hidden_act, act != "silu" {
            throw LoadError.badConfig(path: path, detail: "hidden_act '\(act)' is not supported (expected 'silu')")
        }
        try checkSizes(path: path)
    }
}

/// One residual block's weights: matrices in their stored type (views into the checkpoint),
/// vectors float32, and the conv filter and A derived once at load.
struct MambaLayerWeights {
    let norm: UnsafePointer<Float>          // [D]
    let inProj: Linear                      // [2E, D] (+ [2E] with use_bias): rows 0..<E give x, rows E..<2E the gate z
    let conv: UnsafePointer<Float>          // [K, E], the checkpoint's [E, 1, K] transposed
    let convBias: UnsafePointer<Float>?     // [E] with use_conv_bias
    let xProj: Linear                       // [R + 2N, E]: Δ_low, B, C
    let dtProj: Linear                      // [E, R] (its bias is added inside the scan, before softplus)
    let dtBias: UnsafePointer<Float>        // [E]
    let a: UnsafePointer<Float>             // [E, N] = −exp(A_log), blocked by 16 channels ([⌈E/16⌉, N, 16])
    let d: UnsafePointer<Float>             // [E]
    let outProj: Linear                     // [D, E] (+ [D] with use_bias)
}

public final class MambaModel: LanguageModel {
    public let config: MambaConfig
    public let info: ModelInfo
    /// The state is fixed-size: any number of tokens fits.
    public let contextCapacity = Int.max
    public private(set) var position = 0

    let dim: Int, inner: Int, stateSize: Int, rank: Int, kernel: Int, layers: Int, vocab: Int
    let eps: Float
    /// Prefill runs in chunks of at most this many tokens, bounding scratch memory.
    static let prefillChunk = 256

    // Weights (kept alive by `source` and `derived`).
    let source: WeightSource
    private var derived: [FloatBuffer] = []
    let embedding: WeightMatrix             // [V, D]
    let layerWeights: [MambaLayerWeights]
    let finalNorm: UnsafePointer<Float>     // [D]
    let lmHead: Linear                      // [V, D] (the embedding when tied)
    let widen: Widening

    // The recurrent state, updated in place.
    let convState: FloatBuffer              // [layers, K−1, E]
    let ssmState: FloatBuffer               // [layers, E, N], each layer's blocked by 16 channels for the scan kernel

    // Decode scratch, one token: x, xb [D] (residual stream, normed input), xz [2E], u, delta, y [E]
    // (conv output, Δ, scan output), dbc [R + 2N], logits [V].
    let x, xb, xz, u, delta, y, dbc, logits: FloatBuffer

    // Prefill scratch for one chunk, allocated on first prefill and reused.
    private var chunkScratch: ChunkScratch?
    final class ChunkScratch {
        let x, xb, xz, u, delta, y, dbc: FloatBuffer   // [L, D] ×2, [L, 2E], [L, E] ×3, [L, R + 2N]
        init(rows: Int, dim: Int, inner: Int, dbc: Int) {
            x = FloatBuffer(count: rows * dim); xb = FloatBuffer(count: rows * dim); xz = FloatBuffer(count: rows * 2 * inner)
            u = FloatBuffer(count: rows * inner); delta = FloatBuffer(count: rows * inner); y = FloatBuffer(count: rows * inner)
            self.dbc = FloatBuffer(count: rows * dbc)
        }
    }

    /// Loads a Hugging Face MambaForCausalLM directory. `context` is accepted for the common
    /// interface; the state does not depend on it.
    public convenience init(directory: URL, context: Int? = nil) throws {
        try self.init(directory: directory, options: LoadOptions(context: context))
    }

    public convenience init(directory: URL, options: LoadOptions) throws {
        let configURL = directory.appendingPathComponent("config.json")
        let config = try readJSONConfig(MambaConfig.self, from: configURL)
        if let context = options.context, context <= 0 {
            throw LoadError.badConfig(path: configURL.path, detail: "context must be positive, got \(context)")
        }
        try self.init(config: config, source: CheckpointWeights(try Checkpoint(directory: directory), storage: options.weights),
                      configPath: configURL.path)
    }

    /// From a checkpoint, or with seeded random weights when `checkpoint` is nil (benchmark presets;
    /// `randomWeights` f16 narrows their matrices to half precision).
    public convenience init(config: MambaConfig, checkpoint: Checkpoint?, configPath: String, randomSeed: UInt64 = 0,
                            randomWeights: WeightType = .f32) throws {
        let source: WeightSource = checkpoint.map { CheckpointWeights($0, storage: .asStored) }
            ?? RandomWeights(seed: randomSeed, storage: randomWeights)
        try self.init(config: config, source: source, configPath: configPath)
    }

    init(config: MambaConfig, source: WeightSource, configPath: String) throws {
        try config.validate(path: configPath)
        self.config = config
        let dim = config.hidden_size, e = config.innerSize, n = config.state_size, r = config.dtRank
        let k = config.conv_kernel, layers = config.num_hidden_layers, vocab = config.vocab_size
        self.dim = dim; inner = e; stateSize = n; rank = r; kernel = k; self.layers = layers; self.vocab = vocab
        eps = Float(config.layer_norm_epsilon)

        var derived: [FloatBuffer] = []
        /// conv1d's [E, 1, K] filter as [K, E], so that the conv runs over contiguous channels.
        func transposedConv(_ w: UnsafePointer<Float>) -> UnsafePointer<Float> {
            let b = FloatBuffer(count: k * e)
            for c in 0..<e { for j in 0..<k { b[j * e + c] = w[c * k + j] } }
            derived.append(b)
            return UnsafePointer(b.pointer)
        }
        /// A = −exp(A_log) [E, N], blocked by 16 channels for the scan kernel.
        func negExp(_ aLog: UnsafePointer<Float>) -> UnsafePointer<Float> {
            let plain = FloatBuffer(count: e * n)
            for i in 0..<e * n { plain[i] = -expf(aLog[i]) }
            let b = FloatBuffer(count: SelectiveScan.blockedCount(channels: e, stateSize: n))
            SelectiveScan.block(plain.pointer, into: b.pointer, channels: e, stateSize: n)
            derived.append(b)
            return UnsafePointer(b.pointer)
        }
        /// A tensor whose shape is set by a config key: a mismatch names the key as well.
        func sized<T>(_ key: String, _ value: Int, _ body: () throws -> T) throws -> T {
            do { return try body() } catch let LoadError.shapeMismatch(tensor, expected, found) {
                throw LoadError.badConfig(path: configPath, detail:
                    "tensor '\(tensor)' has shape \(found), expected \(expected): \(key) = \(value) in config.json disagrees with the checkpoint")
            }
        }
        func matrix(_ name: String, _ rows: Int, _ columns: Int, _ initial: RandomInit) throws -> WeightMatrix {
            try source.matrix(name, rows: rows, columns: columns, initial: initial)
        }
        func vector(_ name: String, _ shape: [Int], _ initial: RandomInit) throws -> UnsafePointer<Float> {
            try source.vector(name, shape: shape, initial: initial)
        }

        // The weight table: every tensor's name, shape and preset initialisation, once.
        self.source = source
        embedding = try matrix("backbone.embeddings.weight", vocab, dim, .normal(std: 0.02))
        let kScale = 1 / Float(k).squareRoot(), rScale = 1 / Float(r).squareRoot()
        layerWeights = try (0..<layers).map { l in
            let p = "backbone.layers.\(l).", m = p + "mixer."
            return MambaLayerWeights(
                norm: try vector(p + "norm.weight", [dim], .constant(1)),
                inProj: Linear(try matrix(m + "in_proj.weight", 2 * e, dim, .normal(std: 1 / Float(dim).squareRoot())),
                               bias: config.use_bias ? try vector(m + "in_proj.bias", [2 * e], .constant(0)) : nil),
                conv: transposedConv(try sized("conv_kernel", k) { try vector(m + "conv1d.weight", [e, 1, k], .uniform(-kScale, kScale)) }),
                convBias: config.use_conv_bias ? try vector(m + "conv1d.bias", [e], .constant(0)) : nil,
                xProj: Linear(try sized("time_step_rank + 2·state_size", r + 2 * n) {
                    try matrix(m + "x_proj.weight", r + 2 * n, e, .normal(std: 1 / Float(e).squareRoot())) }),
                dtProj: Linear(try sized("time_step_rank", r) { try matrix(m + "dt_proj.weight", e, r, .uniform(-rScale, rScale)) }),
                dtBias: try vector(m + "dt_proj.bias", [e], .uniform(-6.9, -2.3)),          // softplus⁻¹ of Δ in [0.001, 0.1]
                a: negExp(try sized("state_size", n) { try vector(m + "A_log", [e, n], .logRange(n: n)) }),   // S4D-real: A = −(1…N)
                d: try vector(m + "D", [e], .constant(1)),
                outProj: Linear(try matrix(m + "out_proj.weight", dim, e, .normal(std: 1 / Float(e).squareRoot() / Float(2 * layers).squareRoot())),
                                bias: config.use_bias ? try vector(m + "out_proj.bias", [dim], .constant(0)) : nil))
        }
        finalNorm = try vector("backbone.norm_f.weight", [dim], .constant(1))
        // lm_head falls back to the embedding when the checkpoint has none (tied weights).
        lmHead = Linear(!config.tie_word_embeddings && source.has("lm_head.weight", configured: false)
                        ? try matrix("lm_head.weight", vocab, dim, .normal(std: 0.02)) : embedding)
        self.derived = derived
        let matrices = [embedding, lmHead.weight] + layerWeights.flatMap { [$0.inProj, $0.xProj, $0.dtProj, $0.outProj].map(\.weight) }
        widen = Widening(matrices: matrices)

        convState = FloatBuffer(count: layers * (k - 1) * e)
        ssmState = FloatBuffer(count: layers * SelectiveScan.blockedCount(channels: e, stateSize: n))
        x = FloatBuffer(count: dim); xb = FloatBuffer(count: dim); xz = FloatBuffer(count: 2 * e)
        u = FloatBuffer(count: e); delta = FloatBuffer(count: e); y = FloatBuffer(count: e)
        dbc = FloatBuffer(count: r + 2 * n); logits = FloatBuffer(count: vocab)

        let stateBytes = layers * ((k - 1) * e + e * n) * 4
        let tied = lmHead.weight.raw == embedding.raw
        // A decoded token reads every layer matrix and the lm_head once, and one row of the embedding.
        let weightBytes = matrices.dropFirst(2).reduce(lmHead.weight.bytes) { $0 + $1.bytes } + embedding.columns * embedding.type.byteSize
        let details: [(String, String)] = [
            ("mixer", "inner \(e) (expand \(config.expand)), state \(n), conv kernel \(k), Δ rank \(r)"),
            ("projections in / x / dt / out", "[\(2 * e), \(dim)] / [\(r + 2 * n), \(e)] / [\(e), \(r)] / [\(dim), \(e)]"),
            ("biases", "conv \(config.use_conv_bias ? "yes" : "no"), in/out projections \(config.use_bias ? "yes" : "no")"),
            ("lm_head", tied ? "tied to embeddings [\(vocab), \(dim)]" : "[\(vocab), \(dim)]"),
            ("weights in memory", Set(matrices.map(\.type.rawValue)).sorted().joined(separator: ", ")),
            ("ssm state", "per layer conv [\(k - 1), \(e)] + ssm [\(e), \(n)] f32, \(stateBytes) bytes in all"),
            ("bytes read per decoded token", "\(weightBytes + layers * (k * e + 3 * e + 2 * e * n) * 4) (weights, one embedding row, filters, state), at any depth"),
        ]
        var printBytes = Array("mamba \(dim)/\(e)/\(n)/\(r)/\(k)/\(layers)/\(vocab)".utf8)
        InputSide.fingerprintSample(embedding, into: &printBytes)
        info = ModelInfo(
            architecture: "MambaForCausalLM", modelType: config.model_type ?? "mamba",
            vocabSize: vocab, hiddenSize: dim, layerCount: layers, parameterCount: source.parameterCount,
            maxContext: Int.max, fileDTypes: source.dtypeCounts, details: details, fingerprint: fnv1a(printBytes))
    }

    public var lastLogits: UnsafeBufferPointer<Float> { UnsafeBufferPointer(start: logits.pointer, count: vocab) }

    public func reset() { position = 0; convState.zero(); ssmState.zero() }

    /// The same at any context length: per layer (K−1)·E conv inputs and E·N SSM values, f32.
    public func stateBytes(forTokens tokens: Int) -> Int { layers * ((kernel - 1) * inner + inner * stateSize) * 4 }
    public var stateBytes: Int { stateBytes(forTokens: position) }

    @inline(__always) func convState(_ l: Int) -> UnsafeMutablePointer<Float> { convState.pointer + l * (kernel - 1) * inner }
    @inline(__always) func ssmState(_ l: Int) -> UnsafeMutablePointer<Float> {
        ssmState.pointer + l * SelectiveScan.blockedCount(channels: inner, stateSize: stateSize)
    }

    // MARK: Decode — one token, matrix-vector products, O(1) in the context, no allocation.

    public func decode(_ token: Int) throws {
        try InputSide.check(token, vocab: vocab)
        let e = inner, n = stateSize, r = rank
        Profiler.time(.embedding) { embedding.row(token, into: x.pointer) }                     // x[D]
        for l in 0..<layers {
            let w = layerWeights[l]
            Profiler.time(.norm) { Kernels.rmsNorm(x.pointer, weight: w.norm, into: xb.pointer, count: dim, eps: eps) }
            Profiler.time(.projection) {
                w.inProj(xb.pointer, rows: 1, into: xz.pointer, widen: widen)                           // [x_in | z] [2E]
            }
            Profiler.time(.conv) {                                                                  // u[E] = SiLU(conv(x_in))
                CausalConv.forward(xz.pointer, ldx: 2 * e, steps: 1, channels: e, kernel: kernel,
                                   weight: w.conv, bias: w.convBias, state: convState(l), into: u.pointer)
                Kernels.silu(u.pointer, count: e)
            }
            Profiler.time(.projection) {
                w.xProj(u.pointer, rows: 1, into: dbc.pointer, widen: widen)                            // [Δ_low | B | C]
                w.dtProj(dbc.pointer, rows: 1, into: delta.pointer, widen: widen)                       // Δ[E] before bias, softplus
            }
            Profiler.time(.scan) {
                SelectiveScan.scanBlocked(steps: 1, channels: e, stateSize: n, x: u.pointer, ldx: e, delta: delta.pointer, ldDelta: e,
                                          deltaBias: w.dtBias, a: w.a, b: dbc.pointer + r, c: dbc.pointer + r + n, ldbc: r + 2 * n,
                                          d: w.d, z: xz.pointer + e, ldz: 2 * e, state: ssmState(l), into: y.pointer, ldy: e)
            }
            Profiler.time(.projection) {
                w.outProj(y.pointer, rows: 1, into: x.pointer, accumulate: true, widen: widen)          // x += W_out·y
            }
        }
        Profiler.time(.norm) { Kernels.rmsNorm(x.pointer, weight: finalNorm, into: xb.pointer, count: dim, eps: eps) }
        Profiler.time(.lmHead) { lmHead(xb.pointer, rows: 1, into: logits.pointer, widen: widen) }
        position += 1
    }

    // MARK: Prefill — linear in L: projections through sgemm, conv and scan as loops over time.

    public func prefill(_ tokens: [Int], allLogits: UnsafeMutablePointer<Float>?) throws {
        try InputSide.check(tokens, vocab: vocab)
        InputSide.inChunks(tokens, chunk: Self.prefillChunk, vocab: vocab, allLogits: allLogits, prefillChunk)
    }

    private func prefillChunk(_ tokens: ArraySlice<Int>, allLogits: UnsafeMutablePointer<Float>?) {
        let t = tokens.count, e = inner, n = stateSize, r = rank
        let s = chunkScratch ?? ChunkScratch(rows: Self.prefillChunk, dim: dim, inner: e, dbc: r + 2 * n)
        chunkScratch = s
        let x = s.x.pointer, xb = s.xb.pointer, xz = s.xz.pointer, u = s.u.pointer
        let delta = s.delta.pointer, y = s.y.pointer, dbc = s.dbc.pointer

        Profiler.time(.embedding) { InputSide.embed(tokens, table: embedding, into: x) }   // X[L, D]
        for l in 0..<layers {
            let w = layerWeights[l]
            Profiler.time(.norm) { Kernels.rmsNorm(rows: t, x, weight: w.norm, into: xb, count: dim, eps: eps) }
            Profiler.time(.projection) {
                w.inProj(xb, rows: t, into: xz, widen: widen)                                      // [X_in | Z] [L, 2E]
            }
            Profiler.time(.conv) {                                                                 // U[L, E]
                CausalConv.forward(xz, ldx: 2 * e, steps: t, channels: e, kernel: kernel,
                                   weight: w.conv, bias: w.convBias, state: convState(l), into: u)
                Kernels.silu(u, count: t * e)
            }
            Profiler.time(.projection) {
                w.xProj(u, rows: t, into: dbc, widen: widen)                                       // [Δ_low | B | C] [L, R+2N]
                w.dtProj(dbc, rows: t, ldx: r + 2 * n, into: delta, widen: widen)                  // Δ [L, E] before bias, softplus
            }
            Profiler.time(.scan) {
                SelectiveScan.scanBlocked(steps: t, channels: e, stateSize: n, x: u, ldx: e, delta: delta, ldDelta: e,
                                          deltaBias: w.dtBias, a: w.a, b: dbc + r, c: dbc + r + n, ldbc: r + 2 * n,
                                          d: w.d, z: xz + e, ldz: 2 * e, state: ssmState(l), into: y, ldy: e)   // Y [L, E]
            }
            Profiler.time(.projection) {
                w.outProj(y, rows: t, into: x, accumulate: true, widen: widen)                     // X += Y·W_outᵀ
            }
        }
        Profiler.time(.lmHead) {
            OutputHead.logits(hidden: x, rows: t, dim: dim, finalNorm: finalNorm, eps: eps, lmHead: lmHead,
                              scratch: xb, allLogits: allLogits, lastLogits: logits.pointer, widen: widen)   // logits [L, V] or [V]
        }
        position += t
    }

    // MARK: Snapshots — the conv and SSM states of every layer, a fixed size at any position.

    var identity: String { "MambaForCausalLM \(layers)x\(dim) inner \(inner) state \(stateSize) conv \(kernel) rank \(rank) vocab \(vocab)" }

    public func saveState() -> [UInt8] {
        var payload: [UInt8] = []
        payload.reserveCapacity(stateBytes + vocab * 4)
        payload.appendFloats(convState.pointer, count: convState.count)
        let plain = FloatBuffer(count: inner * stateSize)             // the file holds each layer's state as [E, N]
        for l in 0..<layers {
            SelectiveScan.unblock(ssmState(l), into: plain.pointer, channels: inner, stateSize: stateSize)
            payload.appendFloats(plain.pointer, count: plain.count)
        }
        payload.appendFloats(logits.pointer, count: vocab)   // so that sampling can continue at once
        return StateArchive(identity: identity, fingerprint: info.fingerprint, position: position, payload: payload).encoded()
    }

    public func loadState(_ bytes: [UInt8]) throws {
        let archive = try StateArchive.decode(bytes, expecting: identity, fingerprint: info.fingerprint)
        guard archive.position <= MambaConfig.maxPosition else {
            throw SnapshotError.corrupt(detail: "position \(archive.position) exceeds \(MambaConfig.maxPosition) tokens")
        }
        let expected = stateBytes + vocab * 4
        guard archive.payload.count == expected else {
            throw SnapshotError.corrupt(detail: "payload has \(archive.payload.count) bytes, this model's state and logits need \(expected)")
        }
        var reader = ByteReader(archive.payload)
        try reader.floats(into: convState.pointer, count: convState.count, "conv state")
        let plain = FloatBuffer(count: inner * stateSize)
        for l in 0..<layers {
            try reader.floats(into: plain.pointer, count: plain.count, "ssm state of layer \(l)")
            SelectiveScan.block(plain.pointer, into: ssmState(l), channels: inner, stateSize: stateSize)
        }
        try reader.floats(into: logits.pointer, count: vocab, "logits")
        position = archive.position
    }
}
