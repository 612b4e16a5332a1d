import ArgumentParser
import Foundation
import Hummingbird
import Logging
import Orochi
import OrochiServer
import ServiceLifecycle

/// `orochi-server` (also run as `orochi serve`): the OpenAI-compatible HTTP server.
@main
struct OrochiServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "orochi serve",
        abstract: "Serve models over an OpenAI-compatible HTTP API (completions, chat, models, health, metrics).",
        discussion: """
            Each --model directory is served under its last path component as the model id, by an engine of its own. \
            SIGTERM or SIGINT drains: new requests get 503, running ones finish, then the server exits. \
            See docs/server.md.
            """,
        version: Orochi.version)

    @Option(name: .long, help: ArgumentHelp("A Hugging Face model directory with a tokenizer; repeat to serve several.", valueName: "dir"))
    var model: [String] = []

    @Option(name: .long, help: "Address to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface).")
    var host = "127.0.0.1"

    @Option(name: .long, help: "TCP port, 0–65535 (0: any free port, printed at start).")
    var port = 8080

    @Option(name: .long, help: "Require 'Authorization: Bearer KEY' on every route but /health (default: $OROCHI_API_KEY if set, else no key).")
    var apiKey: String?

    @Flag(name: .long, help: "Answer GET /metrics without the API key (for a scraper on a trusted network).")
    var publicMetrics = false

    @Option(name: .long, help: "Most sequences each model's engine decodes together, 1–256.")
    var maxBatch = 8

    @Option(name: .long, help: "Most requests waiting per model beyond those running, 0–100000; past it: 429 with Retry-After.")
    var maxQueue = 64

    @Option(name: .long, help: "Tokens of context per sequence, ≥ 1 (default: the model's maximum, at most 4096).")
    var context: Int?

    @Option(name: .long, help: "Largest request body in bytes, 1024–1073741824; past it: 413.")
    var maxBodyBytes = 1 << 20

    @Option(name: .long, help: "Most max_tokens a request may ask for, 1–1048576 (a chat request without max_tokens gets up to this).")
    var maxTokensLimit = 4096

    @Option(name: .long, help: "MiB of saved prompt states each engine keeps for reuse, 0–65536 (0: off).")
    var promptCacheMb = 256

    @Option(name: .long, help: "Prompt tokens an engine computes per step, 1–65536.")
    var prefillChunk = 128

    @Option(name: .long, help: "Threads for matrix products, 1–256.")
    var threads = 2

    @Option(name: .long, help: "Element type of the attention KV cache: f32 or f16.")
    var kvDtype = "f32"

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    func validate() throws {
        guard !model.isEmpty else { throw ValidationError("give at least one --model DIR") }
        func range(_ name: String, _ value: Int, _ r: ClosedRange<Int>) throws {
            guard r.contains(value) else { throw ValidationError("--\(name) must be between \(r.lowerBound) and \(r.upperBound), got \(value)") }
        }
        try range("port", port, 0...65535)
        try range("max-batch", maxBatch, 1...256)
        try range("max-queue", maxQueue, 0...100_000)
        if let context { try range("context", context, 1...(1 << 24)) }
        try range("max-body-bytes", maxBodyBytes, 1024...(1 << 30))
        try range("max-tokens-limit", maxTokensLimit, 1...(1 << 20))
        try range("prompt-cache-mb", promptCacheMb, 0...65536)
        try range("prefill-chunk", prefillChunk, 1...65536)
        try range("threads", threads, 1...256)
        guard ["f32", "f16"].contains(kvDtype) else { throw ValidationError("--kv-dtype must be f32 or f16, got \(kvDtype)") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level: unknown level '\(logLevel)'") }
        guard !host.isEmpty else { throw ValidationError("--host is empty") }
        if let apiKey, apiKey.isEmpty { throw ValidationError("--api-key is empty") }
        let ids = model.map { URL(fileURLWithPath: $0).standardizedFileURL.lastPathComponent }
        if let duplicate = ids.first(where: { id in ids.filter { $0 == id }.count > 1 }) {
            throw ValidationError("two --model directories have the same last path component '\(duplicate)', the model id: rename one")
        }
    }

    func run() async throws {
        var logger = Logger(label: "orochi-server")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        BLAS.threads = threads
        let loadOptions = LoadOptions(context: context, kvCache: kvDtype == "f16" ? .f16 : .f32)
        let engineOptions = BatchEngine.Options(maxBatch: maxBatch, maxQueue: maxQueue, prefillChunk: prefillChunk,
                                                promptCacheBytes: promptCacheMb << 20)
        var served: [ServedModel] = []
        for dir in model {
            let url = URL(fileURLWithPath: dir)
            do {
                let m = try ServedModel.load(directory: url, loadOptions: loadOptions, engineOptions: engineOptions)
                let chat: String
                if case .template = m.chat.format { chat = "chat template" } else { chat = "plain chat format" }
                let context = m.engine.contextCapacity == Int.max ? "unbounded" : String(m.engine.contextCapacity)
                logger.info("loaded \(m.id) from \(dir): \(m.engine.model.info.architecture), context \(context), \(chat)")
                served.append(m)
            } catch {
                throw RuntimeError("\(dir): \(error)")
            }
        }
        let key = apiKey ?? ProcessInfo.processInfo.environment["OROCHI_API_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        var limits = ServerLimits()
        limits.maxBodyBytes = maxBodyBytes
        limits.maxTokensLimit = maxTokensLimit
        limits.publicMetrics = publicMetrics
        let server = OpenAIServer(models: served, limits: limits, apiKey: key, logger: logger)
        let host = self.host
        let ids = served.map(\.id).joined(separator: ", ")
        let app = Application(
            router: server.makeRouter(),
            configuration: .init(address: .hostname(host, port: port), serverName: "orochi"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                let keyNote = key == nil ? "" : " (API key required)"
                print("orochi-server: serving \(ids) on http://\(host):\(port)/v1\(keyNote)")
                fflush(stdout)
            },
            logger: logger)
        // Shut down in reverse order: first the drain (503s, running streams finish), then the
        // HTTP server.
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: app), .init(service: server.drainService)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        do {
            try await group.run()
        } catch {
            throw RuntimeError("\(error)")
        }
    }
}

/// A failure at run time: one line on stderr, exit status 1.
struct RuntimeError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
