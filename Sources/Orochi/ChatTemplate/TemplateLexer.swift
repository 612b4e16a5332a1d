import Foundation

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
