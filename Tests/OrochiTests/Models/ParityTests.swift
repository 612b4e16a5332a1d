import Foundation
import Testing
@testable import Orochi

/// Every model fixture of every architecture: logits against transformers at every position,
/// prefill-then-decode against one prefill, and the greedy continuation against transformers'
/// `generate`. The fixtures come from Scripts/fixtures/ (`make fixtures`).
struct ParityTests {
    struct Fixture: CustomTestStringConvertible, Sendable {
        let family: String, name: String
        var directory: URL { Fixtures.directory(family, name) }
        var testDescription: String { "\(family)/\(name)" }
    }

    static let fixtures: [Fixture] =
        LlamaParityTests.cases.map { Fixture(family: "llama", name: $0) } +
        MambaParityTests.cases.map { Fixture(family: "mamba", name: $0) }

    /// Max |error| relative to the largest |logit| (the bound for F32 weights; F16/BF16 fixtures
    /// are compared with transformers run in float32 on the same rounded weights).
    static let tolerance: Float = 1e-4

    @Test(arguments: fixtures)
    func logitsMatchTransformers(_ fixture: Fixture) throws {
        let (dir, name) = (fixture.directory, fixture.name)
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

    @Test(arguments: fixtures)
    func prefillThenDecodeEqualsOnePrefill(_ fixture: Fixture) throws {
        let (dir, name) = (fixture.directory, fixture.name)
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

    @Test(arguments: fixtures)
    func greedyContinuationMatchesTransformers(_ fixture: Fixture) throws {
        let (dir, name) = (fixture.directory, fixture.name)
        let reference = try Fixtures.reference(dir)
        let model = try ModelRegistry.load(directory: dir)
        let sampler = Sampler(settings: .init(temperature: 0), vocabSize: model.info.vocabSize)
        let generator = Generator(model: model, sampler: sampler, stopTokens: [])
        let (ids, _) = try generator.generate(prompt: reference.greedy_prompt,
                                              maxTokens: reference.greedy_continuation.count) { _ in true }
        #expect(ids == reference.greedy_continuation)
    }
}
