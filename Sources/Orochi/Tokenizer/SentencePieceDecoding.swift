extension SentencePieceTokenizer {
    private static let replacementCharacter: [UInt8] = [0xEF, 0xBF, 0xBD]

    /// Ids back to text as `sentencepiece` decodes them: control pieces vanish, <unk> becomes
    /// the unk surface (" ⁇ "), runs of byte pieces are reassembled into UTF-8 with each
    /// malformed byte turned into U+FFFD, "▁" becomes a space, and the first piece's leading
    /// "▁" (the dummy prefix) is dropped. Ids outside the vocabulary are skipped.
    public func decode(_ ids: [Int]) -> String {
        String(decoding: decodeBytes(ids), as: UTF8.self)
    }

    func decodeBytes(_ ids: [Int]) -> [UInt8] {
        var text: [UInt8] = []
        var pendingBytes: [UInt8] = []
        var expectingLeadingSpace = true  // sentencepiece's is_bos_ws
        var leadingSpaceSeen = false
        let stripsLeadingSpace = proto.normalizer.addDummyPrefix || proto.normalizer.removeExtraWhitespaces
        let space = SentencePieceNormalizer.spaceSymbol

        func flushBytes() {
            guard !pendingBytes.isEmpty else { return }
            pendingBytes.withUnsafeBufferPointer { bytes in
                var offset = 0
                while offset < bytes.count {
                    if let length = validUTF8CharLength(bytes, from: offset) {
                        text.append(contentsOf: bytes[offset..<(offset + length)])
                        offset += length
                    } else {
                        text.append(contentsOf: Self.replacementCharacter)
                        offset += 1
                    }
                }
            }
            pendingBytes.removeAll(keepingCapacity: true)
        }

        for id in ids where pieces.indices.contains(id) {
            if types[id] == .byte, byteOfId[id] >= 0 {
                pendingBytes.append(UInt8(byteOfId[id]))
                continue
            }
            flushBytes()
            if leadingSpaceSeen || !text.isEmpty { expectingLeadingSpace = false }
            switch types[id] {
            case .control:
                leadingSpaceSeen = false
            case .unknown:
                text.append(contentsOf: proto.unkSurface)
                leadingSpaceSeen = false
            default:
                var piece = pieces[id][...]
                var consumedSpace = false
                if expectingLeadingSpace && stripsLeadingSpace && piece.starts(with: space) {
                    piece = piece.dropFirst(space.count)
                    consumedSpace = !proto.normalizer.removeExtraWhitespaces
                }
                var k = piece.startIndex
                while k < piece.endIndex {
                    if k + 3 <= piece.endIndex && piece[k] == space[0] && piece[k + 1] == space[1] && piece[k + 2] == space[2] {
                        text.append(0x20)
                        k += 3
                    } else {
                        text.append(piece[k])
                        k += 1
                    }
                }
                leadingSpaceSeen = consumedSpace
            }
        }
        flushBytes()
        return text
    }
}
