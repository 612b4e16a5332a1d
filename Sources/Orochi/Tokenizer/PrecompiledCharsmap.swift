/// sentencepiece's precompiled normalization rules (`nmt_nfkc`, `nfkc`, `nmt_nfkc_cf`, custom
/// TSV rules): a darts-clone trie from source byte strings to offsets into a table of
/// NUL-terminated replacement strings. Blob layout: <trie size: UInt32 LE><trie units><strings>.
///
/// Applied as the file specifies, never approximated with Foundation's NFKC, whose Unicode
/// version and exceptions differ from the rules the model was trained with.
struct PrecompiledCharsmap {
    private let trie: DoubleArrayTrie
    private let replacements: [UInt8]

    /// Refuses what sentencepiece's Normalizer refuses (DecodePrecompiledCharsMap, then
    /// darts-clone's validate): every offset and value in the trie is checked here, once.
    init(blob: [UInt8]) throws {
        guard blob.count > 4 else {
            throw ProtobufReader.Malformed(detail: "precompiled_charsmap of \(blob.count) bytes is shorter than its 4-byte header and trie")
        }
        let trieSize = Int(UInt32(blob[0]) | UInt32(blob[1]) << 8 | UInt32(blob[2]) << 16 | UInt32(blob[3]) << 24)
        guard trieSize < blob.count - 4 else {
            throw ProtobufReader.Malformed(detail: "precompiled_charsmap trie size \(trieSize) exceeds the blob of \(blob.count) bytes")
        }
        guard trieSize >= 1024, trieSize % 1024 == 0 else {
            throw ProtobufReader.Malformed(detail: "precompiled_charsmap trie size \(trieSize) is not a positive multiple of 1024")
        }
        var units = [UInt32](repeating: 0, count: trieSize / 4)
        for k in units.indices {
            let o = 4 + 4 * k
            units[k] = UInt32(blob[o]) | UInt32(blob[o + 1]) << 8 | UInt32(blob[o + 2]) << 16 | UInt32(blob[o + 3]) << 24
        }
        trie = DoubleArrayTrie(units: units)
        replacements = Array(blob[(4 + trieSize)...])
        if let problem = trie.validate(maxValue: replacements.count) {
            throw ProtobufReader.Malformed(detail: "precompiled_charsmap is invalid: \(problem)")
        }
    }

    /// The longest rule matching at `text[start...]`: how many bytes it consumes and the range
    /// of its replacement in `replacementBytes`.
    @inline(__always)
    func match(_ text: UnsafeBufferPointer<UInt8>, from start: Int) -> (consumed: Int, replacement: Range<Int>)? {
        guard let (length, value) = trie.longestPrefix(text, from: start), value < replacements.count else { return nil }
        var end = value
        while end < replacements.count, replacements[end] != 0 { end += 1 }
        return (length, value..<end)
    }

    var replacementBytes: [UInt8] { replacements }

    /// The value of the shortest rule prefixing `text`.
    func firstPrefixValue(_ text: UnsafeBufferPointer<UInt8>) -> Int? {
        trie.longestPrefix(text, from: 0, stopAtFirst: true)?.value
    }
}

/// Bytes of one UTF-8 character starting with `lead`, as sentencepiece counts them
/// (a continuation or invalid lead byte counts as one).
@inline(__always)
func utf8CharLength(_ lead: UInt8) -> Int {
    switch lead >> 4 {
    case 0xC, 0xD: return 2
    case 0xE: return 3
    case 0xF: return 4
    default: return 1
    }
}

/// Length of the valid UTF-8 character at `text[start...]`, or nil when it is malformed.
func validUTF8CharLength(_ text: UnsafeBufferPointer<UInt8>, from start: Int) -> Int? {
    let lead = text[start]
    if lead < 0x80 { return 1 }
    let length = utf8CharLength(lead)
    guard length > 1, start + length <= text.count else { return nil }
    var scalar = UInt32(lead) & (length == 2 ? 0x1F : length == 3 ? 0x0F : 0x07)
    for k in 1..<length {
        let byte = text[start + k]
        guard byte & 0xC0 == 0x80 else { return nil }
        scalar = scalar << 6 | UInt32(byte & 0x3F)
    }
    let minimum: UInt32 = length == 2 ? 0x80 : length == 3 ? 0x800 : 0x10000
    guard scalar >= minimum, scalar <= 0x10FFFF, !(0xD800...0xDFFF).contains(scalar) else { return nil }
    return length
}
