import Foundation

typealias Scalars = [Unicode.Scalar]

/// tokenizer.json "normalizer": a tree of string-to-string steps.
indirect enum HFNormalizer {
    case nfc, nfd, nfkc, nfkd
    case lowercase
    case strip(left: Bool, right: Bool)
    case replace(HFPattern, with: Scalars)
    case prepend(Scalars)
    case precompiled(PrecompiledCharsmap)
    case sequence([HFNormalizer])

    init(_ json: HFJSON) throws {
        switch try json.type() {
        case "NFC": self = .nfc
        case "NFD": self = .nfd
        case "NFKC": self = .nfkc
        case "NFKD": self = .nfkd
        case "Lowercase": self = .lowercase
        case "Strip": self = .strip(left: try json["strip_left"].bool(default: true), right: try json["strip_right"].bool(default: true))
        case "Replace":
            self = .replace(try HFPattern(json["pattern"]), with: Array(try json["content"].requiredString().unicodeScalars))
        case "Prepend": self = .prepend(Array(try json["prepend"].requiredString().unicodeScalars))
        case "Precompiled":
            let encoded = try json["precompiled_charsmap"].string(default: "")
            if encoded.isEmpty { self = .sequence([]); return }
            guard let data = Data(base64Encoded: encoded) else { throw json["precompiled_charsmap"].error("base64 data") }
            do { self = .precompiled(try PrecompiledCharsmap(blob: [UInt8](data))) } catch {
                throw json["precompiled_charsmap"].error("a valid sentencepiece charsmap")
            }
        case "Sequence": self = .sequence(try json["normalizers"].requiredArray().map(HFNormalizer.init))
        case let other: throw TokenizerError.unsupported(path: json.file, component: "normalizer \"\(other)\" (at \(json.path))")
        }
    }

    func apply(_ text: Scalars) -> Scalars {
        switch self {
        case .nfc: return Self.unicodeNormalize(text) { $0.decomposedStringWithCanonicalMapping.precomposedStringWithCanonicalMapping }
        case .nfd: return Self.unicodeNormalize(text) { $0.decomposedStringWithCanonicalMapping }
        case .nfkc: return Self.unicodeNormalize(text) { $0.decomposedStringWithCompatibilityMapping.precomposedStringWithCanonicalMapping }
        case .nfkd: return Self.unicodeNormalize(text) { $0.decomposedStringWithCompatibilityMapping }
        case .lowercase:
            // Per character, without context (Rust's char::to_lowercase).
            var output = Scalars()
            output.reserveCapacity(text.count)
            for scalar in text {
                if scalar.isASCII {
                    output.append(scalar.value >= 65 && scalar.value <= 90 ? Unicode.Scalar(scalar.value + 32)! : scalar)
                } else {
                    output.append(contentsOf: scalar.properties.lowercaseMapping.unicodeScalars)
                }
            }
            return output
        case .strip(let left, let right):
            var start = 0, end = text.count
            if left { while start < end && text[start].properties.isWhitespace { start += 1 } }
            if right { while end > start && text[end - 1].properties.isWhitespace { end -= 1 } }
            return Array(text[start..<end])
        case .replace(let pattern, let content):
            var output = Scalars()
            for (range, isMatch) in pattern.splits(text) {
                if isMatch { output.append(contentsOf: content) } else { output.append(contentsOf: text[range]) }
            }
            return output
        case .prepend(let prefix):
            return text.isEmpty ? text : prefix + text
        case .precompiled(let charsmap):
            return Self.applyPrecompiled(charsmap, text)
        case .sequence(let steps):
            return steps.reduce(text) { $1.apply($0) }
        }
    }

    /// Applies a Foundation normalization form the way `tokenizers` does. Two differences to
    /// bridge: Foundation's one-step NFKC/NFC on Linux skips some compositions (ｶﾞ stays
    /// カ + U+3099), so forms are composed explicitly after decomposing; and tokenizers' tables
    /// predate Unicode 12 (U+1F16C, U+32FF ㋿ stay as they are), so characters from Unicode 12
    /// on pass through unchanged.
    private static func unicodeNormalize(_ text: Scalars, _ form: (String) -> String) -> Scalars {
        var output = Scalars()
        output.reserveCapacity(text.count)
        var runStart = 0
        for (index, scalar) in text.enumerated() where scalar.value >= 0x80 {
            guard let age = scalar.properties.age, age.major >= 12 else { continue }
            if runStart < index { output.append(contentsOf: form(string(Array(text[runStart..<index]))).unicodeScalars) }
            output.append(scalar)
            runStart = index + 1
        }
        if runStart < text.count { output.append(contentsOf: form(string(Array(text[runStart...]))).unicodeScalars) }
        return output
    }

    static func string(_ scalars: Scalars) -> String {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        return String(view)
    }

    /// The `tokenizers` reading of a charsmap (spm_precompiled): per grapheme cluster, the
    /// first (shortest) rule prefixing the whole cluster when it is under 6 bytes, else per
    /// character. This differs from sentencepiece's longest match, on purpose, as upstream.
    private static func applyPrecompiled(_ charsmap: PrecompiledCharsmap, _ text: Scalars) -> Scalars {
        var output: [UInt8] = []
        let table = charsmap.replacementBytes
        for character in string(text) {
            let bytes = Array(String(character).utf8)
            if bytes.count < 6, let range = firstRule(charsmap, bytes) {
                output.append(contentsOf: table[range])
                continue
            }
            for scalar in character.unicodeScalars {
                let scalarBytes = Array(String(scalar).utf8)
                if let range = firstRule(charsmap, scalarBytes) {
                    output.append(contentsOf: table[range])
                } else {
                    output.append(contentsOf: scalarBytes)
                }
            }
        }
        return Array(String(decoding: output, as: UTF8.self).unicodeScalars)
    }

    private static func firstRule(_ charsmap: PrecompiledCharsmap, _ bytes: [UInt8]) -> Range<Int>? {
        bytes.withUnsafeBufferPointer { charsmap.shortestMatch($0) }
    }
}

/// A "pattern" of Replace / Split: {"String": "..."} (literal) or {"Regex": "..."}.
enum HFPattern {
    case literal(Scalars)
    case regex(NSRegularExpression)

    init(_ json: HFJSON) throws {
        if let literal = json["String"].string {
            self = .literal(Array(literal.unicodeScalars))
        } else if let pattern = json["Regex"].string {
            do { self = .regex(try NSRegularExpression(pattern: pattern)) } catch {
                throw json["Regex"].error("a regular expression that ICU accepts")
            }
        } else {
            throw json.error("{\"String\": ...} or {\"Regex\": ...}")
        }
    }

    /// The text cut into alternating non-matching and matching ranges (empty ranges kept, as
    /// `tokenizers` does; callers drop them).
    func splits(_ text: Scalars) -> [(Range<Int>, Bool)] {
        if text.isEmpty { return [(0..<0, false)] }
        var matches: [Range<Int>] = []
        switch self {
        case .literal(let needle):
            guard !needle.isEmpty else { return [(0..<text.count, false)] }
            var k = 0
            while k + needle.count <= text.count {
                if text[k] == needle[0] && text[k..<(k + needle.count)].elementsEqual(needle) {
                    matches.append(k..<(k + needle.count))
                    k += needle.count
                } else {
                    k += 1
                }
            }
        case .regex(let regex):
            // NSRegularExpression speaks UTF-16 offsets; map them back to scalar indices.
            let string = HFNormalizer.string(text)
            var scalarAtUTF16 = [Int](repeating: 0, count: string.utf16.count + 1)
            var utf16Offset = 0
            for (index, scalar) in text.enumerated() {
                let width = scalar.value > 0xFFFF ? 2 : 1
                for k in 0..<width { scalarAtUTF16[utf16Offset + k] = index }
                utf16Offset += width
            }
            scalarAtUTF16[utf16Offset] = text.count
            for match in regex.matches(in: string, range: NSRange(location: 0, length: utf16Offset)) {
                matches.append(scalarAtUTF16[match.range.location]..<scalarAtUTF16[match.range.location + match.range.length])
            }
        }
        var result: [(Range<Int>, Bool)] = []
        var previous = 0
        for match in matches {
            if previous != match.lowerBound { result.append((previous..<match.lowerBound, false)) }
            result.append((match, true))
            previous = match.upperBound
        }
        if previous != text.count { result.append((previous..<text.count, false)) }
        return result
    }
}

extension PrecompiledCharsmap {
    /// The first rule found along `bytes` (the shortest prefix), as spm_precompiled's transform.
    func shortestMatch(_ bytes: UnsafeBufferPointer<UInt8>) -> Range<Int>? {
        guard let value = firstPrefixValue(bytes) else { return nil }
        let table = replacementBytes
        guard value < table.count else { return nil }
        var end = value
        while end < table.count, table[end] != 0 { end += 1 }
        return value..<end
    }
}
