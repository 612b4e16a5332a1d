import Foundation

// A renderer for the subset of Jinja that Hugging Face chat templates use, with the settings
// transformers renders them with (trim_blocks, lstrip_blocks). docs/server.md lists the subset.
// A template is parsed once, when the server starts: anything outside the subset is refused
// then, naming the construct, rather than failing on a request.

/// A template that cannot be used: the construct at fault and where.
public struct ChatTemplateError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public var description: String { message }
    init(_ message: String) { self.message = message }
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

// MARK: Syntax tree

indirect enum TemplateExpr {
    case literal(TemplateValue)
    case list([TemplateExpr])
    case variable(String)
    case attribute(TemplateExpr, String)
    case subscript_(TemplateExpr, TemplateExpr)
    case slice(TemplateExpr, TemplateExpr?, TemplateExpr?, TemplateExpr?)
    case method(TemplateExpr, String, [TemplateExpr])
    case raise(TemplateExpr)
    case filter(TemplateExpr, String)
    case test(TemplateExpr, String, negated: Bool)
    case not(TemplateExpr)
    case negate(TemplateExpr)
    case binary(String, TemplateExpr, TemplateExpr)
    case and(TemplateExpr, TemplateExpr)
    case or(TemplateExpr, TemplateExpr)
    case conditional(TemplateExpr, condition: TemplateExpr, otherwise: TemplateExpr?)
}

indirect enum TemplateNode {
    case text(String)
    case output(TemplateExpr)
    case ifBlock([(TemplateExpr, [TemplateNode])], otherwise: [TemplateNode]?)
    case forBlock(variable: String, iterable: TemplateExpr, body: [TemplateNode])
    case set(String, TemplateExpr)
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

// MARK: Lexer

enum TemplateToken: Equatable {
    case text(String)
    case outputOpen, outputClose        // {{ }}
    case blockOpen, blockClose          // {% %}
    case name(String)
    case string(String)
    case int(Int)
    case op(String)
}

/// Splits a template into text and tag tokens, applying whitespace control as Jinja does with
/// trim_blocks and lstrip_blocks: `-` strips all whitespace on that side; a block tag removes the
/// newline right after it and the spaces and tabs before it on its line (`{%+` keeps them).
struct TemplateLexer {
    let s: [Character]
    var i = 0
    var tokens: [TemplateToken] = []

    init(_ source: String) { s = Array(source) }

    func at(_ k: Int) -> Character? { k < s.count ? s[k] : nil }
    func starts(_ text: String, at k: Int) -> Bool {
        var j = k
        for c in text { guard j < s.count, s[j] == c else { return false }; j += 1 }
        return true
    }

    func location(_ k: Int) -> String {
        let line = s[..<min(k, s.count)].filter { $0 == "\n" }.count + 1
        return "line \(line)"
    }

    mutating func tokenize() throws -> [TemplateToken] {
        var text = ""
        var stripNextText = false      // a `-` closed the last tag
        var trimNewline = false        // a block tag closed: drop one newline after it
        while i < s.count {
            let opens = s[i] == "{" && (at(i + 1) == "{" || at(i + 1) == "%" || at(i + 1) == "#")
            if !opens {
                if trimNewline {
                    trimNewline = false
                    if s[i] == "\n" || s[i] == "\r\n" { i += 1; continue }
                }
                if stripNextText, s[i].isWhitespace { i += 1; continue }
                stripNextText = false
                text.append(s[i]); i += 1
                continue
            }
            trimNewline = false
            stripNextText = false
            let kind = s[i + 1]
            let start = i
            i += 2
            var modifier: Character? = nil
            if at(i) == "-" || at(i) == "+" { modifier = s[i]; i += 1 }
            // Whitespace before the tag.
            if modifier == "-" {
                while let last = text.last, last.isWhitespace { text.removeLast() }
            } else if kind != "{" && modifier != "+" {
                // lstrip_blocks: in the source, only spaces and tabs between a line start and the tag.
                var j = start - 1
                while j >= 0, s[j] == " " || s[j] == "\t" { j -= 1 }
                if j < 0 || s[j] == "\n" || s[j] == "\r\n" {
                    while let last = text.last, last == " " || last == "\t" { text.removeLast() }
                }
            }
            if !text.isEmpty { tokens.append(.text(text)); text = "" }
            if kind == "#" {
                guard let end = find("#}", from: i) else { throw ChatTemplateError("unclosed comment {# at \(location(start))") }
                let dash = end > i && s[end - 1] == "-"
                i = end + 2
                if dash { stripNextText = true } else { trimNewline = true }
                continue
            }
            tokens.append(kind == "{" ? .outputOpen : .blockOpen)
            let close: String = kind == "{" ? "}}" : "%}"
            try lexTag(close: close, start: start)
            // lexTag leaves i after the closing delimiter and tells whether it had a `-`.
            if lastCloseHadDash { stripNextText = true } else if kind == "%" { trimNewline = true }
            tokens.append(kind == "{" ? .outputClose : .blockClose)
        }
        if !text.isEmpty { tokens.append(.text(text)) }
        return tokens
    }

    func find(_ text: String, from k: Int) -> Int? {
        var j = k
        while j + 1 < s.count {
            if starts(text, at: j) { return j }
            j += 1
        }
        return nil
    }

    var lastCloseHadDash = false

    mutating func lexTag(close: String, start: Int) throws {
        lastCloseHadDash = false
        while true {
            while let c = at(i), c.isWhitespace { i += 1 }
            guard let c = at(i) else { throw ChatTemplateError("unclosed tag at \(location(start))") }
            if c == "-", starts(close, at: i + 1) { lastCloseHadDash = true; i += 1 + close.count; return }
            if starts(close, at: i) { i += close.count; return }
            if c == "'" || c == "\"" {
                tokens.append(.string(try lexString(quote: c)))
            } else if c.isNumber, c.isASCII {
                var digits = ""
                while let d = at(i), d.isASCII, d.isNumber { digits.append(d); i += 1 }
                if at(i) == ".", let d = at(i + 1), d.isNumber {
                    throw ChatTemplateError("unsupported construct: floating-point literal at \(location(i))")
                }
                guard let value = Int(digits) else { throw ChatTemplateError("integer literal \(digits) is too large") }
                tokens.append(.int(value))
            } else if c.isLetter || c == "_" {
                var name = ""
                while let d = at(i), d.isLetter || d.isNumber || d == "_" { name.append(d); i += 1 }
                tokens.append(.name(name))
            } else {
                let two = i + 1 < s.count ? String([s[i], s[i + 1]]) : ""
                if ["==", "!=", "<=", ">=", "//", "**"].contains(two) {
                    tokens.append(.op(two)); i += 2
                } else if "+-*/%~()[]{}.,:|<>=".contains(c) {
                    tokens.append(.op(String(c))); i += 1
                } else {
                    throw ChatTemplateError("unsupported character '\(c)' in a tag at \(location(i))")
                }
            }
        }
    }

    mutating func lexString(quote: Character) throws -> String {
        let start = i
        i += 1
        var out = ""
        while true {
            guard let c = at(i) else { throw ChatTemplateError("unterminated string at \(location(start))") }
            i += 1
            if c == quote { return out }
            if c == "\\" {
                guard let e = at(i) else { throw ChatTemplateError("unterminated string at \(location(start))") }
                i += 1
                switch e {
                case "n": out.append("\n")
                case "t": out.append("\t")
                case "r": out.append("\r")
                case "\\": out.append("\\")
                case "'": out.append("'")
                case "\"": out.append("\"")
                case "\n": break
                default: out.append("\\"); out.append(e)   // Python keeps unknown escapes
                }
                continue
            }
            out.append(c)
        }
    }
}

// MARK: Parser

struct TemplateParser {
    let tokens: [TemplateToken]
    var k = 0
    /// Nesting (blocks, parentheses, `not`, unary minus, conditionals) and the nodes of one tag's
    /// expression are bounded, so that neither parsing nor rendering (both recursive) can run out
    /// of stack on a hostile template: 50,000 nested parentheses or a 50,000-term `~` chain.
    static let maxNesting = 64, maxNodes = 512
    var nesting = 0, parts = 0

    mutating func nest() throws {
        nesting += 1
        guard nesting <= Self.maxNesting else { throw ChatTemplateError("the template nests deeper than \(Self.maxNesting) levels") }
    }

    mutating func grow() throws {
        parts += 1
        guard parts <= Self.maxNodes else { throw ChatTemplateError("an expression of the template has more than \(Self.maxNodes) parts") }
    }

    init(tokens: [TemplateToken]) { self.tokens = tokens }

    var current: TemplateToken? { k < tokens.count ? tokens[k] : nil }

    mutating func parseAll() throws -> [TemplateNode] {
        let (nodes, end) = try parseBody(until: [])
        if let end { throw ChatTemplateError("unexpected {% \(end) %} with no block to close") }
        return nodes
    }

    /// Nodes up to a block tag named in `until` (returned, the tag's name consumed) or the end.
    mutating func parseBody(until: Set<String>) throws -> ([TemplateNode], String?) {
        try nest(); defer { nesting -= 1 }
        var nodes: [TemplateNode] = []
        while let token = current {
            parts = 0                       // each tag's expression is counted on its own
            switch token {
            case let .text(t):
                nodes.append(.text(t)); k += 1
            case .outputOpen:
                k += 1
                let e = try expression()
                try expect(.outputClose, "}}")
                nodes.append(.output(e))
            case .blockOpen:
                k += 1
                guard case let .name(keyword) = current else { throw ChatTemplateError("expected a statement after {%") }
                if until.contains(keyword) {
                    k += 1
                    return (nodes, keyword)
                }
                k += 1
                switch keyword {
                case "if":
                    nodes.append(try ifBlock())
                case "for":
                    guard case let .name(variable) = current else { throw ChatTemplateError("expected a loop variable after 'for'") }
                    k += 1
                    if current == .op(",") { throw ChatTemplateError("unsupported construct: for-loop unpacking (for a, b in …)") }
                    guard current == .name("in") else { throw ChatTemplateError("expected 'in' in a for loop") }
                    k += 1
                    let iterable = try expression(allowConditional: false)
                    if current == .name("if") { throw ChatTemplateError("unsupported construct: for-loop filter (for … in … if …)") }
                    if current == .name("recursive") { throw ChatTemplateError("unsupported construct: recursive for loop") }
                    try expect(.blockClose, "%}")
                    let (body, end) = try parseBody(until: ["endfor", "else"])
                    if end == "else" { throw ChatTemplateError("unsupported construct: {% else %} in a for loop") }
                    guard end == "endfor" else { throw ChatTemplateError("{% for %} without {% endfor %}") }
                    try expect(.blockClose, "%}")
                    nodes.append(.forBlock(variable: variable, iterable: iterable, body: body))
                case "set":
                    guard case let .name(name) = current else { throw ChatTemplateError("expected a name after 'set'") }
                    k += 1
                    if current == .op(".") { throw ChatTemplateError("unsupported construct: attribute assignment ({% set \(name).… %}, namespace())") }
                    if current == .op(",") { throw ChatTemplateError("unsupported construct: tuple assignment in {% set %}") }
                    if current == .blockClose { throw ChatTemplateError("unsupported construct: block assignment ({% set \(name) %}…{% endset %})") }
                    try expect(.op("="), "=")
                    let value = try expression()
                    try expect(.blockClose, "%}")
                    nodes.append(.set(name, value))
                default:
                    throw ChatTemplateError("unsupported construct: {% \(keyword) %}")
                }
            default:
                throw ChatTemplateError("unexpected token \(token)")
            }
        }
        return (nodes, nil)
    }

    mutating func ifBlock() throws -> TemplateNode {
        var branches: [(TemplateExpr, [TemplateNode])] = []
        var condition = try expression()
        try expect(.blockClose, "%}")
        while true {
            let (body, end) = try parseBody(until: ["elif", "else", "endif"])
            branches.append((condition, body))
            switch end {
            case "elif":
                parts = 0
                condition = try expression()
                try expect(.blockClose, "%}")
            case "else":
                try expect(.blockClose, "%}")
                let (otherwise, end2) = try parseBody(until: ["endif"])
                guard end2 == "endif" else { throw ChatTemplateError("{% if %} without {% endif %}") }
                try expect(.blockClose, "%}")
                return .ifBlock(branches, otherwise: otherwise)
            case "endif":
                try expect(.blockClose, "%}")
                return .ifBlock(branches, otherwise: nil)
            default:
                throw ChatTemplateError("{% if %} without {% endif %}")
            }
        }
    }

    mutating func expect(_ token: TemplateToken, _ text: String) throws {
        guard current == token else {
            throw ChatTemplateError("expected \(text), found \(current.map(describe) ?? "the end of the template")")
        }
        k += 1
    }

    func describe(_ t: TemplateToken) -> String {
        switch t {
        case let .text(s): return "text \(s.prefix(20).debugDescription)"
        case .outputOpen: return "{{"
        case .outputClose: return "}}"
        case .blockOpen: return "{%"
        case .blockClose: return "%}"
        case let .name(n): return "'\(n)'"
        case let .string(s): return "string \(s.debugDescription)"
        case let .int(i): return "\(i)"
        case let .op(o): return "'\(o)'"
        }
    }

    // Precedence, lowest first, as Jinja: conditional, or, and, not, comparisons (== != < > <= >=
    // in, not in), + -, ~, * %, unary -, then postfix (attribute, subscript, call), filters, tests.

    mutating func expression(allowConditional: Bool = true) throws -> TemplateExpr {
        try nest(); defer { nesting -= 1 }
        let e = try orExpr()
        if allowConditional, current == .name("if") {
            k += 1
            let condition = try orExpr()
            var otherwise: TemplateExpr? = nil
            if current == .name("else") { k += 1; otherwise = try expression() }
            return .conditional(e, condition: condition, otherwise: otherwise)
        }
        return e
    }

    mutating func orExpr() throws -> TemplateExpr {
        var e = try andExpr()
        while current == .name("or") { k += 1; try grow(); e = .or(e, try andExpr()) }
        return e
    }

    mutating func andExpr() throws -> TemplateExpr {
        var e = try notExpr()
        while current == .name("and") { k += 1; try grow(); e = .and(e, try notExpr()) }
        return e
    }

    mutating func notExpr() throws -> TemplateExpr {
        if current == .name("not") {
            k += 1; try nest(); try grow(); defer { nesting -= 1 }
            return .not(try notExpr())
        }
        return try comparison()
    }

    mutating func comparison() throws -> TemplateExpr {
        var e = try additive()
        while true {
            try grow()
            if case let .op(o) = current, ["==", "!=", "<", ">", "<=", ">="].contains(o) {
                k += 1; e = .binary(o, e, try additive())
            } else if current == .name("in") {
                k += 1; e = .binary("in", e, try additive())
            } else if current == .name("not"), k + 1 < tokens.count, tokens[k + 1] == .name("in") {
                k += 2; e = .not(.binary("in", e, try additive()))
            } else {
                return e
            }
        }
    }

    mutating func additive() throws -> TemplateExpr {
        var e = try concat()
        while case let .op(o) = current, o == "+" || o == "-" { k += 1; try grow(); e = .binary(o, e, try concat()) }
        return e
    }

    mutating func concat() throws -> TemplateExpr {
        var e = try multiplicative()
        while current == .op("~") { k += 1; try grow(); e = .binary("~", e, try multiplicative()) }
        return e
    }

    mutating func multiplicative() throws -> TemplateExpr {
        var e = try unary()
        while case let .op(o) = current, ["*", "%", "/", "//", "**"].contains(o) {
            guard o == "*" || o == "%" else { throw ChatTemplateError("unsupported construct: operator '\(o)'") }
            k += 1; try grow(); e = .binary(o, e, try unary())
        }
        return e
    }

    mutating func unary(withFilters: Bool = true) throws -> TemplateExpr {
        var e: TemplateExpr
        if current == .op("-") || current == .op("+") {
            let minus = current == .op("-")
            k += 1; try nest(); try grow(); defer { nesting -= 1 }
            let operand = try unary(withFilters: false)
            e = minus ? .negate(operand) : operand
        } else {
            e = try postfix(try primary())
        }
        // Filters and tests bind tighter than the binary operators (and apply after a unary minus).
        while withFilters {
            if current == .op("|") {
                k += 1
                guard case let .name(name) = current else { throw ChatTemplateError("expected a filter name after '|'") }
                k += 1
                guard ChatTemplate.filters.contains(name) else { throw ChatTemplateError("unsupported construct: filter '\(name)'") }
                try grow()
                if current == .op("(") { throw ChatTemplateError("unsupported construct: arguments to filter '\(name)'") }
                e = .filter(e, name)
            } else if current == .name("is") {
                k += 1
                var negated = false
                if current == .name("not") { negated = true; k += 1 }
                guard case let .name(name) = current else { throw ChatTemplateError("expected a test name after 'is'") }
                k += 1
                guard ChatTemplate.tests.contains(name) else { throw ChatTemplateError("unsupported construct: test '\(name)'") }
                try grow()
                e = .test(e, name, negated: negated)
            } else {
                break
            }
        }
        return e
    }

    mutating func primary() throws -> TemplateExpr {
        guard let token = current else { throw ChatTemplateError("unexpected end of the template in an expression") }
        try grow()
        k += 1
        switch token {
        case let .string(s):
            var value = s
            while case let .string(more) = current { value += more; k += 1 }   // adjacent literals join
            return .literal(.string(value))
        case let .int(i): return .literal(.int(i))
        case let .name(n):
            switch n {
            case "true", "True": return .literal(.bool(true))
            case "false", "False": return .literal(.bool(false))
            case "none", "None": return .literal(.none)
            case "raise_exception":
                try expect(.op("("), "( after raise_exception")
                let message = try expression()
                try expect(.op(")"), ")")
                return .raise(message)
            default:
                if current == .op("(") { throw ChatTemplateError("unsupported construct: function '\(n)()'") }
                return .variable(n)
            }
        case .op("("):
            let e = try expression()
            if current == .op(",") { throw ChatTemplateError("unsupported construct: tuple literal") }
            try expect(.op(")"), ")")
            return e
        case .op("["):
            var items: [TemplateExpr] = []
            while current != .op("]") {
                items.append(try expression())
                if current == .op(",") { k += 1 } else { break }
            }
            try expect(.op("]"), "]")
            return .list(items)
        case .op("{"):
            throw ChatTemplateError("unsupported construct: dict literal")
        default:
            throw ChatTemplateError("unexpected \(describe(token)) in an expression")
        }
    }

    mutating func postfix(_ base: TemplateExpr) throws -> TemplateExpr {
        var e = base
        while true {
            if current == .op(".") || current == .op("[") { try grow() }
            if current == .op(".") {
                k += 1
                guard case let .name(name) = current else { throw ChatTemplateError("expected a name after '.'") }
                k += 1
                if current == .op("(") {
                    k += 1
                    guard ChatTemplate.stringMethods.contains(name) else { throw ChatTemplateError("unsupported construct: method '\(name)()'") }
                    var args: [TemplateExpr] = []
                    while current != .op(")") {
                        args.append(try expression())
                        if current == .op(",") { k += 1 } else { break }
                    }
                    try expect(.op(")"), ")")
                    e = .method(e, name, args)
                } else {
                    e = .attribute(e, name)
                }
            } else if current == .op("[") {
                k += 1
                var parts: [TemplateExpr?] = [nil]
                var sawColon = false
                while current != .op("]") {
                    if current == .op(":") {
                        sawColon = true; parts.append(nil); k += 1
                        guard parts.count <= 3 else { throw ChatTemplateError("a slice has at most two ':'") }
                    } else {
                        guard parts[parts.count - 1] == nil else { throw ChatTemplateError("expected ']' or ':' in a subscript") }
                        parts[parts.count - 1] = try expression()
                    }
                }
                try expect(.op("]"), "]")
                if sawColon {
                    while parts.count < 3 { parts.append(nil) }
                    e = .slice(e, parts[0], parts[1], parts[2])
                } else {
                    guard let index = parts[0] else { throw ChatTemplateError("empty subscript []") }
                    e = .subscript_(e, index)
                }
            } else if current == .op("(") {
                throw ChatTemplateError("unsupported construct: calling a value")
            } else {
                return e
            }
        }
    }
}

// MARK: Evaluation

struct TemplateContext {
    var scopes: [[String: TemplateValue]]
    /// Output longer than this is an error: a template looping over its own output cannot
    /// exhaust memory. No value may be larger either (a string doubled 40 times).
    static let maxOutput = 16 << 20
    /// Evaluation steps (expressions evaluated, loop iterations) per render: three nested loops
    /// over 1,000 messages, or two over a 200,000-character message, stop with an error.
    static let maxSteps = 1_000_000
    final class Budget { var steps = 0 }
    let budget = Budget()

    @inline(__always)
    func step() throws {
        budget.steps += 1
        guard budget.steps <= Self.maxSteps else { throw ChatTemplateError("the template ran more than \(Self.maxSteps) steps") }
    }

    /// A string or list result must stay within maxOutput (bytes, or elements of a list).
    static func checkSize(_ size: Int, _ what: String) throws {
        guard size <= maxOutput else { throw ChatTemplateError("\(what) would exceed \(maxOutput) bytes") }
    }

    func get(_ name: String) -> TemplateValue {
        for scope in scopes.reversed() { if let v = scope[name] { return v } }
        return .undefined
    }

    mutating func run(_ nodes: [TemplateNode], into out: inout String) throws {
        for node in nodes {
            switch node {
            case let .text(t): out += t
            case let .output(e): out += try eval(e).rendered
            case let .ifBlock(branches, otherwise):
                var done = false
                for (condition, body) in branches where try eval(condition).truthy {
                    try run(body, into: &out); done = true; break
                }
                if !done, let otherwise { try run(otherwise, into: &out) }
            case let .forBlock(variable, iterable, body):
                let items: [TemplateValue]
                switch try eval(iterable) {
                case let .list(l): items = l
                case let .string(s): items = s.map { .string(String($0)) }
                case let .dict(d): items = d.map { .string($0.0) }
                case .undefined: items = []
                case let other: throw ChatTemplateError("cannot loop over a value of type \(other.typeName)")
                }
                for (index, item) in items.enumerated() {
                    try step()
                    let loop: TemplateValue = .dict([
                        ("index", .int(index + 1)), ("index0", .int(index)),
                        ("revindex", .int(items.count - index)), ("revindex0", .int(items.count - index - 1)),
                        ("first", .bool(index == 0)), ("last", .bool(index == items.count - 1)),
                        ("length", .int(items.count)),
                        ("previtem", index > 0 ? items[index - 1] : .undefined),
                        ("nextitem", index + 1 < items.count ? items[index + 1] : .undefined),
                    ])
                    // A loop body is a scope: a {% set %} inside it does not leak out (as Jinja).
                    scopes.append([variable: item, "loop": loop])
                    defer { scopes.removeLast() }
                    try run(body, into: &out)
                }
            case let .set(name, e):
                let v = try eval(e)
                scopes[scopes.count - 1][name] = v
            }
            guard out.utf8.count <= Self.maxOutput else { throw ChatTemplateError("the template's output exceeds \(Self.maxOutput) bytes") }
        }
    }

    func eval(_ e: TemplateExpr) throws -> TemplateValue {
        try step()
        switch e {
        case let .literal(v): return v
        case let .list(items): return .list(try items.map(eval))
        case let .variable(n): return get(n)
        case let .attribute(base, name):
            let b = try eval(base)
            if case .undefined = b { throw ChatTemplateError("'\(describe(base))' is undefined (reading .\(name))") }
            return b.lookup(name)
        case let .subscript_(base, index):
            let b = try eval(base), i = try eval(index)
            switch (b, i) {
            case (.undefined, _): throw ChatTemplateError("'\(describe(base))' is undefined (reading [\(i.repr)])")
            case let (.dict, .string(key)): return b.lookup(key)
            case let (.list(l), .int(n)):
                let j = n < 0 ? l.count + n : n
                return l.indices.contains(j) ? l[j] : .undefined
            case let (.string(s), .int(n)):
                let chars = Array(s)
                let j = n < 0 ? chars.count + n : n
                return chars.indices.contains(j) ? .string(String(chars[j])) : .undefined
            default: return .undefined
            }
        case let .slice(base, lo, hi, step):
            let b = try eval(base)
            func int(_ x: TemplateExpr?) throws -> Int? {
                guard let x else { return nil }
                switch try eval(x) {
                case let .int(i): return i
                case .none: return nil
                case let v: throw ChatTemplateError("slice indices must be integers, got \(v.typeName)")
                }
            }
            let (l, h, st) = (try int(lo), try int(hi), try int(step) ?? 1)
            switch b {
            case let .list(items): return .list(Self.slice(items, l, h, st))
            case let .string(s): return .string(String(Self.slice(Array(s), l, h, st)))
            case .undefined: throw ChatTemplateError("'\(describe(base))' is undefined (slicing)")
            default: throw ChatTemplateError("cannot slice a value of type \(b.typeName)")
            }
        case let .method(base, name, args):
            let b = try eval(base)
            let a = try args.map(eval)
            guard case let .string(s) = b else { throw ChatTemplateError("method \(name)() needs a string, got \(b.typeName)") }
            func stringArg(_ n: Int) throws -> String? {
                guard n < a.count else { return nil }
                guard case let .string(v) = a[n] else {
                    if case .none = a[n] { return nil }
                    throw ChatTemplateError("argument \(n + 1) of \(name)() must be a string")
                }
                return v
            }
            switch name {
            case "strip", "lstrip", "rstrip":
                let chars = try stringArg(0).map { Set($0) }
                let strip: (Character) -> Bool = { c in chars.map { $0.contains(c) } ?? c.isWhitespace }
                var t = Substring(s)
                if name != "rstrip" { while let f = t.first, strip(f) { t.removeFirst() } }
                if name != "lstrip" { while let l = t.last, strip(l) { t.removeLast() } }
                return .string(String(t))
            case "upper": return .string(s.uppercased())
            case "lower": return .string(s.lowercased())
            case "startswith": return .bool(s.hasPrefix(try stringArg(0) ?? ""))
            case "endswith": return .bool(s.hasSuffix(try stringArg(0) ?? ""))
            case "replace":
                guard let old = try stringArg(0), let new = try stringArg(1) else { throw ChatTemplateError("replace() needs two strings") }
                if !old.isEmpty, new.utf8.count > old.utf8.count {     // at most len(s)/len(old) replacements
                    let (grown, o) = (s.utf8.count / old.utf8.count).multipliedReportingOverflow(by: new.utf8.count)
                    try Self.checkSize(o ? Int.max : grown + s.utf8.count, "replace()")
                }
                return .string(old.isEmpty ? s : s.replacingOccurrences(of: old, with: new))
            default: throw ChatTemplateError("unsupported construct: method '\(name)()'")
            }
        case let .raise(message):
            throw TemplateRaised(message: try eval(message).rendered)
        case let .filter(base, name):
            let b = try eval(base)
            switch name {
            case "trim":
                return .string(b.rendered.trimmingCharacters(in: .whitespacesAndNewlines))
            case "upper": return .string(b.rendered.uppercased())
            case "lower": return .string(b.rendered.lowercased())
            case "length":
                switch b {
                case let .string(s): return .int(s.count)
                case let .list(l): return .int(l.count)
                case let .dict(d): return .int(d.count)
                case .undefined: return .int(0)
                default: throw ChatTemplateError("length of a value of type \(b.typeName)")
                }
            default: throw ChatTemplateError("unsupported construct: filter '\(name)'")
            }
        case let .test(base, name, negated):
            let b = try eval(base)
            let result: Bool
            switch name {
            case "defined": if case .undefined = b { result = false } else { result = true }
            case "undefined": if case .undefined = b { result = true } else { result = false }
            case "none": if case .none = b { result = true } else { result = false }
            case "string": if case .string = b { result = true } else { result = false }
            case "number": if case .int = b { result = true } else { result = false }
            case "mapping": if case .dict = b { result = true } else { result = false }
            case "sequence":
                switch b { case .list, .string, .dict: result = true; default: result = false }
            default: throw ChatTemplateError("unsupported construct: test '\(name)'")
            }
            return .bool(result != negated)
        case let .not(x): return .bool(!(try eval(x).truthy))
        case let .negate(x):
            guard case let .int(i) = try eval(x) else { throw ChatTemplateError("unary minus needs an integer") }
            let (r, o) = 0.subtractingReportingOverflow(i)
            guard !o else { throw ChatTemplateError("integer overflow in unary '-'") }
            return .int(r)
        case let .and(x, y):
            let a = try eval(x)
            return a.truthy ? try eval(y) : a
        case let .or(x, y):
            let a = try eval(x)
            return a.truthy ? a : try eval(y)
        case let .conditional(value, condition, otherwise):
            if try eval(condition).truthy { return try eval(value) }
            return try otherwise.map(eval) ?? .undefined
        case let .binary(op, x, y):
            return try binary(op, try eval(x), try eval(y))
        }
    }

    func binary(_ op: String, _ a: TemplateValue, _ b: TemplateValue) throws -> TemplateValue {
        switch op {
        case "==": return .bool(a.equals(b))
        case "!=": return .bool(!a.equals(b))
        case "~":
            let (x, y) = (a.rendered, b.rendered)
            try Self.checkSize(x.utf8.count + y.utf8.count, "'~'")
            return .string(x + y)
        case "in":
            switch b {
            case let .string(s):
                guard case let .string(needle) = a else { throw ChatTemplateError("'in <string>' needs a string on the left, got \(a.typeName)") }
                return .bool(needle.isEmpty || s.contains(needle))
            case let .list(l): return .bool(l.contains { $0.equals(a) })
            case let .dict(d):
                guard case let .string(key) = a else { return .bool(false) }
                return .bool(d.contains { $0.0 == key })
            case .undefined: throw ChatTemplateError("'in' an undefined value")
            default: throw ChatTemplateError("'in' needs a string, list or dict on the right, got \(b.typeName)")
            }
        case "<", ">", "<=", ">=":
            let order: Int
            switch (a, b) {
            case let (.int(x), .int(y)): order = x < y ? -1 : x > y ? 1 : 0
            case let (.string(x), .string(y)): order = x < y ? -1 : x > y ? 1 : 0
            default: throw ChatTemplateError("cannot compare \(a.typeName) with \(b.typeName) using '\(op)'")
            }
            switch op {
            case "<": return .bool(order < 0)
            case ">": return .bool(order > 0)
            case "<=": return .bool(order <= 0)
            default: return .bool(order >= 0)
            }
        case "+":
            switch (a, b) {
            case let (.int(x), .int(y)):
                let (r, overflow) = x.addingReportingOverflow(y)
                guard !overflow else { throw ChatTemplateError("integer overflow in '+'") }
                return .int(r)
            case let (.string(x), .string(y)):
                try Self.checkSize(x.utf8.count + y.utf8.count, "'+'")
                return .string(x + y)
            case let (.list(x), .list(y)):
                try Self.checkSize(x.count + y.count, "'+' of lists")
                return .list(x + y)
            default: throw ChatTemplateError("cannot add \(a.typeName) and \(b.typeName) with '+' (use '~' to join as text)")
            }
        case "-", "*", "%":
            guard case let .int(x) = a, case let .int(y) = b else {
                if op == "*", case let .string(s) = a, case let .int(n) = b {
                    guard n <= 10_000 else { throw ChatTemplateError("string repetition of \(n) is too large") }
                    try Self.checkSize(s.utf8.count * max(0, n), "string repetition")
                    return .string(String(repeating: s, count: max(0, n)))
                }
                throw ChatTemplateError("'\(op)' needs integers, got \(a.typeName) and \(b.typeName)")
            }
            switch op {
            case "-":
                let (r, o) = x.subtractingReportingOverflow(y)
                guard !o else { throw ChatTemplateError("integer overflow in '-'") }
                return .int(r)
            case "*":
                let (r, o) = x.multipliedReportingOverflow(by: y)
                guard !o else { throw ChatTemplateError("integer overflow in '*'") }
                return .int(r)
            default:
                guard y != 0 else { throw ChatTemplateError("modulo by zero") }
                // Python's %: the result has the sign of the divisor. Int.min % -1 is 0 (it traps in Swift).
                let (r, o) = x.remainderReportingOverflow(dividingBy: y)
                if o { return .int(0) }
                return .int(r != 0 && (r < 0) != (y < 0) ? r + y : r)
            }
        default:
            throw ChatTemplateError("unsupported construct: operator '\(op)'")
        }
    }

    static func slice<T>(_ items: [T], _ lo: Int?, _ hi: Int?, _ step: Int) -> [T] {
        let n = items.count
        guard step != 0 else { return [] }
        func clamp(_ v: Int, _ low: Int, _ high: Int) -> Int { min(max(v, low), high) }
        if step > 0 {
            let start = clamp(lo.map { $0 < 0 ? $0 + n : $0 } ?? 0, 0, n)
            let end = clamp(hi.map { $0 < 0 ? $0 + n : $0 } ?? n, 0, n)
            guard start < end else { return [] }
            return stride(from: start, to: end, by: step).map { items[$0] }
        } else {
            let start = clamp(lo.map { $0 < 0 ? $0 + n : $0 } ?? n - 1, -1, n - 1)
            let end = clamp(hi.map { $0 < 0 ? $0 + n : $0 } ?? -1, -1, n - 1)
            guard start > end else { return [] }
            return stride(from: start, to: end, by: step).map { items[$0] }
        }
    }

    func describe(_ e: TemplateExpr) -> String {
        switch e {
        case let .variable(n): return n
        case let .attribute(b, n): return describe(b) + "." + n
        case let .subscript_(b, i):
            if case let .literal(v) = i { return describe(b) + "[" + v.repr + "]" }
            return describe(b) + "[…]"
        default: return "expression"
        }
    }
}
