/// A strict RFC 8259 JSON parser for config.json, tokenizer.json and tokenizer_config.json.
///
/// Hugging Face `tokenizers` reads tokenizer.json with serde_json, which refuses what RFC 8259
/// refuses; Foundation's JSONSerialization is laxer (it accepts trailing commas, for one) and
/// turns `true` and `1.5` into NSNumbers that read as the integers 1. This parser refuses
/// everything serde_json refuses that matters here (trailing commas, comments, a byte-order
/// mark, leading zeros, bare NaN/Infinity, control characters and lone surrogates in strings,
/// invalid UTF-8, nesting deeper than serde_json's 128 levels, anything after the value) and
/// keeps the types apart: an integer literal (no fraction, no exponent) that fits 64 bits is an
/// `Int`, any other number a `Double`, booleans are `Bool`, null is `NSNull`, objects are
/// `[String: Any]` (a repeated key keeps its last value, as serde_json's maps do), arrays `[Any]`.
/// Iterative, so a deeply nested file cannot exhaust the stack.
import Foundation

enum StrictJSON {
    struct SyntaxError: Error, Equatable {
        let line: Int
        let column: Int
        let detail: String
    }

    /// serde_json's default recursion limit.
    static let maxDepth = 128

    /// `pythonFloats`: also read Python's `Infinity`, `-Infinity` and `NaN`, which Python's json
    /// (and so transformers) writes and reads in config.json, e.g. Mamba-2's `time_step_limit`
    /// [0.0, Infinity]. Each becomes `{"__float__": "Infinity"}`, the form transformers 5 writes
    /// them in, so one decoder (`ConfigFloat`) reads both and JSONSerialization can still carry them.
    static func parse(_ bytes: [UInt8], pythonFloats: Bool = false) throws -> Any {
        try bytes.withUnsafeBufferPointer { buffer in
            var parser = Parser(bytes: buffer)
            parser.pythonFloats = pythonFloats
            return try parser.document()
        }
    }

    /// An array or object being filled (a class, so that appending never copies it).
    private final class Container {
        let isObject: Bool
        var items: [Any] = []
        var members: [String: Any] = [:]
        var key = ""
        init(isObject: Bool) { self.isObject = isObject }
    }

    private struct Parser {
        let bytes: UnsafeBufferPointer<UInt8>
        var position = 0
        var pythonFloats = false

        init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

        func fail(_ detail: String, at offset: Int? = nil) -> SyntaxError {
            let end = min(offset ?? position, bytes.count)
            var line = 1, lineStart = 0
            for k in 0..<end where bytes[k] == 0x0A { line += 1; lineStart = k + 1 }
            // Columns count characters, not bytes (UTF-8 continuation bytes are skipped).
            var column = 1
            for k in lineStart..<end where bytes[k] & 0xC0 != 0x80 { column += 1 }
            return SyntaxError(line: line, column: column, detail: detail)
        }

        var current: UInt8? { position < bytes.count ? bytes[position] : nil }

        mutating func skipWhitespace() {
            while position < bytes.count {
                switch bytes[position] {
                case 0x20, 0x09, 0x0A, 0x0D: position += 1
                default: return
                }
            }
        }

        func describe(_ byte: UInt8?) -> String {
            guard let byte else { return "the end of the file" }
            if byte >= 0x21 && byte < 0x7F { return "'\(Character(Unicode.Scalar(byte)))'" }
            return "byte 0x\(String(byte, radix: 16, uppercase: true))"
        }

        mutating func document() throws -> Any {
            if bytes.count >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF {
                throw fail("a byte-order mark (serde_json, which tokenizers uses, refuses it)", at: 0)
            }
            var stack: [Container] = []
            var result: Any
            var afterComma = false
            parsing: while true {
                skipWhitespace()
                // A value.
                var value: Any
                switch current {
                case UInt8(ascii: "{"):
                    position += 1
                    skipWhitespace()
                    if current == UInt8(ascii: "}") {
                        position += 1
                        value = [String: Any]()
                    } else {
                        guard stack.count < StrictJSON.maxDepth else { throw fail("nesting no deeper than \(StrictJSON.maxDepth) levels") }
                        let object = Container(isObject: true)
                        object.key = try objectKey()
                        stack.append(object)
                        afterComma = false
                        continue parsing
                    }
                case UInt8(ascii: "["):
                    position += 1
                    skipWhitespace()
                    if current == UInt8(ascii: "]") {
                        position += 1
                        value = [Any]()
                    } else {
                        guard stack.count < StrictJSON.maxDepth else { throw fail("nesting no deeper than \(StrictJSON.maxDepth) levels") }
                        stack.append(Container(isObject: false))
                        afterComma = false
                        continue parsing
                    }
                case UInt8(ascii: "\""): value = try string()
                case UInt8(ascii: "t"): try literal("true"); value = true
                case UInt8(ascii: "f"): try literal("false"); value = false
                case UInt8(ascii: "n"): try literal("null"); value = NSNull()
                case UInt8(ascii: "I") where pythonFloats: try literal("Infinity"); value = ["__float__": "Infinity"]
                case UInt8(ascii: "N") where pythonFloats: try literal("NaN"); value = ["__float__": "NaN"]
                case UInt8(ascii: "-") where pythonFloats && position + 1 < bytes.count && bytes[position + 1] == UInt8(ascii: "I"):
                    position += 1; try literal("Infinity"); value = ["__float__": "-Infinity"]
                case let byte? where byte == UInt8(ascii: "-") || (byte >= 0x30 && byte <= 0x39): value = try number()
                case let byte:
                    if afterComma && byte == UInt8(ascii: "]") { throw fail("a value after ',' (a trailing comma before ']')") }
                    throw fail("a value, found \(describe(byte))")
                }
                // Close every container the value completes.
                while let top = stack.last {
                    skipWhitespace()
                    if top.isObject {
                        top.members[top.key] = value
                        if current == UInt8(ascii: ",") {
                            position += 1
                            skipWhitespace()
                            if current == UInt8(ascii: "}") { throw fail("a member after ',' (a trailing comma before '}')") }
                            top.key = try objectKey()
                            afterComma = false
                            continue parsing
                        }
                        guard current == UInt8(ascii: "}") else { throw fail("',' or '}' after an object member, found \(describe(current))") }
                        position += 1
                        value = top.members
                    } else {
                        top.items.append(value)
                        if current == UInt8(ascii: ",") {
                            position += 1
                            afterComma = true
                            continue parsing
                        }
                        guard current == UInt8(ascii: "]") else { throw fail("',' or ']' after an array element, found \(describe(current))") }
                        position += 1
                        value = top.items
                    }
                    stack.removeLast()
                }
                result = value
                break parsing
            }
            skipWhitespace()
            guard position == bytes.count else { throw fail("the end of the file after the value, found \(describe(current))") }
            return result
        }

        /// `"key" :` at the current position.
        mutating func objectKey() throws -> String {
            guard current == UInt8(ascii: "\"") else {
                throw fail("a member name in double quotes, found \(describe(current))")
            }
            let key = try string()
            skipWhitespace()
            guard current == UInt8(ascii: ":") else { throw fail("':' after a member name, found \(describe(current))") }
            position += 1
            return key
        }

        mutating func literal(_ word: StaticString) throws {
            let start = position
            let count = word.utf8CodeUnitCount
            guard bytes.count - position >= count else { throw fail("a value", at: start) }
            for k in 0..<count where bytes[position + k] != word.utf8Start[k] { throw fail("a value (true, false or null?)", at: start) }
            position += count
        }

        mutating func number() throws -> Any {
            let start = position
            var isInteger = true
            if current == UInt8(ascii: "-") { position += 1 }
            func isDigit(_ byte: UInt8?) -> Bool { byte.map { $0 >= 0x30 && $0 <= 0x39 } ?? false }
            guard isDigit(current) else { throw fail("a digit in a number", at: position) }
            if current == UInt8(ascii: "0") {
                position += 1
                if isDigit(current) { throw fail("a number without leading zeros", at: start) }
            } else {
                while isDigit(current) { position += 1 }
            }
            if current == UInt8(ascii: ".") {
                isInteger = false
                position += 1
                guard isDigit(current) else { throw fail("a digit after the decimal point") }
                while isDigit(current) { position += 1 }
            }
            if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
                isInteger = false
                position += 1
                if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { position += 1 }
                guard isDigit(current) else { throw fail("a digit in the exponent") }
                while isDigit(current) { position += 1 }
            }
            let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
            if isInteger, let integer = Int(text) { return integer }
            guard let double = Double(text), double.isFinite else { throw fail("a number that fits a 64-bit float", at: start) }
            return double
        }

        mutating func hex4() throws -> UInt32 {
            guard bytes.count - position >= 4 else { throw fail("four hex digits after \\u") }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[position]
                let digit: UInt32
                switch byte {
                case 0x30...0x39: digit = UInt32(byte - 0x30)
                case 0x41...0x46: digit = UInt32(byte - 0x41 + 10)
                case 0x61...0x66: digit = UInt32(byte - 0x61 + 10)
                default: throw fail("a hex digit in a \\u escape, found \(describe(byte))")
                }
                value = value << 4 | digit
                position += 1
            }
            return value
        }

        mutating func string() throws -> String {
            let start = position
            position += 1  // the opening quote
            var scalars = String.UnicodeScalarView()
            var sawEscape = false
            var runStart = position
            func flush(_ end: Int) {
                if end > runStart {
                    scalars.append(contentsOf: String(decoding: UnsafeBufferPointer(rebasing: bytes[runStart..<end]), as: UTF8.self).unicodeScalars)
                }
            }
            while true {
                guard position < bytes.count else { throw fail("the closing '\"' of the string that starts here", at: start) }
                let byte = bytes[position]
                if byte == UInt8(ascii: "\"") {
                    defer { position += 1 }
                    guard sawEscape else { return String(decoding: UnsafeBufferPointer(rebasing: bytes[runStart..<position]), as: UTF8.self) }
                    flush(position)
                    return String(scalars)
                }
                if byte < 0x20 { throw fail("no control character (byte 0x\(String(byte, radix: 16, uppercase: true))) inside a string; write it escaped") }
                if byte == UInt8(ascii: "\\") {
                    sawEscape = true
                    flush(position)
                    position += 1
                    guard position < bytes.count else { throw fail("an escape after '\\'") }
                    let escape = bytes[position]
                    position += 1
                    switch escape {
                    case UInt8(ascii: "\""): scalars.append("\"")
                    case UInt8(ascii: "\\"): scalars.append("\\")
                    case UInt8(ascii: "/"): scalars.append("/")
                    case UInt8(ascii: "b"): scalars.append("\u{08}")
                    case UInt8(ascii: "f"): scalars.append("\u{0C}")
                    case UInt8(ascii: "n"): scalars.append("\n")
                    case UInt8(ascii: "r"): scalars.append("\r")
                    case UInt8(ascii: "t"): scalars.append("\t")
                    case UInt8(ascii: "u"):
                        let escapeStart = position - 2
                        var value = try hex4()
                        if (0xD800...0xDBFF).contains(value) {
                            guard bytes.count - position >= 6, bytes[position] == UInt8(ascii: "\\"), bytes[position + 1] == UInt8(ascii: "u") else {
                                throw fail("a low surrogate \\uDC00-\\uDFFF after the high surrogate (lone surrogate)", at: escapeStart)
                            }
                            position += 2
                            let low = try hex4()
                            guard (0xDC00...0xDFFF).contains(low) else {
                                throw fail("a low surrogate \\uDC00-\\uDFFF after the high surrogate (lone surrogate)", at: escapeStart)
                            }
                            value = 0x10000 + ((value - 0xD800) << 10) + (low - 0xDC00)
                        } else if (0xDC00...0xDFFF).contains(value) {
                            throw fail("no lone low surrogate \\u\(String(value, radix: 16, uppercase: true))", at: escapeStart)
                        }
                        scalars.append(Unicode.Scalar(value)!)
                    default:
                        throw fail("a valid escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX), found \(describe(escape))", at: position - 2)
                    }
                    runStart = position
                    continue
                }
                if byte < 0x80 { position += 1; continue }
                guard let length = validUTF8CharLength(bytes, from: position) else { throw fail("valid UTF-8") }
                position += length
            }
        }
    }
}
