import Foundation
import OrochiKernels

// IBM Granite-4.0-H (GraniteMoeHybridForCausalLM), as transformers' modeling_granitemoehybrid.py:
// a hybrid of Mamba-2 layers and a few attention layers, each followed by a mixture of experts
// beside a shared MLP, with Granite's multipliers:
//
//   x = embed[token] · embedding_multiplier
//   for each layer (`layer_types`: "mamba" or "attention"):
//       x = x + residual_multiplier · mixer(RMSNorm(x))       Mamba-2 (Mamba2Mixer), or attention with
//                                                             scores scaled by attention_multiplier,
//                                                             RoPE or no positions ("nope")
//       h = RMSNorm(x)
//       x = x + residual_multiplier · (MoE(h) + shared(h))    top-k experts, their weights a softmax
//                                                             over the k largest router logits; shared
//                                                             a SwiGLU every token goes through
//   logits = RMSNorm(x)·W_lmᵀ / logits_scaling
//
// The shared MLP's gate and up are one fused `input_linear` [2F, D] (gate rows first); the experts
// are stacked, `input_linear` [X, 2F, D] and `output_linear` [X, D, F]. The logits' division is
// folded into the final norm's weight at load.

/// config.json of a Granite-4.0-H model: Llama's keys for attention, the vocabulary and the
/// norms (`base`), and Granite's own.
public struct GraniteHybridConfig: ModelConfiguration {
    public var base: LlamaConfig
    public var layer_types: [String]?
    public var position_embedding_type: String?
    public var embedding_multiplier: Double
    public var logits_scaling: Double
    public var residual_multiplier: Double
    public var attention_multiplier: Double
    public var num_local_experts: Int
    public var num_experts_per_tok: Int
    public var shared_intermediate_size: Int
    public var mamba_n_heads: Int
    public var mamba_n_groups: Int
    public var mamba_d_state: Int
    public var mamba_d_head: Int?
    public var mamba_d_conv: Int
    public var mamba_expand: Int
    public var mamba_chunk_size: Int
    public var mamba_conv_bias: Bool
    public var mamba_proj_bias: Bool
    public var time_step_limit: [ConfigFloat]?

    enum CodingKeys: String, CodingKey {
        case layer_types, layers_block_type, position_embedding_type, embedding_multiplier, logits_scaling, residual_multiplier,
             attention_multiplier, num_local_experts, num_experts_per_tok, shared_intermediate_size, mamba_n_heads,
             mamba_n_groups, mamba_d_state, mamba_d_head, mamba_d_conv, mamba_expand, mamba_chunk_size, mamba_conv_bias,
             mamba_proj_bias, time_step_limit
    }

    public init(from decoder: Decoder) throws {
        base = try LlamaConfig(from: decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        layer_types = try c.decodeIfPresent([String].self, forKey: .layer_types) ?? c.decodeIfPresent([String].self, forKey: .layers_block_type)
        position_embedding_type = try c.decodeIfPresent(String.self, forKey: .position_embedding_type)
        embedding_multiplier = try c.decodeIfPresent(Double.self, forKey: .embedding_multiplier) ?? 1
        logits_scaling = try c.decodeIfPresent(Double.self, forKey: .logits_scaling) ?? 1
        residual_multiplier = try c.decodeIfPresent(Double.self, forKey: .residual_multiplier) ?? 1
        attention_multiplier = try c.decodeIfPresent(Double.self, forKey: .attention_multiplier) ?? 1
        num_local_experts = try c.decodeIfPresent(Int.self, forKey: .num_local_experts) ?? 8
        num_experts_per_tok = try c.decodeIfPresent(Int.self, forKey: .num_experts_per_tok) ?? 2
        shared_intermediate_size = try c.decodeIfPresent(Int.self, forKey: .shared_intermediate_size) ?? 1024
        mamba_n_heads = try c.decodeIfPresent(Int.self, forKey: .mamba_n_heads) ?? 128
        mamba_n_groups = try c.decodeIfPresent(Int.self, forKey: .mamba_n_groups) ?? 1
        mamba_d_state = try c.decodeIfPresent(Int.self, forKey: .mamba_d_state) ?? 256
        // An integer, or "auto" (= expand × hidden / heads).
        if let text = try? c.decodeIfPresent(String.self, forKey: .mamba_d_head) {
            guard text == "auto" else {
                throw DecodingError.dataCorrupted(.init(codingPath: [CodingKeys.mamba_d_head], debugDescription: "an integer or \"auto\", found <\(text)>"))
            }
            mamba_d_head = nil
        } else {
            mamba_d_head = try c.decodeIfPresent(Int.self, forKey: .mamba_d_head)
        }
        mamba_d_conv = try c.decodeIfPresent(Int.self, forKey: .mamba_d_conv) ?? 4
        mamba_expand = try c.decodeIfPresent(Int.self, forKey: .mamba_expand) ?? 2
        mamba_chunk_size = try c.decodeIfPresent(Int.self, forKey: .mamba_chunk_size) ?? 256
        mamba_conv_bias = try c.decodeIfPresent(Bool.self, forKey: .mamba_conv_bias) ?? true
        mamba_proj_bias = try c.decodeIfPresent(Bool.self, forKey: .mamba_proj_bias) ?? false
        time_step_limit = try c.decodeIfPresent([ConfigFloat].self, forKey: .time_step_limit)
    }

    /// The Mamba-2 layers' config, with Granite's key names for its messages.
    var mamba: Mamba2Config {
        let heads = max(mamba_n_heads, 1)
        var m = Mamba2Config(hidden_size: base.hidden_size, num_hidden_layers: base.num_hidden_layers, vocab_size: base.vocab_size,
                             num_heads: mamba_n_heads, head_dim: mamba_d_head ?? mamba_expand &* base.hidden_size / heads,
                             state_size: mamba_d_state, n_groups: mamba_n_groups, expand: mamba_expand, conv_kernel: mamba_d_conv,
                             chunk_size: mamba_chunk_size, use_bias: mamba_proj_bias, use_conv_bias: mamba_conv_bias,
                             layer_norm_epsilon: base.rms_norm_eps ?? 1e-6, tie_word_embeddings: base.tiedEmbeddings)
        if let time_step_limit { m.time_step_limit = time_step_limit }
        m.keyNames = ["num_heads": "mamba_n_heads", "head_dim": "mamba_d_head", "state_size": "mamba_d_state", "n_groups": "mamba_n_groups",
                      "expand": "mamba_expand", "conv_kernel": "mamba_d_conv", "chunk_size": "mamba_chunk_size", "layer_norm_epsilon": "rms_norm_eps"]
        return m
    }

    /// Whether layer `l` attends (else it is a Mamba-2 layer); after `validate`.
    func isAttention(_ l: Int) -> Bool { ["attention", "full_attention"].contains(layer_types?[l] ?? "mamba") }

    func validate(path: String) throws {
        func bad(_ detail: String) -> LoadError { LoadError.badConfig(path: path, detail: detail) }
        try base.validate(path: path)
        try mamba.validate(path: path)
        let layers = base.num_hidden_layers
        if let types = layer_types {
            guard types.count == layers else { throw bad("'layer_types' has \(types.count) entries for \(layers) layers") }
            if let unknown = types.first(where: { !["mamba", "linear_attention", "attention", "full_attention"].contains($0) }) {
                throw bad("'layer_types' entry '\(unknown)' is not supported (expected 'mamba' or 'attention')")
            }
        }
        switch position_embedding_type {
        case nil, "nope", "rope": break
        case let kind?: throw bad("'position_embedding_type' '\(kind)' is not supported (expected 'rope' or 'nope')")
        }
        for (value, key) in [(embedding_multiplier, "embedding_multiplier"), (logits_scaling, "logits_scaling"),
                             (residual_multiplier, "residual_multiplier"), (attention_multiplier, "attention_multiplier")] {
            try checkReal(value, key, path: path)
        }
        guard shared_intermediate_size > 0 else { throw bad("'shared_intermediate_size' must be positive, found \(shared_intermediate_size)") }
        guard num_local_experts >= 0 else { throw bad("'num_local_experts' must be ≥ 0, found \(num_local_experts)") }
        if num_local_experts > 0 {
            guard (1...num_local_experts).contains(num_experts_per_tok) else {
                throw bad("'num_experts_per_tok' \(num_experts_per_tok) must be in 1…\(num_local_experts) (num_local_experts)")
            }
        }
        try configSizes(path) {
            _ = try Sizes.product([2, shared_intermediate_size, base.hidden_size], "shared_mlp: 2 × shared_intermediate_size × hidden_size")
            _ = try Sizes.product([num_local_experts, 3, base.intermediate_size, base.hidden_size], "experts: num_local_experts × 3 × intermediate_size × hidden_size")
        }
    }
}

extension GraniteHybridConfig: Architecture {
    func blueprint(source: WeightSource, configPath: String, context: Int?, kvCache: WeightType) throws -> Blueprint {
        try validate(path: configPath)
        let dim = base.hidden_size, vocab = base.vocab_size, layerCount = base.num_hidden_layers, eps = base.eps
        let heads = base.num_attention_heads, kvHeads = base.kvHeads, headDim = base.headDim
        let experts = num_local_experts, ffn = base.intermediate_size, shared = shared_intermediate_size
        let mamba = self.mamba
        let attentionLayers = (0..<layerCount).filter(isAttention).count
        let capacity = attentionLayers == 0 ? Int.max
            : try cacheCapacity(requested: context, maxContext: base.max_position_embeddings ?? Int.max, path: configPath)
        if attentionLayers > 0 { try base.checkMemory(capacity: capacity, path: configPath, randomWeights: source is RandomWeights) }
        let rope: RotaryEmbedding? = position_embedding_type == "rope" ? try {
            let (theta, scaling) = try base.rope(path: configPath)
            return RotaryEmbedding(invFreq: scaling.inverseFrequencies(theta: theta, headDim: headDim), headDim: headDim, capacity: capacity)
        }() : nil

        var derived: [FloatBuffer] = []
        func norm(_ name: String) throws -> Norm {
            Norm(weight: try source.vector(name, shape: [dim], initial: .constant(1)), name: String(name.split(separator: ".").dropLast().last!))
        }
        /// A SwiGLU from Granite's fused [2F, D] input (gate rows first) and its [D, F] output.
        func swiGLU(input: WeightMatrix, output: WeightMatrix) -> SwiGLU {
            let f = input.rows / 2
            return SwiGLU(gate: Linear(input.rows(0, count: f)), up: Linear(input.rows(f, count: f)), down: Linear(output))
        }
        let embedding = try source.matrix("model.embed_tokens.weight", rows: vocab, columns: dim, initial: .normal(std: 0.02))
        let blocks = try (0..<layerCount).map { l in
            let p = "model.layers.\(l)."
            let mixer: Block.Mixer = isAttention(l)
                ? .attention(AttentionMixer(
                    heads: heads, kvHeads: kvHeads, headDim: headDim, window: nil, rope: rope,
                    weights: try AttentionWeights.load(source, prefix: p + "self_attn.", dim: dim, heads: heads, kvHeads: kvHeads,
                                                       headDim: headDim, bias: base.attention_bias ?? false),
                    layer: l, scale: Float(attention_multiplier)))
                : .mamba2(try mamba.mixer(source, prefix: p + "mamba.", layer: l, configPath: configPath, derived: &derived))
            let sharedMLP = swiGLU(
                input: try source.matrix(p + "shared_mlp.input_linear.weight", rows: 2 * shared, columns: dim, initial: .normal(std: 1 / Float(dim).squareRoot())),
                output: try source.matrix(p + "shared_mlp.output_linear.weight", rows: dim, columns: shared, initial: .normal(std: 1 / Float(shared).squareRoot())))
            let feedForward: Block.FeedForward
            if experts > 0 {
                let m = p + "block_sparse_moe."
                let router = Linear(try source.matrix(m + "router.layer.weight", rows: experts, columns: dim, initial: .normal(std: 1 / Float(dim).squareRoot())))
                let inputs = try source.stacked(m + "input_linear.weight", count: experts, rows: 2 * ffn, columns: dim, initial: .normal(std: 1 / Float(dim).squareRoot()))
                let outputs = try source.stacked(m + "output_linear.weight", count: experts, rows: dim, columns: ffn, initial: .normal(std: 1 / Float(ffn).squareRoot()))
                feedForward = .experts(MixtureOfExperts(router: router, experts: zip(inputs, outputs).map { swiGLU(input: $0, output: $1) },
                                                        topK: num_experts_per_tok, renormalize: true, shared: sharedMLP))
            } else {
                feedForward = .dense(sharedMLP)
            }
            return Block(mixerNorm: try norm(p + "input_layernorm.weight"), mixer: mixer,
                         feedForward: (try norm(p + "post_attention_layernorm.weight"), feedForward),
                         residualScale: Float(residual_multiplier))
        }
        // logits / logits_scaling, folded into the final norm's weight.
        let normWeight = try source.vector("model.norm.weight", shape: [dim], initial: .constant(1))
        let scaledNorm = FloatBuffer(count: dim)
        for i in 0..<dim { scaledNorm[i] = normWeight[i] / Float(logits_scaling) }
        derived.append(scaledNorm)
        let lmHead = Linear(base.tiedEmbeddings ? embedding
                            : try source.matrix("lm_head.weight", rows: vocab, columns: dim, initial: .normal(std: 0.02)))
        let pattern = (0..<layerCount).map { isAttention($0) ? "A" : "M" }.joined()
        let m2 = mamba.mixerShape.ssd
        return Blueprint(
            architecture: "GraniteMoeHybridForCausalLM", modelType: "granitemoehybrid", derived: derived,
            embedding: embedding, blocks: blocks, finalNorm: Norm(weight: UnsafePointer(scaledNorm.pointer), name: "norm"), eps: eps,
            embeddingScale: Float(embedding_multiplier), lmHead: lmHead,
            contextCapacity: capacity, maxContext: attentionLayers == 0 ? Int.max : (base.max_position_embeddings ?? Int.max),
            kvCache: kvCache, prefillChunk: mamba.prefillChunk,
            identity: "GraniteMoeHybridForCausalLM \(layerCount)x\(dim) \(pattern) heads \(heads)/\(kvHeads) d \(headDim) ssm \(m2.heads)x\(m2.headDim) state \(m2.stateSize) groups \(m2.groups) experts \(experts)x\(ffn) shared \(shared) vocab \(vocab)",
            fingerprintText: "granitehybrid \(dim)/\(layerCount)/\(pattern)/\(heads)/\(kvHeads)/\(headDim)/\(m2.heads)/\(m2.headDim)/\(m2.stateSize)/\(m2.groups)/\(experts)/\(ffn)/\(shared)/\(vocab)",
            details: { [embedding_multiplier, residual_multiplier, attention_multiplier, logits_scaling, num_experts_per_tok, position_embedding_type] facts in [
                ("layer pattern", "\(pattern) (A attention, M Mamba-2)"),
                ("attention", "\(attentionLayers) layers, \(heads) query heads, \(kvHeads) key/value heads, head_dim \(headDim), \(position_embedding_type == "rope" ? "RoPE" : "no position encoding"), scores × \(attention_multiplier)"),
                ("mamba-2 mixer", "\(layerCount - attentionLayers) layers, \(m2.heads) heads × \(m2.headDim), state \(m2.stateSize), \(m2.groups) B/C group\(m2.groups == 1 ? "" : "s"), chunks of \(mamba.chunk_size)"),
                ("feed-forward", experts > 0 ? "\(experts) experts of \(ffn), top-\(num_experts_per_tok), + shared SwiGLU \(shared)" : "shared SwiGLU \(shared)"),
                ("multipliers", "embedding × \(embedding_multiplier), residual × \(residual_multiplier), logits ÷ \(logits_scaling)"),
                ("weights in memory", facts.storage),
                ("kv cache", attentionLayers == 0 ? "none" : "\(kvCache.rawValue), \(facts.bytesPerToken) bytes per token (attention layers only)"),
                ("bytes read per decoded token", "\(facts.decodeWeightBytes) of weights (the routed experts only) + \(facts.fixedStateBytes) of state + \(facts.bytesPerToken) per token of context"),
            ] })
    }
}
