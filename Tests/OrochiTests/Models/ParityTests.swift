import Foundation
import Testing
@testable import Orochi

/// Every model fixture of every architecture: logits against transformers at every position,
/// prefill-then-decode against one prefill, and the greedy continuation against transformers'
/// `generate`. The fixtures come from Scripts/fixtures/ (`make fixtures`).
struct ParityTests {
    /// A fixture and how it is loaded: weights as stored (f16/bf16 files stay half precision) or
    /// widened to f32, and the KV cache in f32 or f16.
    struct Fixture: CustomTestStringConvertible, Sendable {
        let family: String, name: String
        var weights = WeightStorage.asStored
        var kvCache = WeightType.f32
        var directory: URL { Fixtures.directory(family, name) }
        var options: LoadOptions { LoadOptions(weights: weights, kvCache: kvCache) }
        var testDescription: String { "\(family)/\(name) weights \(weights.rawValue) kv \(kvCache.rawValue)" }
        /// A half-precision cache rounds keys and values to 11 bits: compared with a looser bound.
        var tolerance: Float { kvCache == .f16 ? 5e-3 : ParityTests.tolerance }
        func load() throws -> any LanguageModel { try ModelRegistry.load(directory: directory, options: options) }
    }

    /// Every fixture as stored; half-precision files also widened to f32; attention models also
    /// with an f16 KV cache.
    static let fixtures: [Fixture] = llamaFixtures + mambaFixtures + mamba2Fixtures + jambaFixtures + qwen3Fixtures + gpt2Fixtures + graniteFixtures
    static let llamaFixtures: [Fixture] = LlamaParityTests.cases.flatMap { name -> [Fixture] in
        [Fixture(family: "llama", name: name), Fixture(family: "llama", name: name, kvCache: .f16)]
            + (name.hasSuffix("f16") ? [Fixture(family: "llama", name: name, weights: .f32)] : [])
    }
    static let mambaFixtures: [Fixture] = MambaParityTests.cases.flatMap { name -> [Fixture] in
        [Fixture(family: "mamba", name: name)] + (name.hasSuffix("f16") ? [Fixture(family: "mamba", name: name, weights: .f32)] : [])
    }
    static let mamba2Fixtures: [Fixture] = Mamba2ParityTests.cases.flatMap { name -> [Fixture] in
        [Fixture(family: "mamba2", name: name)] + (name.hasSuffix("f32") ? [] : [Fixture(family: "mamba2", name: name, weights: .f32)])
    }
    static let graniteFixtures: [Fixture] = GraniteHybridTests.cases.flatMap { name -> [Fixture] in
        [Fixture(family: "granitehybrid", name: name), Fixture(family: "granitehybrid", name: name, kvCache: .f16)]
            + (name.hasSuffix("f32") ? [] : [Fixture(family: "granitehybrid", name: name, weights: .f32)])
    }
    static let qwen3Fixtures: [Fixture] = Qwen3ParityTests.cases.flatMap { name -> [Fixture] in
        [Fixture(family: "qwen3", name: name), Fixture(family: "qwen3", name: name, kvCache: .f16)]
            + (name.hasSuffix("f32") ? [] : [Fixture(family: "qwen3", name: name, weights: .f32)])
    }
    static let gpt2Fixtures: [Fixture] = GPT2ParityTests.cases.flatMap { name -> [Fixture] in
        [Fixture(family: "gpt2", name: name), Fixture(family: "gpt2", name: name, kvCache: .f16)]
    }
    static let jambaFixtures: [Fixture] = JambaParityTests.cases.flatMap { name -> [Fixture] in
        [Fixture(family: "jamba", name: name), Fixture(family: "jamba", name: name, kvCache: .f16)]
            + (name.hasSuffix("f32") ? [] : [Fixture(family: "jamba", name: name, weights: .f32)])
    }

    /// Max |error| relative to the largest |logit| (the bound for F32 weights; F16/BF16 fixtures
    /// are compared with transformers run in float32 on the same rounded weights).
    static let tolerance: Float = 1e-4

    @Test(arguments: fixtures)
    func logitsMatchTransformers(_ fixture: Fixture) throws {
        let (dir, name) = (fixture.directory, fixture.name)
        let reference = try Fixtures.reference(dir)
        let (expected, shape) = try Fixtures.logits(dir)
        let model = try fixture.load()
        let vocab = model.info.vocabSize
        #expect(shape == [reference.ids.count, vocab])
        var logits = [Float](repeating: .nan, count: reference.ids.count * vocab)
        try logits.withUnsafeMutableBufferPointer { try model.prefill(reference.ids, allLogits: $0.baseAddress!) }
        for t in 0..<reference.ids.count {
            let row = logits.withUnsafeBufferPointer { UnsafeBufferPointer(rebasing: $0[t * vocab..<(t + 1) * vocab]) }
            let error = relativeError(row, expected[t * vocab..<(t + 1) * vocab])
            #expect(error <= fixture.tolerance, "\(name): position \(t) relative error \(error)")
        }
    }

    @Test(arguments: fixtures)
    func prefillThenDecodeEqualsOnePrefill(_ fixture: Fixture) throws {
        let (dir, name) = (fixture.directory, fixture.name)
        let reference = try Fixtures.reference(dir)
        let (expected, _) = try Fixtures.logits(dir)
        let model = try fixture.load()
        let vocab = model.info.vocabSize
        let split = 5
        try model.prefill(Array(reference.ids[..<split]))
        for t in (split - 1)..<reference.ids.count {
            if t >= split { try model.decode(reference.ids[t]) }
            let error = relativeError(model.lastLogits, expected[t * vocab..<(t + 1) * vocab])
            #expect(error <= fixture.tolerance, "\(name): decode at position \(t) relative error \(error)")
        }
        #expect(model.position == reference.ids.count)
    }

    /// Exact ids: not asked of the f16 cache, whose rounding may flip a near-tie.
    @Test(arguments: fixtures.filter { $0.kvCache == .f32 })
    func greedyContinuationMatchesTransformers(_ fixture: Fixture) throws {
        let (dir, name) = (fixture.directory, fixture.name)
        let reference = try Fixtures.reference(dir)
        let model = try fixture.load()
        let sampler = Sampler(settings: .init(temperature: 0), vocabSize: model.info.vocabSize)
        let generator = Generator(model: model, sampler: sampler, stopTokens: [])
        let (ids, _) = try generator.generate(prompt: reference.greedy_prompt,
                                              maxTokens: reference.greedy_continuation.count) { _ in true }
        #expect(ids == reference.greedy_continuation)
    }
}
