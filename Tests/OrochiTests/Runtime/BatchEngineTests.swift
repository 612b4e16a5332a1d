import Foundation
import Testing
@testable import Orochi

/// The serving engine: continuous batching gives every request what `orochi generate` gives it
/// alone; limits, cancellation, prompt reuse and shutdown.
struct BatchEngineTests {
    static let fixtures = [("llama", "gqa_linear_f32"), ("mamba", "k4_auto_tied_f32"), ("jamba", "attn2_moe4top2_tied_f16")]

    static func load(_ fixture: (String, String)) throws -> any LanguageModel {
        try ModelRegistry.load(directory: Fixtures.directory(fixture.0, fixture.1))
    }

    /// What `orochi generate` does: Generator on a model of its own.
    static func generate(_ fixture: (String, String), _ prompt: [Int], maxTokens: Int,
                         settings: Sampler.Settings = .init(temperature: 0), stop: Set<Int> = []) throws -> [Int] {
        let model = try load(fixture)
        return try Generator(model: model, sampler: Sampler(settings: settings, vocabSize: model.info.vocabSize), stopTokens: stop)
            .generate(prompt: prompt, maxTokens: maxTokens) { _ in true }.0
    }

    struct Outcome { var started: CompletionEvent?; var tokens: [Int] = []; var logprobs: [Float?] = []; var top: [[TokenChoice]] = []; var finish: FinishReason? }

    static func collect(_ stream: AsyncThrowingStream<CompletionEvent, Error>) async throws -> Outcome {
        var o = Outcome()
        for try await event in stream {
            switch event {
            case .started: #expect(o.started == nil && o.tokens.isEmpty); o.started = event
            case let .token(id, logprob, top):
                #expect(o.finish == nil); o.tokens.append(id); o.logprobs.append(logprob); o.top.append(top)
            case let .finished(reason): o.finish = reason
            }
        }
        return o
    }

    static func job(_ prompt: [Int], _ maxTokens: Int, settings: Sampler.Settings = .init(temperature: 0),
                    stop: Set<Int> = [], logprobs: Bool = false, top: Int = 0) -> CompletionJob {
        CompletionJob(prompt: prompt, maxTokens: maxTokens, sampling: settings, stopTokens: stop, logprobs: logprobs, topLogprobs: top)
    }

    /// Five requests at once on three slots, with prompts longer than a prefill chunk: each gets
    /// the tokens it gets alone.
    @Test(arguments: fixtures)
    func concurrentRequestsGetWhatTheyGetAlone(_ fixture: (String, String)) async throws {
        let engine = try BatchEngine(model: try Self.load(fixture),
                                     options: .init(maxBatch: 3, maxQueue: 8, prefillChunk: 5, promptCacheBytes: 0))
        defer { engine.shutdown() }
        let vocab = engine.vocabSize
        let prompts = (0..<5).map { i in (0..<(3 + 4 * i)).map { ($0 * 7 + i * 13 + 1) % vocab } }
        let maxTokens = [9, 4, 12, 1, 7]
        let seeded = Sampler.Settings(temperature: 0.9, topK: 5, topP: 0.9, seed: 11)
        let streams = try prompts.indices.map { i in
            try engine.submit(Self.job(prompts[i], maxTokens[i], settings: i == 4 ? seeded : .init(temperature: 0)))
        }
        for i in prompts.indices {
            let o = try await Self.collect(streams[i])
            let expected = try Self.generate(fixture, prompts[i], maxTokens: maxTokens[i],
                                             settings: i == 4 ? seeded : .init(temperature: 0))
            #expect(o.tokens == expected, "\(fixture) request \(i)")
            #expect(o.started == .started(promptTokens: prompts[i].count, cachedTokens: 0))
            #expect(o.finish == .length)
        }
        let stats = engine.stats
        #expect(stats.generatedTokens == maxTokens.reduce(0, +))
        #expect(stats.promptTokens == prompts.map(\.count).reduce(0, +))
    }

    /// A stop token ends the completion and is its last token; log-probabilities when asked.
    @Test func stopTokenAndLogprobs() async throws {
        let fixture = Self.fixtures[0]
        let prompt = [3, 17, 42, 5]
        let free = try Self.generate(fixture, prompt, maxTokens: 8)
        let stop = free[3]
        let engine = try BatchEngine(model: try Self.load(fixture))
        defer { engine.shutdown() }
        let o = try await Self.collect(try engine.submit(Self.job(prompt, 8, stop: [stop], logprobs: true)))
        let firstStop = free.firstIndex(of: stop)!
        #expect(o.tokens == Array(free[...firstStop]))
        #expect(o.finish == .stop)
        #expect(o.logprobs.allSatisfy { $0 != nil && $0! <= 0 && $0!.isFinite })
        #expect(o.top.allSatisfy { $0.isEmpty })
    }

    /// Greedy with top_logprobs: the first alternative is the sampled token with its
    /// log-probability, the list is sorted, and it agrees with the model's logits of the prompt.
    @Test func topLogprobs() async throws {
        let fixture = Self.fixtures[0]
        let prompt = [3, 17, 42, 5]
        let engine = try BatchEngine(model: try Self.load(fixture))
        defer { engine.shutdown() }
        let o = try await Self.collect(try engine.submit(Self.job(prompt, 4, logprobs: true, top: 5)))
        #expect(o.tokens.count == 4)
        for (i, top) in o.top.enumerated() {
            #expect(top.count == 5)
            #expect(top.first?.id == o.tokens[i])
            #expect(top.first?.logprob == o.logprobs[i])
            #expect(zip(top, top.dropFirst()).allSatisfy { $0.logprob >= $1.logprob })
        }
        // The first step's alternatives from the logits of a forward pass over the prompt.
        let model = try Self.load(fixture)
        try model.prefill(prompt, allLogits: nil)
        let expected = withExtendedLifetime(model) { mostLikely(5, in: model.lastLogits) }
        #expect(o.top[0].map(\.id) == expected.map(\.id))
        for (a, b) in zip(o.top[0], expected) { #expect(abs(a.logprob - b.logprob) < 1e-4) }
        #expect(throws: EngineError.self) { try engine.submit(Self.job(prompt, 1, logprobs: true, top: 21)) }
    }

    /// mostLikely against a full sort, with ties broken by id.
    @Test func mostLikelyMatchesSorting() {
        var rng = SystemRandomNumberGenerator()
        for trial in 0..<20 {
            let n = 1 + trial * 7
            let logits = (0..<n).map { _ in Float(Int.random(in: -4...4, using: &rng)) / 2 }
            for k in [0, 1, 3, 20] {
                let got = logits.withUnsafeBufferPointer { mostLikely(k, in: $0) }
                let want = logits.indices.sorted { logits[$0] != logits[$1] ? logits[$0] > logits[$1] : $0 < $1 }.prefix(k)
                #expect(got.map(\.id) == Array(want))
                let total = logits.withUnsafeBufferPointer { mostLikely(n, in: $0) }.map { exp(Double($0.logprob)) }.reduce(0, +)
                #expect(abs(total - 1) < 1e-5)
            }
        }
    }

    /// A prompt that extends an earlier prompt, or an earlier prompt and its completion, resumes
    /// from the saved state, with the same tokens as computing it all.
    @Test(arguments: fixtures)
    func promptReuse(_ fixture: (String, String)) async throws {
        let engine = try BatchEngine(model: try Self.load(fixture), options: .init(prefillChunk: 4))
        defer { engine.shutdown() }
        let first = [3, 17, 42, 5, 60, 8, 11]
        let a = try await Self.collect(try engine.submit(Self.job(first, 5)))
        #expect(a.started == .started(promptTokens: first.count, cachedTokens: 0))
        let extended = first + [9, 2, 30]
        let b = try await Self.collect(try engine.submit(Self.job(extended, 6)))
        #expect(b.started == .started(promptTokens: extended.count, cachedTokens: first.count))
        #expect(b.tokens == (try Self.generate(fixture, extended, maxTokens: 6)))
        // A chat's next turn: the first prompt, its reply, then more.
        let followUp = first + a.tokens + [4, 4]
        let c = try await Self.collect(try engine.submit(Self.job(followUp, 3)))
        #expect(c.started == .started(promptTokens: followUp.count, cachedTokens: first.count + a.tokens.count - 1))
        #expect(c.tokens == (try Self.generate(fixture, followUp, maxTokens: 3)))
        // The same prompt again: nothing to compute.
        let d = try await Self.collect(try engine.submit(Self.job(first, 5)))
        #expect(d.started == .started(promptTokens: first.count, cachedTokens: first.count))
        #expect(d.tokens == a.tokens)
        #expect(engine.stats.cachedPromptTokens == first.count + (first.count + a.tokens.count - 1) + first.count)
    }

    /// A client that goes away frees its sequence; a full queue refuses at once; a drained
    /// engine refuses new work.
    @Test func cancellationQueueLimitAndShutdown() async throws {
        let engine = try BatchEngine(model: try Self.load(("mamba", "k4_auto_tied_f32")),
                                     options: .init(maxBatch: 1, maxQueue: 0))
        do {
            let endless = try engine.submit(Self.job([1, 2, 3], 1_000_000))
            var iterator = endless.makeAsyncIterator()
            _ = try await iterator.next()                                  // started: it runs
            #expect(throws: EngineError.queueFull(limit: 0)) { try engine.submit(Self.job([4, 5], 3)) }
        }                                                                  // the stream is dropped here
        var waited = 0
        while !engine.isIdle && waited < 500 { try await Task.sleep(nanoseconds: 10_000_000); waited += 1 }
        #expect(engine.isIdle, "the cancelled request still runs")
        #expect(engine.stats.generatedTokens < 1_000_000)
        let after = try await Self.collect(try engine.submit(Self.job([4, 5], 3)))
        #expect(after.tokens.count == 3)
        engine.shutdown()
        #expect(throws: EngineError.shuttingDown) { try engine.submit(Self.job([4, 5], 3)) }
    }

    @Test func badRequestsAreRefusedAtOnce() throws {
        let engine = try BatchEngine(model: try ModelRegistry.load(directory: Fixtures.directory("llama", "gqa_linear_f32"),
                                                                  options: LoadOptions(context: 16)))
        defer { engine.shutdown() }
        #expect(throws: EngineError.emptyPrompt) { try engine.submit(Self.job([], 3)) }
        #expect(throws: EngineError.promptTooLong(tokens: 16, context: 16)) { try engine.submit(Self.job(Array(repeating: 1, count: 16), 3)) }
        #expect(throws: EngineError.self) { try engine.submit(Self.job([1, engine.vocabSize], 3)) }
        #expect(throws: EngineError.self) { try engine.submit(Self.job([1], -1)) }
        #expect(throws: EngineError.self) { try engine.submit(Self.job([1], 3, settings: .init(temperature: -1))) }
        #expect(throws: EngineError.self) { try BatchEngine(model: engine.model, options: .init(maxBatch: 0)) }
        // Slots whose caches could not all be held are refused before any is allocated.
        #expect(throws: SizeError.self) { try BatchEngine(model: engine.model, options: .init(maxBatch: Int.max / 2)) }
    }

    /// A prompt near the end of the context: the completion stops when the cache is full, as
    /// Generator's does.
    @Test func completionStopsAtAFullContext() async throws {
        let model = try ModelRegistry.load(directory: Fixtures.directory("llama", "gqa_linear_f32"), options: LoadOptions(context: 12))
        let engine = try BatchEngine(model: model)
        defer { engine.shutdown() }
        let o = try await Self.collect(try engine.submit(Self.job(Array(1...9), 50)))
        #expect(o.tokens.count == 3 && o.finish == .length)
    }
}
