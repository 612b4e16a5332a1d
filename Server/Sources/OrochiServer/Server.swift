import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import Orochi
import ServiceLifecycle

/// The request context: Hummingbird's, plus the connection, to notice a client that goes away.
public struct ServerContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    let channel: (any Channel)?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

/// The limits a request is held to (flags of `orochi serve`; docs/server.md).
public struct ServerLimits: Sendable {
    /// Bytes of a request body; beyond: 413.
    public var maxBodyBytes = 1 << 20
    /// The most `max_tokens` a request may ask for; a chat request without one gets up to this.
    public var maxTokensLimit = 4096
    /// Completions' `max_tokens` when the request gives none (OpenAI's default).
    public var defaultCompletionTokens = 16
    /// `Retry-After` of a 429, in seconds.
    public var retryAfterSeconds = 1
    /// Whether `GET /metrics` is answered without the API key (`--public-metrics`); `/health` always is.
    public var publicMetrics = false

    public init() {}
}

/// The OpenAI-compatible API over one BatchEngine per model. All generation is the engine's;
/// this turns requests into jobs and events into responses.
public final class OpenAIServer: @unchecked Sendable {
    public let models: [ServedModel]
    public let limits: ServerLimits
    public let metrics: ServerMetrics
    let apiKey: [UInt8]?
    let logger: Logger

    private let lock = NSLock()
    private var draining = false
    private var inFlight = 0

    public init(models: [ServedModel], limits: ServerLimits = ServerLimits(), apiKey: String? = nil,
                metrics: ServerMetrics = ServerMetrics(), logger: Logger = Logger(label: "orochi-server")) {
        precondition(!models.isEmpty, "a server needs a model")
        precondition(apiKey?.isEmpty != true, "an empty API key would let every request in")
        self.models = models
        self.limits = limits
        self.apiKey = apiKey.map { Array($0.utf8) }
        self.metrics = metrics
        self.logger = logger
    }

    // MARK: Draining (SIGTERM)

    /// Stops taking generation requests (503) and tells each engine to finish what it has.
    public func beginDraining() {
        lock.withLock { draining = true }
        for m in models { m.engine.shutdown() }
    }

    public var isDraining: Bool { lock.withLock { draining } }

    /// True once no response is being generated or written.
    public var isDrained: Bool {
        lock.withLock { inFlight == 0 } && models.allSatisfy { $0.engine.isIdle }
    }

    /// Generation responses being produced now (a streamed one counts until its last byte).
    public var inFlightCount: Int { lock.withLock { inFlight } }

    /// One generation response in progress; released (once) when it is done or dropped.
    final class Lease: @unchecked Sendable {
        private weak var server: OpenAIServer?
        private let lock = NSLock()
        private var released = false
        init(_ server: OpenAIServer) {
            self.server = server
            server.lock.withLock { server.inFlight += 1 }
        }
        func release() {
            let first = lock.withLock { () -> Bool in defer { released = true }; return !released }
            if first, let server { server.lock.withLock { server.inFlight -= 1 } }
        }
        deinit { release() }
    }

    /// A service for a ServiceGroup, after the application: on graceful shutdown (SIGTERM) it
    /// drains — new requests get 503 while running ones finish — and returns when nothing is in
    /// flight, so that the HTTP server, shut down next, closes only idle connections.
    public struct DrainService: Service {
        let server: OpenAIServer
        public func run() async throws {
            try? await gracefulShutdown()
            server.beginDraining()
            server.logger.info("draining: refusing new requests, waiting for \(server.inFlightCount) running")
            while !server.isDrained {
                try? await Task.sleep(for: .milliseconds(20))
                if Task.isCancelled { return }
            }
            server.logger.info("drained")
        }
    }

    public var drainService: DrainService { DrainService(server: self) }

    // MARK: Routes

    public func makeRouter() -> Router<ServerContext> {
        let router = Router(context: ServerContext.self)
        router.add(middleware: APIMiddleware(server: self))
        router.get("/health") { _, _ in self.health() }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(bytes: self.metrics.scrape(models: self.models))))
        }
        router.get("/v1/models") { _, _ in self.json(.ok, self.modelList()) }
        router.get("/v1/models/{id}") { _, context in
            let id = context.parameters.get("id") ?? ""
            guard let m = self.models.first(where: { $0.id == id }) else {
                throw APIError(.notFound, "the model '\(id)' does not exist; GET /v1/models lists the models served",
                               param: "model", code: "model_not_found")
            }
            return self.json(.ok, self.modelObject(m))
        }
        router.post("/v1/completions") { request, context in try await self.generate(request, context, chat: false) }
        router.post("/v1/chat/completions") { request, context in try await self.generate(request, context, chat: true) }
        return router
    }

    func json(_ status: HTTPResponse.Status, _ value: JSON) -> Response {
        Response(status: status, headers: [.contentType: "application/json"],
                 body: .init(byteBuffer: ByteBuffer(string: value.serialized() + "\n")))
    }

    func health() -> Response {
        if isDraining { return json(.serviceUnavailable, .object([("status", .string("draining"))])) }
        return json(.ok, .object([("status", .string("ok")), ("models", .array(models.map { .string($0.id) }))]))
    }

    func modelObject(_ m: ServedModel) -> JSON {
        .object([
            ("id", .string(m.id)), ("object", .string("model")), ("created", .int(m.created)), ("owned_by", .string("orochi")),
            ("max_model_len", m.engine.contextCapacity == Int.max ? .null : .int(m.engine.contextCapacity)),
        ])
    }

    func modelList() -> JSON {
        .object([("object", .string("list")), ("data", .array(models.map(modelObject)))])
    }

    /// The model a request names; without a name, the only one served.
    func model(named name: String?) throws -> ServedModel {
        guard let name else {
            if models.count == 1 { return models[0] }
            throw APIError.field("model", "'model' is required: this server serves \(models.map(\.id).joined(separator: ", "))")
        }
        guard let m = models.first(where: { $0.id == name }) else {
            throw APIError(.notFound, "the model '\(name)' does not exist; this server serves \(models.map(\.id).joined(separator: ", "))",
                           param: "model", code: "model_not_found")
        }
        return m
    }

    /// The body as JSON, its size checked before and while it is read.
    func readJSON(_ request: Request) async throws -> JSON {
        let tooLarge = APIError(.contentTooLarge, "the request body exceeds \(limits.maxBodyBytes) bytes (--max-body-bytes)",
                                code: "request_too_large")
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limits.maxBodyBytes { throw tooLarge }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: limits.maxBodyBytes)
        } catch is NIOTooManyBytesError {
            throw tooLarge
        } catch let error as HTTPParserError {
            // A malformed chunked body (a bad chunk size, one of 2^64 bytes) is the client's fault.
            throw APIError(.badRequest, "the request body is malformed: \(error)", code: "invalid_request_body")
        }
        do {
            return try JSON.parse(Array(buffer.readableBytesView))
        } catch let error as JSONSyntaxError {
            throw APIError(.badRequest, "the request body is not valid JSON: \(error)", code: "invalid_json")
        }
    }

    // MARK: Generation

    struct Plan {
        let request: GenerationRequest
        let model: ServedModel
        let job: CompletionJob
        let stops: [String]
        let chat: Bool
    }

    /// Turns a request into an engine job, refusing what cannot run with the right status.
    func plan(_ body: JSON, chat: Bool) throws -> Plan {
        let request = chat ? try GenerationRequest.chat(body) : try GenerationRequest.completion(body)
        let model = try model(named: request.model)
        let ids: [Int]
        var stops = request.stop
        switch request.prompt {
        case let .text(s): ids = model.encodeCompletion(s)
        case let .ids(x): ids = x
        case let .chat(messages):
            do { ids = try model.encodeChat(messages) } catch let raised as TemplateRaised {
                throw APIError(.badRequest, raised.message, param: "messages", code: "chat_template_error")
            } catch let error as ChatTemplateError {
                throw APIError(.badRequest, "the chat template failed: \(error.message)", param: "messages", code: "chat_template_error")
            }
            if case .plain = model.chat.format { stops.append(ChatSettings.plainStop) }
        }
        guard !ids.isEmpty else { throw APIError.from(.emptyPrompt) }
        let context = model.engine.contextCapacity
        guard ids.count < context else {
            throw APIError(.badRequest,
                           "the prompt has \(ids.count) tokens; \(model.id)'s context holds \(context), with room for at least one new token",
                           param: chat ? "messages" : "prompt", code: "context_length_exceeded")
        }
        if let asked = request.maxTokens, asked > limits.maxTokensLimit {
            throw APIError.field(chat ? "max_tokens" : "max_tokens",
                                 "'max_tokens' is \(asked); this server allows at most \(limits.maxTokensLimit) (--max-tokens-limit)")
        }
        let room = context == Int.max ? Int.max : context - ids.count
        let maxTokens = min(request.maxTokens ?? (chat ? limits.maxTokensLimit : limits.defaultCompletionTokens), room)
        let job = CompletionJob(prompt: ids, maxTokens: maxTokens, sampling: request.sampling,
                                stopTokens: request.ignoreEOS ? [] : model.stopTokenIds, logprobs: request.logprobs,
                                topLogprobs: request.logprobs ? request.topLogprobs : 0)
        return Plan(request: request, model: model, job: job, stops: stops, chat: chat)
    }

    func generate(_ request: Request, _ context: ServerContext, chat: Bool) async throws -> Response {
        let arrival = ContinuousClock.now
        if isDraining { throw APIError.from(.shuttingDown) }
        let body = try await readJSON(request)
        let plan = try plan(body, chat: chat)
        let stream: AsyncThrowingStream<CompletionEvent, Error>
        do { stream = try plan.model.engine.submit(plan.job) } catch let error as EngineError {
            var apiError = APIError.from(error)
            if case .queueFull = error { apiError.retryAfter = limits.retryAfterSeconds }
            throw apiError
        }
        let lease = Lease(self)
        let run = GenerationRun(server: self, plan: plan, arrival: arrival)
        let channel = context.channel
        if !plan.request.stream {
            defer { lease.release() }
            var text = ""
            var tokens: [TokenLogprob] = []
            let outcome = try await relay(stream, channel: channel) { events in
                try await run.consume(events) { delta in
                    text += delta.text
                    tokens += delta.logprobs
                }
            }
            return json(.ok, run.response(text: text, tokens: tokens, outcome: outcome))
        }
        let headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache"]
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            defer { lease.release() }
            try await writer.write(run.sse(run.firstChunk()))
            do {
                let outcome = try await self.relay(stream, channel: channel) { events in
                    try await run.consume(events) { delta in
                        try await writer.write(run.sse(run.chunk(delta)))
                    }
                }
                for chunk in run.finalChunks(outcome) { try await writer.write(run.sse(chunk)) }
            } catch let error as APIError {
                // Mid-stream failure (the engine's): an error event, then the end of the stream.
                try await writer.write(run.sse(error.json))
            }
            try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
            try await writer.finish(nil)
        })
    }

    /// The client went away (its connection closed) before the completion ended.
    struct ClientDisconnected: Error {}

    /// Consumes an engine stream through a relay owned by this request: `body` reads the relay in
    /// the current task; a child task forwards the engine's events. When `body` returns or throws
    /// (a stop string, a failed write) or the connection closes, the forwarding task is cancelled
    /// while it waits on the engine's stream, which terminates that stream: the engine frees the
    /// sequence at once.
    func relay<T: Sendable>(_ engineStream: AsyncThrowingStream<CompletionEvent, Error>, channel: (any Channel)?,
                            _ body: (AsyncThrowingStream<CompletionEvent, Error>) async throws -> T) async throws -> T {
        let (events, continuation) = AsyncThrowingStream<CompletionEvent, Error>.makeStream()
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                do {
                    for try await event in engineStream { continuation.yield(event) }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            if let channel {
                let (closed, closedContinuation) = AsyncStream<Void>.makeStream()
                channel.closeFuture.whenComplete { _ in closedContinuation.finish() }
                group.addTask {
                    for await _ in closed {}
                    // Closed, or cancelled because the request is over.
                    if !Task.isCancelled { continuation.finish(throwing: ClientDisconnected()) }
                }
            }
            defer { group.cancelAll() }
            return try await body(events)
        }
    }
}

/// A token's text (as streamed) and its log-probability, with the most likely tokens at its step
/// when they were asked for.
struct TokenLogprob: Sendable {
    var text: String
    var logprob: Float
    var top: [Alternative] = []

    struct Alternative: Sendable {
        var text: String
        var logprob: Float
    }
}

/// Text to send, with the tokens whose text it holds (when logprobs were asked for).
struct Delta {
    var text: String
    var logprobs: [TokenLogprob]
}

/// How a completion ended.
struct Outcome: Sendable {
    var promptTokens = 0
    var cachedTokens = 0
    var completionTokens = 0
    var finishReason = "length"
}

/// One completion's conversion from engine events to OpenAI responses: detokenizing, stop
/// strings, log-probabilities, usage, the response and chunk shapes.
final class GenerationRun: @unchecked Sendable {
    let server: OpenAIServer
    let plan: Plan
    let arrival: ContinuousClock.Instant
    let id: String
    let created = Int(Date().timeIntervalSince1970)
    var chat: Bool { plan.chat }
    /// Characters (Unicode scalars) of completion text sent so far: completions' text_offset.
    private var sentScalars = 0

    typealias Plan = OpenAIServer.Plan

    init(server: OpenAIServer, plan: Plan, arrival: ContinuousClock.Instant) {
        self.server = server
        self.plan = plan
        self.arrival = arrival
        var bytes = [UInt8](repeating: 0, count: 12)
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255) }
        id = (plan.chat ? "chatcmpl-" : "cmpl-") + bytes.map { String(format: "%02x", $0) }.joined()
    }

    /// Reads the events to the end, passing text as it becomes final to `emit`.
    func consume(_ events: AsyncThrowingStream<CompletionEvent, Error>, emit: (Delta) async throws -> Void) async throws -> Outcome {
        let model = plan.model
        let detokenizer = StreamingDetokenizer(model.tokenizer)
        var matcher = StopMatcher(plan.stops)
        var outcome = Outcome()
        // Tokens whose text is not all sent yet: (text, logprob, start, end) in scalars of the completion.
        var pending: [(TokenLogprob, Int, Int)] = []
        var produced = 0        // scalars of text produced by the detokenizer
        var sent = 0            // scalars handed to emit
        var last: ContinuousClock.Instant? = nil
        var finished = false
        var previous = plan.job.prompt.last      // the token before the one being reported

        /// An alternative's text where it would have stood: decoded after the previous token
        /// (SentencePiece drops a leading space at the start of a text), or its vocabulary entry
        /// when it decodes to nothing (special tokens). `before`: the previous token's text,
        /// decoded once for all of a step's alternatives.
        func text(of id: Int, after previous: Int?, _ before: String?) -> String {
            let tokenizer = model.tokenizer
            var text = tokenizer.decode([id])
            if let previous, let before {
                let both = tokenizer.decode([previous, id])
                if both.hasPrefix(before) { text = String(both.dropFirst(before.count)) }
            }
            return text.isEmpty ? (tokenizer.piece(for: id) ?? "") : text
        }

        func take(all: Bool) -> [TokenLogprob] {
            var out: [TokenLogprob] = []
            while let first = pending.first, all || first.1 < sent || (first.1 == first.2 && first.2 <= sent) {
                out.append(first.0)
                pending.removeFirst()
            }
            return out
        }

        do {
            loop: for try await event in events {
                switch event {
                case let .started(promptTokens, cachedTokens):
                    outcome.promptTokens = promptTokens
                    outcome.cachedTokens = cachedTokens
                    server.metrics.promptTokens(model: model.id, total: promptTokens, cached: cachedTokens)
                case let .token(id, logprob, top):
                    let before = top.isEmpty ? nil : previous.map { model.tokenizer.decode([$0]) }
                    let alternatives = top.map { TokenLogprob.Alternative(text: text(of: $0.id, after: previous, before), logprob: $0.logprob) }
                    previous = id
                    let now = ContinuousClock.now
                    if let last {
                        server.metrics.interTokenLatency(model: model.id, seconds: seconds(now - last))
                    } else {
                        server.metrics.timeToFirstToken(model: model.id, seconds: seconds(now - arrival))
                    }
                    last = now
                    outcome.completionTokens += 1
                    // An end-of-sequence id ends the completion and is not text.
                    if plan.job.stopTokens.contains(id) { outcome.finishReason = "stop"; continue }
                    let piece = detokenizer.append(id)
                    let start = produced
                    produced += piece.unicodeScalars.count
                    if plan.request.logprobs { pending.append((TokenLogprob(text: piece, logprob: logprob ?? 0, top: alternatives), start, produced)) }
                    let text = matcher.push(piece)
                    sent += text.unicodeScalars.count
                    if matcher.stopped {
                        outcome.finishReason = "stop"
                        let tokens = take(all: false)
                        pending.removeAll()
                        if !text.isEmpty || !tokens.isEmpty { try await emit(Delta(text: text, logprobs: tokens)) }
                        finished = true
                        break loop   // the relay cancels the engine's sequence
                    }
                    let tokens = take(all: false)
                    if !text.isEmpty || !tokens.isEmpty { try await emit(Delta(text: text, logprobs: tokens)) }
                case let .finished(reason):
                    if reason == .stop { outcome.finishReason = "stop" } else if outcome.finishReason != "stop" { outcome.finishReason = "length" }
                    var text = matcher.push(detokenizer.finish())
                    if !matcher.stopped { text += matcher.flush() }
                    let tokens = take(all: true)
                    if !text.isEmpty || !tokens.isEmpty { try await emit(Delta(text: text, logprobs: tokens)) }
                    finished = true
                    break loop
                }
            }
        } catch let error as OpenAIServer.ClientDisconnected {
            throw error
        } catch let error as APIError {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            server.logger.error("\(model.id): generation failed: \(error)")
            throw APIError(.internalServerError, "generation failed: \(error)", code: "generation_failed")
        }
        guard finished else {
            // The engine's stream ended without `finished`: cancelled.
            throw CancellationError()
        }
        server.metrics.completionTokens(model: model.id, count: outcome.completionTokens)
        return outcome
    }

    private func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }

    // MARK: Shapes

    func usage(_ o: Outcome) -> JSON {
        var members: [(String, JSON)] = [
            ("prompt_tokens", .int(o.promptTokens)), ("completion_tokens", .int(o.completionTokens)),
            ("total_tokens", .int(o.promptTokens + o.completionTokens)),
        ]
        if o.cachedTokens > 0 { members.append(("prompt_tokens_details", .object([("cached_tokens", .int(o.cachedTokens))]))) }
        return .object(members)
    }

    /// Chat's logprobs: {"content": [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}]}.
    func chatLogprobs(_ tokens: [TokenLogprob]) -> JSON {
        func bytes(_ text: String) -> JSON { .array(Array(text.utf8).map { .int(Int($0)) }) }
        return .object([("content", .array(tokens.map { t in
            .object([("token", .string(t.text)), ("logprob", .double(Double(t.logprob))), ("bytes", bytes(t.text)),
                     ("top_logprobs", .array(t.top.map { a in
                        .object([("token", .string(a.text)), ("logprob", .double(Double(a.logprob))), ("bytes", bytes(a.text))])
                     }))])
        }))])
    }

    /// Completions' logprobs: tokens, token_logprobs, text_offset, and top_logprobs (one
    /// {text: logprob} object per token, null when `logprobs` is 0; two alternatives with the same
    /// text keep the likelier, as a JSON object can hold one).
    func completionLogprobs(_ tokens: [TokenLogprob]) -> JSON {
        var offsets: [JSON] = []
        for t in tokens {
            offsets.append(.int(sentScalars))
            sentScalars += t.text.unicodeScalars.count
        }
        return .object([
            ("tokens", .array(tokens.map { .string($0.text) })),
            ("token_logprobs", .array(tokens.map { .double(Double($0.logprob)) })),
            ("top_logprobs", plan.request.topLogprobs == 0 ? .null : .array(tokens.map { t in
                var seen = Set<String>()
                return .object(t.top.compactMap { a in seen.insert(a.text).inserted ? (a.text, .double(Double(a.logprob))) : nil })
            })),
            ("text_offset", .array(offsets)),
        ])
    }

    func logprobs(_ tokens: [TokenLogprob]) -> JSON {
        guard plan.request.logprobs else { return .null }
        return chat ? chatLogprobs(tokens) : completionLogprobs(tokens)
    }

    func header(_ object: String) -> [(String, JSON)] {
        [("id", .string(id)), ("object", .string(object)), ("created", .int(created)), ("model", .string(plan.model.id))]
    }

    /// The non-streamed response.
    func response(text: String, tokens: [TokenLogprob], outcome: Outcome) -> JSON {
        let choice: JSON
        if chat {
            choice = .object([
                ("index", .int(0)),
                ("message", .object([("role", .string("assistant")), ("content", .string(text))])),
                ("logprobs", logprobs(tokens)),
                ("finish_reason", .string(outcome.finishReason)),
            ])
        } else {
            choice = .object([
                ("index", .int(0)), ("text", .string(text)), ("logprobs", logprobs(tokens)),
                ("finish_reason", .string(outcome.finishReason)),
            ])
        }
        return .object(header(chat ? "chat.completion" : "text_completion") + [("choices", .array([choice])), ("usage", usage(outcome))])
    }

    func sse(_ value: JSON) -> ByteBuffer {
        ByteBuffer(string: "data: " + value.serialized() + "\n\n")
    }

    private func chunkObject(_ choice: [(String, JSON)], usage: JSON? = nil) -> JSON {
        var members = header(chat ? "chat.completion.chunk" : "text_completion") + [("choices", .array([.object(choice)]))]
        if let usage { members.append(("usage", usage)) }
        return .object(members)
    }

    /// Chat's first chunk announces the role; a completion stream starts with an empty text.
    func firstChunk() -> JSON {
        if chat {
            return chunkObject([("index", .int(0)), ("delta", .object([("role", .string("assistant")), ("content", .string(""))])),
                                ("logprobs", .null), ("finish_reason", .null)])
        }
        return chunkObject([("index", .int(0)), ("text", .string("")), ("logprobs", .null), ("finish_reason", .null)])
    }

    func chunk(_ delta: Delta) -> JSON {
        if chat {
            return chunkObject([("index", .int(0)), ("delta", .object([("content", .string(delta.text))])),
                                ("logprobs", logprobs(delta.logprobs)), ("finish_reason", .null)])
        }
        return chunkObject([("index", .int(0)), ("text", .string(delta.text)), ("logprobs", logprobs(delta.logprobs)),
                            ("finish_reason", .null)])
    }

    /// The chunk with the finish reason (and usage), then, with stream_options.include_usage,
    /// OpenAI's usage chunk with no choices.
    func finalChunks(_ outcome: Outcome) -> [JSON] {
        var chunks: [JSON] = []
        if chat {
            chunks.append(chunkObject([("index", .int(0)), ("delta", .object([])), ("logprobs", .null),
                                       ("finish_reason", .string(outcome.finishReason))], usage: usage(outcome)))
        } else {
            chunks.append(chunkObject([("index", .int(0)), ("text", .string("")), ("logprobs", .null),
                                       ("finish_reason", .string(outcome.finishReason))], usage: usage(outcome)))
        }
        if plan.request.includeUsage {
            chunks.append(.object(header(chat ? "chat.completion.chunk" : "text_completion") + [("choices", .array([])), ("usage", usage(outcome))]))
        }
        return chunks
    }
}

/// Errors as OpenAI shapes them, the API key, draining, and the request counter.
struct APIMiddleware: RouterMiddleware {
    typealias Context = ServerContext
    let server: OpenAIServer

    func handle(_ request: Request, context: ServerContext, next: (Request, ServerContext) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        var response: Response
        do {
            if let key = server.apiKey, !server.isPublic(request) {
                let header = request.headers[.authorization] ?? ""
                guard constantTimeEqual(bearerToken(header), key) else {
                    throw APIError(.unauthorized, header.isEmpty ? "missing API key: send 'Authorization: Bearer <key>'" : "incorrect API key",
                                   code: "invalid_api_key")
                }
            }
            response = try await next(request, context)
        } catch let error as APIError {
            response = error.response
        } catch let error as HTTPError {
            if error.status == .notFound {
                response = APIError(.notFound, "no route \(request.method) \(path)", code: "not_found").response
            } else if error.status == .contentTooLarge {
                response = APIError(.contentTooLarge, "the request body exceeds \(server.limits.maxBodyBytes) bytes (--max-body-bytes)",
                                    code: "request_too_large").response
            } else {
                response = APIError(error.status, error.body ?? error.status.reasonPhrase).response
            }
        } catch is OpenAIServer.ClientDisconnected {
            server.metrics.request(endpoint: path, status: 499)
            throw CancellationError()
        } catch is CancellationError {
            server.metrics.request(endpoint: path, status: 499)
            throw CancellationError()
        } catch let error as HTTPParserError {
            response = APIError(.badRequest, "the request is malformed: \(error)", code: "invalid_request").response
        } catch {
            server.logger.error("\(request.method) \(path): \(error)")
            response = APIError(.internalServerError, "internal error: \(error)").response
        }
        server.metrics.request(endpoint: path, status: response.status.code)
        return response
    }
}

extension OpenAIServer {
    /// Whether a request is answered without the API key. Deny by default: only the exact
    /// spellings of the allow-list pass, so that a path the router resolves to a guarded route
    /// (repeated slashes, dot segments, percent-encoding, a trailing slash, another case, any
    /// method) never passes the check on its way there.
    func isPublic(_ request: Request) -> Bool {
        guard request.method == .get || request.method == .head else { return false }
        let path = request.uri.path
        return path == "/health" || (limits.publicMetrics && path == "/metrics")
    }
}

/// The token of `Authorization: Bearer <token>` (the scheme's case ignored, as RFC 9110 has it);
/// empty for any other header.
func bearerToken(_ header: String) -> [UInt8] {
    let bytes = Array(header.utf8)
    guard bytes.count > 7, String(decoding: bytes[0..<7], as: UTF8.self).lowercased() == "bearer " else { return [] }
    return Array(bytes[7...])
}

/// Compares without stopping at the first difference (an API key must not leak by timing).
func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    var diff = UInt8(a.count == b.count ? 0 : 1)
    for i in 0..<max(a.count, b.count) {
        diff |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
    }
    return diff == 0
}
