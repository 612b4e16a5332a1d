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

/// The weights of one decoder layer. Matrices in their stored type (views into the checkpoint);
/// norms and biases float32.
struct LlamaLayerWeights {
    let inputNorm: UnsafePointer<Float>   // [D]
    let q, k, v: Linear                   // [H·d, D], [G·d, D], [G·d, D] (+ biases with attention_bias, or Qwen2's)
    let o: Linear                         // [D, H·d]
    let postNorm: UnsafePointer<Float>    // [D]
    let gate, up: Linear                  // [F, D] each
    let down: Linear                      // [D, F]
}

/// How a model is loaded: its cache size, and how weights and cache are held in memory.
public struct LoadOptions: Sendable {
    /// Tokens of context to allocate (nil: the model's default).
    public var context: Int?
    /// Weight matrices as stored in the checkpoint (default) or widened to float32.
    public var weights: WeightStorage
    /// Element type of the attention KV cache: f32 (default, exact) or f16 (half the bytes per token).
    public var kvCache: WeightType
    public init(context: Int? = nil, weights: WeightStorage = .asStored, kvCache: WeightType = .f32) {
        self.context = context; self.weights = weights; self.kvCache = kvCache
    }
}

public final class LlamaModel: LanguageModel {
    public let config: LlamaConfig
    public let info: ModelInfo
    public let contextCapacity: Int
    public private(set) var position = 0

    // Sizes.
    let dim: Int, ffn: Int, layers: Int, heads: Int, kvHeads: Int, headDim: Int, vocab: Int
    let eps: Float
    let window: Int?
    /// Prefill is processed in chunks of at most this many tokens, bounding scratch memory.
    static let prefillChunk = 512
    /// Prefill attention works on tiles of this many query rows by this many keys.
    static let queryBlock = 128
    static let keyBlock = 256

    // Weights (kept alive by `source`).
    let source: WeightSource
    let embedding: WeightMatrix           // [V, D]
    let layerWeights: [LlamaLayerWeights]
    let finalNorm: UnsafePointer<Float>   // [D]
    let lmHead: Linear                    // [V, D] (the embedding when tied)
    let rope: RotaryEmbedding
    let widen: Widening

    // KV cache: per layer and key/value head, C rows of d, so each head's keys are one matrix;
    // f32 or f16 elements (`cacheType`).
    let cacheType: WeightType
    let keyCache: FloatBuffer             // [layers, G, C, d]
    let valueCache: FloatBuffer           // [layers, G, C, d]

    // Decode scratch, one token.
    let x: FloatBuffer        // [D] residual stream
    let xb: FloatBuffer       // [D] normed input
    let q: FloatBuffer        // [H·d]
    let k: FloatBuffer        // [G·d]
    let v: FloatBuffer        // [G·d]
    let attnOut: FloatBuffer  // [H·d]
    let gate: FloatBuffer     // [F]
    let up: FloatBuffer       // [F]
    let logits: FloatBuffer   // [V]

    // Prefill scratch, allocated on first prefill and reused.
    private var chunkScratch: PrefillScratch?

    final class PrefillScratch {
        let x, xb, q, k, v, attnOut, gate, up: FloatBuffer  // [T, D], [T, D], [T, H·d], [T, G·d] ×2, [T, H·d], [T, F] ×2
        /// Per thread (`slots` of them): a tile of scores [queryBlock, keyBlock], the running maximum
        /// and sum of each query row [queryBlock] ×2, and a key and a value tile widened from an
        /// f16 cache [keyBlock, d] ×2.
        let slots: Int
        let tiles: FloatBuffer
        static func slotFloats(headDim: Int) -> Int {
            LlamaModel.queryBlock * LlamaModel.keyBlock + 2 * LlamaModel.queryBlock + 2 * LlamaModel.keyBlock * headDim
        }
        init(rows: Int, dim: Int, qDim: Int, kvDim: Int, ffn: Int, capacity: Int, headDim: Int, halfCache: Bool) {
            x = FloatBuffer(count: rows * dim); xb = FloatBuffer(count: rows * dim)
            q = FloatBuffer(count: rows * qDim); k = FloatBuffer(count: rows * kvDim); v = FloatBuffer(count: rows * kvDim)
            attnOut = FloatBuffer(count: rows * qDim)
            gate = FloatBuffer(count: rows * ffn); up = FloatBuffer(count: rows * ffn)
            slots = max(1, BLAS.threads)
            tiles = FloatBuffer(count: slots * Self.slotFloats(headDim: headDim))
        }
    }

    /// Loads from a Hugging Face directory. `context` sizes the KV cache (default: the model's
    /// max_position_embeddings, at most 4,096).
    public convenience init(directory: URL, context: Int? = nil) throws {
        try self.init(directory: directory, options: LoadOptions(context: context))
    }

    public convenience init(directory: URL, options: LoadOptions) throws {
        let configURL = directory.appendingPathComponent("config.json")
        let config = try readJSONConfig(LlamaConfig.self, from: configURL)
        try self.init(config: config, source: CheckpointWeights(try Checkpoint(directory: directory), storage: options.weights),
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
        let dim = config.hidden_size, ffn = config.intermediate_size, layers = config.num_hidden_layers
        let heads = config.num_attention_heads, kvHeads = config.kvHeads, headDim = config.headDim
        let vocab = config.vocab_size
        self.dim = dim; self.ffn = ffn; self.layers = layers; self.heads = heads; self.kvHeads = kvHeads
        self.headDim = headDim; self.vocab = vocab; eps = config.eps; window = config.window
        let maxContext = config.max_position_embeddings ?? Int.max
        if let context {
            guard context > 0 else { throw LoadError.badConfig(path: configPath, detail: "context must be positive, got \(context)") }
            guard context <= maxContext else {
                throw LoadError.badConfig(path: configPath, detail: "requested context \(context) exceeds max_position_embeddings \(maxContext)")
            }
        }
        let capacity = context ?? min(maxContext, 4096)
        try config.checkMemory(capacity: capacity, path: configPath, randomWeights: source is RandomWeights)
        contextCapacity = capacity
        let (theta, scaling) = try config.rope(path: configPath)
        rope = RotaryEmbedding(invFreq: scaling.inverseFrequencies(theta: theta, headDim: headDim),
                               headDim: headDim, capacity: capacity)

        // The weight table: every tensor's name, shape and preset initialisation, once.
        let qDim = heads * headDim, kvDim = kvHeads * headDim
        let scale = 1 / Float(dim).squareRoot()
        let attnBias = config.attention_bias ?? false, mlpBias = config.mlp_bias ?? false
        func matrix(_ name: String, _ rows: Int, _ columns: Int, std: Float) throws -> WeightMatrix {
            try source.matrix(name, rows: rows, columns: columns, initial: .normal(std: std))
        }
        func ones(_ name: String) throws -> UnsafePointer<Float> { try source.vector(name, shape: [dim], initial: .constant(1)) }
        /// Qwen2 has q/k/v biases without attention_bias in its config: they are taken when present.
        func bias(_ name: String, _ count: Int, configured: Bool) throws -> UnsafePointer<Float>? {
            source.has(name, configured: configured) ? try source.vector(name, shape: [count], initial: .constant(0)) : nil
        }
        self.source = source
        embedding = try matrix("model.embed_tokens.weight", vocab, dim, std: 0.02)
        layerWeights = try (0..<layers).map { l in
            let p = "model.layers.\(l)."
            return LlamaLayerWeights(
                inputNorm: try ones(p + "input_layernorm.weight"),
                q: Linear(try matrix(p + "self_attn.q_proj.weight", qDim, dim, std: scale), bias: try bias(p + "self_attn.q_proj.bias", qDim, configured: attnBias)),
                k: Linear(try matrix(p + "self_attn.k_proj.weight", kvDim, dim, std: scale), bias: try bias(p + "self_attn.k_proj.bias", kvDim, configured: attnBias)),
                v: Linear(try matrix(p + "self_attn.v_proj.weight", kvDim, dim, std: scale), bias: try bias(p + "self_attn.v_proj.bias", kvDim, configured: attnBias)),
                o: Linear(try matrix(p + "self_attn.o_proj.weight", dim, qDim, std: scale), bias: try bias(p + "self_attn.o_proj.bias", dim, configured: attnBias)),
                postNorm: try ones(p + "post_attention_layernorm.weight"),
                gate: Linear(try matrix(p + "mlp.gate_proj.weight", ffn, dim, std: scale), bias: try bias(p + "mlp.gate_proj.bias", ffn, configured: mlpBias)),
                up: Linear(try matrix(p + "mlp.up_proj.weight", ffn, dim, std: scale), bias: try bias(p + "mlp.up_proj.bias", ffn, configured: mlpBias)),
                down: Linear(try matrix(p + "mlp.down_proj.weight", dim, ffn, std: 1 / Float(ffn).squareRoot()), bias: try bias(p + "mlp.down_proj.bias", dim, configured: mlpBias)))
        }
        finalNorm = try ones("model.norm.weight")
        lmHead = Linear(config.tiedEmbeddings ? embedding : try matrix("lm_head.weight", vocab, dim, std: 0.02))
        let matrices = [embedding, lmHead.weight] + layerWeights.flatMap { [$0.q, $0.k, $0.v, $0.o, $0.gate, $0.up, $0.down].map(\.weight) }
        widen = Widening(matrices: matrices)

        cacheType = kvCache
        let cacheFloats = layers * kvHeads * capacity * headDim * kvCache.byteSize / 4
        keyCache = FloatBuffer(count: cacheFloats)
        valueCache = FloatBuffer(count: cacheFloats)
        x = FloatBuffer(count: dim); xb = FloatBuffer(count: dim)
        q = FloatBuffer(count: qDim); k = FloatBuffer(count: kvDim); v = FloatBuffer(count: kvDim)
        attnOut = FloatBuffer(count: qDim)
        gate = FloatBuffer(count: ffn); up = FloatBuffer(count: ffn)
        logits = FloatBuffer(count: vocab)

        let stored = Set(matrices.map(\.type.rawValue)).sorted().joined(separator: ", ")
        // A decoded token reads every layer matrix and the lm_head once, and one row of the embedding.
        let weightBytes = matrices.dropFirst(2).reduce(lmHead.weight.bytes) { $0 + $1.bytes } + embedding.columns * embedding.type.byteSize
        var details: [(String, String)] = [
            ("attention", "\(heads) query heads, \(kvHeads) key/value heads (\(heads == kvHeads ? "MHA" : kvHeads == 1 ? "MQA" : "GQA")), head_dim \(headDim)"),
            ("q_proj / k_proj / v_proj / o_proj", "[\(qDim), \(dim)] / [\(kvDim), \(dim)] / [\(kvDim), \(dim)] / [\(dim), \(qDim)]"),
            ("mlp gate / up / down", "[\(ffn), \(dim)] / [\(ffn), \(dim)] / [\(dim), \(ffn)]"),
            ("rope", "theta \(theta), scaling \(scaling)"),
            ("lm_head", config.tiedEmbeddings ? "tied to embed_tokens [\(vocab), \(dim)]" : "[\(vocab), \(dim)]"),
            ("weights in memory", "\(stored)"),
            ("kv cache", "\(kvCache.rawValue), \(2 * layers * kvHeads * headDim * kvCache.byteSize) bytes per token"),
            ("bytes read per decoded token", "\(weightBytes) of weights (the lm_head whole, one embedding row) + \(2 * layers * kvHeads * headDim * kvCache.byteSize) per token of context"),
        ]
        if let window = config.window { details.append(("sliding window", "\(window) tokens")) }
        var printBytes = Array("\(config.hidden_size)/\(config.intermediate_size)/\(config.num_hidden_layers)/\(config.num_attention_heads)/\(config.kvHeads)/\(config.headDim)/\(config.vocab_size)".utf8)
        InputSide.fingerprintSample(embedding, into: &printBytes)
        info = ModelInfo(
            architecture: "LlamaForCausalLM", modelType: config.model_type ?? "llama",
            vocabSize: vocab, hiddenSize: dim, layerCount: layers, parameterCount: source.parameterCount,
            maxContext: maxContext, fileDTypes: source.dtypeCounts, details: details,
            fingerprint: fnv1a(printBytes))
    }

    public var lastLogits: UnsafeBufferPointer<Float> { UnsafeBufferPointer(start: logits.pointer, count: vocab) }

    public func reset() { position = 0 }

    /// Key/value cache bytes for `tokens` positions: 2 (K and V) × layers × G × d × element bytes.
    public func stateBytes(forTokens tokens: Int) -> Int { 2 * layers * kvHeads * headDim * cacheType.byteSize * tokens }
    public var stateBytes: Int { stateBytes(forTokens: position) }

    /// The cache rows of layer `l`, head `g`: [C, d] of `cacheType`.
    @inline(__always) func keys(_ l: Int, _ g: Int) -> UnsafeMutableRawPointer {
        UnsafeMutableRawPointer(keyCache.pointer) + (l * kvHeads + g) * contextCapacity * headDim * cacheType.byteSize
    }
    @inline(__always) func values(_ l: Int, _ g: Int) -> UnsafeMutableRawPointer {
        UnsafeMutableRawPointer(valueCache.pointer) + (l * kvHeads + g) * contextCapacity * headDim * cacheType.byteSize
    }

    /// Writes `headDim` floats into cache row `row` of a head's [C, d] block, in the cache's type.
    @inline(__always) func store(_ src: UnsafePointer<Float>, into head: UnsafeMutableRawPointer, row: Int) {
        if cacheType == .f32 {
            (head.assumingMemoryBound(to: Float.self) + row * headDim).update(from: src, count: headDim)
        } else {
            narrowToHalf(src, into: head.assumingMemoryBound(to: UInt16.self) + row * headDim, count: headDim)
        }
    }

    /// Rows first..<first + n of a head's cache as float32: in place (f32), or widened into `buffer` [n, d].
    @inline(__always) func rows(_ head: UnsafeMutableRawPointer, first: Int, count n: Int, widening out: UnsafeMutablePointer<Float>) -> UnsafePointer<Float> {
        if cacheType == .f32 { return UnsafePointer(head.assumingMemoryBound(to: Float.self) + first * headDim) }
        WeightMatrix(raw: UnsafeRawPointer(head) + first * headDim * 2, type: .f16, rows: n, columns: headDim).widen(into: out)
        return UnsafePointer(out)
    }

    /// The cache must hold `count` more tokens.
    @inline(__always)
    func checkRoom(for count: Int) throws {
        guard position + count <= contextCapacity else {
            throw ModelError.contextOverflow(requested: position + count, capacity: contextCapacity)
        }
    }

    // MARK: Decode — one token, matrix-vector products, no allocation.

    public func decode(_ token: Int) throws {
        try checkRoom(for: 1)
        try InputSide.check(token, vocab: vocab)
        let p = position
        Profiler.time(.embedding) { embedding.row(token, into: x.pointer) }   // x[D] = embed[token]

        for l in 0..<layers {
            let w = layerWeights[l]
            // Attention block.
            Profiler.time(.norm) { Kernels.rmsNorm(x.pointer, weight: w.inputNorm, into: xb.pointer, count: dim, eps: eps) }
            Profiler.time(.projection) {
                w.q(xb.pointer, rows: 1, into: q.pointer, widen: widen)   // q[H·d]
                w.k(xb.pointer, rows: 1, into: k.pointer, widen: widen)   // k[G·d]
                w.v(xb.pointer, rows: 1, into: v.pointer, widen: widen)   // v[G·d]
            }
            Profiler.time(.rope) {
                rope.apply(q.pointer, heads: heads, position: p)
                rope.apply(k.pointer, heads: kvHeads, position: p)
            }
            Profiler.time(.attention) {
                for g in 0..<kvHeads {                                     // cache[l, g, p, :] = k, v
                    store(k.pointer + g * headDim, into: keys(l, g), row: p)
                    store(v.pointer + g * headDim, into: values(l, g), row: p)
                }
                let first = window.map { max(0, p + 1 - $0) } ?? 0        // oldest visible position
                // attnOut[H·d]: softmax(q·Kᵀ/√d)·V per head, one fused pass over the cache
                attendOneToken(q: q.pointer, heads: heads, kvHeads: kvHeads, headDim: headDim,
                               keys: keys(l, 0), values: values(l, 0), cacheType: cacheType, capacity: contextCapacity,
                               first: first, count: p + 1 - first, scale: 1 / Float(headDim).squareRoot(), into: attnOut.pointer)
            }
            Profiler.time(.projection) { w.o(attnOut.pointer, rows: 1, into: x.pointer, accumulate: true, widen: widen) }  // x += Wo·a

            // MLP block.
            Profiler.time(.norm) { Kernels.rmsNorm(x.pointer, weight: w.postNorm, into: xb.pointer, count: dim, eps: eps) }
            Profiler.time(.mlp) {
                w.gate(xb.pointer, rows: 1, into: gate.pointer, widen: widen)  // gate[F]
                w.up(xb.pointer, rows: 1, into: up.pointer, widen: widen)      // up[F]
                Kernels.swiglu(gate.pointer, up.pointer, count: ffn)
                w.down(gate.pointer, rows: 1, into: x.pointer, accumulate: true, widen: widen)  // x += Wdown·h
            }
        }
        Profiler.time(.lmHead) {
            OutputHead.logits(hidden: x.pointer, rows: 1, dim: dim, finalNorm: finalNorm, eps: eps, lmHead: lmHead,
                              scratch: xb.pointer, allLogits: nil, lastLogits: logits.pointer, widen: widen)  // logits[V]
        }
        position += 1
    }

    // MARK: Prefill — whole chunks through matrix-matrix products.

    public func prefill(_ tokens: [Int], allLogits: UnsafeMutablePointer<Float>?) throws {
        try checkRoom(for: tokens.count)
        try InputSide.check(tokens, vocab: vocab)
        InputSide.inChunks(tokens, chunk: Self.prefillChunk, vocab: vocab, allLogits: allLogits, prefillChunk)
    }

    private func scratch() -> PrefillScratch {
        if let s = chunkScratch { return s }
        let s = PrefillScratch(rows: Self.prefillChunk, dim: dim, qDim: heads * headDim, kvDim: kvHeads * headDim,
                               ffn: ffn, capacity: contextCapacity, headDim: headDim, halfCache: cacheType == .f16)
        chunkScratch = s
        return s
    }

    private func prefillChunk(_ tokens: ArraySlice<Int>, allLogits: UnsafeMutablePointer<Float>?) {
        let t = tokens.count, p0 = position
        let qDim = heads * headDim, kvDim = kvHeads * headDim
        let s = scratch()
        let x = s.x.pointer, xb = s.xb.pointer, q = s.q.pointer, k = s.k.pointer, v = s.v.pointer
        let attn = s.attnOut.pointer, gate = s.gate.pointer, up = s.up.pointer

        Profiler.time(.embedding) { InputSide.embed(tokens, table: embedding, into: x) }  // X[T, D]

        for l in 0..<layers {
            let w = layerWeights[l]
            Profiler.time(.norm) { Kernels.rmsNorm(rows: t, x, weight: w.inputNorm, into: xb, count: dim, eps: eps) }
            Profiler.time(.projection) {
                w.q(xb, rows: t, into: q, widen: widen)    // Q[T, H·d]
                w.k(xb, rows: t, into: k, widen: widen)    // K[T, G·d]
                w.v(xb, rows: t, into: v, widen: widen)    // V[T, G·d]
            }
            Profiler.time(.rope) {
                for i in 0..<t {
                    rope.apply(q + i * qDim, heads: heads, position: p0 + i)
                    rope.apply(k + i * kvDim, heads: kvHeads, position: p0 + i)
                    for g in 0..<kvHeads {                                       // cache[l, g, p0 + i, :] = K, V rows
                        store(k + i * kvDim + g * headDim, into: keys(l, g), row: p0 + i)
                        store(v + i * kvDim + g * headDim, into: values(l, g), row: p0 + i)
                    }
                }
            }
            Profiler.time(.attention) { attendChunk(layer: l, rows: t, start: p0, scratch: s) }
            Profiler.time(.projection) { w.o(attn, rows: t, into: x, accumulate: true, widen: widen) }  // X += A·Woᵀ

            Profiler.time(.norm) { Kernels.rmsNorm(rows: t, x, weight: w.postNorm, into: xb, count: dim, eps: eps) }
            Profiler.time(.mlp) {
                w.gate(xb, rows: t, into: gate, widen: widen)  // G[T, F]
                w.up(xb, rows: t, into: up, widen: widen)      // U[T, F]
                Kernels.swiglu(gate, up, count: t * ffn)
                w.down(gate, rows: t, into: x, accumulate: true, widen: widen)  // X += H·Wdownᵀ
            }
        }
        Profiler.time(.lmHead) {
            OutputHead.logits(hidden: x, rows: t, dim: dim, finalNorm: finalNorm, eps: eps, lmHead: lmHead,
                              scratch: xb, allLogits: allLogits, lastLogits: logits.pointer, widen: widen)   // logits[T, V] or [V]
        }
        position += t
    }

    /// Causal attention of `rows` new tokens starting at position `p0` over the cache, tiled as
    /// flash attention is: for each head and block of query rows, the visible keys go by in blocks,
    /// S = Q·Kᵀ/√d of the tile through sgemm, a running maximum and sum per row (the softmax
    /// computed online, earlier output rescaled when the maximum grows), and O += P·V through sgemm.
    /// The scores never exceed one tile, whatever the context. Key/value heads are split over our
    /// threads, each with its own tiles and single-threaded products: with a head size of 32–128
    /// the products are small, and OpenBLAS's threading of each one costs more than it saves.
    private func attendChunk(layer l: Int, rows t: Int, start p0: Int, scratch s: PrefillScratch) {
        let parts = min(s.slots, BLAS.threads, kvHeads)
        Parallel.withSingleThreadedBLAS {
            Parallel.run(parts: parts) { part, parts in
                let slot = s.tiles.pointer + part * PrefillScratch.slotFloats(headDim: headDim)
                for g in (kvHeads * part / parts)..<(kvHeads * (part + 1) / parts) {
                    attendHeads(of: g, layer: l, rows: t, start: p0, scratch: s, slot: slot)
                }
            }
        }
    }

    /// The query heads of key/value head `g`, one tile at a time, with one thread's tiles (`slot`).
    private func attendHeads(of g: Int, layer l: Int, rows t: Int, start p0: Int, scratch s: PrefillScratch,
                             slot: UnsafeMutablePointer<Float>) {
        let qDim = heads * headDim, group = heads / kvHeads, d = headDim
        let scale = 1 / Float(headDim).squareRoot()
        let q = s.q.pointer, attn = s.attnOut.pointer
        let scores = slot                                            // [queryBlock, keyBlock]
        let rowMax = scores + Self.queryBlock * Self.keyBlock         // [queryBlock]
        let rowSum = rowMax + Self.queryBlock                         // [queryBlock]
        let keyTile = rowSum + Self.queryBlock                                           // [keyBlock, d] (f16 cache)
        let valueTile = keyTile + Self.keyBlock * d                                      // [keyBlock, d] (f16 cache)
        for h in g * group..<(g + 1) * group {
            var r0 = 0
            while r0 < t {
                let r1 = min(t, r0 + Self.queryBlock), rows = r1 - r0
                let out = attn + r0 * qDim + h * d                                       // O[rows, d], rows qDim apart
                for r in 0..<rows { (out + r * qDim).update(repeating: 0, count: d); rowMax[r] = -.infinity; rowSum[r] = 0 }
                let firstKey = window.map { max(0, p0 + r0 + 1 - $0) } ?? 0              // oldest key any row of the block sees
                let lastKey = p0 + r1 - 1
                var c0 = firstKey
                while c0 <= lastKey {
                    let c1 = min(lastKey + 1, c0 + Self.keyBlock), n = c1 - c0
                    let kRows = self.rows(keys(l, g), first: c0, count: n, widening: keyTile)
                    let vRows = self.rows(values(l, g), first: c0, count: n, widening: valueTile)
                    BLAS.gemm(m: rows, n: n, k: d, alpha: scale, a: q + r0 * qDim + h * d, lda: qDim,
                              b: kRows, ldb: d, transB: true, c: scores, ldc: n)             // S[rows, n]
                    for r in 0..<rows {
                        let pos = p0 + r0 + r, row = scores + r * n
                        let lo = max(c0, window.map { max(0, pos + 1 - $0) } ?? 0), hi = min(pos, c1 - 1)   // visible keys
                        guard lo <= hi else { row.update(repeating: 0, count: n); continue }
                        var top = -Float.infinity
                        for j in (lo - c0)...(hi - c0) where row[j] > top { top = row[j] }
                        let newMax = max(rowMax[r], top)
                        let correction = rowMax[r] == -.infinity ? 0 : Foundation.exp(rowMax[r] - newMax)
                        for j in 0..<(lo - c0) { row[j] = 0 }
                        for j in (hi - c0 + 1)..<n { row[j] = 0 }
                        rowSum[r] = rowSum[r] * correction + Kernels.expShifted(row + (lo - c0), count: hi - lo + 1, by: newMax)
                        rowMax[r] = newMax
                        if correction != 1 { Kernels.scale(out + r * qDim, by: correction, count: d) }
                    }
                    BLAS.gemm(m: rows, n: d, k: n, a: scores, lda: n, b: vRows, ldb: d,
                              c: out, ldc: qDim, beta: 1)                                 // O += P·V
                    c0 = c1
                }
                for r in 0..<rows { Kernels.scale(out + r * qDim, by: 1 / rowSum[r], count: d) }
                r0 = r1
            }
        }
    }

    // MARK: Snapshots — the cache rows of every layer and head up to `position`.

    var identity: String { "LlamaForCausalLM \(layers)x\(dim) heads \(heads)/\(kvHeads) d \(headDim) vocab \(vocab)" }

    public func saveState() -> [UInt8] {
        var payload: [UInt8] = []
        payload.reserveCapacity(2 * layers * kvHeads * headDim * 4 * position + vocab * 4)
        for l in 0..<layers {
            for g in 0..<kvHeads {
                appendCacheRows(keys(l, g), to: &payload)
                appendCacheRows(values(l, g), to: &payload)
            }
        }
        payload.appendFloats(logits.pointer, count: vocab)   // so that sampling can continue at once
        return StateArchive(identity: identity, fingerprint: info.fingerprint, position: position, payload: payload).encoded()
    }

    public func loadState(_ bytes: [UInt8]) throws {
        let archive = try StateArchive.decode(bytes, expecting: identity, fingerprint: info.fingerprint)
        let n = archive.position
        guard n <= contextCapacity else { throw SnapshotError.tooLong(tokens: n, capacity: contextCapacity) }
        let expected = 2 * layers * kvHeads * headDim * 4 * n + vocab * 4      // the cache rows as f32, and the logits
        guard archive.payload.count == expected else {
            throw SnapshotError.corrupt(detail: "payload has \(archive.payload.count) bytes, \(n) tokens of this model's KV cache and its logits need \(expected)")
        }
        var reader = ByteReader(archive.payload)
        for l in 0..<layers {
            for g in 0..<kvHeads {
                try readCacheRows(into: keys(l, g), count: n, from: &reader, "keys of layer \(l)")
                try readCacheRows(into: values(l, g), count: n, from: &reader, "values of layer \(l)")
            }
        }
        try reader.floats(into: logits.pointer, count: vocab, "logits")
        position = n
    }

    /// Snapshots hold the cache rows as float32 whatever the cache's type, so that a state saved
    /// with one cache type loads into the other.
    private func appendCacheRows(_ head: UnsafeMutableRawPointer, to payload: inout [UInt8]) {
        if cacheType == .f32 { payload.appendFloats(head.assumingMemoryBound(to: Float.self), count: position * headDim); return }
        let row = FloatBuffer(count: headDim)
        for r in 0..<position {
            WeightMatrix(raw: UnsafeRawPointer(head) + r * headDim * 2, type: .f16, rows: 1, columns: headDim).row(0, into: row.pointer)
            payload.appendFloats(row.pointer, count: headDim)
        }
    }

    private func readCacheRows(into head: UnsafeMutableRawPointer, count n: Int, from reader: inout ByteReader, _ what: String) throws {
        if cacheType == .f32 { try reader.floats(into: head.assumingMemoryBound(to: Float.self), count: n * headDim, what); return }
        let row = FloatBuffer(count: headDim)
        for r in 0..<n {
            try reader.floats(into: row.pointer, count: headDim, what)
            store(row.pointer, into: head, row: r)
        }
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
