import Foundation

// GPT-2 (Radford et al. 2019), as in transformers' GPT2LMHeadModel (modeling_gpt2.py):
//
//   x = wte[token] + wpe[position]                 learned absolute positions, no RoPE
//   for each block:
//       x = x + c_proj(Attention(LayerNorm₁(x)))    q, k, v from one fused c_attn, all with biases
//       x = x + c_proj(GELU(c_fc(LayerNorm₂(x))))   a plain MLP of 4·D, GELU's tanh form
//   logits = LayerNorm_f(x)·wteᵀ                    the head is the token embedding
//
// What differs from Llama is data for the shared blocks: LayerNorm with a bias instead of
// RMSNorm, a GELU MLP instead of SwiGLU, positions added to the input instead of rotating q and k.
// Its linear layers are Conv1D, which stores each weight as [in, out]: they are transposed once
// at load into float32 [out, in], the layout every kernel reads.
//
// Shape letters: D = n_embd, H = n_head, d = D/H, F = n_inner (default 4·D), P = n_positions.

/// config.json of a GPT-2 model, with its own key names and transformers' defaults.
public struct GPT2Config: ModelConfiguration {
    public var model_type: String?
    public var vocab_size: Int
    public var n_positions: Int
    public var n_embd: Int
    public var n_layer: Int
    public var n_head: Int
    public var n_inner: Int?
    public var activation_function: String?
    public var layer_norm_epsilon: Double?
    public var scale_attn_weights: Bool?
    public var scale_attn_by_inverse_layer_idx: Bool?
    public var tie_word_embeddings: Bool?

    public var inner: Int { n_inner ?? 4 &* n_embd }

    func validate(path: String) throws {
        for (value, key) in [(vocab_size, "vocab_size"), (n_positions, "n_positions"), (n_embd, "n_embd"),
                             (n_layer, "n_layer"), (n_head, "n_head"), (inner, "n_inner")] where value <= 0 {
            throw LoadError.badConfig(path: path, detail: "'\(key)' must be positive, found \(value)")
        }
        guard n_embd % n_head == 0 else {
            throw LoadError.badConfig(path: path, detail: "n_embd (\(n_embd)) must be a multiple of n_head (\(n_head))")
        }
        let act = activation_function ?? "gelu_new"
        guard ["gelu_new", "gelu_pytorch_tanh", "gelu"].contains(act) else {
            throw LoadError.badConfig(path: path, detail: "activation_function '\(act)' is not supported (expected gelu_new, gelu_pytorch_tanh or gelu)")
        }
        guard scale_attn_weights != false, scale_attn_by_inverse_layer_idx != true else {
            throw LoadError.badConfig(path: path, detail: "attention scaled other than by 1/√d (scale_attn_weights false or scale_attn_by_inverse_layer_idx true) is not supported")
        }
        try checkReal(layer_norm_epsilon, "layer_norm_epsilon", path: path, allowZero: true)
        try configSizes(path) {
            _ = try Sizes.product([vocab_size, n_embd], "vocab_size × n_embd")
            _ = try Sizes.product([n_positions, n_embd], "n_positions × n_embd")
            _ = try Sizes.product([3, n_embd, n_embd], "c_attn: 3 × n_embd × n_embd")
            _ = try Sizes.product([inner, n_embd], "c_fc: n_inner × n_embd")
        }
    }
}

extension GPT2Config: Architecture {
    func blueprint(source: WeightSource, configPath: String, context: Int?, kvCache: WeightType) throws -> Blueprint {
        try validate(path: configPath)
        let dim = n_embd, heads = n_head, headDim = n_embd / n_head, ffn = inner, vocab = vocab_size
        let capacity = try cacheCapacity(requested: context, maxContext: n_positions, path: configPath)
        try configSizes(configPath) {
            let cache = try Sizes.product([2, n_layer, dim, capacity, kvCache.byteSize], "the KV cache")
            try Sizes.checkFits(cache, "the KV cache for a context of \(capacity) tokens (--context, or n_positions up to 4,096)")
        }
        var derived: [FloatBuffer] = []
        /// Conv1D's weight [in, out] as float32 [out, in].
        func transposed(_ name: String, inputs: Int, outputs: Int) throws -> UnsafePointer<Float> {
            let w = try source.vector(name, shape: [inputs, outputs], initial: .normal(std: 0.02))
            let t = FloatBuffer(count: inputs * outputs)
            for i in 0..<inputs { for o in 0..<outputs { t[o * inputs + i] = w[i * outputs + o] } }
            derived.append(t)
            return UnsafePointer(t.pointer)
        }
        func linear(_ p: String, inputs: Int, outputs: Int) throws -> Linear {
            Linear(WeightMatrix(try transposed(p + ".weight", inputs: inputs, outputs: outputs), rows: outputs, columns: inputs),
                   bias: try source.vector(p + ".bias", shape: [outputs], initial: .constant(0)))
        }
        func layerNorm(_ p: String) throws -> Norm {
            Norm(weight: try source.vector(p + ".weight", shape: [dim], initial: .constant(1)),
                 bias: try source.vector(p + ".bias", shape: [dim], initial: .constant(0)), name: String(p.split(separator: ".").last!))
        }

        let embedding = try source.matrix("transformer.wte.weight", rows: vocab, columns: dim, initial: .normal(std: 0.02))
        let positions = try source.vector("transformer.wpe.weight", shape: [n_positions, dim], initial: .normal(std: 0.01))
        let blocks = try (0..<n_layer).map { l in
            let p = "transformer.h.\(l)."
            let ln1 = try layerNorm(p + "ln_1")
            // c_attn is q, k and v side by side: rows [0, D), [D, 2D), [2D, 3D) once transposed.
            let qkv = try transposed(p + "attn.c_attn.weight", inputs: dim, outputs: 3 * dim)
            let qkvBias = try source.vector(p + "attn.c_attn.bias", shape: [3 * dim], initial: .constant(0))
            func part(_ i: Int) -> Linear { Linear(WeightMatrix(qkv + i * dim * dim, rows: dim, columns: dim), bias: qkvBias + i * dim) }
            let attention = AttentionWeights(q: part(0), k: part(1), v: part(2),
                                             o: try linear(p + "attn.c_proj", inputs: dim, outputs: dim))
            let ln2 = try layerNorm(p + "ln_2")
            let mlp = GELUMLP(up: try linear(p + "mlp.c_fc", inputs: dim, outputs: ffn),
                              down: try linear(p + "mlp.c_proj", inputs: ffn, outputs: dim),
                              tanhForm: (activation_function ?? "gelu_new") != "gelu")
            return Block(mixerNorm: ln1,
                         mixer: .attention(AttentionMixer(heads: heads, kvHeads: heads, headDim: headDim, window: nil, rope: nil,
                                                          weights: attention, layer: l)),
                         feedForward: (ln2, .gelu(mlp)))
        }
        let finalNorm = try layerNorm("transformer.ln_f")
        let lmHead = Linear(tie_word_embeddings ?? true ? embedding
                            : try source.matrix("lm_head.weight", rows: vocab, columns: dim, initial: .normal(std: 0.02)))
        return Blueprint(
            architecture: "GPT2LMHeadModel", modelType: model_type ?? "gpt2", derived: derived,
            embedding: embedding, blocks: blocks, finalNorm: finalNorm, eps: Float(layer_norm_epsilon ?? 1e-5), positions: positions,
            lmHead: lmHead, contextCapacity: capacity, maxContext: n_positions, kvCache: kvCache, prefillChunk: llamaPrefillChunk,
            identity: "GPT2LMHeadModel \(n_layer)x\(dim) heads \(heads) inner \(ffn) positions \(n_positions) vocab \(vocab)",
            fingerprintText: "gpt2 \(dim)/\(ffn)/\(n_layer)/\(heads)/\(n_positions)/\(vocab)",
            details: { [activation_function, tie_word_embeddings] facts in [
                ("attention", "\(heads) heads (MHA), head_dim \(headDim), fused c_attn [\(3 * dim), \(dim)] with biases, learned positions [\(n_positions), \(dim)]"),
                ("mlp c_fc / c_proj", "[\(ffn), \(dim)] / [\(dim), \(ffn)], \(activation_function ?? "gelu_new")"),
                ("norms", "LayerNorm with bias, ε \(layer_norm_epsilon ?? 1e-5)"),
                ("lm_head", tie_word_embeddings ?? true ? "tied to wte [\(vocab), \(dim)]" : "[\(vocab), \(dim)]"),
                ("weights in memory", facts.storage + " (Conv1D weights transposed to f32 at load)"),
                ("kv cache", "\(kvCache.rawValue), \(facts.bytesPerToken) bytes per token"),
                ("bytes read per decoded token", "\(facts.decodeWeightBytes) of weights + \(facts.bytesPerToken) per token of context"),
            ] })
    }
}
