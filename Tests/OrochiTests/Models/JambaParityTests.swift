import Foundation
import Testing
@testable import Orochi

/// Jamba-specific checks; the parity of every fixture (logits, prefill then decode, greedy
/// continuation) is in ParityTests.
struct JambaParityTests {
    static let cases = ["attn2_dense_tied_f32", "attn4_moe4top2_untied_f32", "attn2_moe4top2_tied_f16", "attn4_dense_untied_bf16"]
    static let tolerance = ParityTests.tolerance

    /// Chunk boundaries anywhere: the Mamba layers carry conv and SSM state across calls, the
    /// attention layers their caches, and the experts see a different set of rows each call.
    @Test(arguments: [[1, 13], [2, 1, 11], [5, 9], [1, 1, 1, 1, 10]])
    func chunkedPrefillEqualsOnePrefill(_ chunks: [Int]) throws {
        let dir = Fixtures.directory("jamba", "attn4_moe4top2_untied_f32")
        let reference = try Fixtures.reference(dir)
        let (expected, _) = try Fixtures.logits(dir)
        let model = try ModelRegistry.load(directory: dir)
        let vocab = model.info.vocabSize
        var start = 0
        for n in chunks {
            try model.prefill(Array(reference.ids[start..<start + n]))
            start += n
            let last = start - 1
            #expect(relativeError(model.lastLogits, expected[last * vocab..<(last + 1) * vocab]) <= Self.tolerance,
                    "after \(start) tokens")
        }
    }

    /// Parameter counts are transformers' for each fixture (printed by Scripts/fixtures/jamba.py);
    /// memory is fixed bytes for the Mamba layers plus bytes per token for the attention layers.
    @Test func inspectDescribesTheHybrid() throws {
        let model = try ModelRegistry.load(directory: Fixtures.directory("jamba", "attn4_moe4top2_untied_f32"))
        #expect(model.info.architecture == "JambaForCausalLM")
        #expect(model.info.parameterCount == 100_588)
        // 5 layers, attention at 2 (period 4, offset 2): one KV cache of 2 heads × 8, four Mamba states.
        let perToken = 2 * 2 * 8 * 4
        let fixed = 4 * (3 * 64 + 64 * 16) * 4
        #expect(model.stateBytes(forTokens: 0) == fixed)
        #expect(model.stateBytes(forTokens: 1000) == fixed + 1000 * perToken)
        #expect(model.contextCapacity == 64)    // max_position_embeddings
        let lines = Dictionary(describe(model), uniquingKeysWith: { a, _ in a })
        #expect(lines["kv cache per token"]?.hasPrefix("\(perToken) bytes") == true)
        #expect(lines["state (fixed)"]?.hasPrefix("\(fixed) bytes") == true)
        #expect(lines["layer pattern"]?.hasPrefix("M M+moe A M+moe M ") == true, "\(lines["layer pattern"] ?? "")")
        for (name, count) in [("attn2_dense_tied_f32", 47_844), ("attn2_moe4top2_tied_f16", 74_724), ("attn4_dense_untied_bf16", 53_430)] {
            #expect(try ModelRegistry.load(directory: Fixtures.directory("jamba", name)).info.parameterCount == count, "\(name)")
        }
    }

    /// The layer pattern is transformers' `layers_block_type` / `layers_num_experts`.
    @Test func layerPatternFollowsPeriodsAndOffsets() throws {
        let c = JambaConfig(num_hidden_layers: 16, num_experts: 16, expert_layer_period: 2, expert_layer_offset: 1,
                            attn_layer_period: 8, attn_layer_offset: 4)
        #expect((0..<16).filter(c.isAttention) == [4, 12])
        #expect((0..<16).filter(c.hasExperts) == [1, 3, 5, 7, 9, 11, 13, 15])
        let dense = JambaConfig(num_experts: 1, expert_layer_period: 1, expert_layer_offset: 0)
        #expect(!(0..<32).contains(where: dense.hasExperts))
    }

    /// A snapshot holds both kinds of layer: the caches up to the position and the fixed states.
    @Test func snapshotRestoresCachesAndStates() throws {
        let dir = Fixtures.directory("jamba", "attn2_moe4top2_tied_f16")
        let reference = try Fixtures.reference(dir)
        let a = try ModelRegistry.load(directory: dir), b = try ModelRegistry.load(directory: dir)
        try a.prefill(Array(reference.ids[0..<9]))
        try b.loadState(a.saveState())
        #expect(b.position == 9)
        for id in reference.ids[9...] { try a.decode(id); try b.decode(id) }
        #expect(relativeError(a.lastLogits, ArraySlice(b.lastLogits)) == 0)
        #expect(throws: SnapshotError.self) { try ModelRegistry.load(directory: Fixtures.directory("jamba", "attn2_dense_tied_f32")).loadState(a.saveState()) }
    }

    static func loadError(config edit: @escaping (inout [String: Any]) -> Void = { _ in }, drop: Set<String> = []) throws -> String? {
        MambaBadInputTests.loadError(try MambaBadInputTests.brokenCopy(family: "jamba", of: "attn4_moe4top2_untied_f32", drop: drop, config: edit))
    }

    @Test func badLayerPatternsAreRefused() throws {
        let cases: [(String, Any, String)] = [
            ("attn_layer_period", 0, "'attn_layer_period' must be positive"),
            ("attn_layer_offset", 4, "'attn_layer_offset' must be in 0..<attn_layer_period (4), found 4"),
            ("attn_layer_offset", -1, "'attn_layer_offset' must be in 0..<attn_layer_period"),
            ("expert_layer_period", 0, "'expert_layer_period' must be positive"),
            ("expert_layer_offset", 2, "'expert_layer_offset' must be in 0..<expert_layer_period (2), found 2"),
            ("num_experts_per_tok", 5, "'num_experts_per_tok' (5) must not exceed 'num_experts' (4)"),
            ("num_experts", 0, "'num_experts' must be positive"),
            ("mamba_dt_rank", "wide", "'mamba_dt_rank' must be an integer or \"auto\""),
            // The layer count comes from the file: counted, never enumerated (make hostile found an abort).
            ("num_hidden_layers", 2_147_483_648, "this process may allocate"),
        ]
        for (key, value, expected) in cases {
            let message = try Self.loadError(config: { $0[key] = value })
            #expect(message?.contains(expected) == true, "\(key) = \(value): \(message ?? "loaded")")
        }
    }

    @Test func missingExpertTensorsAreNamed() throws {
        let name = "model.layers.3.feed_forward.experts.2.up_proj.weight"
        let message = try Self.loadError(drop: [name])
        #expect(message?.contains("missing tensor '\(name)'") == true, "\(message ?? "loaded")")
        // More experts in the config than in the file.
        let more = try Self.loadError(config: { $0["num_experts"] = 5 })
        #expect(more?.contains("num_experts = 5 in config.json disagrees with the checkpoint") == true, "\(more ?? "loaded")")
        let router = try Self.loadError(drop: ["model.layers.1.feed_forward.router.weight"])
        #expect(router?.contains("router.weight") == true, "\(router ?? "loaded")")
        let norm = try Self.loadError(drop: ["model.layers.0.mamba.b_layernorm.weight"])
        #expect(norm?.contains("b_layernorm") == true, "\(norm ?? "loaded")")
    }

    /// The benchmark preset's path: random weights, no checkpoint; decode equals prefill.
    @Test func randomWeightsRunAndAreSeeded() throws {
        let config = JambaConfig(vocab_size: 50, hidden_size: 64, intermediate_size: 96, num_hidden_layers: 4, num_attention_heads: 4,
                                 num_key_value_heads: 2, num_experts: 4, num_experts_per_tok: 2, attn_layer_period: 2, attn_layer_offset: 1)
        let a = try BlockModel(config: config, checkpoint: nil, configPath: "<preset>", context: 16, randomSeed: 7)
        let b = try BlockModel(config: config, checkpoint: nil, configPath: "<preset>", context: 16, randomSeed: 7)
        #expect(a.info.fingerprint == b.info.fingerprint)
        try a.prefill([1, 2, 3, 4]); try a.decode(5)
        try b.prefill([1, 2, 3, 4, 5])
        #expect(a.lastLogits.allSatisfy { $0.isFinite })
        #expect(relativeError(a.lastLogits, ArraySlice(b.lastLogits)) <= 1e-5)
        #expect(throws: ModelError.self) { try a.prefill(Array(repeating: 1, count: 12)) }   // 5 + 12 > 16
    }
}
