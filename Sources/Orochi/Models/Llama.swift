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
public struct LlamaConfig: ModelConfiguration {
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

/// Prefill is processed in chunks of at most this many tokens, bounding scratch memory.
let llamaPrefillChunk = 512

extension LlamaConfig: Architecture {
    func blueprint(source: WeightSource, configPath: String, context: Int?, kvCache: WeightType) throws -> Blueprint {
        try decoderBlueprint(source: source, configPath: configPath, context: context, kvCache: kvCache,
                             architecture: "LlamaForCausalLM", headNorms: false)
    }

    /// The Llama-style decoder, shared with the families that vary it (Qwen3): each layer RMSNorm →
    /// attention with RoPE (a per-head RMSNorm on Q and K first with `headNorms`; a sliding window
    /// if set) → RMSNorm → SwiGLU.
    func decoderBlueprint(source: WeightSource, configPath: String, context: Int?, kvCache: WeightType,
                          architecture: String, headNorms: Bool) throws -> Blueprint {
        try validate(path: configPath)
        let dim = hidden_size, ffn = intermediate_size, layerCount = num_hidden_layers
        let heads = num_attention_heads, kvHeads = self.kvHeads, headDim = self.headDim, vocab = vocab_size
        let maxContext = max_position_embeddings ?? Int.max
        let capacity = try cacheCapacity(requested: context, maxContext: maxContext, path: configPath)
        try checkMemory(capacity: capacity, path: configPath, randomWeights: source is RandomWeights)
        let (theta, scaling) = try rope(path: configPath)
        let rope = RotaryEmbedding(invFreq: scaling.inverseFrequencies(theta: theta, headDim: headDim),
                                   headDim: headDim, capacity: capacity)

        // The weight table: every tensor's name, shape and preset initialisation, once.
        func norm(_ name: String) throws -> Norm {
            Norm(weight: try source.vector(name, shape: [dim], initial: .constant(1)), name: String(name.split(separator: ".").dropLast().last!))
        }
        let embedding = try source.matrix("model.embed_tokens.weight", rows: vocab, columns: dim, initial: .normal(std: 0.02))
        let blocks = try (0..<layerCount).map { l in
            let p = "model.layers.\(l)."
            let mixerNorm = try norm(p + "input_layernorm.weight")
            let weights = try AttentionWeights.load(source, prefix: p + "self_attn.", dim: dim, heads: heads, kvHeads: kvHeads,
                                                    headDim: headDim, bias: attention_bias ?? false)
            let norms = headNorms ? AttentionMixer.HeadNorms(
                q: try source.vector(p + "self_attn.q_norm.weight", shape: [headDim], initial: .constant(1)),
                k: try source.vector(p + "self_attn.k_norm.weight", shape: [headDim], initial: .constant(1)), eps: eps) : nil
            return Block(
                mixerNorm: mixerNorm,
                mixer: .attention(AttentionMixer(heads: heads, kvHeads: kvHeads, headDim: headDim, window: window, rope: rope,
                                                 weights: weights, layer: l, headNorms: norms)),
                feedForward: (try norm(p + "post_attention_layernorm.weight"),
                              .dense(try SwiGLU.load(source, prefix: p + "mlp.", dim: dim, ffn: ffn, bias: mlp_bias ?? false))))
        }
        let lmHead = Linear(tiedEmbeddings ? embedding
                            : try source.matrix("lm_head.weight", rows: vocab, columns: dim, initial: .normal(std: 0.02)))
        let qDim = heads * headDim, kvDim = kvHeads * headDim
        let printed = (headNorms ? "qk-norm " : "") + "\(hidden_size)/\(intermediate_size)/\(num_hidden_layers)/\(num_attention_heads)/\(kvHeads)/\(headDim)/\(vocab_size)"
        return Blueprint(
            architecture: architecture, modelType: model_type ?? "llama",
            embedding: embedding, blocks: blocks, finalNorm: try norm("model.norm.weight"), eps: eps, lmHead: lmHead,
            contextCapacity: capacity, maxContext: maxContext, kvCache: kvCache, prefillChunk: llamaPrefillChunk,
            identity: "\(architecture) \(layerCount)x\(dim) heads \(heads)/\(kvHeads) d \(headDim) vocab \(vocab)",
            fingerprintText: printed,
            details: { [tiedEmbeddings, window] facts in
                var details: [(String, String)] = [
                    ("attention", "\(heads) query heads, \(kvHeads) key/value heads (\(heads == kvHeads ? "MHA" : kvHeads == 1 ? "MQA" : "GQA")), head_dim \(headDim)"),
                    ("q_proj / k_proj / v_proj / o_proj", "[\(qDim), \(dim)] / [\(kvDim), \(dim)] / [\(kvDim), \(dim)] / [\(dim), \(qDim)]"),
                    ("mlp gate / up / down", "[\(ffn), \(dim)] / [\(ffn), \(dim)] / [\(dim), \(ffn)]"),
                    ("rope", "theta \(theta), scaling \(scaling)"),
                    ("lm_head", tiedEmbeddings ? "tied to embed_tokens [\(vocab), \(dim)]" : "[\(vocab), \(dim)]"),
                    ("weights in memory", facts.storage),
                    ("kv cache", "\(kvCache.rawValue), \(facts.bytesPerToken) bytes per token"),
                    ("bytes read per decoded token", "\(facts.decodeWeightBytes) of weights (the lm_head whole, one embedding row) + \(facts.bytesPerToken) per token of context"),
                ]
                if headNorms { details.insert(("q/k norm", "RMSNorm over each head's \(headDim) values of Q and K, before RoPE"), at: 1) }
                if let window { details.append(("sliding window", "\(window) tokens")) }
                return details
            })
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
