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
public struct MambaConfig: ModelConfiguration {
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

/// Prefill runs in chunks of at most this many tokens, bounding scratch memory (about 16 MiB at
/// mamba-130m's size). 512 rather than 256: the multi-token kernel packs each panel of weights
/// once per chunk (mamba-130m's 512-token prefill ran 7 % faster).
let mambaPrefillChunk = 512

extension MambaConfig: Architecture {
    /// Each layer: RMSNorm → the Mamba mixer, added to the residual stream; no feed-forward.
    func blueprint(source: WeightSource, configPath: String, context: Int?, kvCache: WeightType) throws -> Blueprint {
        try validate(path: configPath)
        let dim = hidden_size, e = innerSize, n = state_size, r = dtRank
        let k = conv_kernel, layerCount = num_hidden_layers, vocab = vocab_size

        // The weight table: every tensor's name, shape and preset initialisation, once (the
        // mixer's own in MambaMixerWeights.load).
        var derived: [FloatBuffer] = []
        let shape = MambaMixerWeights.Shape(dim: dim, inner: e, stateSize: n, rank: r, kernel: k,
                                            convBias: use_conv_bias, projectionBias: use_bias, innerNormEps: nil,
                                            keys: (state: "state_size", kernel: "conv_kernel", rank: "time_step_rank"))
        let embedding = try source.matrix("backbone.embeddings.weight", rows: vocab, columns: dim, initial: .normal(std: 0.02))
        let blocks = try (0..<layerCount).map { l in
            let p = "backbone.layers.\(l)."
            return Block(
                mixerNorm: Norm(weight: try source.vector(p + "norm.weight", shape: [dim], initial: .constant(1)), name: "norm"),
                mixer: .mamba(MambaMixer(inner: e, stateSize: n, rank: r, kernel: k,
                                         weights: try MambaMixerWeights.load(source, prefix: p + "mixer.", shape: shape, layers: layerCount,
                                                                             configPath: configPath, derived: &derived),
                                         layer: l)),
                feedForward: nil)
        }
        let finalNorm = Norm(weight: try source.vector("backbone.norm_f.weight", shape: [dim], initial: .constant(1)), name: "norm_f")
        // lm_head falls back to the embedding when the checkpoint has none (tied weights).
        let lmHead = Linear(!tie_word_embeddings && source.has("lm_head.weight", configured: false)
                            ? try source.matrix("lm_head.weight", rows: vocab, columns: dim, initial: .normal(std: 0.02)) : embedding)
        let tied = lmHead.weight.raw == embedding.raw
        return Blueprint(
            architecture: "MambaForCausalLM", modelType: model_type ?? "mamba", derived: derived,
            embedding: embedding, blocks: blocks, finalNorm: finalNorm, eps: Float(layer_norm_epsilon), lmHead: lmHead,
            contextCapacity: Int.max, maxContext: Int.max, kvCache: kvCache, prefillChunk: mambaPrefillChunk,
            identity: "MambaForCausalLM \(layerCount)x\(dim) inner \(e) state \(n) conv \(k) rank \(r) vocab \(vocab)",
            snapshotLayout: .convsThenStates,
            fingerprintText: "mamba \(dim)/\(e)/\(n)/\(r)/\(k)/\(layerCount)/\(vocab)",
            details: { [expand, use_conv_bias, use_bias] facts in [
                ("mixer", "inner \(e) (expand \(expand)), state \(n), conv kernel \(k), Δ rank \(r)"),
                ("projections in / x / dt / out", "[\(2 * e), \(dim)] / [\(r + 2 * n), \(e)] / [\(e), \(r)] / [\(dim), \(e)]"),
                ("biases", "conv \(use_conv_bias ? "yes" : "no"), in/out projections \(use_bias ? "yes" : "no")"),
                ("lm_head", tied ? "tied to embeddings [\(vocab), \(dim)]" : "[\(vocab), \(dim)]"),
                ("weights in memory", facts.storage),
                ("ssm state", "per layer conv [\(k - 1), \(e)] + ssm [\(e), \(n)] f32, \(facts.fixedStateBytes) bytes in all"),
                ("bytes read per decoded token", "\(facts.decodeWeightBytes + layerCount * (k * e + 3 * e + 2 * e * n) * 4) (weights, one embedding row, filters, state), at any depth"),
            ] })
    }
}
