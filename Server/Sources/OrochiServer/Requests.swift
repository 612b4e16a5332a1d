import Foundation
import Orochi

/// What a completion or chat request asks for, checked: every field of the wrong type or out of
/// range is refused naming it; fields this server does not know are ignored.
public struct GenerationRequest: Sendable {
    public enum Prompt: Equatable, Sendable {
        case text(String)
        case ids([Int])
        case chat([ChatMessage])
    }

    public var model: String?
    public var prompt: Prompt
    /// nil: the endpoint's default (16 for completions, up to the limit for chat).
    public var maxTokens: Int?
    public var temperature: Float = 1
    public var topP: Float = 1
    public var topK: Int = 0
    public var repetitionPenalty: Float = 1
    public var seed: UInt64?
    public var stop: [String] = []
    public var stream = false
    public var includeUsage = false
    public var logprobs = false
    /// Chat's `top_logprobs`, completions' integer `logprobs`: how many of the most likely tokens
    /// to report at each step, besides the sampled one.
    public var topLogprobs = 0
    /// vLLM's extension: do not stop at the end-of-sequence token.
    public var ignoreEOS = false

    public static let maxStopStrings = 4
    public static let maxStopLength = 256

    /// Parses a /v1/completions body.
    public static func completion(_ body: JSON) throws -> GenerationRequest {
        let f = try Fields(body)
        guard let promptValue = f.value("prompt") else { throw APIError.field("prompt", "'prompt' is required") }
        let prompt: Prompt
        switch promptValue {
        case let .string(s):
            prompt = .text(s)
        case let .array(items):
            if items.isEmpty { throw APIError.field("prompt", "'prompt' is empty") }
            if items.allSatisfy({ $0.int != nil }) {
                prompt = .ids(items.compactMap(\.int))
            } else if items.allSatisfy({ $0.string != nil }) {
                guard items.count == 1, let s = items[0].string else {
                    throw APIError.field("prompt", "only one prompt per request is supported; got \(items.count) (send one request per prompt)")
                }
                prompt = .text(s)
            } else if items.allSatisfy({ $0.array != nil }) {
                guard items.count == 1, let inner = items[0].array else {
                    throw APIError.field("prompt", "only one prompt per request is supported; got \(items.count) (send one request per prompt)")
                }
                guard inner.allSatisfy({ $0.int != nil }) else {
                    throw APIError.field("prompt", "'prompt' must be a string, an array of token ids (integers), or an array holding one of these")
                }
                prompt = .ids(inner.compactMap(\.int))
            } else {
                throw APIError.field("prompt", "'prompt' must be a string, an array of token ids (integers), or an array holding one of these")
            }
        default:
            throw APIError.field("prompt", "'prompt' must be a string or an array of token ids, got \(promptValue.typeName)")
        }
        var r = GenerationRequest(prompt: prompt)
        try r.common(f)
        r.maxTokens = try f.int("max_tokens", min: 0)
        if let suffix = try f.string("suffix"), !suffix.isEmpty {
            throw APIError.field("suffix", "'suffix' is not supported")
        }
        if try f.bool("echo") == true { throw APIError.field("echo", "'echo' is not supported: the response holds the completion only") }
        if let best = try f.int("best_of"), best != 1 { throw APIError.field("best_of", "'best_of' must be 1 (only one completion per request), got \(best)") }
        // Completions' logprobs is an integer: how many alternatives to report (0–5 at OpenAI).
        switch f.value("logprobs") {
        case nil: break
        case let .int(n)?:
            guard (0...20).contains(n) else { throw APIError.field("logprobs", "'logprobs' must be an integer from 0 to 20, got \(n)") }
            r.logprobs = true; r.topLogprobs = n
        case let .bool(b)?: r.logprobs = b
        case let other?: throw APIError.field("logprobs", "'logprobs' must be an integer, got \(other.typeName)")
        }
        return r
    }

    /// Parses a /v1/chat/completions body.
    public static func chat(_ body: JSON) throws -> GenerationRequest {
        let f = try Fields(body)
        guard let list = f.value("messages") else { throw APIError.field("messages", "'messages' is required") }
        guard let items = list.array else { throw APIError.field("messages", "'messages' must be an array, got \(list.typeName)") }
        guard !items.isEmpty else { throw APIError.field("messages", "'messages' is empty") }
        var messages: [ChatMessage] = []
        for (i, item) in items.enumerated() {
            let path = "messages[\(i)]"
            guard case .object = item else { throw APIError.field(path, "'\(path)' must be an object, got \(item.typeName)") }
            let m = try Fields(item, prefix: path + ".")
            guard let role = try m.string("role") else { throw APIError.field(path + ".role", "'\(path).role' is required") }
            if let calls = m.value("tool_calls"), calls != .null, calls != .array([]) {
                throw APIError.field(path + ".tool_calls", "tool calls are not supported")
            }
            var content = ""
            switch m.value("content") {
            case nil, .null?: break
            case let .string(s)?: content = s
            case let .array(parts)?:
                var texts: [String] = []
                for (j, part) in parts.enumerated() {
                    let partPath = "\(path).content[\(j)]"
                    guard case .object = part else { throw APIError.field(partPath, "'\(partPath)' must be an object") }
                    let p = try Fields(part, prefix: partPath + ".")
                    guard let type = try p.string("type") else { throw APIError.field(partPath + ".type", "'\(partPath).type' is required") }
                    guard type == "text" else {
                        throw APIError.field(partPath + ".type", "'\(partPath).type' is '\(type)': only text content is supported")
                    }
                    guard let text = try p.string("text") else { throw APIError.field(partPath + ".text", "'\(partPath).text' is required") }
                    texts.append(text)
                }
                content = texts.joined(separator: "\n")
            case let other?:
                throw APIError.field(path + ".content", "'\(path).content' must be a string or an array of text parts, got \(other.typeName)")
            }
            messages.append(ChatMessage(role: role, content: content, name: try m.string("name")))
        }
        var r = GenerationRequest(prompt: .chat(messages))
        try r.common(f)
        r.maxTokens = try f.int("max_completion_tokens", min: 0) ?? f.int("max_tokens", min: 0)
        r.logprobs = try f.bool("logprobs") ?? false
        if let top = try f.int("top_logprobs") {
            guard (0...20).contains(top) else { throw APIError.field("top_logprobs", "'top_logprobs' must be an integer from 0 to 20, got \(top)") }
            guard r.logprobs else { throw APIError.field("top_logprobs", "'top_logprobs' needs 'logprobs': true") }
            r.topLogprobs = top
        }
        if let tools = f.value("tools"), tools != .null, tools != .array([]) {
            throw APIError.field("tools", "tools (function calling) are not supported")
        }
        if let functions = f.value("functions"), functions != .null, functions != .array([]) {
            throw APIError.field("functions", "functions (function calling) are not supported")
        }
        if let format = f.value("response_format"), format != .null {
            let type = format["type"]?.string
            guard type == "text" else {
                throw APIError.field("response_format", "only 'response_format': {\"type\": \"text\"} is supported")
            }
        }
        return r
    }

    init(prompt: Prompt) { self.prompt = prompt }

    /// The fields both endpoints share.
    mutating func common(_ f: Fields) throws {
        model = try f.string("model")
        if let t = try f.number("temperature") {
            guard t >= 0, t <= 2 else { throw APIError.field("temperature", "'temperature' must be between 0 and 2, got \(t)") }
            temperature = Float(t)
        }
        if let p = try f.number("top_p") {
            guard p > 0, p <= 1 else { throw APIError.field("top_p", "'top_p' must be in (0, 1], got \(p)") }
            topP = Float(p)
        }
        if let k = try f.int("top_k") {
            guard k >= -1 else { throw APIError.field("top_k", "'top_k' must be ≥ 0 (0 or -1: off), got \(k)") }
            topK = max(k, 0)
        }
        if let penalty = try f.number("repetition_penalty") {
            guard penalty > 0, penalty <= 10 else { throw APIError.field("repetition_penalty", "'repetition_penalty' must be in (0, 10] (1: off), got \(penalty)") }
            repetitionPenalty = Float(penalty)
        }
        for name in ["frequency_penalty", "presence_penalty"] {
            if let v = try f.number(name), v != 0 {
                throw APIError.field(name, "'\(name)' is not supported (only 0); 'repetition_penalty' is")
            }
        }
        if let s = try f.int("seed") { seed = UInt64(bitPattern: Int64(s)) }
        switch f.value("stop") {
        case nil, .null?: break
        case let .string(s)?: stop = [s]
        case let .array(items)?:
            guard items.allSatisfy({ $0.string != nil }) else { throw APIError.field("stop", "'stop' must be a string or an array of strings") }
            stop = items.compactMap(\.string)
        case let other?: throw APIError.field("stop", "'stop' must be a string or an array of strings, got \(other.typeName)")
        }
        guard stop.count <= Self.maxStopStrings else {
            throw APIError.field("stop", "'stop' holds at most \(Self.maxStopStrings) strings, got \(stop.count)")
        }
        for s in stop {
            guard !s.isEmpty else { throw APIError.field("stop", "a stop string is empty") }
            guard s.unicodeScalars.count <= Self.maxStopLength else {
                throw APIError.field("stop", "a stop string is longer than \(Self.maxStopLength) characters")
            }
        }
        stream = try f.bool("stream") ?? false
        if let options = f.value("stream_options"), options != .null {
            guard case .object = options else { throw APIError.field("stream_options", "'stream_options' must be an object") }
            let o = try Fields(options, prefix: "stream_options.")
            includeUsage = try o.bool("include_usage") ?? false
        }
        if let n = try f.int("n"), n != 1 { throw APIError.field("n", "only 'n': 1 is supported (one choice per request), got \(n)") }
        if let bias = f.value("logit_bias"), bias != .null, bias != .object([]) {
            throw APIError.field("logit_bias", "'logit_bias' is not supported")
        }
        ignoreEOS = try f.bool("ignore_eos") ?? false
    }

    /// The sampler's settings; a request without a seed gets a random one.
    var sampling: Sampler.Settings {
        Sampler.Settings(temperature: temperature, topK: topK, topP: topP, repetitionPenalty: repetitionPenalty,
                         seed: seed ?? UInt64.random(in: 0...UInt64.max))
    }
}

/// Typed reads of a JSON object's fields; `null` reads as absent.
struct Fields {
    let object: JSON
    let prefix: String

    init(_ object: JSON, prefix: String = "") throws {
        guard case .object = object else { throw APIError(.badRequest, "the request body must be a JSON object, got \(object.typeName)", code: "invalid_json") }
        self.object = object
        self.prefix = prefix
    }

    func value(_ name: String) -> JSON? { object[name] }

    private func present(_ name: String) -> JSON? {
        guard let v = object[name], v != .null else { return nil }
        return v
    }

    private func wrongType(_ name: String, _ expected: String, _ got: JSON) -> APIError {
        APIError.field(prefix + name, "'\(prefix + name)' must be \(expected), got \(got.typeName)")
    }

    func string(_ name: String) throws -> String? {
        guard let v = present(name) else { return nil }
        guard let s = v.string else { throw wrongType(name, "a string", v) }
        return s
    }

    func bool(_ name: String) throws -> Bool? {
        guard let v = present(name) else { return nil }
        guard let b = v.bool else { throw wrongType(name, "a boolean", v) }
        return b
    }

    func number(_ name: String) throws -> Double? {
        guard let v = present(name) else { return nil }
        guard let d = v.double, d.isFinite else { throw wrongType(name, "a number", v) }
        return d
    }

    /// An integer; a number with a fraction is refused, 16.0 is read as 16.
    func int(_ name: String, min: Int? = nil) throws -> Int? {
        guard let v = present(name) else { return nil }
        let i: Int
        switch v {
        case let .int(x): i = x
        case let .double(d) where d == d.rounded() && abs(d) < 9e15: i = Int(d)
        default: throw wrongType(name, "an integer", v)
        }
        if let min, i < min { throw APIError.field(prefix + name, "'\(prefix + name)' must be ≥ \(min), got \(i)") }
        return i
    }
}
