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

/// The weights of one decoder layer: read-only float32 views into the checkpoint.
struct LlamaLayerWeights {
    let inputNorm: UnsafePointer<Float>   // [D]
    let wq: UnsafePointer<Float>          // [H·d, D]
    let wk: UnsafePointer<Float>          // [G·d, D]
    let wv: UnsafePointer<Float>          // [G·d, D]
    let wo: UnsafePointer<Float>          // [D, H·d]
    let bq, bk, bv, bo: UnsafePointer<Float>?  // [H·d], [G·d], [G·d], [D] when the model has biases
    let postNorm: UnsafePointer<Float>    // [D]
    let wGate: UnsafePointer<Float>       // [F, D]
    let wUp: UnsafePointer<Float>         // [F, D]
    let wDown: UnsafePointer<Float>       // [D, F]
    let bGate, bUp, bDown: UnsafePointer<Float>?  // [F], [F], [D] with mlp_bias
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
    /// Query rows per block of the attention score matrix in prefill.
    static let queryBlock = 128

    // Weights (kept alive by `checkpoint`).
    let checkpoint: Checkpoint?
    let embedding: UnsafePointer<Float>   // [V, D]
    let layerWeights: [LlamaLayerWeights]
    let finalNorm: UnsafePointer<Float>   // [D]
    let lmHead: UnsafePointer<Float>      // [V, D] (the embedding when tied)
    let rope: RotaryEmbedding

    // KV cache: per layer and key/value head, C rows of d, so each head's keys are one matrix.
    let keyCache: FloatBuffer             // [layers, G, C, d]
    let valueCache: FloatBuffer           // [layers, G, C, d]

    // Decode scratch, one token.
    let x: FloatBuffer        // [D] residual stream
    let xb: FloatBuffer       // [D] normed input
    let q: FloatBuffer        // [H·d]
    let k: FloatBuffer        // [G·d]
    let v: FloatBuffer        // [G·d]
    let attnOut: FloatBuffer  // [H·d]
    let scores: FloatBuffer   // [C] attention weights of one head
    let gate: FloatBuffer     // [F]
    let up: FloatBuffer       // [F]
    let logits: FloatBuffer   // [V]

    // Prefill scratch, allocated on first prefill and reused.
    private var chunkScratch: PrefillScratch?

    final class PrefillScratch {
        let rows: Int
        let x, xb, q, k, v, attnOut, gate, up: FloatBuffer  // [T, D], [T, D], [T, H·d], [T, G·d] ×2, [T, H·d], [T, F] ×2
        let scores: FloatBuffer                             // [queryBlock, C]
        init(rows: Int, dim: Int, qDim: Int, kvDim: Int, ffn: Int, capacity: Int) {
            self.rows = rows
            x = FloatBuffer(count: rows * dim); xb = FloatBuffer(count: rows * dim)
            q = FloatBuffer(count: rows * qDim); k = FloatBuffer(count: rows * kvDim); v = FloatBuffer(count: rows * kvDim)
            attnOut = FloatBuffer(count: rows * qDim)
            gate = FloatBuffer(count: rows * ffn); up = FloatBuffer(count: rows * ffn)
            scores = FloatBuffer(count: LlamaModel.queryBlock * capacity)
        }
    }

    /// Loads from a Hugging Face directory. `context` sizes the KV cache (default: the model's
    /// max_position_embeddings, at most 4,096).
    public convenience init(directory: URL, context: Int? = nil) throws {
        let configURL = directory.appendingPathComponent("config.json")
        let config = try readJSONConfig(LlamaConfig.self, from: configURL)
        try self.init(config: config, checkpoint: try Checkpoint(directory: directory), configPath: configURL.path, context: context)
    }

    public init(config: LlamaConfig, checkpoint: Checkpoint?, configPath: String, context: Int?,
                randomSeed: UInt64 = 0) throws {
        try config.validate(path: configPath)
        self.config = config
        // Locals first: the weight tables below are built before `self` is complete.
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
        try config.checkMemory(capacity: capacity, path: configPath, randomWeights: checkpoint == nil)
        contextCapacity = capacity
        let (theta, scaling) = try config.rope(path: configPath)
        rope = RotaryEmbedding(invFreq: scaling.inverseFrequencies(theta: theta, headDim: headDim),
                               headDim: headDim, capacity: capacity)

        let qDim = heads * headDim, kvDim = kvHeads * headDim
        var parameters = 0
        var dtypes: [String: Int] = [:]
        if let checkpoint {
            // Real weights: views into the checkpoint, each checked against the expected shape.
            self.checkpoint = checkpoint
            func w(_ name: String, _ shape: [Int]) throws -> UnsafePointer<Float> {
                let t = try checkpoint.tensor(name, shape: shape)
                parameters += t.count
                return t.data
            }
            func optional(_ name: String, _ shape: [Int], required: Bool) throws -> UnsafePointer<Float>? {
                if required || checkpoint.has(name) { return try w(name, shape) }
                return nil
            }
            embedding = try w("model.embed_tokens.weight", [vocab, dim])
            var built: [LlamaLayerWeights] = []
            let attnBias = config.attention_bias ?? false, mlpBias = config.mlp_bias ?? false
            for l in 0..<layers {
                let p = "model.layers.\(l)."
                built.append(LlamaLayerWeights(
                    inputNorm: try w(p + "input_layernorm.weight", [dim]),
                    wq: try w(p + "self_attn.q_proj.weight", [qDim, dim]),
                    wk: try w(p + "self_attn.k_proj.weight", [kvDim, dim]),
                    wv: try w(p + "self_attn.v_proj.weight", [kvDim, dim]),
                    wo: try w(p + "self_attn.o_proj.weight", [dim, qDim]),
                    // Qwen2 has q/k/v biases without attention_bias in its config: take them when present.
                    bq: try optional(p + "self_attn.q_proj.bias", [qDim], required: attnBias),
                    bk: try optional(p + "self_attn.k_proj.bias", [kvDim], required: attnBias),
                    bv: try optional(p + "self_attn.v_proj.bias", [kvDim], required: attnBias),
                    bo: try optional(p + "self_attn.o_proj.bias", [dim], required: attnBias),
                    postNorm: try w(p + "post_attention_layernorm.weight", [dim]),
                    wGate: try w(p + "mlp.gate_proj.weight", [ffn, dim]),
                    wUp: try w(p + "mlp.up_proj.weight", [ffn, dim]),
                    wDown: try w(p + "mlp.down_proj.weight", [dim, ffn]),
                    bGate: try optional(p + "mlp.gate_proj.bias", [ffn], required: mlpBias),
                    bUp: try optional(p + "mlp.up_proj.bias", [ffn], required: mlpBias),
                    bDown: try optional(p + "mlp.down_proj.bias", [dim], required: mlpBias)))
            }
            layerWeights = built
            finalNorm = try w("model.norm.weight", [dim])
            lmHead = config.tiedEmbeddings ? embedding : try w("lm_head.weight", [vocab, dim])
            dtypes = checkpoint.dtypeCounts
        } else {
            // Random weights (benchmark presets): one arena, filled from a seeded generator.
            self.checkpoint = nil
            let arena = RandomWeights(seed: randomSeed)
            let scale = 1 / Float(dim).squareRoot()
            embedding = arena.normal([vocab, dim], std: 0.02)
            layerWeights = (0..<layers).map { _ in
                LlamaLayerWeights(
                    inputNorm: arena.constant([dim], 1),
                    wq: arena.normal([qDim, dim], std: scale), wk: arena.normal([kvDim, dim], std: scale),
                    wv: arena.normal([kvDim, dim], std: scale), wo: arena.normal([dim, qDim], std: scale),
                    bq: nil, bk: nil, bv: nil, bo: nil,
                    postNorm: arena.constant([dim], 1),
                    wGate: arena.normal([ffn, dim], std: scale), wUp: arena.normal([ffn, dim], std: scale),
                    wDown: arena.normal([dim, ffn], std: 1 / Float(ffn).squareRoot()),
                    bGate: nil, bUp: nil, bDown: nil)
            }
            finalNorm = arena.constant([dim], 1)
            lmHead = config.tiedEmbeddings ? embedding : arena.normal([vocab, dim], std: 0.02)
            parameters = arena.parameterCount
            dtypes = ["F32 (random)": layers * 9 + 3]
            randomArena = arena
        }

        keyCache = FloatBuffer(count: layers * kvHeads * contextCapacity * headDim)
        valueCache = FloatBuffer(count: layers * kvHeads * contextCapacity * headDim)
        x = FloatBuffer(count: dim); xb = FloatBuffer(count: dim)
        q = FloatBuffer(count: qDim); k = FloatBuffer(count: kvDim); v = FloatBuffer(count: kvDim)
        attnOut = FloatBuffer(count: qDim); scores = FloatBuffer(count: contextCapacity)
        gate = FloatBuffer(count: ffn); up = FloatBuffer(count: ffn)
        logits = FloatBuffer(count: vocab)

        var details: [(String, String)] = [
            ("attention", "\(heads) query heads, \(kvHeads) key/value heads (\(heads == kvHeads ? "MHA" : kvHeads == 1 ? "MQA" : "GQA")), head_dim \(headDim)"),
            ("q_proj / k_proj / v_proj / o_proj", "[\(qDim), \(dim)] / [\(kvDim), \(dim)] / [\(kvDim), \(dim)] / [\(dim), \(qDim)]"),
            ("mlp gate / up / down", "[\(ffn), \(dim)] / [\(ffn), \(dim)] / [\(dim), \(ffn)]"),
            ("rope", "theta \(theta), scaling \(scaling)"),
            ("lm_head", config.tiedEmbeddings ? "tied to embed_tokens [\(vocab), \(dim)]" : "[\(vocab), \(dim)]"),
        ]
        if let window = config.window { details.append(("sliding window", "\(window) tokens")) }
        let printBytes = Self.fingerprintBytes(config: config, embedding: embedding, count: vocab * dim)
        info = ModelInfo(
            architecture: "LlamaForCausalLM", modelType: config.model_type ?? "llama",
            vocabSize: vocab, hiddenSize: dim, layerCount: layers, parameterCount: parameters,
            maxContext: maxContext, fileDTypes: dtypes, details: details,
            fingerprint: fnv1a(printBytes))
    }

    private var randomArena: RandomWeights?

    static func fingerprintBytes(config: LlamaConfig, embedding: UnsafePointer<Float>, count: Int) -> [UInt8] {
        var bytes = Array("\(config.hidden_size)/\(config.intermediate_size)/\(config.num_hidden_layers)/\(config.num_attention_heads)/\(config.kvHeads)/\(config.headDim)/\(config.vocab_size)".utf8)
        // A sample of the embedding: the same shapes with other weights give another identity.
        let stride = max(1, count / 512)
        for i in Swift.stride(from: 0, to: count, by: stride) { bytes.appendFloats(embedding + i, count: 1) }
        return bytes
    }

    public var lastLogits: UnsafeBufferPointer<Float> { UnsafeBufferPointer(start: logits.pointer, count: vocab) }

    public func reset() { position = 0 }

    /// Key/value cache bytes for `tokens` positions: 2 (K and V) × layers × G × d × 4 bytes each.
    public func stateBytes(forTokens tokens: Int) -> Int { 2 * layers * kvHeads * headDim * 4 * tokens }
    public var stateBytes: Int { stateBytes(forTokens: position) }

    /// The cache rows of layer `l`, head `g`: [C, d].
    @inline(__always) func keys(_ l: Int, _ g: Int) -> UnsafeMutablePointer<Float> {
        keyCache.pointer + (l * kvHeads + g) * contextCapacity * headDim
    }
    @inline(__always) func values(_ l: Int, _ g: Int) -> UnsafeMutablePointer<Float> {
        valueCache.pointer + (l * kvHeads + g) * contextCapacity * headDim
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
        let qDim = heads * headDim, kvDim = kvHeads * headDim, group = heads / kvHeads
        let scale = 1 / Float(headDim).squareRoot()
        Profiler.time(.embedding) { memcpy(x.pointer, embedding + token * dim, dim * 4) }  // x[D] = embed[token]

        for l in 0..<layers {
            let w = layerWeights[l]
            // Attention block.
            Profiler.time(.norm) { Kernels.rmsNorm(x.pointer, weight: w.inputNorm, into: xb.pointer, count: dim, eps: eps) }
            Profiler.time(.projection) {
                BLAS.matvec(w.wq, outputs: qDim, inner: dim, xb.pointer, into: q.pointer)   // q[H·d]
                BLAS.matvec(w.wk, outputs: kvDim, inner: dim, xb.pointer, into: k.pointer)  // k[G·d]
                BLAS.matvec(w.wv, outputs: kvDim, inner: dim, xb.pointer, into: v.pointer)  // v[G·d]
                if let b = w.bq { Kernels.add(b, into: q.pointer, count: qDim) }
                if let b = w.bk { Kernels.add(b, into: k.pointer, count: kvDim) }
                if let b = w.bv { Kernels.add(b, into: v.pointer, count: kvDim) }
            }
            Profiler.time(.rope) {
                rope.apply(q.pointer, heads: heads, position: p)
                rope.apply(k.pointer, heads: kvHeads, position: p)
            }
            Profiler.time(.attention) { attendOneToken(layer: l, position: p, scale: scale, group: group) }
            Profiler.time(.projection) {
                BLAS.matvec(w.wo, outputs: dim, inner: qDim, attnOut.pointer, into: x.pointer, accumulate: true)  // x += Wo·a
                if let b = w.bo { Kernels.add(b, into: x.pointer, count: dim) }
            }

            // MLP block.
            Profiler.time(.norm) { Kernels.rmsNorm(x.pointer, weight: w.postNorm, into: xb.pointer, count: dim, eps: eps) }
            Profiler.time(.mlp) {
                BLAS.matvec(w.wGate, outputs: ffn, inner: dim, xb.pointer, into: gate.pointer)  // gate[F]
                BLAS.matvec(w.wUp, outputs: ffn, inner: dim, xb.pointer, into: up.pointer)      // up[F]
                if let b = w.bGate { Kernels.add(b, into: gate.pointer, count: ffn) }
                if let b = w.bUp { Kernels.add(b, into: up.pointer, count: ffn) }
                Kernels.swiglu(gate.pointer, up.pointer, count: ffn)
                BLAS.matvec(w.wDown, outputs: dim, inner: ffn, gate.pointer, into: x.pointer, accumulate: true)  // x += Wdown·h
                if let b = w.bDown { Kernels.add(b, into: x.pointer, count: dim) }
            }
        }
        Profiler.time(.norm) { Kernels.rmsNorm(x.pointer, weight: finalNorm, into: xb.pointer, count: dim, eps: eps) }
        Profiler.time(.lmHead) { BLAS.matvec(lmHead, outputs: vocab, inner: dim, xb.pointer, into: logits.pointer) }  // logits[V]
        position += 1
    }

    /// Appends this token's k, v to the cache and computes attnOut[H·d] for the query q.
    @inline(__always)
    private func attendOneToken(layer l: Int, position p: Int, scale: Float, group: Int) {
        for g in 0..<kvHeads {                                           // cache[l, g, p, :] = k, v
            memcpy(keys(l, g) + p * headDim, k.pointer + g * headDim, headDim * 4)
            memcpy(values(l, g) + p * headDim, v.pointer + g * headDim, headDim * 4)
        }
        let first = window.map { max(0, p + 1 - $0) } ?? 0              // oldest visible position
        let n = p + 1 - first
        for h in 0..<heads {
            let g = h / group
            // scores[n] = K[first...p, d] · q_h[d] / √d, then softmax
            BLAS.matvec(keys(l, g) + first * headDim, outputs: n, inner: headDim,
                        q.pointer + h * headDim, into: scores.pointer)
            for i in 0..<n { scores[i] *= scale }
            Kernels.softmax(scores.pointer, count: n)
            // out_h[d] = V[first...p, d]ᵀ · scores[n]
            BLAS.matvecTransposed(values(l, g) + first * headDim, rows: n, columns: headDim,
                                  scores.pointer, into: attnOut.pointer + h * headDim)
        }
    }

    // MARK: Prefill — whole chunks through matrix-matrix products.

    public func prefill(_ tokens: [Int], allLogits: UnsafeMutablePointer<Float>?) throws {
        try checkRoom(for: tokens.count)
        try InputSide.check(tokens, vocab: vocab)
        InputSide.inChunks(tokens, chunk: Self.prefillChunk, vocab: vocab, allLogits: allLogits, prefillChunk)
    }

    private func scratch(rows: Int) -> PrefillScratch {
        if let s = chunkScratch { return s }
        let s = PrefillScratch(rows: Self.prefillChunk, dim: dim, qDim: heads * headDim,
                               kvDim: kvHeads * headDim, ffn: ffn, capacity: contextCapacity)
        chunkScratch = s
        return s
    }

    private func prefillChunk(_ tokens: ArraySlice<Int>, allLogits: UnsafeMutablePointer<Float>?) {
        let t = tokens.count, p0 = position
        let qDim = heads * headDim, kvDim = kvHeads * headDim, group = heads / kvHeads
        let scale = 1 / Float(headDim).squareRoot()
        let s = scratch(rows: t)
        let x = s.x.pointer, xb = s.xb.pointer, q = s.q.pointer, k = s.k.pointer, v = s.v.pointer
        let attn = s.attnOut.pointer, gate = s.gate.pointer, up = s.up.pointer

        Profiler.time(.embedding) { InputSide.embed(tokens, table: embedding, dim: dim, into: x) }  // X[T, D]

        for l in 0..<layers {
            let w = layerWeights[l]
            Profiler.time(.norm) { Kernels.rmsNorm(rows: t, x, weight: w.inputNorm, into: xb, count: dim, eps: eps) }
            Profiler.time(.projection) {
                BLAS.matmul(xb, rows: t, inner: dim, weight: w.wq, outputs: qDim, into: q)    // Q[T, H·d]
                BLAS.matmul(xb, rows: t, inner: dim, weight: w.wk, outputs: kvDim, into: k)   // K[T, G·d]
                BLAS.matmul(xb, rows: t, inner: dim, weight: w.wv, outputs: kvDim, into: v)   // V[T, G·d]
                for i in 0..<t {
                    if let b = w.bq { Kernels.add(b, into: q + i * qDim, count: qDim) }
                    if let b = w.bk { Kernels.add(b, into: k + i * kvDim, count: kvDim) }
                    if let b = w.bv { Kernels.add(b, into: v + i * kvDim, count: kvDim) }
                }
            }
            Profiler.time(.rope) {
                for i in 0..<t {
                    rope.apply(q + i * qDim, heads: heads, position: p0 + i)
                    rope.apply(k + i * kvDim, heads: kvHeads, position: p0 + i)
                    for g in 0..<kvHeads {                                       // cache[l, g, p0 + i, :] = K, V rows
                        memcpy(keys(l, g) + (p0 + i) * headDim, k + i * kvDim + g * headDim, headDim * 4)
                        memcpy(values(l, g) + (p0 + i) * headDim, v + i * kvDim + g * headDim, headDim * 4)
                    }
                }
            }
            Profiler.time(.attention) { attendChunk(layer: l, rows: t, start: p0, scale: scale, group: group, scratch: s) }
            Profiler.time(.projection) {
                BLAS.matmul(attn, rows: t, inner: qDim, weight: w.wo, outputs: dim, into: x, accumulate: true)  // X += A·Woᵀ
                if let b = w.bo { for i in 0..<t { Kernels.add(b, into: x + i * dim, count: dim) } }
            }

            Profiler.time(.norm) { Kernels.rmsNorm(rows: t, x, weight: w.postNorm, into: xb, count: dim, eps: eps) }
            Profiler.time(.mlp) {
                BLAS.matmul(xb, rows: t, inner: dim, weight: w.wGate, outputs: ffn, into: gate)  // G[T, F]
                BLAS.matmul(xb, rows: t, inner: dim, weight: w.wUp, outputs: ffn, into: up)      // U[T, F]
                for i in 0..<t {
                    if let b = w.bGate { Kernels.add(b, into: gate + i * ffn, count: ffn) }
                    if let b = w.bUp { Kernels.add(b, into: up + i * ffn, count: ffn) }
                }
                Kernels.swiglu(gate, up, count: t * ffn)
                BLAS.matmul(gate, rows: t, inner: ffn, weight: w.wDown, outputs: dim, into: x, accumulate: true)  // X += H·Wdownᵀ
                if let b = w.bDown { for i in 0..<t { Kernels.add(b, into: x + i * dim, count: dim) } }
            }
        }
        Profiler.time(.lmHead) {
            OutputHead.logits(hidden: x, rows: t, dim: dim, vocab: vocab, finalNorm: finalNorm, eps: eps, lmHead: lmHead,
                              scratch: xb, allLogits: allLogits, lastLogits: logits.pointer)   // logits[T, V] or [V]
        }
        position += t
    }

    /// Causal attention of `rows` new tokens starting at position `p0` over the cache, per head, in
    /// blocks of query rows: S = Q_h·K_hᵀ/√d, masked, softmax, A_h = S·V_h.
    private func attendChunk(layer l: Int, rows t: Int, start p0: Int, scale: Float, group: Int, scratch s: PrefillScratch) {
        let qDim = heads * headDim
        let q = s.q.pointer, attn = s.attnOut.pointer
        // Causal attention per head, in blocks of query rows: S = Q_h·K_hᵀ/√d, masked, softmax, A_h = S·V_h.
        for h in 0..<heads {
            let g = h / group
            var r0 = 0
            while r0 < t {
                let r1 = min(t, r0 + Self.queryBlock)
                let rows = r1 - r0
                let lastPos = p0 + r1 - 1
                let first = window.map { max(0, p0 + r0 + 1 - $0) } ?? 0     // oldest key any row sees
                let n = lastPos + 1 - first                                   // keys in the block's view
                let scores = s.scores.pointer
                BLAS.gemm(m: rows, n: n, k: headDim, alpha: scale,
                          a: q + r0 * qDim + h * headDim, lda: qDim,
                          b: keys(l, g) + first * headDim, ldb: headDim, transB: true,
                          c: scores, ldc: n)                                   // S[rows, n]
                for r in 0..<rows {
                    let pos = p0 + r0 + r
                    let row = scores + r * n
                    let lo = window.map { max(0, pos + 1 - $0) - first } ?? 0
                    let hi = pos - first                                     // last visible key
                    for j in 0..<lo { row[j] = 0 }
                    Kernels.softmax(row + lo, count: hi - lo + 1)
                    for j in (hi + 1)..<n { row[j] = 0 }
                }
                BLAS.gemm(m: rows, n: headDim, k: n,
                          a: scores, lda: n,
                          b: values(l, g) + first * headDim, ldb: headDim,
                          c: attn + r0 * qDim + h * headDim, ldc: qDim)        // A_h[rows, d]
                r0 = r1
            }
        }
    }

    // MARK: Snapshots — the cache rows of every layer and head up to `position`.

    var identity: String { "LlamaForCausalLM \(layers)x\(dim) heads \(heads)/\(kvHeads) d \(headDim) vocab \(vocab)" }

    public func saveState() -> [UInt8] {
        var payload: [UInt8] = []
        payload.reserveCapacity(stateBytes)
        for l in 0..<layers {
            for g in 0..<kvHeads {
                payload.appendFloats(keys(l, g), count: position * headDim)
                payload.appendFloats(values(l, g), count: position * headDim)
            }
        }
        payload.appendFloats(logits.pointer, count: vocab)   // so that sampling can continue at once
        return StateArchive(identity: identity, fingerprint: info.fingerprint, position: position, payload: payload).encoded()
    }

    public func loadState(_ bytes: [UInt8]) throws {
        let archive = try StateArchive.decode(bytes, expecting: identity, fingerprint: info.fingerprint)
        let n = archive.position
        guard n <= contextCapacity else { throw SnapshotError.tooLong(tokens: n, capacity: contextCapacity) }
        let expected = stateBytes(forTokens: n) + vocab * 4
        guard archive.payload.count == expected else {
            throw SnapshotError.corrupt(detail: "payload has \(archive.payload.count) bytes, \(n) tokens of this model's KV cache and its logits need \(expected)")
        }
        var reader = ByteReader(archive.payload)
        for l in 0..<layers {
            for g in 0..<kvHeads {
                try reader.floats(into: keys(l, g), count: n * headDim, "keys of layer \(l)")
                try reader.floats(into: values(l, g), count: n * headDim, "values of layer \(l)")
            }
        }
        try reader.floats(into: logits.pointer, count: vocab, "logits")
        position = n
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
