import Foundation
import Testing
@testable import Orochi

struct PerplexityTests {
    let dir = Fixtures.directory("llama", "gqa_linear_f32")

    /// One window over the whole sequence: the NLL equals the one computed from transformers' logits.
    @Test func oneWindowMatchesReferenceLogits() throws {
        let reference = try Fixtures.reference(dir)
        let (logits, shape) = try Fixtures.logits(dir)
        let vocab = shape[1]
        var expected = 0.0
        for t in 1..<reference.ids.count {
            expected += logits.withUnsafeBufferPointer {
                Perplexity.negativeLogProbability(of: reference.ids[t], in: $0.baseAddress! + (t - 1) * vocab, count: vocab)
            }
        }
        let model = try ModelRegistry.load(directory: dir)
        let result = try Perplexity.evaluate(model: model, tokens: reference.ids, characters: 7,
                                             context: 64, stride: 32)
        #expect(result.scoredTokens == reference.ids.count - 1)
        #expect(abs(result.negativeLogLikelihood - expected) / expected < 1e-5)
        #expect(abs(result.bitsPerCharacter - expected / log(2) / 7) < 1e-4)
    }

    /// Overlapping windows score every token after the first exactly once.
    @Test(arguments: [(6, 3), (5, 1), (13, 7), (8, 7)])
    func windowsScoreEachTokenOnce(_ window: (Int, Int)) throws {
        let reference = try Fixtures.reference(dir)
        let model = try ModelRegistry.load(directory: dir)
        var calls = 0
        let result = try Perplexity.evaluate(model: model, tokens: reference.ids, characters: 1,
                                             context: window.0, stride: window.1) { _, _ in calls += 1 }
        #expect(result.scoredTokens == reference.ids.count - 1)
        #expect(result.perplexity > 1)
        #expect(calls >= 1)
    }

    /// Windows that do not overlap cannot score the first token of each window after the first.
    @Test func disjointWindowsSkipEachWindowsFirstToken() throws {
        let reference = try Fixtures.reference(dir)   // 14 tokens: windows [0,4) [4,8) [8,12) [12,14)
        let model = try ModelRegistry.load(directory: dir)
        let result = try Perplexity.evaluate(model: model, tokens: reference.ids, characters: 1, context: 4, stride: 4)
        #expect(result.scoredTokens == 13 - 3)
    }

    @Test func rejectsBadInput() throws {
        let model = try ModelRegistry.load(directory: dir)
        #expect(throws: PerplexityError.tooShort(tokens: 1)) {
            try Perplexity.evaluate(model: model, tokens: [1], characters: 1, context: 8, stride: 4)
        }
        #expect(throws: PerplexityError.badWindow(context: 8, stride: 9)) {
            try Perplexity.evaluate(model: model, tokens: [1, 2, 3], characters: 1, context: 8, stride: 9)
        }
    }
}
