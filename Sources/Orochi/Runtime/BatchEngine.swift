import Foundation
import OrochiKernels

// The serving loop behind `orochi serve`: requests arrive from any thread, one worker thread
// runs the model. (First version: one request at a time; see the batched engine below.)

/// One completion to run: prompt ids in, sampled ids out.
public struct CompletionJob: Sendable {
    public var prompt: [Int]
    public var maxTokens: Int
    public var sampling: Sampler.Settings
    /// Ids that end the completion (the model's end-of-sequence ids); the id itself is reported.
    public var stopTokens: Set<Int>
    /// Report each sampled token's log-probability under the model (before temperature).
    public var logprobs: Bool
    /// With `logprobs`: also the `topLogprobs` most likely tokens at each step (0–`maxTopLogprobs`).
    public var topLogprobs: Int
    public static let maxTopLogprobs = 20

    public init(prompt: [Int], maxTokens: Int, sampling: Sampler.Settings, stopTokens: Set<Int>,
                logprobs: Bool = false, topLogprobs: Int = 0) {
        self.prompt = prompt; self.maxTokens = maxTokens; self.sampling = sampling
        self.stopTokens = stopTokens; self.logprobs = logprobs
        self.topLogprobs = topLogprobs
    }
}

/// A token and its log-probability under the model.
public struct TokenChoice: Sendable, Equatable {
    public var id: Int
    public var logprob: Float
    public init(id: Int, logprob: Float) { self.id = id; self.logprob = logprob }
}

/// What a running completion reports, in order: `started` once (after the prompt is in the
/// model: the first token follows at once), `token` for each sampled id, then `finished`.
public enum CompletionEvent: Sendable, Equatable {
    /// The prompt is in: `cachedTokens` of it were resumed from the prompt cache, not computed.
    case started(promptTokens: Int, cachedTokens: Int)
    /// `logprob`: the sampled token's log-probability, when the job asked for them; `top`: the
    /// job's `topLogprobs` most likely tokens at this step, most likely first (ties: lower id first).
    case token(id: Int, logprob: Float?, top: [TokenChoice])
    case finished(FinishReason)
}

public enum FinishReason: String, Sendable, Equatable {
    /// A stop token was sampled (it is the last `token` event).
    case stop
    /// `maxTokens` were sampled, or the context is full.
    case length
}

public enum EngineError: Error, Equatable, CustomStringConvertible {
    /// The queue holds `limit` requests already.
    case queueFull(limit: Int)
    /// The engine is draining (SIGTERM) and takes no new request.
    case shuttingDown
    /// The prompt does not fit the context with room for one token.
    case promptTooLong(tokens: Int, context: Int)
    case emptyPrompt
    case badRequest(String)

    public var description: String {
        switch self {
        case let .queueFull(limit): return "the server is busy: \(limit) requests are already queued"
        case .shuttingDown: return "the server is shutting down"
        case let .promptTooLong(tokens, context):
            return "the prompt has \(tokens) tokens; this model's context holds \(context), with room for at least one new token"
        case .emptyPrompt: return "the prompt is empty"
        case let .badRequest(detail): return detail
        }
    }
}

/// Counters for /metrics, read at any time.
public struct EngineStats: Sendable {
    public var queued = 0
    public var running = 0
    /// Sequences decoded together in the last step.
    public var lastBatchSize = 0
    public var promptTokens = 0
    public var cachedPromptTokens = 0
    public var generatedTokens = 0
    public var steps = 0
}

/// Model compute is serialised process-wide: the kernels' thread pool and the profiler are shared.
enum ComputeLock {
    static let lock = NSLock()
}

/// Runs completions on one model from a worker thread of its own, with continuous batching:
/// every step, the sequences that are decoding advance together by one token in one pass over
/// the weights (`decode(batch:sequences:)`), new requests join between steps and finished ones
/// leave; prompts are computed `prefillChunk` tokens per step so that a long prompt does not
/// stall the running streams. A prompt that starts with a prompt (or a prompt and completion)
/// seen before resumes from its saved state (a cache bounded by bytes).
///
/// `submit` may be called from any thread; each completion's events arrive on the stream it
/// returns; dropping the stream (a client that went away) cancels the completion and frees its
/// sequence. Sampling is `Generator`'s: the same request gives the same tokens as
/// `orochi generate`, alone or in a batch.
public final class BatchEngine: @unchecked Sendable {
    public struct Options: Sendable {
        /// Most sequences in flight (decoding or reading their prompt) at once.
        public var maxBatch: Int
        /// Most requests waiting for a free slot; beyond it `submit` throws `queueFull`.
        public var maxQueue: Int
        /// Prompt tokens computed per step, so that a long prompt does not stall running streams.
        public var prefillChunk: Int
        /// Bytes of saved states kept for prompt reuse (0: off).
        public var promptCacheBytes: Int
        public init(maxBatch: Int = 8, maxQueue: Int = 64, prefillChunk: Int = 128, promptCacheBytes: Int = 256 << 20) {
            self.maxBatch = maxBatch; self.maxQueue = maxQueue; self.prefillChunk = prefillChunk
            self.promptCacheBytes = promptCacheBytes
        }
    }

    public let model: any LanguageModel
    public let options: Options
    public let contextCapacity: Int
    public let vocabSize: Int

    final class Request {
        let job: CompletionJob
        let continuation: AsyncThrowingStream<CompletionEvent, Error>.Continuation
        var cancelled = false                       // under the engine's condition lock
        init(job: CompletionJob, continuation: AsyncThrowingStream<CompletionEvent, Error>.Continuation) {
            self.job = job; self.continuation = continuation
        }
    }

    /// A request in flight: its sequence, and where it is.
    final class Active {
        let request: Request
        let sequence: SequenceState
        let sampler: Sampler
        var history: [Int]                          // prompt + sampled tokens (for the sampler)
        var consumed: Int                           // prompt tokens in the sequence
        var resumed = 0                             // of which from the prompt cache
        var generated = 0
        var budget = 0                              // tokens to sample, once the prompt is in
        var pending: Int?                           // the last sampled token, to decode next step
        init(request: Request, sequence: SequenceState, sampler: Sampler) {
            self.request = request; self.sequence = sequence; self.sampler = sampler
            history = request.job.prompt; consumed = 0
        }
        var job: CompletionJob { request.job }
        var prefilling: Bool { consumed < job.prompt.count }
    }

    private let condition = NSCondition()
    // Under `condition`:
    private var queue: [Request] = []
    private var accepting = true
    private var running = 0
    private var statsValue = EngineStats()
    // The worker's own:
    private var active: [Active] = []
    private var spare: [SequenceState] = []
    private let promptCache: PromptCache

    public init(model: any LanguageModel, options: Options = Options()) throws {
        guard options.maxBatch >= 1 else { throw EngineError.badRequest("max batch must be ≥ 1, got \(options.maxBatch)") }
        guard options.maxQueue >= 0 else { throw EngineError.badRequest("max queue must be ≥ 0, got \(options.maxQueue)") }
        guard options.prefillChunk >= 1 else { throw EngineError.badRequest("prefill chunk must be ≥ 1, got \(options.prefillChunk)") }
        guard options.promptCacheBytes >= 0 else { throw EngineError.badRequest("prompt cache bytes must be ≥ 0, got \(options.promptCacheBytes)") }
        // Every slot may hold a sequence: its KV cache at full capacity, or its state, and its logits
        // (derived from the model's sizes: nothing is allocated to find out).
        let perSequence = model.stateBytes(forTokens: model.contextCapacity == Int.max ? 0 : model.contextCapacity)
            + model.info.vocabSize * 4
        let (total, overflow) = perSequence.multipliedReportingOverflow(by: options.maxBatch)
        try Sizes.checkFits(overflow ? Int.max : total,
                            "\(options.maxBatch) sequences of \(perSequence) bytes each (KV caches at the full context, or states): lower the max batch or the context")
        self.model = model
        self.options = options
        contextCapacity = model.contextCapacity
        vocabSize = model.info.vocabSize
        promptCache = PromptCache(limit: options.promptCacheBytes)
        // The worker holds the engine until `shutdown()` has drained it.
        let thread = Thread { self.run() }
        thread.name = "orochi-engine"
        thread.start()
    }

    public var stats: EngineStats {
        condition.lock(); defer { condition.unlock() }
        return statsValue
    }

    /// Queues a completion. Throws at once when it cannot run: queue full, shutting down, empty
    /// prompt, a prompt that leaves no room in the context, an id outside the vocabulary, bad
    /// sampling settings.
    public func submit(_ job: CompletionJob) throws -> AsyncThrowingStream<CompletionEvent, Error> {
        guard !job.prompt.isEmpty else { throw EngineError.emptyPrompt }
        guard job.maxTokens >= 0 else { throw EngineError.badRequest("max_tokens must be ≥ 0, got \(job.maxTokens)") }
        guard (0...CompletionJob.maxTopLogprobs).contains(job.topLogprobs) else {
            throw EngineError.badRequest("top_logprobs must be from 0 to \(CompletionJob.maxTopLogprobs), got \(job.topLogprobs)")
        }
        do { try job.sampling.validate() } catch { throw EngineError.badRequest("\(error)") }
        if let bad = job.prompt.first(where: { $0 < 0 || $0 >= vocabSize }) {
            throw EngineError.badRequest("token id \(bad) is outside the vocabulary [0, \(vocabSize))")
        }
        guard job.prompt.count < contextCapacity else {
            throw EngineError.promptTooLong(tokens: job.prompt.count, context: contextCapacity)
        }
        var continuation: AsyncThrowingStream<CompletionEvent, Error>.Continuation!
        let stream = AsyncThrowingStream<CompletionEvent, Error>(bufferingPolicy: .unbounded) { continuation = $0 }
        let request = Request(job: job, continuation: continuation)
        condition.lock(); defer { condition.unlock() }
        guard accepting else { throw EngineError.shuttingDown }
        // A free slot takes the request at the next step; otherwise it waits in the queue.
        guard queue.count < options.maxQueue + max(0, options.maxBatch - running) else {
            throw EngineError.queueFull(limit: options.maxQueue)
        }
        continuation.onTermination = { [weak self, weak request] termination in
            guard let self, let request, case .cancelled = termination else { return }
            self.condition.lock(); request.cancelled = true; self.condition.signal(); self.condition.unlock()
        }
        queue.append(request)
        statsValue.queued = queue.count
        condition.signal()
        return stream
    }

    /// Stops taking requests; those queued and running finish, then the worker ends.
    public func shutdown() {
        condition.lock(); accepting = false; condition.broadcast(); condition.unlock()
    }

    /// True when no request is queued or running.
    public var isIdle: Bool {
        condition.lock(); defer { condition.unlock() }
        return queue.isEmpty && running == 0
    }

    // MARK: The worker

    private func run() {
        while true {
            // Admit waiting requests into free slots; drop cancelled ones; sleep when idle.
            condition.lock()
            while queue.isEmpty && active.isEmpty && accepting { condition.wait() }
            if queue.isEmpty && active.isEmpty { condition.unlock(); return }      // drained after shutdown
            var admitted: [Request] = []
            while active.count + admitted.count < options.maxBatch, !queue.isEmpty { admitted.append(queue.removeFirst()) }
            let cancelled = active.filter { $0.request.cancelled }     // empty (no allocation) but for a cancel
            admitted.removeAll { r in
                if r.cancelled { r.continuation.finish(); return true }
                return false
            }
            running += admitted.count                   // the slots are taken from now on
            statsValue.queued = queue.count
            condition.unlock()

            for a in cancelled { release(a, nil) }
            ComputeLock.lock.lock()
            for r in admitted { admit(r) }
            prefillStep()
            decodeStep()
            ComputeLock.lock.unlock()

            condition.lock()
            statsValue.running = active.count
            statsValue.steps += 1
            condition.unlock()
        }
    }

    /// A sequence for a new request: a spare one, or a new one from the model.
    private func admit(_ r: Request) {
        let sequence = spare.popLast() ?? model.makeSequence()
        sequence.reset()
        let a = Active(request: r, sequence: sequence, sampler: Sampler(settings: r.job.sampling, vocabSize: vocabSize))
        active.append(a)
        // Resume from the longest saved state whose tokens begin the prompt.
        if let (tokens, state) = promptCache.longestPrefix(of: r.job.prompt) {
            model.sequence = sequence
            if (try? model.loadState(state)) != nil { a.consumed = tokens; a.resumed = tokens } else { sequence.reset() }
        }
        count { $0.cachedPromptTokens += a.resumed; $0.promptTokens += r.job.prompt.count }
        if !a.prefilling { promptDone(a) }
    }

    /// Up to `prefillChunk` prompt tokens, oldest request first.
    private func prefillStep() {
        var budget = options.prefillChunk
        for a in active where a.prefilling && budget > 0 {
            let end = min(a.job.prompt.count, a.consumed + budget)
            model.sequence = a.sequence
            do {
                try model.prefill(Array(a.job.prompt[a.consumed..<end]))
                budget -= end - a.consumed
                a.consumed = end
                if !a.prefilling { promptDone(a) }
            } catch {
                release(a, error)
            }
        }
    }

    /// The prompt is in: save it for reuse, report it, sample the first token.
    private func promptDone(_ a: Active) {
        model.sequence = a.sequence
        if promptCache.limit > 0 && a.resumed < a.job.prompt.count { promptCache.insert(a.job.prompt, model.saveState()) }
        do { try FiniteCheck.checkLastLogits(model) } catch { release(a, error); return }
        a.request.continuation.yield(.started(promptTokens: a.job.prompt.count, cachedTokens: a.resumed))
        // As Generator: sample up to max_tokens, or until the context is full.
        let room = contextCapacity - a.sequence.position
        a.budget = max(0, min(a.job.maxTokens, room))
        sampleNext(a)
    }

    /// Samples from the sequence's last logits; finishes, or leaves the token to decode.
    private func sampleNext(_ a: Active) {
        guard a.generated < a.budget else { finish(a, .length); return }
        let logits = a.sequence.lastLogits
        let token = a.sampler.sample(logits, history: a.history)
        a.history.append(token)
        a.generated += 1
        var logprob: Float? = nil
        var top: [TokenChoice] = []
        if a.job.logprobs {
            let logSoftmax = LogSoftmax(logits)                      // one pass over the vocabulary for both
            logprob = logSoftmax(logits[token])
            if a.job.topLogprobs > 0 { top = mostLikely(a.job.topLogprobs, in: logits, logSoftmax: logSoftmax) }
        }
        a.request.continuation.yield(.token(id: token, logprob: logprob, top: top))
        count { $0.generatedTokens += 1 }
        if a.job.stopTokens.contains(token) { finish(a, .stop) }
        else if a.generated == a.budget { finish(a, .length) }     // the last token needs no forward pass
        else { a.pending = token }
    }

    /// One token for every decoding sequence, in one batch.
    private func decodeStep() {
        let ready = active.filter { $0.pending != nil }
        guard !ready.isEmpty else { return }
        let tokens = ready.map { $0.pending! }
        for a in ready { a.pending = nil }
        do {
            try model.decode(batch: tokens, sequences: ready.map(\.sequence))
        } catch {
            for a in ready { release(a, error) }
            return
        }
        count { $0.lastBatchSize = ready.count }
        for a in ready {
            if let bad = FiniteCheck.firstNonFinite(a.sequence.logits.pointer, count: vocabSize) {
                release(a, ModelError.nonFiniteLogits(position: a.sequence.position - 1, detail: "logit \(bad)"))
                continue
            }
            sampleNext(a)
        }
    }

    private func finish(_ a: Active, _ reason: FinishReason) {
        // The state after prompt and completion serves a follow-up that repeats them (a chat).
        if promptCache.limit > 0 && a.generated > 1 {
            model.sequence = a.sequence
            promptCache.insert(Array(a.history.dropLast()), model.saveState())
        }
        a.request.continuation.yield(.finished(reason))
        release(a, nil)
    }

    /// The request leaves (finished, failed or cancelled); its sequence becomes spare.
    private func release(_ a: Active, _ error: Error?) {
        guard let i = active.firstIndex(where: { $0 === a }) else { return }
        active.remove(at: i)
        spare.append(a.sequence)
        condition.lock(); running -= 1; condition.unlock()
        if let error { a.request.continuation.finish(throwing: error) } else { a.request.continuation.finish() }
    }

    private func count(_ update: (inout EngineStats) -> Void) {
        condition.lock(); update(&statsValue); condition.unlock()
    }
}

/// Saved states by the tokens they hold, least recently used out first, bounded by bytes.
final class PromptCache {
    let limit: Int
    private var entries: [(tokens: [Int], state: [UInt8])] = []    // most recently used last
    private var bytes = 0

    init(limit: Int) { self.limit = limit }

    /// The longest saved prefix of `prompt`: its length and state.
    func longestPrefix(of prompt: [Int]) -> (Int, [UInt8])? {
        var best: Int?
        for (i, e) in entries.enumerated() where e.tokens.count <= prompt.count && e.tokens.count > (best.map { entries[$0].tokens.count } ?? 0) {
            if prompt.starts(with: e.tokens) { best = i }
        }
        guard let i = best else { return nil }
        let e = entries.remove(at: i)
        entries.append(e)
        return (e.tokens.count, e.state)
    }

    func insert(_ tokens: [Int], _ state: [UInt8]) {
        guard state.count <= limit else { return }
        if let i = entries.firstIndex(where: { $0.tokens == tokens }) { bytes -= entries.remove(at: i).state.count }
        entries.append((tokens, state))
        bytes += state.count
        while bytes > limit { bytes -= entries.removeFirst().state.count }
    }
}

/// log softmax(logits)[token], in float64 for the sum.
public func logProbability(of token: Int, in logits: UnsafeBufferPointer<Float>) -> Float {
    LogSoftmax(logits)(logits[token])
}

/// The `count` tokens of highest logit with their log-probabilities, most likely first; equal
/// logits in id order. One pass keeps a sorted list of `count` (at most a few dozen) entries.
/// `logSoftmax`, when the caller has it for these logits, saves a pass.
public func mostLikely(_ count: Int, in logits: UnsafeBufferPointer<Float>, logSoftmax: LogSoftmax? = nil) -> [TokenChoice] {
    let k = min(max(count, 0), logits.count)
    guard k > 0 else { return [] }
    var best: [(id: Int, logit: Float)] = []
    best.reserveCapacity(k + 1)
    for (id, v) in logits.enumerated() {
        if best.count == k, let last = best.last, !(v > last.logit) { continue }
        var i = best.count
        while i > 0 && v > best[i - 1].logit { i -= 1 }
        best.insert((id, v), at: i)
        if best.count > k { best.removeLast() }
    }
    let normalizer = logSoftmax ?? LogSoftmax(logits)
    return best.map { TokenChoice(id: $0.id, logprob: normalizer($0.logit)) }
}

/// log softmax over one row of logits: its maximum and log Σ exp(v − max) (the sum in float64),
/// computed once; applied to a logit, that logit's log-probability.
public struct LogSoftmax: Sendable {
    let top: Float
    let logSum: Double

    public init(_ logits: UnsafeBufferPointer<Float>) {
        var top = -Float.infinity
        for v in logits where v > top { top = v }
        var sum = 0.0
        for v in logits { sum += Foundation.exp(Double(v - top)) }
        self.top = top
        logSum = Foundation.log(sum)
    }

    public func callAsFunction(_ logit: Float) -> Float { Float(Double(logit - top) - logSum) }
}
