import Foundation
import Orochi

/// Something the benchmark measures: a name and a way to build a fresh instance whose cache holds
/// at least `capacity` tokens. The sweep builds one per (model, context) point and frees it after,
/// so that each point's peak memory is its own.
public struct BenchSubject {
    public var name: String
    public var make: (_ capacity: Int) throws -> any LanguageModel

    public init(name: String, make: @escaping (_ capacity: Int) throws -> any LanguageModel) {
        self.name = name
        self.make = make
    }

    /// A model directory (safetensors + config.json), loaded through the registry.
    public static func directory(_ path: String, options: LoadOptions = LoadOptions()) -> BenchSubject {
        let url = URL(fileURLWithPath: path)
        return BenchSubject(name: url.standardizedFileURL.lastPathComponent) { capacity in
            var options = options
            options.context = capacity
            return try ModelRegistry.load(directory: url, options: options)
        }
    }
}

/// Random-weight models built in memory from published shapes: realistic scale without a
/// download. The weights are seeded, so every run measures the same numbers of the same size.
public struct BenchPreset: Sendable {
    public var name: String
    public var summary: String
    /// Builds the model: random matrices f32, or f16 with `halfWeights`; `kvCache` is the attention cache's type.
    public var build: @Sendable (_ capacity: Int, _ seed: UInt64, _ halfWeights: Bool, _ kvCache: WeightType) throws -> any LanguageModel

    /// A subject for the sweep; with `halfWeights` the random matrices are narrowed to f16 (named "NAME-f16").
    public func subject(seed: UInt64 = 1, halfWeights: Bool = false, kvCache: WeightType = .f32) -> BenchSubject {
        BenchSubject(name: halfWeights ? name + "-f16" : name) { capacity in try build(capacity, seed, halfWeights, kvCache) }
    }
}

public enum BenchPresets {
    /// The preset table: one line per preset.
    public static let all: [BenchPreset] = [
        BenchPreset(name: "llama-130m", summary: "Llama, hidden 768, 12 layers, 12 heads (12 KV), MLP 2048, vocab 32000, tied",
                    build: { try llama(llama130m, capacity: $0, seed: $1, half: $2, kvCache: $3) }),
        BenchPreset(name: "llama-6m", summary: "Llama, hidden 256, 6 layers, 8 heads (4 KV), MLP 688, vocab 8000, tied (the 6.4M shape of the peer comparison; the shipped Llama has 4 layers, MLP 640)",
                    build: { try llama(llama6m, capacity: $0, seed: $1, half: $2, kvCache: $3) }),
        BenchPreset(name: "mamba-130m", summary: "Mamba, hidden 768, 24 layers, state 16, expand 2, conv 4, vocab 32000, tied",
                    build: { _, seed, half, _ in try BlockModel(config: MambaConfig(hidden_size: 768, num_hidden_layers: 24, vocab_size: 32000, state_size: 16, expand: 2, conv_kernel: 4), checkpoint: nil, configPath: "preset mamba-130m", randomSeed: seed, randomWeights: half ? .f16 : .f32) }),
        BenchPreset(name: "mamba-6m", summary: "Mamba, hidden 256, 10 layers, state 16, expand 2, conv 4, vocab 8000, tied (the 6.4M shape of the peer comparison; the shipped Mamba has 6 layers)",
                    build: { _, seed, half, _ in try BlockModel(config: MambaConfig(hidden_size: 256, num_hidden_layers: 10, vocab_size: 8000, state_size: 16, expand: 2, conv_kernel: 4), checkpoint: nil, configPath: "preset mamba-6m", randomSeed: seed, randomWeights: half ? .f16 : .f32) }),
        BenchPreset(name: "mamba2-130m", summary: "Mamba-2, hidden 768, 24 layers, 24 heads of 64, state 128, 1 group, conv 4, chunk 256, vocab 32000, tied (mamba2-130m's shape)",
                    build: { _, seed, half, _ in try BlockModel(config: Mamba2Config(hidden_size: 768, num_hidden_layers: 24, vocab_size: 32000, num_heads: 24, head_dim: 64, state_size: 128, n_groups: 1, chunk_size: 256), checkpoint: nil, configPath: "preset mamba2-130m", randomSeed: seed, randomWeights: half ? .f16 : .f32) }),
        BenchPreset(name: "mamba2-6m", summary: "Mamba-2, hidden 256, 10 layers, 16 heads of 32, state 64, 1 group, conv 4, chunk 256, vocab 8000, tied",
                    build: { _, seed, half, _ in try BlockModel(config: Mamba2Config(hidden_size: 256, num_hidden_layers: 10, vocab_size: 8000, num_heads: 16, head_dim: 32, state_size: 64, n_groups: 1, chunk_size: 256), checkpoint: nil, configPath: "preset mamba2-6m", randomSeed: seed, randomWeights: half ? .f16 : .f32) }),
        BenchPreset(name: "granite-h-130m", summary: "Granite-4.0-H-style hybrid, hidden 768, 12 layers (attention at 5 and 11, no positions; Mamba-2 elsewhere: 24 heads of 64, state 128), 12 heads (4 KV), 8 experts of 512 top-2 + shared SwiGLU 1024 in every layer, Granite's multipliers, vocab 32000, tied",
                    build: { try model(GraniteHybridConfig.self, granite130m, capacity: $0, seed: $1, half: $2, kvCache: $3) }),
        BenchPreset(name: "qwen3-6m", summary: "Qwen3, hidden 256, 6 layers, 8 heads (4 KV) of head_dim 64 with q/k norms, MLP 688, vocab 8000, tied",
                    build: { try model(Qwen3Config.self, qwen3_6m, capacity: $0, seed: $1, half: $2, kvCache: $3) }),
        BenchPreset(name: "gpt2-124m", summary: "GPT-2, hidden 768, 12 layers, 12 heads, MLP 3072 (GELU), 1,024 learned positions, vocab 50257, tied (its Conv1D weights are f32 whatever the preset's precision)",
                    build: { try model(GPT2Config.self, gpt2_124m, capacity: $0, seed: $1, half: $2, kvCache: $3) }),
        BenchPreset(name: "jamba-130m", summary: "Jamba, hidden 768, 8 layers (Jamba's block: attention at layer 4, Mamba elsewhere), 12 heads (4 KV), 4 experts top-2 on every 2nd layer, MLP 1536, state 16, vocab 32000, tied",
                    build: { try jamba(jamba130m, capacity: $0, seed: $1, half: $2, kvCache: $3) }),
    ]

    public static var names: [String] { all.map(\.name) }

    public static func named(_ name: String) -> BenchPreset? { all.first { $0.name == name } }

    // Configurations are written as config.json would be, so that they read like the published ones.
    static let llama130m = """
        {"model_type": "llama", "hidden_size": 768, "intermediate_size": 2048, "num_hidden_layers": 12,
         "num_attention_heads": 12, "num_key_value_heads": 12, "vocab_size": 32000, "rms_norm_eps": 1e-5,
         "max_position_embeddings": 65536, "rope_theta": 10000.0, "tie_word_embeddings": true, "hidden_act": "silu"}
        """
    static let llama6m = """
        {"model_type": "llama", "hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 6,
         "num_attention_heads": 8, "num_key_value_heads": 4, "vocab_size": 8000, "rms_norm_eps": 1e-5,
         "max_position_embeddings": 65536, "rope_theta": 10000.0, "tie_word_embeddings": true, "hidden_act": "silu"}
        """

    static let granite130m = """
        {"model_type": "granitemoehybrid", "hidden_size": 768, "num_hidden_layers": 12, "vocab_size": 32000,
         "layer_types": ["mamba", "mamba", "mamba", "mamba", "mamba", "attention", "mamba", "mamba", "mamba", "mamba", "mamba", "attention"],
         "num_attention_heads": 12, "num_key_value_heads": 4, "position_embedding_type": "nope", "max_position_embeddings": 65536,
         "intermediate_size": 512, "num_local_experts": 8, "num_experts_per_tok": 2, "shared_intermediate_size": 1024,
         "mamba_n_heads": 24, "mamba_d_head": 64, "mamba_d_state": 128, "mamba_n_groups": 1, "mamba_d_conv": 4, "mamba_expand": 2,
         "mamba_chunk_size": 256, "rms_norm_eps": 1e-5, "embedding_multiplier": 12.0, "residual_multiplier": 0.22,
         "attention_multiplier": 0.015625, "logits_scaling": 6.0, "tie_word_embeddings": true, "hidden_act": "silu"}
        """

    static let qwen3_6m = """
        {"model_type": "qwen3", "hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 6,
         "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 64, "vocab_size": 8000, "rms_norm_eps": 1e-6,
         "max_position_embeddings": 65536, "rope_theta": 1000000.0, "tie_word_embeddings": true, "hidden_act": "silu",
         "use_sliding_window": false}
        """

    static let gpt2_124m = """
        {"model_type": "gpt2", "vocab_size": 50257, "n_positions": 1024, "n_embd": 768, "n_layer": 12, "n_head": 12,
         "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5, "tie_word_embeddings": true}
        """

    /// Jamba's published layout (one attention layer in 8, at offset 4; experts on every other
    /// layer; GQA), one block of 8 layers at hidden 768: 123M parameters, 4 of the 16 experts
    /// Jamba has (top-2, as published), so that it sits beside the 130M pair.
    static let jamba130m = """
        {"model_type": "jamba", "hidden_size": 768, "intermediate_size": 1536, "num_hidden_layers": 8,
         "num_attention_heads": 12, "num_key_value_heads": 4, "vocab_size": 32000, "rms_norm_eps": 1e-6,
         "max_position_embeddings": 262144, "tie_word_embeddings": true, "hidden_act": "silu",
         "attn_layer_period": 8, "attn_layer_offset": 4, "expert_layer_period": 2, "expert_layer_offset": 1,
         "num_experts": 4, "num_experts_per_tok": 2, "mamba_d_state": 16, "mamba_d_conv": 4, "mamba_expand": 2,
         "mamba_dt_rank": "auto", "mamba_conv_bias": true, "mamba_proj_bias": false}
        """

    static func jamba(_ json: String, capacity: Int, seed: UInt64, half: Bool, kvCache: WeightType) throws -> any LanguageModel {
        let config = try JSONDecoder().decode(JambaConfig.self, from: Data(json.utf8))
        return try BlockModel(config: config, checkpoint: nil, configPath: "preset", context: capacity, randomSeed: seed,
                              randomWeights: half ? .f16 : .f32, kvCache: kvCache)
    }

    static func model<C: ModelConfiguration>(_ type: C.Type, _ json: String, capacity: Int, seed: UInt64, half: Bool,
                                             kvCache: WeightType) throws -> any LanguageModel {
        try BlockModel(config: try JSONDecoder().decode(C.self, from: Data(json.utf8)), checkpoint: nil, configPath: "preset",
                       context: capacity, randomSeed: seed, randomWeights: half ? .f16 : .f32, kvCache: kvCache)
    }

    static func llama(_ json: String, capacity: Int, seed: UInt64, half: Bool, kvCache: WeightType) throws -> any LanguageModel {
        let config = try JSONDecoder().decode(LlamaConfig.self, from: Data(json.utf8))
        return try BlockModel(config: config, checkpoint: nil, configPath: "preset", context: capacity, randomSeed: seed,
                              randomWeights: half ? .f16 : .f32, kvCache: kvCache)
    }
}
