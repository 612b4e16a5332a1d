import Foundation

// The Llama family (LlamaForCausalLM; Mistral and Qwen2 checkpoints share the layout), as in
// transformers' modeling_llama.py. Read top to bottom, as llama2.c's run.c:
//
//   x = embed[token]
//   for each layer:
//       h = RMSNorm(x)
//       q, k, v = h·Wqᵀ, h·Wkᵀ, h·Wvᵀ;  rotate q, k by position (RoPE)
//       append k, v to the cache;  a = softmax(q·Kᵀ / √d) · V   (causal, per head)
//       x = x + a·Woᵀ
//       x = x + Wdown(SiLU(RMSNorm(x)·Wgateᵀ) ⊙ RMSNorm(x)·Wupᵀ)
//   logits = RMSNorm(x)·Wlmᵀ
//
// Shape letters: T tokens in a prefill chunk, D hidden size, H query heads, G key/value heads
// (H/G query heads share one), d head size, F MLP size, V vocabulary, C cache capacity.

/// config.json of a Llama-family model, with the Hugging Face key names.
public struct LlamaConfig: Decodable, Sendable {
    public var model_type: String?
    public var hidden_size: Int
    public var intermediate_size: Int
    public var num_hidden_layers: Int
    public var num_attention_heads: Int
    public var num_key_value_heads: Int?
    public var head_dim: Int?
    public var vocab_size: Int
    public var rms_norm_eps: Double?
    public var max_position_embeddings: Int?
    public var rope_theta: Double?
    public var rope_scaling: RopeParameters?
    /// transformers ≥ 5 writes rope_theta and the scaling together under this key.
    public var rope_parameters: RopeParameters?
    public var tie_word_embeddings: Bool?
    public var attention_bias: Bool?
    public var mlp_bias: Bool?
    public var hidden_act: String?
    /// Mistral: each token attends to at most this many previous positions (itself included).
    public var sliding_window: Int?
    public var use_sliding_window: Bool?

    public struct RopeParameters: Decodable, Sendable {
        public var rope_type: String?
        public var type: String?
        public var rope_theta: Double?
        public var factor: Double?
        public var low_freq_factor: Double?
        public var high_freq_factor: Double?
        public var original_max_position_embeddings: Double?
    }

    public var kvHeads: Int { num_key_value_heads ?? num_attention_heads }
    public var headDim: Int { head_dim ?? hidden_size / num_attention_heads }
    public var eps: Float { Float(rms_norm_eps ?? 1e-6) }
    public var tiedEmbeddings: Bool { tie_word_embeddings ?? false }

    /// The effective sliding window, if the model uses one.
    public var window: Int? {
        guard let w = sliding_window, w > 0 else { return nil }
        if model_type == "qwen2" && use_sliding_window != true { return nil }
        return w
    }

    /// θ and the scaling rule, from `rope_parameters` (new) or `rope_theta` + `rope_scaling` (old).
    public func rope(path: String) throws -> (theta: Double, scaling: RopeScaling) {
        let params = rope_parameters ?? rope_scaling
        let theta = rope_parameters?.rope_theta ?? rope_theta ?? 10000
        let kind = params?.rope_type ?? params?.type ?? "default"
        func need(_ v: Double?, _ key: String) throws -> Double {
            guard let v else { throw LoadError.badConfig(path: path, detail: "rope scaling '\(kind)' needs '\(key)'") }
            try checkReal(v, key, path: path)
            return v
        }
        try checkReal(theta, "rope_theta", path: path)
        switch kind {
        case "default":
            return (theta, .none)
        case "linear":
            return (theta, .linear(factor: try need(params?.factor, "factor")))
        case "llama3":
            return (theta, try RopeScaling.llama3(
                factor: try need(params?.factor, "factor"),
                lowFreqFactor: try need(params?.low_freq_factor, "low_freq_factor"),
                highFreqFactor: try need(params?.high_freq_factor, "high_freq_factor"),
                originalContext: try need(params?.original_max_position_embeddings, "original_max_position_embeddings"))
                .validated(path: path))
        default:
            throw LoadError.badConfig(path: path, detail: "unsupported rope type '\(kind)' (supported: default, linear, llama3)")
        }
    }

    /// Checks the sizes before any tensor is read, naming the offending key.
    func validate(path: String) throws {
        func positive(_ v: Int, _ key: String) throws {
            guard v > 0 else { throw LoadError.badConfig(path: path, detail: "'\(key)' must be positive, found \(v)") }
        }
        try positive(hidden_size, "hidden_size")
        try positive(intermediate_size, "intermediate_size")
        try positive(num_hidden_layers, "num_hidden_layers")
        try positive(num_attention_heads, "num_attention_heads")
        try positive(kvHeads, "num_key_value_heads")
        try positive(headDim, "head_dim")
        try positive(vocab_size, "vocab_size")
        guard headDim % 2 == 0 else {
            throw LoadError.badConfig(path: path, detail: "head_dim must be even for rotary embeddings, found \(headDim)")
        }
        guard num_attention_heads % kvHeads == 0 else {
            throw LoadError.badConfig(path: path, detail: "num_attention_heads (\(num_attention_heads)) must be a multiple of num_key_value_heads (\(kvHeads))")
        }
        if let act = hidden_act, act != "silu" {
            throw LoadError.badConfig(path: path, detail: "hidden_act '\(act)' is not supported (expected 'silu')")
        }
        try checkSizes(path: path)
    }
}

/// One decoder layer: an attention block and an MLP block, each behind an RMSNorm and a residual add.
struct LlamaLayer {
    let inputNorm: UnsafePointer<Float>   // [D]
    let attention: AttentionMixer         // its weights and this layer's KV cache
    let postNorm: UnsafePointer<Float>    // [D]
    let mlp: SwiGLU
}

public final class LlamaModel: LanguageModel, ChunkedForward {
    public let config: LlamaConfig
    public let info: ModelInfo
    public let contextCapacity: Int
    /// The sequence prefill and decode work on; `makeSequence()` makes more.
    public var sequence: SequenceState {
        willSet { precondition(newValue.owner == ObjectIdentifier(self), "a sequence of another model") }
    }
    public var position: Int { sequence.position }

    // Sizes.
    let dim: Int, ffn: Int, heads: Int, kvHeads: Int, headDim: Int, vocab: Int
    let eps: Float
    /// Prefill is processed in chunks of at most this many tokens, bounding scratch memory.
    static let prefillChunk = 512

    // Weights (kept alive by `source`); the KV caches are in the sequences.
    let source: WeightSource
    let embedding: WeightMatrix           // [V, D]
    let layers: [LlamaLayer]
    let finalNorm: UnsafePointer<Float>   // [D]
    let lmHead: Linear                    // [V, D] (the embedding when tied)
    let widen: Widening
    let cacheType: WeightType

    // Scratch: one token (decode), allocated here; a prefill chunk, on first prefill; a batch of
    // sequences and their logits [B, V], on the first batch of that size.
    let decodeSpace: Workspace
    var prefillSpace: Workspace?
    let batchScratch = BatchScratch()

    /// Loads from a Hugging Face directory. `context` sizes the KV cache (default: the model's
    /// max_position_embeddings, at most 4,096).
    public convenience init(directory: URL, context: Int? = nil) throws {
        try self.init(directory: directory, options: LoadOptions(context: context))
    }

    public convenience init(directory: URL, options: LoadOptions) throws {
        let configURL = directory.appendingPathComponent("config.json")
        let config = try readJSONConfig(LlamaConfig.self, from: configURL)
        try self.init(config: config, source: CheckpointWeights(try Checkpoint(directory: directory, memory: options.weightMemory), storage: options.weights),
                      configPath: configURL.path, context: options.context, kvCache: options.kvCache)
    }

    /// From a checkpoint, or with seeded random weights when `checkpoint` is nil (benchmark presets;
    /// `randomWeights` f16 narrows their matrices to half precision).
    public convenience init(config: LlamaConfig, checkpoint: Checkpoint?, configPath: String, context: Int?,
                            randomSeed: UInt64 = 0, randomWeights: WeightType = .f32, kvCache: WeightType = .f32) throws {
        let source: WeightSource = checkpoint.map { CheckpointWeights($0, storage: .asStored) }
            ?? RandomWeights(seed: randomSeed, storage: randomWeights)
        try self.init(config: config, source: source, configPath: configPath, context: context, kvCache: kvCache)
    }

    init(config: LlamaConfig, source: WeightSource, configPath: String, context: Int?, kvCache: WeightType) throws {
        try config.validate(path: configPath)
        guard kvCache != .bf16 else { throw LoadError.badConfig(path: configPath, detail: "the KV cache can be f32 or f16, not bf16") }
        self.config = config
        let dim = config.hidden_size, ffn = config.intermediate_size, layerCount = config.num_hidden_layers
        let heads = config.num_attention_heads, kvHeads = config.kvHeads, headDim = config.headDim
        let vocab = config.vocab_size
        self.dim = dim; self.ffn = ffn; self.heads = heads; self.kvHeads = kvHeads
        self.headDim = headDim; self.vocab = vocab; eps = config.eps
        let maxContext = config.max_position_embeddings ?? Int.max
        let capacity = try cacheCapacity(requested: context, maxContext: maxContext, path: configPath)
        try config.checkMemory(capacity: capacity, path: configPath, randomWeights: source is RandomWeights)
        contextCapacity = capacity
        let (theta, scaling) = try config.rope(path: configPath)
        let rope = RotaryEmbedding(invFreq: scaling.inverseFrequencies(theta: theta, headDim: headDim),
                                   headDim: headDim, capacity: capacity)

        // The weight table: every tensor's name, shape and preset initialisation, once.
        func ones(_ name: String) throws -> UnsafePointer<Float> { try source.vector(name, shape: [dim], initial: .constant(1)) }
        self.source = source
        embedding = try source.matrix("model.embed_tokens.weight", rows: vocab, columns: dim, initial: .normal(std: 0.02))
        layers = try (0..<layerCount).map { l in
            let p = "model.layers.\(l)."
            return LlamaLayer(
                inputNorm: try ones(p + "input_layernorm.weight"),
                attention: AttentionMixer(
                    heads: heads, kvHeads: kvHeads, headDim: headDim, window: config.window, rope: rope,
                    weights: try AttentionWeights.load(source, prefix: p + "self_attn.", dim: dim, heads: heads, kvHeads: kvHeads,
                                                       headDim: headDim, bias: config.attention_bias ?? false),
                    layer: l),
                postNorm: try ones(p + "post_attention_layernorm.weight"),
                mlp: try SwiGLU.load(source, prefix: p + "mlp.", dim: dim, ffn: ffn, bias: config.mlp_bias ?? false))
        }
        finalNorm = try ones("model.norm.weight")
        lmHead = Linear(config.tiedEmbeddings ? embedding
                        : try source.matrix("lm_head.weight", rows: vocab, columns: dim, initial: .normal(std: 0.02)))
        let matrices = [embedding, lmHead.weight] + layers.flatMap { $0.attention.weights.matrices + $0.mlp.matrices }
        widen = Widening(matrices: matrices)
        cacheType = kvCache
        decodeSpace = Self.workspace(rows: 1, config: config)
        sequence = Self.newSequence(layers, capacity: capacity, cacheType: kvCache, vocab: vocab)

        let qDim = heads * headDim, kvDim = kvHeads * headDim
        let stored = Set(matrices.map(\.type.rawValue)).sorted().joined(separator: ", ")
        let perToken = 2 * kvHeads * headDim * kvCache.byteSize * layerCount
        var details: [(String, String)] = [
            ("attention", "\(heads) query heads, \(kvHeads) key/value heads (\(heads == kvHeads ? "MHA" : kvHeads == 1 ? "MQA" : "GQA")), head_dim \(headDim)"),
            ("q_proj / k_proj / v_proj / o_proj", "[\(qDim), \(dim)] / [\(kvDim), \(dim)] / [\(kvDim), \(dim)] / [\(dim), \(qDim)]"),
            ("mlp gate / up / down", "[\(ffn), \(dim)] / [\(ffn), \(dim)] / [\(dim), \(ffn)]"),
            ("rope", "theta \(theta), scaling \(scaling)"),
            ("lm_head", config.tiedEmbeddings ? "tied to embed_tokens [\(vocab), \(dim)]" : "[\(vocab), \(dim)]"),
            ("weights in memory", "\(stored); \(source.placement)"),
            ("kv cache", "\(kvCache.rawValue), \(perToken) bytes per token"),
            ("bytes read per decoded token", "\(decodedWeightBytes(matrices: matrices, embedding: embedding, lmHead: lmHead)) of weights (the lm_head whole, one embedding row) + \(perToken) per token of context"),
        ]
        if let window = config.window { details.append(("sliding window", "\(window) tokens")) }
        var printBytes = Array("\(config.hidden_size)/\(config.intermediate_size)/\(config.num_hidden_layers)/\(config.num_attention_heads)/\(config.kvHeads)/\(config.headDim)/\(config.vocab_size)".utf8)
        InputSide.fingerprintSample(embedding, into: &printBytes)
        info = ModelInfo(
            architecture: "LlamaForCausalLM", modelType: config.model_type ?? "llama",
            vocabSize: vocab, hiddenSize: dim, layerCount: layerCount, parameterCount: source.parameterCount,
            maxContext: maxContext, fileDTypes: source.dtypeCounts, details: details,
            fingerprint: fnv1a(printBytes), decodeWeightBytes: decodedWeightBytes(matrices: matrices, embedding: embedding, lmHead: lmHead))
        sequence.owner = ObjectIdentifier(self)
    }

    /// Per layer a KV cache of `capacity` tokens.
    private static func newSequence(_ layers: [LlamaLayer], capacity: Int, cacheType: WeightType, vocab: Int) -> SequenceState {
        SequenceState(caches: layers.map { $0.attention.makeCache(capacity: capacity, type: cacheType) },
                      states: Array(repeating: nil, count: layers.count), vocab: vocab)
    }

    public func makeSequence() -> SequenceState {
        let s = Self.newSequence(layers, capacity: contextCapacity, cacheType: cacheType, vocab: vocab)
        s.owner = ObjectIdentifier(self)
        return s
    }

    static func workspace(rows: Int, config c: LlamaConfig) -> Workspace {
        Workspace(rows: rows, dim: c.hidden_size,
                  attention: AttentionScratch(rows: rows, heads: c.num_attention_heads, kvHeads: c.kvHeads, headDim: c.headDim),
                  feedForward: FeedForwardScratch(rows: rows, dim: c.hidden_size, ffn: c.intermediate_size, experts: 0))
    }

    public var lastLogits: UnsafeBufferPointer<Float> { sequence.lastLogits }

    public func reset() { sequence.reset() }

    /// Key/value cache bytes for `tokens` positions: 2 (K and V) × layers × G × d × element bytes.
    public func stateBytes(forTokens tokens: Int) -> Int { 2 * layers.count * kvHeads * headDim * cacheType.byteSize * tokens }
    public var stateBytes: Int { stateBytes(forTokens: position) }

    // MARK: The forward pass — one path for a decoded token and a prefill chunk (ChunkedForward
    // checks, chunks and batches around it).

    /// Decodes one token: matrix-vector products and the fused attention kernel, no allocation.
    public func decode(_ token: Int) throws { try decodeOne(token) }

    /// One token for each of several sequences: the projections and MLPs as matrix-matrix
    /// products over the batch, attention per sequence over its own cache.
    public func decode(batch tokens: [Int], sequences: [SequenceState]) throws { try decodeBatch(tokens, sequences: sequences) }

    /// Prefills in chunks through matrix-matrix products and tiled attention.
    public func prefill(_ tokens: [Int], allLogits: UnsafeMutablePointer<Float>?) throws { try prefillInChunks(tokens, allLogits: allLogits) }

    /// T = tokens.count tokens (at most the workspace's rows): consecutive tokens of one sequence,
    /// or one token of each sequence of a batch (`rows`). With `allLogits` [T, V] every row's
    /// logits go there; the last row's always go to its sequence.
    func forward<C: Collection<Int>>(_ tokens: C, rows: Rows, in ws: Workspace, allLogits: UnsafeMutablePointer<Float>?) {
        let t = tokens.count, x = ws.x.pointer, xb = ws.xb.pointer
        let mlpScratch = ws.feedForward!, attentionScratch = ws.attention!
        Profiler.time(.embedding) { InputSide.embed(tokens, table: embedding, into: x) }              // X[T, D]
        for layer in layers {
            Profiler.time(.norm) { Kernels.rmsNorm(rows: t, x, weight: layer.inputNorm, into: xb, count: dim, eps: eps) }
            layer.attention.forward(xb, rows: rows, addingTo: x, scratch: attentionScratch, widen: widen)  // X += Attn
            Profiler.time(.norm) { Kernels.rmsNorm(rows: t, x, weight: layer.postNorm, into: xb, count: dim, eps: eps) }
            Profiler.time(.mlp) {                                                                     // X += MLP
                layer.mlp.forward(xb, rows: t, into: x, accumulate: true, gateBuffer: mlpScratch.gate.pointer,
                                  upBuffer: mlpScratch.up.pointer, widen: widen)
            }
        }
        Profiler.time(.lmHead) {
            OutputHead.logits(hidden: x, rows: t, dim: dim, finalNorm: finalNorm, eps: eps, lmHead: lmHead,
                              scratch: xb, allLogits: allLogits, lastLogits: rows.sequence(t - 1).logits.pointer,
                              widen: widen)                                                   // logits [T, V] or [V]
        }
        rows.advance()
    }

    // MARK: Snapshots — the cache rows of every layer and head up to `position`.

    var identity: String { "LlamaForCausalLM \(layers.count)x\(dim) heads \(heads)/\(kvHeads) d \(headDim) vocab \(vocab)" }

    public func saveState() -> [UInt8] {
        var payload: [UInt8] = []
        payload.reserveCapacity(2 * layers.count * kvHeads * headDim * 4 * position + vocab * 4)
        for cache in sequence.caches { cache!.append(tokens: position, to: &payload) }
        payload.appendFloats(sequence.logits.pointer, count: vocab)   // so that sampling can continue at once
        return StateArchive(identity: identity, fingerprint: info.fingerprint, position: position, payload: payload).encoded()
    }

    public func loadState(_ bytes: [UInt8]) throws {
        let archive = try StateArchive.decode(bytes, expecting: identity, fingerprint: info.fingerprint)
        let n = archive.position
        guard n <= contextCapacity else { throw SnapshotError.tooLong(tokens: n, capacity: contextCapacity) }
        let expected = 2 * layers.count * kvHeads * headDim * 4 * n + vocab * 4      // the cache rows as f32, and the logits
        guard archive.payload.count == expected else {
            throw SnapshotError.corrupt(detail: "payload has \(archive.payload.count) bytes, \(n) tokens of this model's KV cache and its logits need \(expected)")
        }
        var reader = ByteReader(archive.payload)
        for (l, cache) in sequence.caches.enumerated() { try cache!.read(tokens: n, from: &reader, layer: l) }
        try reader.floats(into: sequence.logits.pointer, count: vocab, "logits")
        sequence.position = n
    }
}

extension LlamaConfig {
    /// In code, e.g. a benchmark preset:
    /// `LlamaConfig(hidden_size: 768, intermediate_size: 2048, num_hidden_layers: 12, num_attention_heads: 12, vocab_size: 32000)`.
    public init(hidden_size: Int, intermediate_size: Int, num_hidden_layers: Int, num_attention_heads: Int,
                num_key_value_heads: Int? = nil, head_dim: Int? = nil, vocab_size: Int,
                rms_norm_eps: Double? = 1e-5, max_position_embeddings: Int? = nil, rope_theta: Double? = 10000,
                tie_word_embeddings: Bool? = false, model_type: String? = "llama") {
        self.model_type = model_type
        self.hidden_size = hidden_size; self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers; self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_key_value_heads; self.head_dim = head_dim; self.vocab_size = vocab_size
        self.rms_norm_eps = rms_norm_eps; self.max_position_embeddings = max_position_embeddings
        self.rope_theta = rope_theta; rope_scaling = nil; rope_parameters = nil
        self.tie_word_embeddings = tie_word_embeddings
        attention_bias = nil; mlp_bias = nil; hidden_act = "silu"; sliding_window = nil; use_sliding_window = nil
    }
}
