import Foundation
import Testing
@testable import Orochi

/// Qwen3-specific checks; the parity of every fixture (logits at every position, prefill then
/// decode, greedy text against transformers) is in ParityTests.
struct Qwen3ParityTests {
    static let cases = ["tied_headdim24_f32", "untied_gqa_bf16"]

    @Test func inspectDescribesTheModel() throws {
        let model = try ModelRegistry.load(directory: Fixtures.directory("qwen3", "tied_headdim24_f32"))
        #expect(model.info.architecture == "Qwen3ForCausalLM" && model.info.modelType == "qwen3")
        let lines = Dictionary(describe(model), uniquingKeysWith: { a, _ in a })
        #expect(lines["q/k norm"]?.contains("24 values") == true, "\(lines)")
        // K and V, 2 layers, 2 KV heads of 24 dims, float32.
        #expect(model.stateBytes(forTokens: 10) == 10 * 2 * 2 * 2 * 24 * 4)
    }

    /// Without the head norms the model is a different function: the test of parity would see it.
    @Test func theHeadNormsMatter() throws {
        let dir = Fixtures.directory("qwen3", "tied_headdim24_f32")
        let withNorms = try ModelRegistry.load(directory: dir)
        let config = try readJSONConfig(Qwen3Config.self, from: dir.appendingPathComponent("config.json"))
        let source = SourceWeights(try Checkpoint(directory: dir), storage: .asStored)
        let without = try BlockModel(config: config.base, source: source, configPath: dir.path, context: nil, kvCache: .f32)
        let ids = try Fixtures.reference(dir).ids
        try withNorms.prefill(ids); try without.prefill(ids)
        #expect(relativeError(withNorms.lastLogits, ArraySlice(Array(without.lastLogits))) > 1e-2)
    }

    @Test func slidingWindowsAreRefusedByName() throws {
        let json = #"{"model_type": "qwen3", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 96, "use_sliding_window": true, "sliding_window": 8}"#
        let config = try JSONDecoder().decode(Qwen3Config.self, from: Data(json.utf8))
        #expect(throws: LoadError.self) { try BlockModel(config: config, checkpoint: nil, configPath: "config.json") }
    }

    /// `orochi attention`'s maps read the queries and keys after the head norms and RoPE: one
    /// map per head and layer, each row a distribution over the visible positions.
    @Test func attentionMaps() throws {
        let model = try ModelRegistry.load(directory: Fixtures.directory("qwen3", "untied_gqa_bf16"))
        let ids = try Fixtures.reference(Fixtures.directory("qwen3", "untied_gqa_bf16")).ids
        let layers = try AttentionMaps.compute(model: model, tokens: ids)
        #expect(layers.count == 2 && layers.allSatisfy { $0.kind == .attention && $0.maps.count == 8 })
        let t = ids.count
        for l in layers {
            for m in l.maps {
                for i in 0..<t {
                    let row = m[(i * t)..<(i * t + t)]
                    #expect(abs(row.reduce(0, +) - 1) < 1e-4 && row.dropFirst(i + 1).allSatisfy { $0 == 0 })
                }
            }
        }
    }
}
