import Foundation

// Qwen3 (Qwen3ForCausalLM), as in transformers' modeling_qwen3.py: Llama's decoder with one
// change in attention, an RMSNorm over each head of the queries and keys before RoPE. It keeps
// attention logits in range without Qwen2's q/k/v biases (which Qwen3 drops), and its `head_dim`
// is set on its own (128 in the published models, not hidden_size / heads):
//
//   q, k, v = h·Wqᵀ, h·Wkᵀ, h·Wvᵀ
//   q_h = RMSNorm(q_h) · w_q,  k_g = RMSNorm(k_g) · w_k        per head, over its d values
//   rotate q, k by position (RoPE); attention and the SwiGLU MLP as Llama's
//
// Sliding-window layers (`use_sliding_window` with `max_window_layers`) are not supported: the
// published models leave them off, and a config that turns them on is refused by name.

/// config.json of a Qwen3 model: Llama's keys (LlamaConfig) and Qwen3's own.
public struct Qwen3Config: ModelConfiguration {
    public var base: LlamaConfig
    public var use_sliding_window: Bool?

    enum CodingKeys: String, CodingKey { case use_sliding_window }

    public init(base: LlamaConfig) { self.base = base; use_sliding_window = nil }

    public init(from decoder: Decoder) throws {
        base = try LlamaConfig(from: decoder)
        use_sliding_window = try decoder.container(keyedBy: CodingKeys.self).decodeIfPresent(Bool.self, forKey: .use_sliding_window)
        if use_sliding_window != true { base.sliding_window = nil }
    }
}

extension Qwen3Config: Architecture {
    func blueprint(source: WeightSource, configPath: String, context: Int?, kvCache: WeightType) throws -> Blueprint {
        if use_sliding_window == true {
            throw LoadError.badConfig(path: configPath, detail: "'use_sliding_window' true is not supported for qwen3 (its sliding layers)")
        }
        return try base.decoderBlueprint(source: source, configPath: configPath, context: context, kvCache: kvCache,
                                         architecture: "Qwen3ForCausalLM", headNorms: true)
    }
}
