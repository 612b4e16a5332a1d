import Foundation
import Orochi
import OrochiKernels

/// What serving several sequences at once buys: the decode step of B sequences at one depth,
/// one pass over the weights for all of them (`decode(batch:sequences:)`), against B = 1; and
/// the time to first token of a prompt computed, against one resumed from the engine's prompt
/// cache. `orochi bench --batch-sizes 1,2,4,8`.
public struct BatchBenchRow: Sendable {
    public var subject: String
    public var batch: Int
    public var depth: Int
    /// One decode step of the whole batch, seconds.
    public var step: BenchSummary
    /// Tokens per second over the batch (B / median step).
    public var tokensPerSecond: Double { Double(batch) / step.median }
}

public struct PromptReuseRow: Sendable {
    public var subject: String
    public var promptTokens: Int
    /// Time to first token through the engine: the prompt computed, and resumed from its saved state.
    public var cold: BenchSummary, resumed: BenchSummary
}

public enum BatchBench {
    /// For each subject and batch size: B sequences prefilled with `depth` random ids, then
    /// `steps` timed batched decode steps (after one untimed), `repetitions` times.
    public static func run(subjects: [BenchSubject], batchSizes: [Int], depth: Int, steps: Int, repetitions: Int,
                           threads: Int, seed: UInt64, progress: (String) -> Void = { _ in }) throws
        -> (batches: [BatchBenchRow], reuse: [PromptReuseRow]) {
        BLAS.threads = threads
        var rows: [BatchBenchRow] = [], reuse: [PromptReuseRow] = []
        for subject in subjects {
            let model = try subject.make(depth + steps + 2)
            var rng = SplitMix64(seed: seed)
            let vocab = model.info.vocabSize
            for b in batchSizes {
                let sequences = (0..<b).map { _ in model.makeSequence() }
                var times: [Double] = []
                for _ in 0..<repetitions {
                    for s in sequences {
                        s.reset()
                        model.sequence = s
                        try model.prefill((0..<depth).map { _ in Int(rng.next() % UInt64(vocab)) })
                    }
                    let tokens = (0..<b).map { _ in Int(rng.next() % UInt64(vocab)) }
                    try model.decode(batch: tokens, sequences: sequences)            // untimed: warms the batch scratch
                    for _ in 0..<steps {
                        let start = Clock.now()
                        try model.decode(batch: tokens, sequences: sequences)
                        times.append(Clock.now() - start)
                    }
                }
                let row = BatchBenchRow(subject: subject.name, batch: b, depth: depth, step: BenchSummary(times)!)
                progress(String(format: "%@ batch %d at depth %d: %.2f ms per step, %.1f tokens/s", subject.name, b, depth,
                                row.step.median * 1000, row.tokensPerSecond))
                rows.append(row)
            }
            reuse.append(try promptReuse(subject: subject.name, model: model, promptTokens: depth, repetitions: repetitions, rng: &rng))
        }
        return (rows, reuse)
    }

    /// A fresh prompt each repetition (computed), then the same prompt again (resumed).
    static func promptReuse(subject: String, model: any LanguageModel, promptTokens n: Int, repetitions: Int,
                            rng: inout SplitMix64) throws -> PromptReuseRow {
        let engine = try BatchEngine(model: model, options: .init(maxBatch: 1, prefillChunk: max(1, n)))
        defer { engine.shutdown() }
        var cold: [Double] = [], resumed: [Double] = []
        for _ in 0..<repetitions {
            let prompt = (0..<n).map { _ in Int(rng.next() % UInt64(model.info.vocabSize)) }
            cold.append(try firstToken(engine, prompt))
            resumed.append(try firstToken(engine, prompt))
        }
        return PromptReuseRow(subject: subject, promptTokens: n, cold: BenchSummary(cold)!, resumed: BenchSummary(resumed)!)
    }

    /// Seconds from submitting a one-token completion to its token.
    static func firstToken(_ engine: BatchEngine, _ prompt: [Int]) throws -> Double {
        final class Result: @unchecked Sendable { var seconds = 0.0; let done = DispatchSemaphore(value: 0) }
        let result = Result()
        let start = Clock.now()
        let stream = try engine.submit(CompletionJob(prompt: prompt, maxTokens: 1, sampling: .init(temperature: 0), stopTokens: []))
        Task {
            for try await event in stream { if case .token = event { result.seconds = Clock.now() - start } }
            result.done.signal()
        }
        result.done.wait()
        return result.seconds
    }

    public static func table(_ rows: [BatchBenchRow], _ reuse: [PromptReuseRow]) -> String {
        var out = "subject            batch  depth  step ms (median, min-max)     tokens/s  vs batch 1\n"
        for r in rows {
            let one = rows.first { $0.subject == r.subject && $0.batch == 1 }
            out += r.subject.padding(toLength: 18, withPad: " ", startingAt: 0)
                + String(format: " %5d  %5d  %8.3f (%.3f-%.3f)%@ %9.1f  %@\n", r.batch, r.depth, r.step.median * 1000,
                         r.step.min * 1000, r.step.max * 1000, String(repeating: " ", count: 4), r.tokensPerSecond,
                         one.map { String(format: "%.2f×", r.tokensPerSecond / $0.tokensPerSecond) } ?? "—")
        }
        out += "\nsubject            prompt  first token: computed ms  resumed from the prompt cache ms  ratio\n"
        for r in reuse {
            out += r.subject.padding(toLength: 18, withPad: " ", startingAt: 0)
                + String(format: " %6d  %24.2f  %32.2f  %.1f×\n", r.promptTokens, r.cold.median * 1000, r.resumed.median * 1000,
                         r.cold.median / r.resumed.median)
        }
        return out
    }
}
