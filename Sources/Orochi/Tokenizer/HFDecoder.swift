import Foundation

/// tokenizer.json "decoder": token strings → text, each step mapping the list of tokens.
indirect enum HFDecoder {
    case byteLevel
    case byteFallback
    case fuse
    case metaspace(replacement: Unicode.Scalar, prependScheme: String)
    case replace(HFPattern, with: String)
    case strip(content: Unicode.Scalar, start: Int, stop: Int)
    case wordPiece(prefix: String, cleanup: Bool)
    case bpeSuffix(String)
    case sequence([HFDecoder])

    init(_ json: HFJSON) throws {
        switch try json.type() {
        case "ByteLevel": self = .byteLevel
        case "ByteFallback": self = .byteFallback
        case "Fuse": self = .fuse
        case "Metaspace":
            let replacement = try json["replacement"].string(default: "▁")
            var scheme = try json["prepend_scheme"].string(default: "always")
            if json["prepend_scheme"].isNull, let addPrefix = json["add_prefix_space"].bool { scheme = addPrefix ? "always" : "never" }
            self = .metaspace(replacement: replacement.unicodeScalars.first ?? "▁", prependScheme: scheme)
        case "Replace":
            self = .replace(try HFPattern(json["pattern"]), with: try json["content"].requiredString())
        case "Strip":
            let content = try json["content"].string(default: " ")
            self = .strip(content: content.unicodeScalars.first ?? " ", start: try json["start"].nonNegativeInt(default: 0),
                          stop: try json["stop"].nonNegativeInt(default: 0))
        case "WordPiece":
            self = .wordPiece(prefix: try json["prefix"].string(default: "##"), cleanup: try json["cleanup"].bool(default: true))
        case "BPEDecoder": self = .bpeSuffix(try json["suffix"].string(default: "</w>"))
        case "Sequence": self = .sequence(try json["decoders"].requiredArray().map(HFDecoder.init))
        case let other: throw TokenizerError.unsupported(path: json.file, component: "decoder \"\(other)\" (at \(json.path))")
        }
    }

    func decodeChain(_ tokens: [String]) -> [String] {
        switch self {
        case .sequence(let steps):
            return steps.reduce(tokens) { $1.decodeChain($0) }
        case .byteLevel:
            var bytes: [UInt8] = []
            for token in tokens {
                var mapped: [UInt8] = []
                var allMapped = true
                for scalar in token.unicodeScalars {
                    guard let byte = ByteLevelAlphabet.bytes[scalar.value] else { allMapped = false; break }
                    mapped.append(byte)
                }
                bytes.append(contentsOf: allMapped ? mapped : Array(token.utf8))
            }
            return [String(decoding: bytes, as: UTF8.self)]
        case .byteFallback:
            var output: [String] = []
            var pending: [UInt8] = []
            func flush() {
                guard !pending.isEmpty else { return }
                if let text = String(validating: pending, as: UTF8.self) {
                    output.append(text)
                } else {  // the whole run is invalid: one U+FFFD per byte, as tokenizers does
                    output.append(contentsOf: repeatElement("\u{FFFD}", count: pending.count))
                }
                pending.removeAll()
            }
            for token in tokens {
                let utf8 = Array(token.utf8)
                if utf8.count == 6, token.hasPrefix("<0x"), token.hasSuffix(">"),
                   let byte = UInt8(String(decoding: utf8[3..<5], as: UTF8.self), radix: 16) {
                    pending.append(byte)
                } else {
                    flush()
                    output.append(token)
                }
            }
            flush()
            return output
        case .fuse:
            return [tokens.joined()]
        case .metaspace(let replacement, let scheme):
            return tokens.enumerated().map { index, token in
                var text = String.UnicodeScalarView()
                for scalar in token.unicodeScalars {
                    if scalar == replacement {
                        if !(index == 0 && scheme != "never") { text.append(" ") }
                    } else {
                        text.append(scalar)
                    }
                }
                return String(text)
            }
        case .replace(let pattern, let content):
            return tokens.map { token in
                let scalars = Array(token.unicodeScalars)
                var output = ""
                for (range, isMatch) in pattern.splits(scalars) {
                    if isMatch { output += content } else { output += HFNormalizer.string(Array(scalars[range])) }
                }
                return output
            }
        case .strip(let content, let start, let stop):
            return tokens.map { token in
                let characters = Array(token.unicodeScalars)
                var startCut = 0
                for (i, c) in characters.enumerated().prefix(start) {
                    if c == content { startCut = i + 1 } else { break }
                }
                var stopCut = characters.count
                if stop > 0 {
                    for i in 0..<min(stop, characters.count) {
                        let index = characters.count - i - 1
                        if characters[index] == content { stopCut = index } else { break }
                    }
                }
                return startCut < stopCut ? HFNormalizer.string(Array(characters[startCut..<stopCut])) : ""
            }
        case .wordPiece(let prefix, let cleanup):
            return tokens.enumerated().map { index, token in
                var text = token
                if index != 0 {
                    if text.hasPrefix(prefix) { text.removeFirst(prefix.count) } else { text = " " + text }
                }
                if cleanup {
                    for (from, to) in [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                                       (" 'm", "'m"), (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")] {
                        text = text.replacingOccurrences(of: from, with: to)
                    }
                }
                return text
            }
        case .bpeSuffix(let suffix):
            return tokens.enumerated().map { index, token in
                token.replacingOccurrences(of: suffix, with: index == tokens.count - 1 ? "" : " ")
            }
        }
    }
}
