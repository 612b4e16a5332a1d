import Foundation

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
