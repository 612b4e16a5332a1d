import Foundation

// A renderer for the subset of Jinja that Hugging Face chat templates use, with the settings
// transformers renders them with (trim_blocks, lstrip_blocks). docs/server.md lists the subset.
// A template is parsed once, when the server starts: anything outside the subset is refused
// then, naming the construct, rather than failing on a request.

/// A template that cannot be used: the construct at fault and where.
public struct ChatTemplateError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public var description: String { message }
    public init(_ message: String) { self.message = message }
}

/// `raise_exception('…')` called by the template: the request is refused with its message.
public struct TemplateRaised: Error, CustomStringConvertible, Equatable {
    public let message: String
    public var description: String { message }
}

/// A value inside a template.
public indirect enum TemplateValue: Equatable {
    case undefined
    case none
    case bool(Bool)
    case int(Int)
    case string(String)
    case list([TemplateValue])
    case dict([(String, TemplateValue)])

    public static func == (a: TemplateValue, b: TemplateValue) -> Bool { a.equals(b) }

    func equals(_ other: TemplateValue) -> Bool {
        switch (self, other) {
        case (.undefined, .undefined), (.none, .none): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.int(x), .int(y)): return x == y
        // Python: True == 1, False == 0.
        case let (.bool(x), .int(y)), let (.int(y), .bool(x)): return (x ? 1 : 0) == y
        case let (.string(x), .string(y)): return x == y
        case let (.list(x), .list(y)): return x.count == y.count && zip(x, y).allSatisfy { $0.equals($1) }
        case let (.dict(x), .dict(y)):
            return x.count == y.count && x.allSatisfy { key, value in y.contains { $0.0 == key && $0.1.equals(value) } }
        default: return false
        }
    }

    var truthy: Bool {
        switch self {
        case .undefined, .none: return false
        case let .bool(b): return b
        case let .int(i): return i != 0
        case let .string(s): return !s.isEmpty
        case let .list(l): return !l.isEmpty
        case let .dict(d): return !d.isEmpty
        }
    }

    /// As Jinja prints it (Python's str()).
    var rendered: String {
        switch self {
        case .undefined: return ""
        case .none: return "None"
        case let .bool(b): return b ? "True" : "False"
        case let .int(i): return String(i)
        case let .string(s): return s
        case .list, .dict: return repr
        }
    }

    /// Python's repr(), for lists and dicts printed whole.
    var repr: String {
        switch self {
        case let .string(s):
            return "'" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'")
                .replacingOccurrences(of: "\n", with: "\\n") + "'"
        case let .list(l): return "[" + l.map(\.repr).joined(separator: ", ") + "]"
        case let .dict(d): return "{" + d.map { TemplateValue.string($0.0).repr + ": " + $0.1.repr }.joined(separator: ", ") + "}"
        default: return rendered
        }
    }

    var typeName: String {
        switch self {
        case .undefined: return "undefined"
        case .none: return "none"
        case .bool: return "bool"
        case .int: return "int"
        case .string: return "string"
        case .list: return "list"
        case .dict: return "dict"
        }
    }

    func lookup(_ key: String) -> TemplateValue {
        if case let .dict(d) = self { return d.last(where: { $0.0 == key })?.1 ?? .undefined }
        return .undefined
    }
}

// MARK: Template

/// A parsed chat template.
public struct ChatTemplate {
    let nodes: [TemplateNode]
    public let source: String

    static let filters: Set<String> = ["trim", "length", "upper", "lower"]
    static let stringMethods: Set<String> = ["strip", "lstrip", "rstrip", "upper", "lower", "startswith", "endswith", "replace"]
    static let tests: Set<String> = ["defined", "undefined", "none", "string", "number", "mapping", "sequence"]

    /// Parses `source`; throws `ChatTemplateError` naming the first construct outside the subset.
    public init(_ source: String) throws {
        self.source = source
        // As Jinja's lexer: line endings become "\n", and one trailing newline is dropped
        // (keep_trailing_newline is off in transformers' environment).
        var text = source.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
        if text.hasSuffix("\n") { text.removeLast() }
        var lexer = TemplateLexer(text)
        let tokens = try lexer.tokenize()
        var parser = TemplateParser(tokens: tokens)
        nodes = try parser.parseAll()
    }

    /// Renders with the variables transformers' apply_chat_template passes.
    public func render(messages: [[(String, TemplateValue)]], bosToken: String, eosToken: String,
                       addGenerationPrompt: Bool) throws -> String {
        let globals: [(String, TemplateValue)] = [
            ("messages", .list(messages.map { .dict($0) })),
            ("bos_token", .string(bosToken)),
            ("eos_token", .string(eosToken)),
            ("add_generation_prompt", .bool(addGenerationPrompt)),
        ]
        return try render(globals)
    }

    public func render(_ globals: [(String, TemplateValue)]) throws -> String {
        var context = TemplateContext(scopes: [Dictionary(globals, uniquingKeysWith: { $1 })])
        var out = ""
        try context.run(nodes, into: &out)
        return out
    }
}
