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

    public init(prompt: [Int], maxTokens: Int, sampling: Sampler.Settings, stopTokens: Set<Int>, logprobs: Bool = false) {
        self.prompt = prompt; self.maxTokens = maxTokens; self.sampling = sampling
        self.stopTokens = stopTokens; self.logprobs = logprobs
    }
}

/// What a running completion reports, in order: `started` once (after the prompt is in the
/// model: the first token follows at once), `token` for each sampled id, then `finished`.
public enum CompletionEvent: Sendable, Equatable {
    /// The prompt is in: `cachedTokens` of it were resumed from the prompt cache, not computed.
    case started(promptTokens: Int, cachedTokens: Int)
    case token(id: Int, logprob: Float?)
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

/// Runs completions on one model from a worker thread of its own. `submit` may be called from
/// any thread; each completion's events arrive on the stream it returns; dropping the stream
/// (a client that went away) cancels the completion and frees its sequence.
public final class BatchEngine: @unchecked Sendable {
    public struct Options: Sendable {
        /// Most sequences decoded together in one step.
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
    public var contextCapacity: Int { model.contextCapacity }
    public var vocabSize: Int { model.info.vocabSize }

    final class Request {
        let job: CompletionJob
        let continuation: AsyncThrowingStream<CompletionEvent, Error>.Continuation
        var cancelled = false                       // under the engine's condition lock
        init(job: CompletionJob, continuation: AsyncThrowingStream<CompletionEvent, Error>.Continuation) {
            self.job = job; self.continuation = continuation
        }
    }

    private let condition = NSCondition()
    private var queue: [Request] = []
    private var accepting = true
    private var statsValue = EngineStats()
    private var worker: Thread?

    public init(model: any LanguageModel, options: Options = Options()) throws {
        guard options.maxBatch >= 1 else { throw EngineError.badRequest("max batch must be ≥ 1, got \(options.maxBatch)") }
        guard options.maxQueue >= 0 else { throw EngineError.badRequest("max queue must be ≥ 0, got \(options.maxQueue)") }
        guard options.prefillChunk >= 1 else { throw EngineError.badRequest("prefill chunk must be ≥ 1, got \(options.prefillChunk)") }
        self.model = model
        self.options = options
        let thread = Thread { [unowned self] in self.run() }
        thread.name = "orochi-engine"
        worker = thread
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
        guard queue.count < options.maxQueue + (statsValue.running < options.maxBatch ? 1 : 0) else {
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

    /// Stops taking requests; those queued and running finish. Returns at once.
    public func shutdown() {
        condition.lock(); accepting = false; condition.broadcast(); condition.unlock()
    }

    /// True once shut down and every request has finished.
    public var isIdle: Bool {
        condition.lock(); defer { condition.unlock() }
        return queue.isEmpty && statsValue.running == 0
    }

    // MARK: The worker (first version: one completion at a time).

    private func run() {
        while true {
            condition.lock()
            while queue.isEmpty { condition.wait() }
            let request = queue.removeFirst()
            statsValue.queued = queue.count
            statsValue.running = 1
            condition.unlock()
            serve(request)
            condition.lock(); statsValue.running = 0; condition.unlock()
        }
    }

    private func isCancelled(_ r: Request) -> Bool {
        condition.lock(); defer { condition.unlock() }
        return r.cancelled
    }

    private func serve(_ r: Request) {
        let job = r.job
        let sampler = Sampler(settings: job.sampling, vocabSize: vocabSize)
        do {
            ComputeLock.lock.lock(); defer { ComputeLock.lock.unlock() }
            model.reset()
            var start = 0
            while start < job.prompt.count {
                if isCancelled(r) { return }
                let end = min(job.prompt.count, start + options.prefillChunk)
                try model.prefill(Array(job.prompt[start..<end]))
                start = end
            }
            try FiniteCheck.checkLastLogits(model)
            r.continuation.yield(.started(promptTokens: job.prompt.count, cachedTokens: 0))
            var history = job.prompt
            let room = model.contextCapacity - model.position
            let budget = min(job.maxTokens, room)
            var reason = FinishReason.length
            for i in 0..<budget {
                if isCancelled(r) { return }
                let token = sampler.sample(model.lastLogits, history: history)
                history.append(token)
                r.continuation.yield(.token(id: token, logprob: job.logprobs ? logProbability(of: token, in: model.lastLogits) : nil))
                condition.lock(); statsValue.generatedTokens += 1; condition.unlock()
                if job.stopTokens.contains(token) { reason = .stop; break }
                if i + 1 < budget {
                    try model.decode(token)
                    try FiniteCheck.checkLastLogits(model)
                }
            }
            r.continuation.yield(.finished(reason))
            r.continuation.finish()
        } catch {
            r.continuation.finish(throwing: error)
        }
    }
}

/// log softmax(logits)[token], in float64 for the sum.
public func logProbability(of token: Int, in logits: UnsafeBufferPointer<Float>) -> Float {
    var top = -Float.infinity
    for v in logits where v > top { top = v }
    var sum = 0.0
    for v in logits { sum += Foundation.exp(Double(v - top)) }
    return Float(Double(logits[token] - top) - Foundation.log(sum))
}
