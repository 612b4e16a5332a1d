import Foundation
import Hummingbird
import HummingbirdTesting
import Orochi
@testable import OrochiServer

/// Paths and servers for the tests: the shipped models (small, with a tokenizer) under Models/,
/// the template fixtures beside this file.
enum ServerFixtures {
    static let repository = URL(fileURLWithPath: #filePath)     // Server/Tests/OrochiServerTests/Support.swift
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let templates = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/templates")

    static func model(_ name: String) -> URL { repository.appendingPathComponent("Models").appendingPathComponent(name) }

    static let llama = "orochi-ja-llama"
    /// A state-space model: no context limit, so a completion can run as long as a test needs.
    static let mamba = "orochi-ja-mamba"

    /// A server on the Mamba fixture that allows a million tokens per request: a stream that
    /// runs until its client goes away (the cancellation tests).
    static func endlessStreamServer() throws -> (ServedModel, OpenAIServer) {
        var limits = ServerLimits()
        limits.maxTokensLimit = 1_000_000
        let served = try served(mamba)
        return (served, OpenAIServer(models: [served], limits: limits))
    }

    static func served(_ name: String, directory: URL? = nil, engine: BatchEngine.Options = .init()) throws -> ServedModel {
        try ServedModel.load(directory: directory ?? model(name), loadOptions: LoadOptions(), engineOptions: engine)
    }

    static func server(_ names: [String] = [llama], engine: BatchEngine.Options = .init(), limits: ServerLimits = ServerLimits(),
                       apiKey: String? = nil) throws -> OpenAIServer {
        OpenAIServer(models: try names.map { try served($0, engine: engine) }, limits: limits, apiKey: apiKey)
    }

    static func app(_ server: OpenAIServer) -> some ApplicationProtocol {
        Application(router: server.makeRouter())
    }
}

/// A model directory made of links to a shipped model's files, with a tokenizer_config.json of
/// the test's own (a chat template); removed at the end of the test.
final class LinkedModel {
    let url: URL
    init(_ name: String, tokenizerConfig: String) throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("orochi-server-test-\(UUID().uuidString)")
            .appendingPathComponent(name)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        let source = ServerFixtures.model(ServerFixtures.llama)
        for file in try FileManager.default.contentsOfDirectory(atPath: source.path) where file != "tokenizer_config.json" {
            try FileManager.default.createSymbolicLink(at: url.appendingPathComponent(file),
                                                       withDestinationURL: source.appendingPathComponent(file))
        }
        try tokenizerConfig.write(to: url.appendingPathComponent("tokenizer_config.json"), atomically: true, encoding: .utf8)
    }
    deinit { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
}

extension TestClientProtocol {
    func post(_ uri: String, _ body: String, headers: HTTPFields = [:]) async throws -> TestResponse {
        var h = headers
        h[.contentType] = "application/json"
        return try await execute(uri: uri, method: .post, headers: h, body: ByteBuffer(string: body))
    }

    func get(_ uri: String, headers: HTTPFields = [:]) async throws -> TestResponse {
        try await execute(uri: uri, method: .get, headers: headers)
    }
}

extension TestResponse {
    var text: String { String(buffer: body) }
    var json: JSON { (try? JSON.parse(Array(body.readableBytesView))) ?? .null }

    /// The events of a server-sent-event body: the JSON of each `data:` line, and whether the
    /// stream ended with `data: [DONE]` (and nothing after).
    var events: (chunks: [JSON], done: Bool) {
        var chunks: [JSON] = []
        var done = false
        for block in text.components(separatedBy: "\n\n") where !block.isEmpty {
            guard block.hasPrefix("data: "), !done else { return (chunks, false) }
            let payload = String(block.dropFirst(6))
            if payload == "[DONE]" { done = true; continue }
            guard let value = try? JSON.parse(Array(payload.utf8)) else { return (chunks, false) }
            chunks.append(value)
        }
        return (chunks, done && text.hasSuffix("data: [DONE]\n\n"))
    }
}

extension JSON {
    /// choices[0]
    var choice: JSON { self["choices"]?.array?.first ?? .null }
    var errorCode: String? { self["error"]?["code"]?.string }
    var errorMessage: String { self["error"]?["message"]?.string ?? "" }
    var errorParam: String? { self["error"]?["param"]?.string }
    /// A usage object's prompt, completion and total tokens (not what the prompt cache served,
    /// which depends on the requests before).
    var counts: [Int?] { [self["prompt_tokens"]?.int, self["completion_tokens"]?.int, self["total_tokens"]?.int] }
}

/// Waits (polling) until `condition` holds, at most `seconds`.
func waitUntil(_ seconds: Double = 10, _ condition: () -> Bool) async -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return condition()
}
