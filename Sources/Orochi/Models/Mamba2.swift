import Foundation
import OrochiKernels

// Mamba-2 (Dao & Gu 2024, "Transformers are SSMs: Generalized Models and Efficient Algorithms
// Through Structured State Space Duality"), as transformers' Mamba2ForCausalLM (modeling_mamba2.py,
// its torch path). Read top to bottom:
//
//   x = embed[token]
//   for each layer (a residual block around the mixer, no feed-forward):
//       h = RMSNorm(x)
//       z, xBC, Δ_raw = split(h·W_inᵀ)                                      [L, E], [L, E+2GN], [L, H]
//       x_s, B, C = split(SiLU(conv1d(xBC)))                                [L, E], [L, GN] ×2
//       Δ = clamp(softplus(Δ_raw + b_dt), time_step_limit)                  [L, H]
//       per head: S_t = exp(Δ_t A)·S_{t−1} + Δ_t x_t⊗B_t, y_t = S_t·C_t + D x_t    A scalar, S [P, N]
//       x = x + RMSNorm_G(y ⊙ SiLU(z))·W_outᵀ
//   logits = RMSNorm(x)·W_lmᵀ
//
// The layer is in Layers/Mamba2Mixer.swift, its scan (recurrent step and chunked SSD) in
// OrochiKernels/SSD.swift. Shape letters: D hidden size, E = expand·D = H·P inner channels, H heads
// of P channels, G groups of B/C, N state size, K conv kernel, L tokens, V vocabulary.

/// A real number in config.json that may be ±∞ or NaN: Python's json writes them as bare
/// `Infinity`/`NaN`, transformers 5 as `{"__float__": "Infinity"}` (StrictJSON reads both as the latter).
public struct ConfigFloat: Decodable, Sendable, Equatable {
    public var value: Double
    public init(_ value: Double) { self.value = value }
    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let v = try? c.decode(Double.self) { value = v; return }
        let special = try c.decode([String: String].self)
        switch special["__float__"] {
        case "Infinity": value = .infinity
        case "-Infinity": value = -.infinity
        case "NaN": value = .nan
        default: throw DecodingError.typeMismatch(Double.self, .init(codingPath: decoder.codingPath, debugDescription: "a number"))
        }
    }
}

/// config.json of a Mamba-2 model, with the Hugging Face key names and transformers' defaults.
public struct Mamba2Config: ModelConfiguration {
    public var model_type: String?
    public var hidden_size: Int
    public var num_hidden_layers: Int
    public var vocab_size: Int
    public var num_heads: Int
    public var head_dim: Int
    public var state_size: Int
    public var n_groups: Int
    public var expand: Int
    public var conv_kernel: Int
    public var chunk_size: Int
    public var use_bias: Bool
    public var use_conv_bias: Bool
    public var layer_norm_epsilon: Double
    public var time_step_limit: [ConfigFloat]
    public var tie_word_embeddings: Bool
    public var hidden_act: String?
    /// mamba_ssm's option; transformers' Mamba2 always gates before the norm, so true is refused.
    public var norm_before_gate: Bool?
    /// The config.json names of these keys where another architecture embeds this config
    /// (Granite's `mamba_n_heads` for `num_heads` …), for error messages.
    var keyNames: [String: String] = [:]

    /// In code (benchmark presets, tests): mamba2-130m's shapes by default.
    public init(hidden_size: Int = 768, num_hidden_layers: Int = 24, vocab_size: Int = 50288, num_heads: Int = 24,
                head_dim: Int = 64, state_size: Int = 128, n_groups: Int = 1, expand: Int = 2, conv_kernel: Int = 4,
                chunk_size: Int = 256, use_bias: Bool = false, use_conv_bias: Bool = true, layer_norm_epsilon: Double = 1e-5,
                tie_word_embeddings: Bool = true) {
        model_type = "mamba2"
        self.hidden_size = hidden_size; self.num_hidden_layers = num_hidden_layers; self.vocab_size = vocab_size
        self.num_heads = num_heads; self.head_dim = head_dim; self.state_size = state_size; self.n_groups = n_groups
        self.expand = expand; self.conv_kernel = conv_kernel; self.chunk_size = chunk_size
        self.use_bias = use_bias; self.use_conv_bias = use_conv_bias; self.layer_norm_epsilon = layer_norm_epsilon
        time_step_limit = [ConfigFloat(0), ConfigFloat(.infinity)]
        self.tie_word_embeddings = tie_word_embeddings
        hidden_act = "silu"
    }

    enum CodingKeys: String, CodingKey {
        case model_type, hidden_size, num_hidden_layers, vocab_size, num_heads, head_dim, state_size, n_groups, expand,
             conv_kernel, chunk_size, use_bias, use_conv_bias, layer_norm_epsilon, time_step_limit, tie_word_embeddings,
             hidden_act, norm_before_gate
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init()
        model_type = try c.decodeIfPresent(String.self, forKey: .model_type)
        // transformers' defaults are Mamba-Codestral's shapes.
        hidden_size = try c.decodeIfPresent(Int.self, forKey: .hidden_size) ?? 4096
        num_hidden_layers = try c.decodeIfPresent(Int.self, forKey: .num_hidden_layers) ?? 64
        vocab_size = try c.decodeIfPresent(Int.self, forKey: .vocab_size) ?? 32768
        num_heads = try c.decodeIfPresent(Int.self, forKey: .num_heads) ?? 128
        head_dim = try c.decodeIfPresent(Int.self, forKey: .head_dim) ?? 64
        state_size = try c.decodeIfPresent(Int.self, forKey: .state_size) ?? 128
        n_groups = try c.decodeIfPresent(Int.self, forKey: .n_groups) ?? 8
        expand = try c.decodeIfPresent(Int.self, forKey: .expand) ?? 2
        conv_kernel = try c.decodeIfPresent(Int.self, forKey: .conv_kernel) ?? 4
        chunk_size = try c.decodeIfPresent(Int.self, forKey: .chunk_size) ?? 256
        use_bias = try c.decodeIfPresent(Bool.self, forKey: .use_bias) ?? false
        use_conv_bias = try c.decodeIfPresent(Bool.self, forKey: .use_conv_bias) ?? true
        layer_norm_epsilon = try c.decodeIfPresent(Double.self, forKey: .layer_norm_epsilon) ?? 1e-5
        time_step_limit = try c.decodeIfPresent([ConfigFloat].self, forKey: .time_step_limit) ?? time_step_limit
        tie_word_embeddings = try c.decodeIfPresent(Bool.self, forKey: .tie_word_embeddings) ?? false
        hidden_act = try c.decodeIfPresent(String.self, forKey: .hidden_act)
        norm_before_gate = try c.decodeIfPresent(Bool.self, forKey: .norm_before_gate)
    }

    /// E: inner channels, expand × hidden_size (= num_heads × head_dim).
    public var innerSize: Int { expand * hidden_size }

    /// Chunks longer than this are refused: the chunked scan's scratch holds Q × Q per group.
    static let maxChunk = 4096

    /// Checks sizes and values before any tensor is read, naming the offending key.
    func validate(path: String) throws {
        func bad(_ detail: String) -> LoadError { LoadError.badConfig(path: path, detail: detail) }
        func k(_ key: String) -> String { keyNames[key] ?? key }
        for (v, key) in [(hidden_size, "hidden_size"), (num_hidden_layers, "num_hidden_layers"), (vocab_size, "vocab_size"),
                         (num_heads, "num_heads"), (head_dim, "head_dim"), (state_size, "state_size"), (n_groups, "n_groups"),
                         (expand, "expand"), (conv_kernel, "conv_kernel"), (chunk_size, "chunk_size")] where v <= 0 {
            throw bad("'\(k(key))' must be positive, found \(v)")
        }
        guard chunk_size <= Self.maxChunk else { throw bad("'\(k("chunk_size"))' \(chunk_size) is larger than \(Self.maxChunk)") }
        guard conv_kernel <= 64 else { throw bad("'\(k("conv_kernel"))' \(conv_kernel) is larger than 64") }
        let e = try configSizes(path) { try Sizes.product([expand, hidden_size], "\(k("expand")) × hidden_size") }
        let heads = try configSizes(path) { try Sizes.product([num_heads, head_dim], "\(k("num_heads")) × \(k("head_dim"))") }
        guard e == heads else {
            throw bad("\(k("num_heads")) × \(k("head_dim")) (\(num_heads) × \(head_dim) = \(heads)) must equal \(k("expand")) × hidden_size (\(expand) × \(hidden_size) = \(e))")
        }
        guard num_heads % n_groups == 0 else { throw bad("'\(k("n_groups"))' \(n_groups) must divide '\(k("num_heads"))' \(num_heads)") }
        if let act = hidden_act, act != "silu" { throw bad("hidden_act '\(act)' is not supported (expected 'silu')") }
        if norm_before_gate == true {
            throw bad("'norm_before_gate' true is not supported (transformers' Mamba2 gates before its RMSNorm)")
        }
        try checkReal(layer_norm_epsilon, k("layer_norm_epsilon"), path: path, allowZero: true)
        guard time_step_limit.count == 2 else { throw bad("'time_step_limit' must be [min, max], found \(time_step_limit.count) values") }
        let (lo, hi) = (time_step_limit[0].value, time_step_limit[1].value)
        guard !lo.isNaN, !hi.isNaN, lo >= 0, lo <= hi, lo.isFinite else {
            throw bad("'time_step_limit' must be [min, max] with 0 ≤ min ≤ max, found [\(lo), \(hi)]")
        }
        try configSizes(path) {
            let gn = try Sizes.product([2, n_groups, state_size], "2 × n_groups × state_size")
            let rows = try Sizes.sum([e, e, gn, num_heads], "in_proj rows (2 × expand × hidden_size + 2 × n_groups × state_size + num_heads)")
            _ = try Sizes.product([rows, hidden_size], "in_proj: rows × hidden_size")
            _ = try Sizes.product([vocab_size, hidden_size], "vocab_size × hidden_size")
            _ = try Sizes.product([e, state_size, num_hidden_layers, 4], "the SSM states: expand × hidden_size × state_size × layers")
            _ = try Sizes.product([n_groups, chunk_size, chunk_size, 4], "the chunked scan's scratch: n_groups × chunk_size²")
        }
    }
}

extension Mamba2Config: Architecture {
    /// Each layer: RMSNorm → the Mamba-2 mixer, added to the residual stream; no feed-forward.
    /// The mixer's shapes, after `validate`.
    var mixerShape: Mamba2MixerWeights.Shape {
        Mamba2MixerWeights.Shape(dim: hidden_size, ssd: SSD.Shape(heads: num_heads, headDim: head_dim, stateSize: state_size, groups: n_groups),
                                 kernel: conv_kernel, convBias: use_conv_bias, projectionBias: use_bias)
    }
    /// Δ's clamp from `time_step_limit`, after `validate`.
    var deltaLimit: ClosedRange<Float> {
        Float(time_step_limit[0].value)...Float(min(time_step_limit[1].value, Double(Float.greatestFiniteMagnitude)))
    }
    /// A prefill pass is a whole number of SSD chunks, about 512 tokens.
    var prefillChunk: Int { max(1, 512 / chunk_size) * chunk_size }

    /// Layer `l`'s mixer, its tensors under `prefix` (e.g. "backbone.layers.3.mixer.").
    func mixer(_ source: WeightSource, prefix: String, layer l: Int, configPath: String, derived: inout [FloatBuffer]) throws -> Mamba2Mixer {
        Mamba2Mixer(shape: mixerShape,
                    weights: try Mamba2MixerWeights.load(source, prefix: prefix, shape: mixerShape, layers: num_hidden_layers,
                                                         configPath: configPath, derived: &derived),
                    deltaLimit: deltaLimit, chunk: chunk_size, eps: Float(layer_norm_epsilon), layer: l)
    }

    func blueprint(source: WeightSource, configPath: String, context: Int?, kvCache: WeightType) throws -> Blueprint {
        try validate(path: configPath)
        let dim = hidden_size, layerCount = num_hidden_layers, vocab = vocab_size, k = conv_kernel
        let shape = mixerShape, ssd = shape.ssd, limit = deltaLimit

        var derived: [FloatBuffer] = []
        let embedding = try source.matrix("backbone.embeddings.weight", rows: vocab, columns: dim, initial: .normal(std: 0.02))
        let blocks = try (0..<layerCount).map { l in
            let p = "backbone.layers.\(l)."
            return Block(
                mixerNorm: Norm(weight: try source.vector(p + "norm.weight", shape: [dim], initial: .constant(1)), name: "norm"),
                mixer: .mamba2(try mixer(source, prefix: p + "mixer.", layer: l, configPath: configPath, derived: &derived)),
                feedForward: nil)
        }
        let finalNorm = Norm(weight: try source.vector("backbone.norm_f.weight", shape: [dim], initial: .constant(1)), name: "norm_f")
        let lmHead = Linear(!tie_word_embeddings && source.has("lm_head.weight", configured: false)
                            ? try source.matrix("lm_head.weight", rows: vocab, columns: dim, initial: .normal(std: 0.02)) : embedding)
        let tied = lmHead.weight.raw == embedding.raw
        let c = shape.convChannels, e = ssd.inner, n = state_size
        let limitText = limit.upperBound.isFinite || limit.lowerBound > 0 ? "Δ clamped to [\(limit.lowerBound), \(limit.upperBound)]" : "Δ unclamped"
        return Blueprint(
            architecture: "Mamba2ForCausalLM", modelType: model_type ?? "mamba2", derived: derived,
            embedding: embedding, blocks: blocks, finalNorm: finalNorm, eps: Float(layer_norm_epsilon), lmHead: lmHead,
            contextCapacity: Int.max, maxContext: Int.max, kvCache: kvCache, prefillChunk: prefillChunk,
            identity: "Mamba2ForCausalLM \(layerCount)x\(dim) heads \(num_heads)x\(head_dim) state \(n) groups \(n_groups) conv \(k) vocab \(vocab)",
            fingerprintText: "mamba2 \(dim)/\(num_heads)/\(head_dim)/\(n)/\(n_groups)/\(k)/\(layerCount)/\(vocab)",
            details: { [use_conv_bias, use_bias, chunk_size, num_heads, head_dim, n_groups] facts in [
                ("mixer", "inner \(e) = \(num_heads) heads × \(head_dim), state \(n), \(n_groups) B/C group\(n_groups == 1 ? "" : "s"), conv kernel \(k), \(limitText)"),
                ("projections in / out", "[\(shape.inProjRows), \(dim)] / [\(dim), \(e)]"),
                ("prefill", "chunked SSD, chunks of \(chunk_size) tokens"),
                ("biases", "conv \(use_conv_bias ? "yes" : "no"), in/out projections \(use_bias ? "yes" : "no")"),
                ("lm_head", tied ? "tied to embeddings [\(vocab), \(dim)]" : "[\(vocab), \(dim)]"),
                ("weights in memory", facts.storage),
                ("ssm state", "per layer conv [\(k - 1), \(c)] + ssm [\(num_heads), \(head_dim), \(n)] f32, \(facts.fixedStateBytes) bytes in all"),
                ("bytes read per decoded token", "\(facts.decodeWeightBytes + layerCount * (k * c + 2 * e * n + 4 * e) * 4) (weights, one embedding row, filters, state), at any depth"),
            ] })
    }
}
