import Foundation

// GGUF files as models. An architecture's hyperparameters come from the file's metadata into the
// config its Hugging Face directory would decode, and its Hugging Face tensor names map onto
// llama.cpp's (src/llama-arch.cpp), so that the same blueprint builds the same blocks from
// either format:
//
//   model.embed_tokens.weight        token_embd.weight
//   model.layers.N.input_layernorm   blk.N.attn_norm          self_attn.{q,k,v,o}_proj   blk.N.attn_{q,k,v,output}
//   model.layers.N.post_attention_layernorm   blk.N.ffn_norm  mlp.{gate,up,down}_proj    blk.N.ffn_{gate,up,down}
//   model.norm.weight                output_norm.weight       lm_head.weight             output.weight (absent: tied)

enum GGUFModels {
    /// general.architecture values Orochi builds, and the config each becomes.
    static let architectures = ["llama", "qwen2", "qwen3", "mamba", "mamba2", "jamba", "granitehybrid"]

    static func load(path: String, options: LoadOptions) throws -> BlockModel {
        let file = try GGUFFile.open(path)
        guard let arch = try file.string("general.architecture") else {
            throw LoadError.badGGUF(path: path, detail: "missing metadata 'general.architecture'")
        }
        guard architectures.contains(arch) else {
            throw LoadError.badGGUF(path: path, detail: "architecture '\(arch)' is not supported (supported: \(architectures.joined(separator: ", ")))")
        }
        if let context = options.context, context <= 0 {
            throw LoadError.badConfig(path: path, detail: "context must be positive, got \(context)")
        }
        if arch == "mamba" { return try mamba(file, options: options) }
        if arch == "mamba2" { return try mamba2(file, options: options) }
        if arch == "granitehybrid" { return try graniteHybrid(file, options: options) }
        if arch == "jamba" { return try jamba(file, options: options) }
        let config = try llamaConfig(file, arch: arch)
        // llama.cpp's converter interleaves the halves of each query and key head for `llama` only.
        var interleaved: [String: Int] = [:]
        if arch == "llama" {
            for l in 0..<config.num_hidden_layers {
                interleaved["blk.\(l).attn_q.weight"] = config.num_attention_heads
                interleaved["blk.\(l).attn_k.weight"] = config.kvHeads
            }
        }
        let source = SourceWeights(GGUFTensors(file: file, interleavedHeads: interleaved), storage: options.weights,
                                   fileName: ggufName)
        let architecture: any Architecture = arch == "qwen3" ? Qwen3Config(base: config) : config
        return try BlockModel(config: architecture, source: source, configPath: path, context: options.context,
                              kvCache: options.kvCache)
    }

    /// The vocabulary size: the rows of `token_embd.weight` [V, D], which `tokenizer.ggml.tokens`
    /// (when the file has a tokenizer) must match.
    static func vocabularyRows(_ file: GGUFFile) throws -> Int {
        guard let embedding = file.tensorByName["token_embd.weight"], embedding.dimensions.count == 2 else {
            throw LoadError.badGGUF(path: file.path, detail: "missing the 2-dimensional tensor 'token_embd.weight'")
        }
        let rows = embedding.dimensions[1]
        if let tokens = file.value("tokenizer.ggml.tokens")?.array, tokens.count != rows {
            throw LoadError.badGGUF(path: file.path, detail: "'tokenizer.ggml.tokens' has \(tokens.count) tokens, but 'token_embd.weight' has \(rows) rows")
        }
        return rows
    }

    /// `<arch>.block_count`, checked before anything is sized from it: every layer has tensors, so
    /// a file cannot have more layers than tensors.
    static func layerCount(_ file: GGUFFile, arch: String) throws -> Int {
        let layers = try file.requiredInteger("\(arch).block_count")
        guard layers > 0, layers <= file.tensors.count else {
            throw LoadError.badGGUF(path: file.path, detail: "'\(arch).block_count' \(layers) is not in 1…\(file.tensors.count) (the file's tensor count)")
        }
        return layers
    }

    /// A Llama-family config (llama, qwen2, qwen3) from `<arch>.*` metadata and the tensor table.
    static func llamaConfig(_ file: GGUFFile, arch: String) throws -> LlamaConfig {
        func required(_ key: String) throws -> Int { try file.requiredInteger("\(arch).\(key)") }
        let vocab = try vocabularyRows(file)
        if file.value("\(arch).attention.head_count_kv")?.array != nil {
            throw LoadError.badGGUF(path: file.path, detail: "'\(arch).attention.head_count_kv' per layer is not supported (expected one integer)")
        }
        var config = LlamaConfig(
            hidden_size: try required("embedding_length"), intermediate_size: try required("feed_forward_length"),
            num_hidden_layers: try layerCount(file, arch: arch), num_attention_heads: try required("attention.head_count"),
            num_key_value_heads: try file.integer("\(arch).attention.head_count_kv"),
            head_dim: try file.integer("\(arch).attention.key_length"), vocab_size: vocab,
            rms_norm_eps: try file.real("\(arch).attention.layer_norm_rms_epsilon") ?? 1e-5,
            max_position_embeddings: try file.integer("\(arch).context_length"),
            rope_theta: try file.real("\(arch).rope.freq_base") ?? 10000,
            tie_word_embeddings: file.tensorByName["output.weight"] == nil, model_type: arch)
        if let valueLength = try file.integer("\(arch).attention.value_length"), valueLength != config.headDim {
            throw LoadError.badGGUF(path: file.path, detail: "'\(arch).attention.value_length' \(valueLength) differs from the key length \(config.headDim): not supported")
        }
        if let rotary = try file.integer("\(arch).rope.dimension_count"), rotary != config.headDim {
            throw LoadError.badGGUF(path: file.path, detail: "'\(arch).rope.dimension_count' \(rotary) rotates part of a head of \(config.headDim): not supported")
        }
        if file.tensorByName["rope_freqs.weight"] != nil {
            throw LoadError.badGGUF(path: file.path, detail: "tensor 'rope_freqs.weight' (Llama 3.1's rope scaling) is not supported yet")
        }
        switch try file.string("\(arch).rope.scaling.type") ?? "none" {
        case "none": break
        case "linear":
            guard let factor = try file.real("\(arch).rope.scaling.factor") else {
                throw LoadError.badGGUF(path: file.path, detail: "'\(arch).rope.scaling.type' linear needs '\(arch).rope.scaling.factor'")
            }
            config.rope_scaling = .init(rope_type: "linear", type: nil, rope_theta: nil, factor: factor, low_freq_factor: nil,
                                        high_freq_factor: nil, original_max_position_embeddings: nil)
        case let other:
            throw LoadError.badGGUF(path: file.path, detail: "'\(arch).rope.scaling.type' \(other) is not supported (none, linear)")
        }
        config.attention_bias = file.tensorByName["blk.0.attn_q.bias"] != nil
        return config
    }

    /// Mamba (llama.cpp's `mamba`): `mamba.ssm.*` metadata into the config of a Hugging Face
    /// directory. llama.cpp stores A = −exp(A_log) (`ssm_a`); the mixer asks for A_log, so it is
    /// computed back as log(−A), which the mixer turns into the same A to within a rounding.
    static func mamba(_ file: GGUFFile, options: LoadOptions) throws -> BlockModel {
        func required(_ key: String) throws -> Int { try file.requiredInteger("mamba.\(key)") }
        let vocab = try vocabularyRows(file)
        if try file.bool("mamba.ssm.dt_b_c_rms") == true {
            throw LoadError.badGGUF(path: file.path, detail: "'mamba.ssm.dt_b_c_rms' (Falcon-Mamba's norms on Δ, B and C) is not supported")
        }
        let dim = try required("embedding_length"), inner = try required("ssm.inner_size")
        var config = MambaConfig(
            hidden_size: dim, num_hidden_layers: try layerCount(file, arch: "mamba"), vocab_size: vocab,
            state_size: try required("ssm.state_size"), expand: max(1, inner / max(dim, 1)), conv_kernel: try required("ssm.conv_kernel"),
            time_step_rank: .value(try required("ssm.time_step_rank")), intermediate_size: inner,
            use_conv_bias: file.tensorByName["blk.0.ssm_conv1d.bias"] != nil, use_bias: file.tensorByName["blk.0.ssm_in.bias"] != nil,
            layer_norm_epsilon: try file.real("mamba.attention.layer_norm_rms_epsilon") ?? 1e-5,
            tie_word_embeddings: file.tensorByName["output.weight"] == nil)
        config.model_type = "mamba"
        var computed: [String: (source: String, transform: (Float) -> Float)] = [:]
        for l in 0..<config.num_hidden_layers { computed["blk.\(l).ssm_a_log"] = ("blk.\(l).ssm_a", { logf(-$0) }) }
        let source = SourceWeights(GGUFTensors(file: file, computed: computed), storage: options.weights, fileName: ggufMambaName)
        return try BlockModel(config: config, source: source, configPath: file.path, context: options.context, kvCache: options.kvCache)
    }

    /// Mamba-2 (llama.cpp's `mamba2`): `mamba2.ssm.*` metadata (the head count is stored as
    /// `time_step_rank`, the groups as `group_count`); A is stored as −exp(A_log) and computed
    /// back as for Mamba, the gated norm's weight [G, E/G] read as [E]. llama.cpp keeps no chunk
    /// size or Δ limit: the file runs with transformers' defaults (256, no clamp).
    static func mamba2(_ file: GGUFFile, options: LoadOptions) throws -> BlockModel {
        func required(_ key: String) throws -> Int { try file.requiredInteger("mamba2.\(key)") }
        let vocab = try vocabularyRows(file)
        let dim = try required("embedding_length"), inner = try required("ssm.inner_size"), heads = try required("ssm.time_step_rank")
        guard dim > 0, inner % dim == 0, heads > 0, inner % heads == 0 else {
            throw LoadError.badGGUF(path: file.path, detail: "'mamba2.ssm.inner_size' \(inner) must be a multiple of the embedding length \(dim) and of the head count 'mamba2.ssm.time_step_rank' \(heads)")
        }
        var config = Mamba2Config(
            hidden_size: dim, num_hidden_layers: try layerCount(file, arch: "mamba2"), vocab_size: vocab,
            num_heads: heads, head_dim: inner / heads, state_size: try required("ssm.state_size"),
            n_groups: try file.integer("mamba2.ssm.group_count") ?? 1, expand: inner / dim, conv_kernel: try required("ssm.conv_kernel"),
            use_bias: file.tensorByName["blk.0.ssm_in.bias"] != nil, use_conv_bias: file.tensorByName["blk.0.ssm_conv1d.bias"] != nil,
            layer_norm_epsilon: try file.real("mamba2.attention.layer_norm_rms_epsilon") ?? 1e-5,
            tie_word_embeddings: file.tensorByName["output.weight"] == nil)
        config.model_type = "mamba2"
        var computed: [String: (source: String, transform: (Float) -> Float)] = [:]
        for l in 0..<config.num_hidden_layers { computed["blk.\(l).ssm_a_log"] = ("blk.\(l).ssm_a", { logf(-$0) }) }
        let norms = Set((0..<config.num_hidden_layers).map { "blk.\($0).ssm_norm.weight" })
        let source = SourceWeights(GGUFTensors(file: file, computed: computed, flattened: norms), storage: options.weights,
                                   fileName: ggufMambaName)
        return try BlockModel(config: config, source: source, configPath: file.path, context: options.context, kvCache: options.kvCache)
    }

    /// Granite-4.0-H (llama.cpp's `granitehybrid`): the attention layers are those with KV heads in
    /// `head_count_kv` (0 for Mamba-2 layers), RoPE unless `rope.scaling.finetuned` is false (llama.cpp's
    /// switch for it in Granite, true when absent), Granite's multipliers from `embedding_scale`,
    /// `residual_scale`, `attention.scale` and `logit_scale`. llama.cpp splits the fused gate-and-up
    /// projections (`input_linear`) into `ffn_gate*` and `ffn_up*`: they are put back side by side.
    static func graniteHybrid(_ file: GGUFFile, options: LoadOptions) throws -> BlockModel {
        let arch = "granitehybrid"
        func required(_ key: String) throws -> Int { try file.requiredInteger("\(arch).\(key)") }
        let vocab = try vocabularyRows(file)
        let layers = try layerCount(file, arch: arch), dim = try required("embedding_length")
        let kvKey = "\(arch).attention.head_count_kv"
        let kv = try file.integers(kvKey) ?? [Int](repeating: try required("attention.head_count_kv"), count: layers)
        guard kv.count == layers else { throw LoadError.badGGUF(path: file.path, detail: "'\(kvKey)' has \(kv.count) entries for \(layers) layers") }
        let kvHeads = Set(kv.filter { $0 > 0 })
        guard kvHeads.count <= 1 else { throw LoadError.badGGUF(path: file.path, detail: "'\(kvKey)' \(kv): expected one KV head count for the attention layers and 0 for the Mamba-2 layers") }
        let inner = try required("ssm.inner_size"), ssmHeads = try required("ssm.time_step_rank")
        guard dim > 0, inner % dim == 0, ssmHeads > 0, inner % ssmHeads == 0 else {
            throw LoadError.badGGUF(path: file.path, detail: "'\(arch).ssm.inner_size' \(inner) must be a multiple of the embedding length \(dim) and of the head count 'ssm.time_step_rank' \(ssmHeads)")
        }
        let experts = try file.integer("\(arch).expert_count") ?? 0
        let firstMamba = (0..<layers).first { kv[$0] == 0 } ?? 0
        func real(_ key: String, _ fallback: Double) throws -> Double { try file.real("\(arch).\(key)") ?? fallback }
        // The config a Hugging Face directory would hold, decoded as one is.
        let json: [String: Any] = [
            "model_type": "granitehybrid", "vocab_size": vocab, "hidden_size": dim, "num_hidden_layers": layers,
            "layer_types": kv.map { $0 > 0 ? "attention" : "mamba" },
            "num_attention_heads": try required("attention.head_count"), "num_key_value_heads": kvHeads.first ?? 1,
            "intermediate_size": try file.integer("\(arch).feed_forward_length") ?? 1,
            "shared_intermediate_size": try required("expert_shared_feed_forward_length"),
            "num_local_experts": experts, "num_experts_per_tok": try file.integer("\(arch).expert_used_count") ?? 0,
            "max_position_embeddings": try required("context_length"),
            "rms_norm_eps": try real("attention.layer_norm_rms_epsilon", 1e-5), "rope_theta": try real("rope.freq_base", 10000),
            "position_embedding_type": try file.bool("\(arch).rope.scaling.finetuned") ?? true ? "rope" : "nope",
            "embedding_multiplier": try real("embedding_scale", 1), "residual_multiplier": try real("residual_scale", 1),
            "attention_multiplier": try real("attention.scale", 1), "logits_scaling": try real("logit_scale", 1),
            "mamba_n_heads": ssmHeads, "mamba_d_head": inner / ssmHeads, "mamba_d_state": try required("ssm.state_size"),
            "mamba_n_groups": try file.integer("\(arch).ssm.group_count") ?? 1, "mamba_d_conv": try required("ssm.conv_kernel"),
            "mamba_expand": inner / dim, "mamba_chunk_size": 256,
            "mamba_conv_bias": file.tensorByName["blk.\(firstMamba).ssm_conv1d.bias"] != nil,
            "mamba_proj_bias": file.tensorByName["blk.\(firstMamba).ssm_in.bias"] != nil,
            "tie_word_embeddings": file.tensorByName["output.weight"] == nil, "hidden_act": "silu",
        ]
        let config: GraniteHybridConfig
        do { config = try JSONDecoder().decode(GraniteHybridConfig.self, from: try JSONSerialization.data(withJSONObject: json)) } catch {
            throw LoadError.badGGUF(path: file.path, detail: "metadata that makes no Granite config: \(error)")
        }
        var computed: [String: (source: String, transform: (Float) -> Float)] = [:]
        var interleaved: [String: Int] = [:], norms: Set<String> = [], fused: [String: (sources: [String], parts: Int)] = [:]
        var renamed: [String: String] = [:]
        for l in 0..<layers {
            let b = "blk.\(l)."
            if kv[l] > 0 {
                interleaved[b + "attn_q.weight"] = config.base.num_attention_heads
                interleaved[b + "attn_k.weight"] = kv[l]
            } else {
                computed[b + "ssm_a_log"] = (b + "ssm_a", { logf(-$0) })
                norms.insert(b + "ssm_norm.weight")
            }
            // With experts the shared MLP is `*_shexp`; without, llama.cpp names it as a dense MLP.
            let shared = experts > 0 ? "shexp" : ""
            fused[b + "ffn_gate_up_shexp"] = ([b + "ffn_gate\(shared.isEmpty ? "" : "_" + shared).weight", b + "ffn_up\(shared.isEmpty ? "" : "_" + shared).weight"], 1)
            if experts > 0 {
                fused[b + "ffn_gate_up_exps"] = ([b + "ffn_gate_exps.weight", b + "ffn_up_exps.weight"], experts)
            } else {
                renamed[b + "ffn_down_shexp.weight"] = b + "ffn_down.weight"
            }
        }
        let source = SourceWeights(GGUFTensors(file: file, interleavedHeads: interleaved, computed: computed, flattened: norms, fused: fused),
                                   storage: options.weights, fileName: { renamed[ggufGraniteName($0)] ?? ggufGraniteName($0) })
        return try BlockModel(config: config, source: source, configPath: file.path, context: options.context, kvCache: options.kvCache)
    }

    /// Hugging Face's name of a Granite-4.0-H tensor → llama.cpp's (fused projections → their pair).
    static func ggufGraniteName(_ name: String) -> String {
        switch name {
        case "model.embed_tokens.weight": return "token_embd.weight"
        case "model.norm.weight": return "output_norm.weight"
        case "lm_head.weight": return "output.weight"
        default: break
        }
        let parts = name.split(separator: ".").map(String.init)
        guard parts.count >= 4, parts[0] == "model", parts[1] == "layers" else { return name }
        let rest = parts[3...].joined(separator: ".")
        if rest.hasPrefix("mamba."), let mapped = mambaParts[String(rest.dropFirst(6))] { return "blk.\(parts[2]).\(mapped)" }
        guard let mapped = graniteParts[rest] ?? jambaParts[rest] else { return name }
        return "blk.\(parts[2]).\(mapped)"
    }

    static let graniteParts = [
        "post_attention_layernorm.weight": "ffn_norm.weight",
        "shared_mlp.input_linear.weight": "ffn_gate_up_shexp", "shared_mlp.output_linear.weight": "ffn_down_shexp.weight",
        "block_sparse_moe.router.layer.weight": "ffn_gate_inp.weight",
        "block_sparse_moe.input_linear.weight": "ffn_gate_up_exps", "block_sparse_moe.output_linear.weight": "ffn_down_exps.weight",
    ]

    /// Jamba (llama.cpp's `jamba`): which layers attend is read from the per-layer KV head counts
    /// (0 for a Mamba layer), which have experts from the routers present; both must repeat with a
    /// period, as Jamba's config says them. Stacked experts are read as one matrix per expert.
    static func jamba(_ file: GGUFFile, options: LoadOptions) throws -> BlockModel {
        let arch = "jamba"
        func required(_ key: String) throws -> Int { try file.requiredInteger("\(arch).\(key)") }
        let vocab = try vocabularyRows(file)
        let layers = try layerCount(file, arch: arch), dim = try required("embedding_length"), inner = try required("ssm.inner_size")
        let kvKey = "\(arch).attention.head_count_kv"
        let kv = try file.integers(kvKey) ?? [Int](repeating: try required("attention.head_count_kv"), count: layers)
        guard kv.count == layers else { throw LoadError.badGGUF(path: file.path, detail: "'\(kvKey)' has \(kv.count) entries for \(layers) layers") }
        let kvHeads = Set(kv.filter { $0 > 0 })
        guard kvHeads.count == 1 else { throw LoadError.badGGUF(path: file.path, detail: "'\(kvKey)' \(kv): expected one KV head count for the attention layers and 0 for the Mamba layers") }
        func periodic(_ indices: [Int], _ what: String) throws -> (offset: Int, period: Int) {
            guard let offset = indices.first else { throw LoadError.badGGUF(path: file.path, detail: "no \(what) layers: not supported") }
            let period = indices.count > 1 ? indices[1] - offset : layers
            guard period > offset, (0..<layers).filter({ $0 % period == offset }) == indices else {
                throw LoadError.badGGUF(path: file.path, detail: "\(what) layers \(indices) do not repeat with a period (as Jamba's config needs)")
            }
            return (offset, period)
        }
        let attention = try periodic((0..<layers).filter { kv[$0] > 0 }, "attention")
        let expertCount = try file.integer("\(arch).expert_count") ?? 1
        let experts: (offset: Int, period: Int) = expertCount > 1
            ? try periodic((0..<layers).filter { file.tensorByName["blk.\($0).ffn_gate_inp.weight"] != nil }, "expert") : (0, 1)
        guard inner % max(dim, 1) == 0 else { throw LoadError.badGGUF(path: file.path, detail: "'\(arch).ssm.inner_size' \(inner) is not a multiple of the embedding length \(dim)") }
        let firstMamba = (0..<layers).first { kv[$0] == 0 } ?? 0
        var config = JambaConfig(
            vocab_size: vocab, hidden_size: dim, intermediate_size: try required("feed_forward_length"),
            num_hidden_layers: layers, num_attention_heads: try required("attention.head_count"), num_key_value_heads: kvHeads.first!,
            head_dim: try file.integer("\(arch).attention.key_length"),
            rms_norm_eps: try file.real("\(arch).attention.layer_norm_rms_epsilon") ?? 1e-6,
            max_position_embeddings: try required("context_length"), tie_word_embeddings: file.tensorByName["output.weight"] == nil,
            num_experts: expertCount, num_experts_per_tok: try file.integer("\(arch).expert_used_count") ?? 1,
            expert_layer_period: experts.period, expert_layer_offset: experts.offset,
            attn_layer_period: attention.period, attn_layer_offset: attention.offset,
            mamba_d_state: try required("ssm.state_size"), mamba_d_conv: try required("ssm.conv_kernel"), mamba_expand: inner / dim,
            mamba_dt_rank: .value(try required("ssm.time_step_rank")),
            mamba_conv_bias: file.tensorByName["blk.\(firstMamba).ssm_conv1d.bias"] != nil,
            mamba_proj_bias: file.tensorByName["blk.\(firstMamba).ssm_in.bias"] != nil)
        config.model_type = "jamba"
        var computed: [String: (source: String, transform: (Float) -> Float)] = [:]
        var slices: [String: (source: String, index: Int)] = [:]
        for l in 0..<layers {
            computed["blk.\(l).ssm_a_log"] = ("blk.\(l).ssm_a", { logf(-$0) })
            if config.hasExperts(l) {
                for part in ["gate", "up", "down"] {
                    for e in 0..<expertCount { slices["blk.\(l).ffn_\(part)_exps.\(e)"] = ("blk.\(l).ffn_\(part)_exps.weight", e) }
                }
            }
        }
        let source = SourceWeights(GGUFTensors(file: file, computed: computed, slices: slices), storage: options.weights, fileName: ggufJambaName)
        return try BlockModel(config: config, source: source, configPath: file.path, context: options.context, kvCache: options.kvCache)
    }

    /// Hugging Face's name of a Jamba tensor → llama.cpp's (an expert's matrix → its slice).
    static func ggufJambaName(_ name: String) -> String {
        switch name {
        case "model.embed_tokens.weight": return "token_embd.weight"
        case "model.final_layernorm.weight": return "output_norm.weight"
        case "lm_head.weight": return "output.weight"
        default: break
        }
        let parts = name.split(separator: ".").map(String.init)
        guard parts.count >= 4, parts[0] == "model", parts[1] == "layers" else { return name }
        let layer = parts[2], rest = parts[3...].joined(separator: ".")
        if rest.hasPrefix("mamba."), let mapped = mambaParts[String(rest.dropFirst(6))] ?? jambaMambaNorms[String(rest.dropFirst(6))] {
            return "blk.\(layer).\(mapped)"
        }
        if parts.count == 8, parts[3] == "feed_forward", parts[4] == "experts", let e = Int(parts[5]), parts[7] == "weight",
           ["gate_proj", "up_proj", "down_proj"].contains(parts[6]) {
            return "blk.\(layer).ffn_\(parts[6].dropLast(5))_exps.\(e)"
        }
        guard let mapped = jambaParts[rest] else { return name }
        return "blk.\(layer).\(mapped)"
    }

    static let jambaMambaNorms = ["dt_layernorm.weight": "ssm_dt_norm.weight", "b_layernorm.weight": "ssm_b_norm.weight",
                                  "c_layernorm.weight": "ssm_c_norm.weight"]
    static let jambaParts = [
        "input_layernorm.weight": "attn_norm.weight", "pre_ff_layernorm.weight": "ffn_norm.weight",
        "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
        "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
        "feed_forward.router.weight": "ffn_gate_inp.weight", "feed_forward.gate_proj.weight": "ffn_gate.weight",
        "feed_forward.up_proj.weight": "ffn_up.weight", "feed_forward.down_proj.weight": "ffn_down.weight",
    ]

    /// Hugging Face's name of a Mamba tensor → llama.cpp's (A_log → the computed `ssm_a_log`).
    static func ggufMambaName(_ name: String) -> String {
        switch name {
        case "backbone.embeddings.weight": return "token_embd.weight"
        case "backbone.norm_f.weight": return "output_norm.weight"
        case "lm_head.weight": return "output.weight"
        default: break
        }
        let parts = name.split(separator: ".")
        guard parts.count >= 4, parts[0] == "backbone", parts[1] == "layers" else { return name }
        let rest = parts[3...].joined(separator: ".")
        if rest == "norm.weight" { return "blk.\(parts[2]).attn_norm.weight" }
        guard rest.hasPrefix("mixer."), let mapped = mambaParts[String(rest.dropFirst(6))] else { return name }
        return "blk.\(parts[2]).\(mapped)"
    }

    static let mambaParts = [
        "in_proj.weight": "ssm_in.weight", "in_proj.bias": "ssm_in.bias", "conv1d.weight": "ssm_conv1d.weight",
        "conv1d.bias": "ssm_conv1d.bias", "x_proj.weight": "ssm_x.weight", "dt_proj.weight": "ssm_dt.weight",
        "dt_proj.bias": "ssm_dt.bias", "A_log": "ssm_a_log", "D": "ssm_d", "out_proj.weight": "ssm_out.weight",
        "out_proj.bias": "ssm_out.bias",
        "dt_bias": "ssm_dt.bias", "norm.weight": "ssm_norm.weight",      // Mamba-2's
    ]

    /// Hugging Face's name of a Llama-family tensor → llama.cpp's.
    static func ggufName(_ name: String) -> String {
        switch name {
        case "model.embed_tokens.weight": return "token_embd.weight"
        case "model.norm.weight": return "output_norm.weight"
        case "lm_head.weight": return "output.weight"
        default: break
        }
        let parts = name.split(separator: ".")
        guard parts.count >= 5, parts[0] == "model", parts[1] == "layers" else { return name }
        let part = parts[3..<(parts.count - 1)].joined(separator: ".")
        guard let mapped = layerParts[part] else { return name }
        return "blk.\(parts[2]).\(mapped).\(parts.last!)"
    }

    static let layerParts = [
        "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
        "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
        "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
        "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
    ]
}
