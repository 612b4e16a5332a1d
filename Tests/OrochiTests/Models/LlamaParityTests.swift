import Foundation
import Testing
@testable import Orochi

/// Every Llama-family fixture: logits against transformers at every position, prefill-then-decode
/// against one prefill, and the greedy continuation against transformers' `generate`.
struct LlamaParityTests {
    static let cases = ["mha_tied_f32", "gqa_linear_f32", "mqa_llama3_f16", "headdim_bias_bf16",
                        "sharded_f32", "mistral_window_f32", "qwen2_f32"]
    /// Max |error| relative to the largest |logit| (the bound for F32 weights; F16/BF16
    /// fixtures are compared with transformers run in float32 on the same rounded weights).
    static let tolerance: Float = 1e-4

    @Test(arguments: cases)
    func logitsMatchTransformers(_ name: String) throws {
        let dir = Fixtures.directory("llama", name)
        let reference = try Fixtures.reference(dir)
        let (expected, shape) = try Fixtures.logits(dir)
        let model = try ModelRegistry.load(directory: dir)
        let vocab = model.info.vocabSize
        #expect(shape == [reference.ids.count, vocab])
        var logits = [Float](repeating: .nan, count: reference.ids.count * vocab)
        try logits.withUnsafeMutableBufferPointer { try model.prefill(reference.ids, allLogits: $0.baseAddress!) }
        for t in 0..<reference.ids.count {
            let row = logits.withUnsafeBufferPointer { UnsafeBufferPointer(rebasing: $0[t * vocab..<(t + 1) * vocab]) }
            let error = relativeError(row, expected[t * vocab..<(t + 1) * vocab])
            #expect(error <= Self.tolerance, "\(name): position \(t) relative error \(error)")
        }
    }

    @Test(arguments: cases)
    func prefillThenDecodeEqualsOnePrefill(_ name: String) throws {
        let dir = Fixtures.directory("llama", name)
        let reference = try Fixtures.reference(dir)
        let (expected, _) = try Fixtures.logits(dir)
        let model = try ModelRegistry.load(directory: dir)
        let vocab = model.info.vocabSize
        let split = 5
        try model.prefill(Array(reference.ids[..<split]))
        for t in (split - 1)..<reference.ids.count {
            if t >= split { try model.decode(reference.ids[t]) }
            let error = relativeError(model.lastLogits, expected[t * vocab..<(t + 1) * vocab])
            #expect(error <= Self.tolerance, "\(name): decode at position \(t) relative error \(error)")
        }
        #expect(model.position == reference.ids.count)
    }

    @Test(arguments: cases)
    func greedyContinuationMatchesTransformers(_ name: String) throws {
        let dir = Fixtures.directory("llama", name)
        let reference = try Fixtures.reference(dir)
        let model = try ModelRegistry.load(directory: dir)
        let sampler = Sampler(settings: .init(temperature: 0), vocabSize: model.info.vocabSize)
        let generator = Generator(model: model, sampler: sampler, stopTokens: [])
        let (ids, _) = try generator.generate(prompt: reference.greedy_prompt,
                                              maxTokens: reference.greedy_continuation.count) { _ in true }
        #expect(ids == reference.greedy_continuation)
    }

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
