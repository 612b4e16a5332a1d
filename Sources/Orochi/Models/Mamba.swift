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

/// One residual block: RMSNorm, then the mixer, added to the residual stream.
struct MambaBlock {
    let norm: UnsafePointer<Float>          // [D]
    let mixer: MambaMixer                   // its weights (the conv and SSM state are per sequence)
}

public final class MambaModel: LanguageModel, ChunkedForward {
    public let config: MambaConfig
    public let info: ModelInfo
    /// The state is fixed-size: any number of tokens fits.
    public let contextCapacity = Int.max
    /// The sequence prefill and decode work on; `makeSequence()` makes more.
    public var sequence: SequenceState {
        willSet { precondition(newValue.owner == ObjectIdentifier(self), "a sequence of another model") }
    }
    public var position: Int { sequence.position }

    let dim: Int, inner: Int, stateSize: Int, rank: Int, kernel: Int, vocab: Int
    let eps: Float
    /// Prefill runs in chunks of at most this many tokens, bounding scratch memory (about 16 MiB at
    /// mamba-130m's size). 512 rather than 256: the multi-token kernel packs each panel of weights
    /// once per chunk, and mamba-130m's 512-token prefill ran 7 % faster (paired medians of 10 and
    /// 6 interleaved runs); mamba-6m's the same.
    static let prefillChunk = 512

    // Weights (kept alive by `source` and `derived`); the states are in the sequences.
    let source: WeightSource
    private var derived: [FloatBuffer] = []
    let embedding: WeightMatrix             // [V, D]
    let layers: [MambaBlock]
    let finalNorm: UnsafePointer<Float>     // [D]
    let lmHead: Linear                      // [V, D] (the embedding when tied)
    let widen: Widening

    // Scratch: one token (decode), allocated here; a prefill chunk, on first prefill; a batch of
    // sequences and their logits [B, V], on the first batch of that size.
    let decodeSpace: Workspace
    var prefillSpace: Workspace?
    let batchScratch = BatchScratch()

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
        try self.init(config: config, source: CheckpointWeights(try Checkpoint(directory: directory, memory: options.weightMemory), storage: options.weights),
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
        let k = config.conv_kernel, layerCount = config.num_hidden_layers, vocab = config.vocab_size
        self.dim = dim; inner = e; stateSize = n; rank = r; kernel = k; self.vocab = vocab
        eps = Float(config.layer_norm_epsilon)

        // The weight table: every tensor's name, shape and preset initialisation, once (the
        // mixer's own in MambaMixerWeights.load).
        self.source = source
        var derived: [FloatBuffer] = []
        let shape = MambaMixerWeights.Shape(dim: dim, inner: e, stateSize: n, rank: r, kernel: k,
                                            convBias: config.use_conv_bias, projectionBias: config.use_bias, innerNormEps: nil,
                                            keys: (state: "state_size", kernel: "conv_kernel", rank: "time_step_rank"))
        embedding = try source.matrix("backbone.embeddings.weight", rows: vocab, columns: dim, initial: .normal(std: 0.02))
        layers = try (0..<layerCount).map { l in
            let p = "backbone.layers.\(l)."
            return MambaBlock(
                norm: try source.vector(p + "norm.weight", shape: [dim], initial: .constant(1)),
                mixer: MambaMixer(inner: e, stateSize: n, rank: r, kernel: k,
                                  weights: try MambaMixerWeights.load(source, prefix: p + "mixer.", shape: shape, layers: layerCount,
                                                                      configPath: configPath, derived: &derived),
                                  layer: l))
        }
        finalNorm = try source.vector("backbone.norm_f.weight", shape: [dim], initial: .constant(1))
        // lm_head falls back to the embedding when the checkpoint has none (tied weights).
        lmHead = Linear(!config.tie_word_embeddings && source.has("lm_head.weight", configured: false)
                        ? try source.matrix("lm_head.weight", rows: vocab, columns: dim, initial: .normal(std: 0.02)) : embedding)
        self.derived = derived
        let matrices = [embedding, lmHead.weight] + layers.flatMap(\.mixer.weights.matrices)
        widen = Widening(matrices: matrices)
        decodeSpace = Self.workspace(rows: 1, config: config)
        sequence = Self.newSequence(layers, vocab: vocab)

        let stateBytes = sequence.states.reduce(0) { $0 + $1!.bytes }
        let tied = lmHead.weight.raw == embedding.raw
        let details: [(String, String)] = [
            ("mixer", "inner \(e) (expand \(config.expand)), state \(n), conv kernel \(k), Δ rank \(r)"),
            ("projections in / x / dt / out", "[\(2 * e), \(dim)] / [\(r + 2 * n), \(e)] / [\(e), \(r)] / [\(dim), \(e)]"),
            ("biases", "conv \(config.use_conv_bias ? "yes" : "no"), in/out projections \(config.use_bias ? "yes" : "no")"),
            ("lm_head", tied ? "tied to embeddings [\(vocab), \(dim)]" : "[\(vocab), \(dim)]"),
            ("weights in memory", Set(matrices.map(\.type.rawValue)).sorted().joined(separator: ", ") + "; " + source.placement),
            ("ssm state", "per layer conv [\(k - 1), \(e)] + ssm [\(e), \(n)] f32, \(stateBytes) bytes in all"),
            ("bytes read per decoded token", "\(decodedWeightBytes(matrices: matrices, embedding: embedding, lmHead: lmHead) + layerCount * (k * e + 3 * e + 2 * e * n) * 4) (weights, one embedding row, filters, state), at any depth"),
        ]
        var printBytes = Array("mamba \(dim)/\(e)/\(n)/\(r)/\(k)/\(layerCount)/\(vocab)".utf8)
        InputSide.fingerprintSample(embedding, into: &printBytes)
        info = ModelInfo(
            architecture: "MambaForCausalLM", modelType: config.model_type ?? "mamba",
            vocabSize: vocab, hiddenSize: dim, layerCount: layerCount, parameterCount: source.parameterCount,
            maxContext: Int.max, fileDTypes: source.dtypeCounts, details: details, fingerprint: fnv1a(printBytes),
            decodeWeightBytes: decodedWeightBytes(matrices: matrices, embedding: embedding, lmHead: lmHead))
        sequence.owner = ObjectIdentifier(self)
    }

    /// Per layer a conv and SSM state, zero.
    private static func newSequence(_ layers: [MambaBlock], vocab: Int) -> SequenceState {
        SequenceState(caches: Array(repeating: nil, count: layers.count), states: layers.map { $0.mixer.makeState() }, vocab: vocab)
    }

    public func makeSequence() -> SequenceState {
        let s = Self.newSequence(layers, vocab: vocab)
        s.owner = ObjectIdentifier(self)
        return s
    }

    static func workspace(rows: Int, config c: MambaConfig) -> Workspace {
        Workspace(rows: rows, dim: c.hidden_size,
                  mamba: MambaScratch(rows: rows, inner: c.innerSize, dbc: c.dtRank + 2 * c.state_size))
    }

    public var lastLogits: UnsafeBufferPointer<Float> { sequence.lastLogits }

    public func reset() { sequence.reset() }

    /// The same at any context length: per layer (K−1)·E conv inputs and E·N SSM values, f32.
    public func stateBytes(forTokens tokens: Int) -> Int { layers.count * ((kernel - 1) * inner + inner * stateSize) * 4 }
    public var stateBytes: Int { stateBytes(forTokens: position) }

    // MARK: The forward pass — one path for a decoded token and a prefill chunk; O(1) per token
    // at any depth.

    /// Decodes one token: matrix-vector products and one scan step, no allocation.
    public func decode(_ token: Int) throws { try decodeOne(token) }

    /// One token for each of several sequences: the projections as matrix-matrix products over
    /// the batch, conv and scan per sequence on its own state.
    public func decode(batch tokens: [Int], sequences: [SequenceState]) throws { try decodeBatch(tokens, sequences: sequences) }

    /// Prefills in chunks: projections through sgemm, conv and scan as loops over time.
    public func prefill(_ tokens: [Int], allLogits: UnsafeMutablePointer<Float>?) throws { try prefillInChunks(tokens, allLogits: allLogits) }

    /// L = tokens.count tokens (at most the workspace's rows): consecutive tokens of one sequence,
    /// or one token of each sequence of a batch (`rows`), each continuing from its state.
    func forward<C: Collection<Int>>(_ tokens: C, rows: Rows, in ws: Workspace, allLogits: UnsafeMutablePointer<Float>?) {
        let t = tokens.count, x = ws.x.pointer, xb = ws.xb.pointer, scratch = ws.mamba!
        Profiler.time(.embedding) { InputSide.embed(tokens, table: embedding, into: x) }           // X[L, D]
        for layer in layers {
            Profiler.time(.norm) { Kernels.rmsNorm(rows: t, x, weight: layer.norm, into: xb, count: dim, eps: eps) }
            layer.mixer.forward(xb, rows: rows, addingTo: x, scratch: scratch, widen: widen)         // X += Mixer
        }
        Profiler.time(.lmHead) {
            OutputHead.logits(hidden: x, rows: t, dim: dim, finalNorm: finalNorm, eps: eps, lmHead: lmHead,
                              scratch: xb, allLogits: allLogits, lastLogits: rows.sequence(t - 1).logits.pointer,
                              widen: widen)                                                   // logits [L, V] or [V]
        }
        rows.advance()
    }

    // MARK: Snapshots — the conv and SSM states of every layer, a fixed size at any position.

    var identity: String { "MambaForCausalLM \(layers.count)x\(dim) inner \(inner) state \(stateSize) conv \(kernel) rank \(rank) vocab \(vocab)" }

    public func saveState() -> [UInt8] {
        var payload: [UInt8] = []
        payload.reserveCapacity(stateBytes + vocab * 4)
        let states = sequence.states.map { $0! }
        for state in states { payload.appendFloats(state.conv.pointer, count: state.conv.count) }
        for state in states { state.appendSSM(to: &payload) }                  // each layer's [E, N]
        payload.appendFloats(sequence.logits.pointer, count: vocab)   // so that sampling can continue at once
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
        let states = sequence.states.map { $0! }
        for state in states { try reader.floats(into: state.conv.pointer, count: state.conv.count, "conv state") }
        for (l, state) in states.enumerated() { try state.readSSM(from: &reader, layer: l) }
        try reader.floats(into: sequence.logits.pointer, count: vocab, "logits")
        sequence.position = archive.position
    }
}
