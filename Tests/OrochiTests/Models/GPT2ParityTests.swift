import Foundation
import Testing
@testable import Orochi

/// GPT-2-specific checks; the parity of every fixture (logits at every position, prefill then
/// decode, greedy text against transformers) is in ParityTests.
struct GPT2ParityTests {
    static let cases = ["tied_gelu_new_f32", "inner80_gelu_bf16"]

    @Test func inspectDescribesTheModel() throws {
        let model = try ModelRegistry.load(directory: Fixtures.directory("gpt2", "tied_gelu_new_f32"))
        #expect(model.info.architecture == "GPT2LMHeadModel" && model.info.maxContext == 64)
        #expect(model.info.parameterCount == 110336)     // transformers' count for this fixture
        // K and V, 2 layers, 4 heads of 16 dims, float32.
        #expect(model.stateBytes(forTokens: 10) == 10 * 2 * 2 * 64 * 4)
        #expect(model.contextCapacity == 64, "n_positions bounds the context")
    }

    /// The learned positions are the only thing that tells positions apart: a token repeated
    /// gives different logits at each place, and a context past n_positions is refused.
    @Test func learnedPositions() throws {
        let dir = Fixtures.directory("gpt2", "tied_gelu_new_f32")
        let model = try ModelRegistry.load(directory: dir)
        var logits = [Float](repeating: 0, count: 2 * model.info.vocabSize)
        try logits.withUnsafeMutableBufferPointer { try model.prefill([7, 7], allLogits: $0.baseAddress!) }
        #expect(zip(logits[..<96], logits[96...]).contains { $0 != $1 })
        #expect(throws: LoadError.self) { try ModelRegistry.load(directory: dir, options: LoadOptions(context: 65)) }
    }

    @Test func unsupportedAttentionScalingIsRefusedByName() throws {
        for key in ["\"scale_attn_weights\": false", "\"scale_attn_by_inverse_layer_idx\": true", "\"activation_function\": \"relu\""] {
            let json = #"{"model_type": "gpt2", "vocab_size": 96, "n_positions": 64, "n_embd": 64, "n_layer": 2, "n_head": 4, "# + key + "}"
            let config = try JSONDecoder().decode(GPT2Config.self, from: Data(json.utf8))
            #expect(throws: LoadError.self) { try BlockModel(config: config, checkpoint: nil, configPath: "config.json") }
        }
    }

    /// `orochi trace` walks a token through LayerNorms and the GELU MLP; `orochi attention` draws
    /// its heads.
    @Test func traceAndAttentionMaps() throws {
        let model = try ModelRegistry.load(directory: Fixtures.directory("gpt2", "inner80_gelu_bf16"))
        let trace = try Trace.run(model: model, prompt: [3, 9, 27])
        #expect(trace.steps.contains { $0.operation.contains("LayerNorm") } && trace.steps.contains { $0.operation.contains("GELU") })
        let layers = try AttentionMaps.compute(model: model, tokens: [3, 9, 27, 81, 5])
        #expect(layers.count == 2 && layers.allSatisfy { $0.kind == .attention && $0.maps.count == 8 })
    }
}
