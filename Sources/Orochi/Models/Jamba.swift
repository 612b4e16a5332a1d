import Foundation

// Jamba (Lieber et al. 2024, "Jamba: A Hybrid Transformer-Mamba Language Model"), as in
// transformers' JambaForCausalLM (modeling_jamba.py). Most layers mix with Mamba, one in
// `attn_layer_period` with attention; the feed-forward of one layer in `expert_layer_period` is
// a mixture of experts. Read top to bottom:
//
//   x = embed[token]
//   for layer i:
//       h = RMSNorm(x)
//       x = x + (i % attn_layer_period == attn_layer_offset ? Attention(h) : MambaMixer(h))
//       h = RMSNorm(x)
//       x = x + (i % expert_layer_period == expert_layer_offset and num_experts > 1 ? MoE(h) : SwiGLU(h))
//   logits = RMSNorm(x)·Wlmᵀ
//
// The attention layers have no position encoding at all (no RoPE): the Mamba layers before them
// already mix each token with what came earlier, in order, so their outputs carry position; the
// paper found explicit positions added nothing. The Mamba mixer is Mamba-1's with RMSNorms on
// Δ_low, B and C (stabilising large-scale training). What a sequence keeps: per attention layer a
// KV cache that grows with the context, per Mamba layer a fixed state; so a hybrid's memory is
// fixed bytes plus (far fewer than a transformer's) bytes per token.
//
// Shape letters: T tokens, D hidden size, H/G query/key-value heads, d head size, F MLP size,
// X experts, k experts per token, E Mamba inner channels, N state size, R rank of Δ, K conv kernel.

/// config.json of a Jamba model, with the Hugging Face key names and transformers' defaults.
public struct JambaConfig: ModelConfiguration {
    public var model_type: String?
    public var vocab_size: Int
    public var hidden_size: Int
    public var intermediate_size: Int
    public var num_hidden_layers: Int
    public var num_attention_heads: Int
    public var num_key_value_heads: Int
    public var head_dim: Int?
    public var rms_norm_eps: Double
    public var max_position_embeddings: Int
    public var tie_word_embeddings: Bool
    public var hidden_act: String?
    public var num_experts: Int
    public var num_experts_per_tok: Int
    public var expert_layer_period: Int
    public var expert_layer_offset: Int
    public var attn_layer_period: Int
    public var attn_layer_offset: Int
    public var mamba_d_state: Int
    public var mamba_d_conv: Int
    public var mamba_expand: Int
    public var mamba_dt_rank: MambaConfig.TimeStepRank
    public var mamba_conv_bias: Bool
    public var mamba_proj_bias: Bool

    /// In code, e.g. a benchmark preset. Defaults are transformers' JambaConfig's.
    public init(vocab_size: Int = 65536, hidden_size: Int = 4096, intermediate_size: Int = 14336, num_hidden_layers: Int = 32,
                num_attention_heads: Int = 32, num_key_value_heads: Int = 8, head_dim: Int? = nil, rms_norm_eps: Double = 1e-6,
                max_position_embeddings: Int = 262144, tie_word_embeddings: Bool = false,
                num_experts: Int = 16, num_experts_per_tok: Int = 2, expert_layer_period: Int = 2, expert_layer_offset: Int = 1,
                attn_layer_period: Int = 8, attn_layer_offset: Int = 4, mamba_d_state: Int = 16, mamba_d_conv: Int = 4,
                mamba_expand: Int = 2, mamba_dt_rank: MambaConfig.TimeStepRank = .auto, mamba_conv_bias: Bool = true,
                mamba_proj_bias: Bool = false) {
        model_type = "jamba"
        self.vocab_size = vocab_size; self.hidden_size = hidden_size; self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers; self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_key_value_heads; self.head_dim = head_dim; self.rms_norm_eps = rms_norm_eps
        self.max_position_embeddings = max_position_embeddings; self.tie_word_embeddings = tie_word_embeddings
        hidden_act = "silu"
        self.num_experts = num_experts; self.num_experts_per_tok = num_experts_per_tok
        self.expert_layer_period = expert_layer_period; self.expert_layer_offset = expert_layer_offset
        self.attn_layer_period = attn_layer_period; self.attn_layer_offset = attn_layer_offset
        self.mamba_d_state = mamba_d_state; self.mamba_d_conv = mamba_d_conv; self.mamba_expand = mamba_expand
        self.mamba_dt_rank = mamba_dt_rank; self.mamba_conv_bias = mamba_conv_bias; self.mamba_proj_bias = mamba_proj_bias
    }

    enum CodingKeys: String, CodingKey {
        case model_type, vocab_size, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
             num_key_value_heads, head_dim, rms_norm_eps, max_position_embeddings, tie_word_embeddings, hidden_act,
             num_experts, num_experts_per_tok, expert_layer_period, expert_layer_offset, attn_layer_period,
             attn_layer_offset, mamba_d_state, mamba_d_conv, mamba_expand, mamba_dt_rank, mamba_conv_bias, mamba_proj_bias
        case num_local_experts   // transformers' alias of num_experts
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = JambaConfig()
        func value<T: Decodable>(_ key: CodingKeys, _ fallback: T) throws -> T { try c.decodeIfPresent(T.self, forKey: key) ?? fallback }
        self.init(vocab_size: try value(.vocab_size, d.vocab_size), hidden_size: try value(.hidden_size, d.hidden_size),
                  intermediate_size: try value(.intermediate_size, d.intermediate_size),
                  num_hidden_layers: try value(.num_hidden_layers, d.num_hidden_layers),
                  num_attention_heads: try value(.num_attention_heads, d.num_attention_heads),
                  num_key_value_heads: try value(.num_key_value_heads, d.num_key_value_heads),
                  head_dim: try c.decodeIfPresent(Int.self, forKey: .head_dim),
                  rms_norm_eps: try value(.rms_norm_eps, d.rms_norm_eps),
                  max_position_embeddings: try value(.max_position_embeddings, d.max_position_embeddings),
                  tie_word_embeddings: try value(.tie_word_embeddings, d.tie_word_embeddings),
                  num_experts: try value(.num_experts, try value(.num_local_experts, d.num_experts)),
                  num_experts_per_tok: try value(.num_experts_per_tok, d.num_experts_per_tok),
                  expert_layer_period: try value(.expert_layer_period, d.expert_layer_period),
                  expert_layer_offset: try value(.expert_layer_offset, d.expert_layer_offset),
                  attn_layer_period: try value(.attn_layer_period, d.attn_layer_period),
                  attn_layer_offset: try value(.attn_layer_offset, d.attn_layer_offset),
                  mamba_d_state: try value(.mamba_d_state, d.mamba_d_state), mamba_d_conv: try value(.mamba_d_conv, d.mamba_d_conv),
                  mamba_expand: try value(.mamba_expand, d.mamba_expand), mamba_dt_rank: try value(.mamba_dt_rank, d.mamba_dt_rank),
                  mamba_conv_bias: try value(.mamba_conv_bias, d.mamba_conv_bias), mamba_proj_bias: try value(.mamba_proj_bias, d.mamba_proj_bias))
        model_type = try c.decodeIfPresent(String.self, forKey: .model_type)
        hidden_act = try c.decodeIfPresent(String.self, forKey: .hidden_act)
    }

    public var headDim: Int { head_dim ?? hidden_size / max(1, num_attention_heads) }
    /// E: Mamba inner channels.
    public var innerSize: Int { mamba_expand &* hidden_size }
    /// R: "auto" = ⌈D/16⌉.
    public var dtRank: Int {
        if case let .value(v) = mamba_dt_rank { return v }
        return hidden_size / 16 + (hidden_size % 16 == 0 ? 0 : 1)
    }
    /// Whether layer `i` mixes with attention (else Mamba), as transformers' `layers_block_type`.
    public func isAttention(_ i: Int) -> Bool { i % attn_layer_period == attn_layer_offset }
    /// Whether layer `i`'s feed-forward is a mixture of experts (else one SwiGLU MLP).
    public func hasExperts(_ i: Int) -> Bool { num_experts > 1 && i % expert_layer_period == expert_layer_offset }
    /// Layers i < num_hidden_layers with i % period == offset, counted without visiting them (the
    /// count of layers comes from the file: a billion must not allocate a billion of anything).
    static func layers(_ count: Int, period: Int, offset: Int) -> Int {
        guard period > 0, offset >= 0, count > offset else { return 0 }
        return (count - 1 - offset) / period + 1
    }
    public var attentionLayers: Int { Self.layers(num_hidden_layers, period: attn_layer_period, offset: attn_layer_offset) }
    public var expertLayers: Int {
        num_experts > 1 ? Self.layers(num_hidden_layers, period: expert_layer_period, offset: expert_layer_offset) : 0
    }

    /// Checks keys and sizes before any tensor is read, naming the offending key.
    func validate(path: String) throws {
        func positive(_ v: Int, _ key: String) throws {
            guard v > 0 else { throw LoadError.badConfig(path: path, detail: "'\(key)' must be positive, found \(v)") }
        }
        try positive(vocab_size, "vocab_size"); try positive(hidden_size, "hidden_size")
        try positive(intermediate_size, "intermediate_size"); try positive(num_hidden_layers, "num_hidden_layers")
        try positive(num_attention_heads, "num_attention_heads"); try positive(num_key_value_heads, "num_key_value_heads")
        try positive(headDim, "head_dim"); try positive(max_position_embeddings, "max_position_embeddings")
        try positive(num_experts, "num_experts"); try positive(num_experts_per_tok, "num_experts_per_tok")
        try positive(mamba_d_state, "mamba_d_state"); try positive(mamba_d_conv, "mamba_d_conv")
        try positive(mamba_expand, "mamba_expand")
        if case let .invalid(s) = mamba_dt_rank {
            throw LoadError.badConfig(path: path, detail: "'mamba_dt_rank' must be an integer or \"auto\", found \(s)")
        }
        try positive(dtRank, "mamba_dt_rank")
        for (period, offset, what) in [(attn_layer_period, attn_layer_offset, "attn_layer"), (expert_layer_period, expert_layer_offset, "expert_layer")] {
            try positive(period, what + "_period")
            guard offset >= 0 && offset < period else {
                throw LoadError.badConfig(path: path, detail: "'\(what)_offset' must be in 0..<\(what)_period (\(period)), found \(offset)")
            }
        }
        guard num_experts_per_tok <= num_experts else {
            throw LoadError.badConfig(path: path, detail: "'num_experts_per_tok' (\(num_experts_per_tok)) must not exceed 'num_experts' (\(num_experts))")
        }
        guard num_attention_heads % num_key_value_heads == 0 else {
            throw LoadError.badConfig(path: path, detail: "num_attention_heads (\(num_attention_heads)) must be a multiple of num_key_value_heads (\(num_key_value_heads))")
        }
        if let act = hidden_act, act != "silu" {
            throw LoadError.badConfig(path: path, detail: "hidden_act '\(act)' is not supported (expected 'silu')")
        }
        try checkReal(rms_norm_eps, "rms_norm_eps", path: path, allowZero: true)
        try configSizes(path) {
            let d = hidden_size, e = try Sizes.product([mamba_expand, d], "mamba_expand × hidden_size")
            _ = try Sizes.product([vocab_size, d], "vocab_size × hidden_size")
            _ = try Sizes.product([num_attention_heads, headDim, d], "num_attention_heads × head_dim × hidden_size")
            _ = try Sizes.product([num_experts, 3, intermediate_size, d], "num_experts × 3 × intermediate_size × hidden_size")
            _ = try Sizes.product([2, e, d], "in_proj: 2 × mamba_expand × hidden_size × hidden_size")
            let dbc = try Sizes.sum([dtRank, try Sizes.product([2, mamba_d_state], "2 × mamba_d_state")], "mamba_dt_rank + 2 × mamba_d_state")
            _ = try Sizes.product([dbc, e], "x_proj: (mamba_dt_rank + 2 × mamba_d_state) × inner size")
            _ = try Sizes.product([e, dtRank], "dt_proj: inner size × mamba_dt_rank")
            _ = try Sizes.product([e, mamba_d_state], "A_log: inner size × mamba_d_state")
            _ = try Sizes.product([mamba_d_conv, e], "conv1d: mamba_d_conv × inner size")
        }
    }

    /// Bytes a model instance allocates for `capacity` tokens of KV cache (attention layers only):
    /// caches, Mamba states and derived weights, decode and prefill scratch, and the weights
    /// themselves when they are random.
    func allocationBytes(capacity: Int, randomWeights: Bool, prefillChunk: Int) throws -> Int {
        let what = "the KV cache for a context of \(capacity) tokens with the states and scratch"
        func m(_ xs: Int...) throws -> Int { try Sizes.product(xs, what) }
        func s(_ xs: Int...) throws -> Int { try Sizes.sum(xs, what) }
        let d = hidden_size, f = intermediate_size, v = vocab_size, l = num_hidden_layers, x = num_experts
        let a = attentionLayers, e = try m(mamba_expand, d), n = mamba_d_state, k = mamba_d_conv, dbc = try s(dtRank, m(2, n))
        let qDim = try m(num_attention_heads, headDim), kvDim = try m(num_key_value_heads, headDim)
        let kv = try m(2, a, kvDim, capacity)
        let mamba = try m(l - a, s(m(2, k, e), m(2, e, n)))
        let row = try s(m(2, d), m(2, qDim), m(2, kvDim), m(2, f), m(2, e), m(3, e), dbc, x, m(2, d), m(2, x))
        let tiles = try m(AttentionMixer.queryBlock, capacity)
        var floats = try s(kv, mamba, v, row, m(prefillChunk, row), tiles)
        if randomWeights {
            let attention = try m(a, s(m(2, qDim, d), m(2, kvDim, d)))
            let mixers = try m(l - a, s(m(2, e, d), m(dbc, e), m(e, dtRank), m(e, n), m(d, e), m(k, e), m(3, e), dbc))
            let ffn = try m(l, x, 3, f, d)
            floats = try s(floats, attention, mixers, ffn, m(2, v, d), m(2, l, d), d)
        }
        return try m(floats, MemoryLayout<Float>.stride)
    }
}

/// Prefill is processed in chunks of at most this many tokens, bounding scratch memory.
let jambaPrefillChunk = 256

extension JambaConfig: Architecture {
    /// Each layer: RMSNorm → attention (no positions) or the Mamba mixer with inner norms →
    /// RMSNorm → SwiGLU or a mixture of experts.
    func blueprint(source: WeightSource, configPath: String, context: Int?, kvCache: WeightType) throws -> Blueprint {
        let config = self
        try config.validate(path: configPath)
        let dim = config.hidden_size, vocab = config.vocab_size, layerCount = config.num_hidden_layers
        let heads = config.num_attention_heads, kvHeads = config.num_key_value_heads, headDim = config.headDim
        let e = config.innerSize, n = config.mamba_d_state, r = config.dtRank, k = config.mamba_d_conv
        let eps = Float(config.rms_norm_eps)
        let attentionLayers = config.attentionLayers
        let capacity = attentionLayers == 0 ? Int.max
            : try cacheCapacity(requested: context, maxContext: config.max_position_embeddings, path: configPath)
        try configSizes(configPath) {
            let bytes = try config.allocationBytes(capacity: attentionLayers == 0 ? 1 : capacity, randomWeights: source is RandomWeights,
                                                   prefillChunk: jambaPrefillChunk)
            try Sizes.checkFits(bytes, "the KV cache of the attention layers for a context of \(capacity) tokens (--context, or max_position_embeddings up to 4,096) with the Mamba states and scratch of this configuration")
        }

        // The weight table: every tensor's name, shape and preset initialisation, once (each
        // block's own in its `load`).
        var derived: [FloatBuffer] = []
        let mambaShape = MambaMixerWeights.Shape(
            dim: dim, inner: e, stateSize: n, rank: r, kernel: k, convBias: config.mamba_conv_bias,
            projectionBias: config.mamba_proj_bias, innerNormEps: eps,
            keys: (state: "mamba_d_state", kernel: "mamba_d_conv", rank: "mamba_dt_rank"))
        func norm(_ name: String) throws -> UnsafePointer<Float> { try source.vector(name, shape: [dim], initial: .constant(1)) }
        let embedding = try source.matrix("model.embed_tokens.weight", rows: vocab, columns: dim, initial: .normal(std: 0.02))
        let blocks = try (0..<layerCount).map { i in
            let p = "model.layers.\(i)."
            let inputNorm = try norm(p + "input_layernorm.weight")
            let mixer: Block.Mixer = config.isAttention(i)
                ? .attention(AttentionMixer(
                    heads: heads, kvHeads: kvHeads, headDim: headDim, window: nil, rope: nil,
                    weights: try AttentionWeights.load(source, prefix: p + "self_attn.", dim: dim, heads: heads, kvHeads: kvHeads,
                                                       headDim: headDim, bias: false),
                    layer: i))
                : .mamba(MambaMixer(
                    inner: e, stateSize: n, rank: r, kernel: k,
                    weights: try MambaMixerWeights.load(source, prefix: p + "mamba.", shape: mambaShape, layers: layerCount,
                                                        configPath: configPath, derived: &derived),
                    layer: i))
            let preFeedForwardNorm = try norm(p + "pre_ff_layernorm.weight")
            let feedForward: Block.FeedForward
            do {
                feedForward = config.hasExperts(i)
                    ? .experts(try MixtureOfExperts.load(source, prefix: p + "feed_forward.", dim: dim, ffn: config.intermediate_size,
                                                         experts: config.num_experts, topK: config.num_experts_per_tok))
                    : .dense(try SwiGLU.load(source, prefix: p + "feed_forward.", dim: dim, ffn: config.intermediate_size))
            } catch let LoadError.shapeMismatch(tensor, expected, found) where tensor.hasSuffix("router.weight") {
                throw LoadError.badConfig(path: configPath, detail:
                    "tensor '\(tensor)' has shape \(found), expected \(expected): num_experts = \(config.num_experts) in config.json disagrees with the checkpoint")
            }
            return Block(mixerNorm: Norm(weight: inputNorm, name: "input_layernorm"), mixer: mixer,
                         feedForward: (Norm(weight: preFeedForwardNorm, name: "pre_ff_layernorm"), feedForward))
        }
        let finalNorm = Norm(weight: try norm("model.final_layernorm.weight"), name: "final_layernorm")
        let lmHead = Linear(config.tie_word_embeddings ? embedding
                            : try source.matrix("lm_head.weight", rows: vocab, columns: dim, initial: .normal(std: 0.02)))
        let pattern = (0..<layerCount).map { (config.isAttention($0) ? "A" : "M") + (config.hasExperts($0) ? "+moe" : "") }
        return Blueprint(
            architecture: "JambaForCausalLM", modelType: config.model_type ?? "jamba", derived: derived,
            embedding: embedding, blocks: blocks, finalNorm: finalNorm, eps: eps, lmHead: lmHead,
            contextCapacity: capacity, maxContext: attentionLayers == 0 ? Int.max : config.max_position_embeddings,
            kvCache: kvCache, prefillChunk: jambaPrefillChunk,
            identity: "JambaForCausalLM \(layerCount)x\(dim) heads \(heads)/\(kvHeads) d \(headDim) inner \(e) state \(n) conv \(k) rank \(r) vocab \(vocab)",
            fingerprintText: "jamba \(dim)/\(config.intermediate_size)/\(layerCount)/\(heads)/\(kvHeads)/\(headDim)/\(vocab)/\(e)/\(n)/\(r)/\(k)/\(pattern.joined())",
            details: { facts in [
                ("layer pattern", "\(pattern.joined(separator: " ")) (A attention, M Mamba, +moe experts)"),
                ("attention", "\(attentionLayers) layers, \(heads) query heads, \(kvHeads) key/value heads, head_dim \(headDim), no position encoding"),
                ("mamba mixer", "\(layerCount - attentionLayers) layers, inner \(e) (expand \(config.mamba_expand)), state \(n), conv kernel \(k), Δ rank \(r), RMSNorm on Δ, B, C"),
                ("feed-forward", config.num_experts > 1
                    ? "SwiGLU \(config.intermediate_size); experts: \(config.num_experts), top-\(config.num_experts_per_tok), every \(config.expert_layer_period) layers from \(config.expert_layer_offset)"
                    : "SwiGLU \(config.intermediate_size) in every layer"),
                ("lm_head", config.tie_word_embeddings ? "tied to embed_tokens [\(vocab), \(dim)]" : "[\(vocab), \(dim)]"),
                ("weights in memory", facts.storage),
                ("kv cache", attentionLayers == 0 ? "none" : "\(kvCache.rawValue), \(facts.bytesPerToken) bytes per token (attention layers only)"),
                ("bytes read per decoded token", "\(facts.decodeWeightBytes) of weights (the routed experts only) + \(facts.fixedStateBytes) of state + \(facts.bytesPerToken) per token of context"),
            ] })
    }
}
