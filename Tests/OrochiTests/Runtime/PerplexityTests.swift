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

    /// Windows longer than the pieces they are prefilled in (512 positions): the same NLL as one
    /// prefill of each whole window with all its logits, which --context 200,000 could not hold
    /// (hardening issue, class 7). Windows of 1,300 with strides of 650 and of 1,300 over 2,000
    /// tokens of a state-space model, whose context has no limit.
    @Test(arguments: [650, 1300])
    func longWindowsScoreLikeOnePrefill(_ stride: Int) throws {
        let model = try ModelRegistry.load(directory: Fixtures.directory("mamba", "k4_auto_tied_f32"))
        let vocab = model.info.vocabSize, context = 1300
        var rng = SplitMix64(seed: 21)
        let tokens = (0..<2000).map { _ in Int(rng.next() % UInt64(vocab)) }
        var expected = 0.0, scored = 0, previousEnd = 0, begin = 0
        while begin < tokens.count {
            let end = min(begin + context, tokens.count)
            var logits = [Float](repeating: 0, count: (end - begin) * vocab)
            model.reset()
            try logits.withUnsafeMutableBufferPointer { try model.prefill(Array(tokens[begin..<end]), allLogits: $0.baseAddress!) }
            for t in max(begin + 1, previousEnd)..<end {
                expected += logits.withUnsafeBufferPointer {
                    Perplexity.negativeLogProbability(of: tokens[t], in: $0.baseAddress! + (t - 1 - begin) * vocab, count: vocab)
                }
                scored += 1
            }
            previousEnd = end
            if end == tokens.count { break }
            begin += stride
        }
        let result = try Perplexity.evaluate(model: model, tokens: tokens, characters: 1, context: context, stride: stride)
        #expect(result.scoredTokens == scored)
        #expect(abs(result.negativeLogLikelihood - expected) / expected < 1e-9, "\(result.negativeLogLikelihood) against \(expected)")
    }
}
