import Foundation
import Testing
@testable import Orochi

/// Several sequences on one model: `decode(batch:sequences:)` gives each sequence what decoding
/// it alone gives, whatever the others are doing.
struct BatchTests {
    static let fixtures = [("llama", "gqa_linear_f32"), ("llama", "mistral_window_f32"), ("llama", "mqa_llama3_f16"),
                           ("mamba", "k4_auto_tied_f32"), ("mamba", "k3_rank6_tied_f16"),
                           ("jamba", "attn2_moe4top2_tied_f16"), ("jamba", "attn4_dense_untied_bf16")]

    static func load(_ fixture: (String, String)) throws -> any LanguageModel {
        try ModelRegistry.load(directory: Fixtures.directory(fixture.0, fixture.1))
    }

    static func prompts(vocab: Int) -> [[Int]] {
        [[3, 17, 42, 5, 60, 8, 11], [9, 2], [1, 33, 7, 7, 19, 50, 4, 28, 61, 13, 6, 40]].map { $0.map { $0 % vocab } }
    }

    static func argmax(_ logits: UnsafeBufferPointer<Float>) -> Int {
        var best = 0
        for i in logits.indices where logits[i] > logits[best] { best = i }
        return best
    }

    /// Greedy decoding of each prompt alone: the logits after the prompt and after each of
    /// `steps` tokens, and the tokens.
    static func alone(_ model: any LanguageModel, _ prompt: [Int], steps: Int) throws -> (logits: [[Float]], tokens: [Int]) {
        model.sequence = model.makeSequence()
        try model.prefill(prompt)
        var logits = [Array(model.lastLogits)], tokens: [Int] = []
        for _ in 0..<steps {
            let token = argmax(model.lastLogits)
            tokens.append(token)
            try model.decode(token)
            logits.append(Array(model.lastLogits))
        }
        return (logits, tokens)
    }

    /// Three sequences of different lengths; the third joins two steps late, so the batch is
    /// 2 then 3 sequences at different positions.
    @Test(arguments: fixtures)
    func batchedDecodeEqualsDecodingAlone(_ fixture: (String, String)) throws {
        let model = try Self.load(fixture)
        let prompts = Self.prompts(vocab: model.info.vocabSize), steps = 6, late = 2
        let reference = try prompts.enumerated().map { i, p in try Self.alone(model, p, steps: i == 2 ? steps - late : steps) }

        let sequences = prompts.map { _ in model.makeSequence() }
        func prefill(_ i: Int) throws { model.sequence = sequences[i]; try model.prefill(prompts[i]) }
        try prefill(0); try prefill(1)
        var produced: [[Int]] = [[], [], []]
        for step in 0..<steps {
            if step == late { try prefill(2) }
            let active = step < late ? [0, 1] : [0, 1, 2]
            var tokens: [Int] = []
            for i in active {
                let k = produced[i].count
                let error = relativeError(sequences[i].lastLogits, reference[i].logits[k][...])
                #expect(error < 1e-4, "\(fixture) sequence \(i) step \(k): relative error \(error)")
                tokens.append(Self.argmax(sequences[i].lastLogits))
                produced[i].append(tokens.last!)
            }
            try model.decode(batch: tokens, sequences: active.map { sequences[$0] })
        }
        for i in 0..<3 {
            #expect(produced[i] == reference[i].tokens, "\(fixture) sequence \(i)")
            #expect(sequences[i].position == prompts[i].count + produced[i].count)
        }
        // lastLogits points into the sequence: keep the sequences alive while it is read.
        withExtendedLifetime(sequences) {
            let error = relativeError(sequences[0].lastLogits, reference[0].logits[steps][...])
            #expect(error < 1e-4, "\(fixture) last logits: \(error)")
        }
    }

    /// A sequence's snapshot is its own: saving one and loading it into another.
    @Test(arguments: fixtures)
    func snapshotsFollowTheSequence(_ fixture: (String, String)) throws {
        let model = try Self.load(fixture)
        let prompts = Self.prompts(vocab: model.info.vocabSize)
        let a = model.makeSequence(), b = model.makeSequence()
        model.sequence = a; try model.prefill(prompts[0])
        model.sequence = b; try model.prefill(prompts[2])
        model.sequence = a
        let saved = model.saveState()
        let c = model.makeSequence()
        model.sequence = c
        try model.loadState(saved)
        #expect(c.position == prompts[0].count && b.position == prompts[2].count)
        #expect(Array(c.lastLogits) == Array(a.lastLogits))
        try model.decode(batch: [5, 5], sequences: [a, c])
        #expect(Array(c.lastLogits) == Array(a.lastLogits))
        withExtendedLifetime((a, b, c)) {}                 // lastLogits points into them
    }

    @Test func badBatchesAreRefusedBeforeAnyChange() throws {
        let model = try Self.load(("llama", "gqa_linear_f32"))
        let other = try Self.load(("llama", "gqa_linear_f32"))
        let a = model.makeSequence(), b = model.makeSequence()
        model.sequence = a; try model.prefill([1, 2, 3])
        func refused(_ tokens: [Int], _ sequences: [SequenceState], _ what: String) {
            #expect(throws: ModelError.self, "\(what)") { try model.decode(batch: tokens, sequences: sequences) }
        }
        refused([], [], "empty batch")
        refused([1, 2], [a], "two tokens, one sequence")
        refused([1, 2], [a, a], "the same sequence twice")
        refused([1], [other.makeSequence()], "a sequence of another model")
        refused([1, model.info.vocabSize], [a, b], "a token outside the vocabulary")
        refused([1, -1], [a, b], "a negative token")
        #expect(a.position == 3 && b.position == 0)
        let small = try ModelRegistry.load(directory: Fixtures.directory("llama", "gqa_linear_f32"), options: LoadOptions(context: 4))
        let full = small.makeSequence()
        small.sequence = full; try small.prefill([1, 2, 3, 4])
        #expect(throws: ModelError.contextOverflow(requested: 5, capacity: 4)) { try small.decode(batch: [1], sequences: [full]) }
    }
}
