/// sentencepiece's normalizer: longest-match rules from the precompiled charsmap, user-defined
/// symbols passed through untouched, then the whitespace options (dummy prefix, collapsing
/// extra spaces, escaping ' ' as U+2581 "▁").
struct SentencePieceNormalizer {
    static let spaceSymbol: [UInt8] = [0xE2, 0x96, 0x81]  // "▁"
    private static let replacementCharacter: [UInt8] = [0xEF, 0xBF, 0xBD]

    private let charsmap: PrecompiledCharsmap?
    private let charsmapStrings: [UInt8]
    private let userDefined: ByteTrie
    private let addDummyPrefix: Bool
    private let removeExtraWhitespaces: Bool
    private let escapeWhitespaces: Bool
    private let treatWhitespaceAsSuffix: Bool

    init(spec: SentencePieceProto.NormalizerSpec, treatWhitespaceAsSuffix: Bool, userDefined: ByteTrie) throws {
        charsmap = spec.precompiledCharsmap.isEmpty ? nil : try PrecompiledCharsmap(blob: spec.precompiledCharsmap)
        charsmapStrings = charsmap?.replacementBytes ?? []
        self.userDefined = userDefined
        addDummyPrefix = spec.addDummyPrefix
        removeExtraWhitespaces = spec.removeExtraWhitespaces
        escapeWhitespaces = spec.escapeWhitespaces
        self.treatWhitespaceAsSuffix = treatWhitespaceAsSuffix
    }

    private enum Source { case input, table, replacement }

    /// The normalized form of the character (or rule, or user-defined symbol) at `start`:
    /// where its bytes live and how many input bytes it consumes.
    @inline(__always)
    private func normalizePrefix(_ text: UnsafeBufferPointer<UInt8>, at start: Int) -> (Source, Range<Int>, consumed: Int) {
        if !userDefined.isEmpty, let (length, _) = userDefined.longestPrefix(text, from: start) {
            return (.input, start..<(start + length), length)
        }
        if let charsmap, let (consumed, replacement) = charsmap.match(text, from: start) {
            return (.table, replacement, consumed)
        }
        guard let length = validUTF8CharLength(text, from: start) else { return (.replacement, 0..<3, 1) }
        return (.input, start..<(start + length), length)
    }

    func normalize(_ input: [UInt8]) -> [UInt8] {
        input.withUnsafeBufferPointer { text in
            charsmapStrings.withUnsafeBufferPointer { table in
                Self.replacementCharacter.withUnsafeBufferPointer { replacement in
                    normalize(text, table: table, replacement: replacement)
                }
            }
        }
    }

    private func normalize(_ text: UnsafeBufferPointer<UInt8>, table: UnsafeBufferPointer<UInt8>,
                           replacement: UnsafeBufferPointer<UInt8>) -> [UInt8] {
        func bytes(_ source: Source) -> UnsafeBufferPointer<UInt8> {
            switch source { case .input: text; case .table: table; case .replacement: replacement }
        }
        var position = 0
        if removeExtraWhitespaces {  // drop leading characters that normalize to a single space
            while position < text.count {
                let (source, range, consumed) = normalizePrefix(text, at: position)
                guard range.count == 1, bytes(source)[range.lowerBound] == 0x20 else { break }
                position += consumed
            }
        }
        if position >= text.count { return [] }

        var output: [UInt8] = []
        output.reserveCapacity((text.count - position) * 3 / 2 + 4)
        func appendSpace() {
            if escapeWhitespaces { output.append(contentsOf: Self.spaceSymbol) } else { output.append(0x20) }
        }
        if !treatWhitespaceAsSuffix && addDummyPrefix { appendSpace() }

        var previousWasSpace = removeExtraWhitespaces
        while position < text.count {
            let (source, range, consumed) = normalizePrefix(text, at: position)
            let piece = bytes(source)
            var start = range.lowerBound
            while previousWasSpace && start < range.upperBound && piece[start] == 0x20 { start += 1 }
            if start < range.upperBound {
                for k in start..<range.upperBound {
                    if escapeWhitespaces && piece[k] == 0x20 { appendSpace() } else { output.append(piece[k]) }
                }
                previousWasSpace = piece[range.upperBound - 1] == 0x20
            }
            position += consumed
            if !removeExtraWhitespaces { previousWasSpace = false }
        }

        if removeExtraWhitespaces {  // drop trailing spaces
            let space: [UInt8] = escapeWhitespaces ? Self.spaceSymbol : [0x20]
            while output.count >= space.count && Array(output[(output.count - space.count)...]) == space {
                output.removeLast(space.count)
            }
        }
        if treatWhitespaceAsSuffix && addDummyPrefix { appendSpace() }
        return output
    }
}
