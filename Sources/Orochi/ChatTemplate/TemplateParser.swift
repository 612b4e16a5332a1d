import Foundation

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
