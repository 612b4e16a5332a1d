/// GPT-2's reversible map from bytes to printable characters: printable Latin-1 bytes stand
/// for themselves, the other 68 bytes take U+0100 onwards in byte order.
enum ByteLevelAlphabet {
    static let scalars: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            let printable = (33...126).contains(byte) || (161...172).contains(byte) || (174...255).contains(byte)
            if printable {
                table[byte] = Unicode.Scalar(UInt32(byte))!
            } else {
                table[byte] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return table
    }()

    static let bytes: [UInt32: UInt8] = {
        var map: [UInt32: UInt8] = [:]
        for (byte, scalar) in scalars.enumerated() { map[scalar.value] = UInt8(byte) }
        return map
    }()

    @inline(__always)
    static func scalar(for byte: UInt8) -> Unicode.Scalar { scalars[Int(byte)] }
}

/// GPT-2's pre-tokenization regex, hand-compiled so that it runs in linear time:
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
enum GPT2Regex {
    private enum Kind { case letter, number, space, other }

    @inline(__always)
    private static func kind(_ scalar: Unicode.Scalar) -> Kind {
        if scalar.isASCII {
            let v = scalar.value
            if (65...90).contains(v) || (97...122).contains(v) { return .letter }
            if (48...57).contains(v) { return .number }
            if v == 32 || (9...13).contains(v) { return .space }
            return .other
        }
        // Fast path for kana and common kanji (categories Lo/Lm), the bulk of Japanese text.
        switch scalar.value {
        case 0x3041...0x3096, 0x309D...0x309F, 0x30A1...0x30FA, 0x30FC...0x30FF, 0x4E00...0x9FFF: return .letter
        default: break
        }
        if scalar.properties.isWhitespace { return .space }
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return .other
        }
    }

    /// The matches of the regex over `text`, left to right (they cover the whole text).
    static func split(_ text: Scalars) -> [Range<Int>] {
        let kinds = text.map(kind)
        let n = text.count
        var result: [Range<Int>] = []
        var i = 0
        func run(from start: Int, _ wanted: Kind) -> Int {
            var j = start
            while j < n && kinds[j] == wanted { j += 1 }
            return j
        }
        while i < n {
            // Contractions.
            if text[i] == "'" && i + 1 < n {
                let c1 = text[i + 1]
                if c1 == "s" || c1 == "t" || c1 == "m" || c1 == "d" { result.append(i..<(i + 2)); i += 2; continue }
                if i + 2 < n {
                    let c2 = text[i + 2]
                    if (c1 == "r" && c2 == "e") || (c1 == "v" && c2 == "e") || (c1 == "l" && c2 == "l") {
                        result.append(i..<(i + 3)); i += 3; continue
                    }
                }
            }
            // An optional single space, then a run of letters, of numbers, or of other symbols.
            let body: Int? = kinds[i] != .space ? i : (text[i] == " " && i + 1 < n && kinds[i + 1] != .space ? i + 1 : nil)
            if let body {
                let end = run(from: body, kinds[body])
                result.append(i..<end); i = end; continue
            }
            // Whitespace: \s+(?!\S) leaves the last space for the next word; else \s+.
            let end = run(from: i, .space)
            if end == n || end - i == 1 {
                result.append(i..<end); i = end
            } else {
                result.append(i..<(end - 1)); i = end - 1
            }
        }
        return result
    }
}
