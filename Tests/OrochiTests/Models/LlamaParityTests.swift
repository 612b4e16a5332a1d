import Foundation
import Testing
@testable import Orochi

/// Llama-specific checks; the parity of every fixture is in ParityTests.
struct LlamaParityTests {
    static let cases = ["mha_tied_f32", "gqa_linear_f32", "mqa_llama3_f16", "headdim_bias_bf16",
                        "sharded_f32", "mistral_window_f32", "qwen2_f32"]
    static let tolerance = ParityTests.tolerance

    @Test func chunkedPrefillEqualsOnePrefill() throws {
        let dir = Fixtures.directory("llama", "gqa_linear_f32")
        let reference = try Fixtures.reference(dir)
        let (expected, _) = try Fixtures.logits(dir)
        let model = try ModelRegistry.load(directory: dir)
        let vocab = model.info.vocabSize
        try model.prefill(Array(reference.ids[..<7]))
        try model.prefill(Array(reference.ids[7...]))
        let last = reference.ids.count - 1
        #expect(relativeError(model.lastLogits, expected[last * vocab..<(last + 1) * vocab]) <= Self.tolerance)
    }

    @Test func inspectDescribesTheModel() throws {
        let model = try ModelRegistry.load(directory: Fixtures.directory("llama", "gqa_linear_f32"))
        #expect(model.info.architecture == "LlamaForCausalLM")
        #expect(model.info.parameterCount == 69952)     // transformers' count for this fixture
        // K and V, 2 layers, 2 KV heads of 8 dims, float32.
        #expect(model.stateBytes(forTokens: 10) == 10 * 2 * 2 * 2 * 8 * 4)
        let lines = Dictionary(describe(model), uniquingKeysWith: { a, _ in a })
        #expect(lines["kv cache per token"]?.hasPrefix("256 bytes") == true)
        #expect(lines["checkpoint dtypes"] == "F32 ×21")
    }
}
