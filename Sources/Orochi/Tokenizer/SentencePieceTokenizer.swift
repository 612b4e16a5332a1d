import Foundation

/// A SentencePiece `tokenizer.model`: normalizer, then the unigram / BPE / word / char model,
/// then unknown handling (byte fallback or merging runs of <unk>), as `sentencepiece` does.
public final class SentencePieceTokenizer: Tokenizer {
    typealias PieceType = SentencePieceProto.PieceType

    let proto: SentencePieceProto
    let pieces: [[UInt8]]
    let scores: [Float]
    let types: [PieceType]
    /// Normal, user-defined and unused pieces (sentencepiece's `pieces_`).
    let pieceTrie: ByteTrie
    /// What the unigram lattice needs at each trie node, in one place (one cache line):
    /// the piece id (-1 for none or an UNUSED piece), its score, whether it is user-defined.
    struct NodePiece {
        var id: Int32
        var score: Float
        var isUserDefined: Bool
    }
    let nodePieces: [NodePiece]
    /// Control, unknown and byte pieces (sentencepiece's `reserved_id_map_`), looked up first.
    let reservedTrie: ByteTrie
    let userDefinedTrie: ByteTrie
    let normalizer: SentencePieceNormalizer
    let unknownId: Int
    let byteIds: [Int]            // id of <0xXX>, or -1
    let byteOfId: [Int16]         // the byte a byte piece stands for, or -1
    let minScore: Float
    let maxScore: Float
    /// BPE only: every pair of adjacent characters inside some piece. Where two neighbouring
    /// characters of the input form no such pair, no merge can ever cross between them, so
    /// the text is merged in independent stretches and the agenda stays small even for a
    /// megabyte-long line (the result is the same as merging the whole line at once).
    let bpeBigrams: FastKeySet
    /// Whether some piece is UNUSED: BPE may still merge into it, then splits it back.
    let hasUnusedPieces: Bool

    public var vocabSize: Int { pieces.count }
    /// sentencepiece's kMaxPieceSize: a piece of this many bytes or more is refused.
    static let maxPieceBytes = 8000
    public let bosTokenId: Int?
    public let eosTokenId: Int?
    /// Whether `encode(_, addSpecialTokens: true)` prepends BOS / appends EOS. Defaults follow
    /// Hugging Face's LlamaTokenizer (BOS yes, EOS no); a model directory's
    /// tokenizer_config.json overrides them.
    public var addBosToken = true
    public var addEosToken = false

    public convenience init(contentsOf url: URL) throws {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw TokenizerError.fileNotFound(path: url.path)
        }
        try self.init(bytes: [UInt8](data), path: url.path)
    }

    public convenience init(bytes: [UInt8], path: String = "<memory>") throws {
        let proto: SentencePieceProto
        do { proto = try SentencePieceProto(bytes: bytes) } catch let error as ProtobufReader.Malformed {
            throw TokenizerError.corruptModel(path: path, detail: error.detail)
        }
        try self.init(proto: proto, path: path)
    }

    init(proto: SentencePieceProto, path: String) throws {
        guard !proto.pieces.isEmpty else { throw TokenizerError.corruptModel(path: path, detail: "no pieces (field 1 of ModelProto)") }
        self.proto = proto
        pieces = proto.pieces.map(\.text)
        scores = proto.pieces.map(\.score)
        types = proto.pieces.map(\.type)

        var normalEntries: [([UInt8], Int32)] = []
        var userDefinedEntries: [([UInt8], Int32)] = []
        var reserved: [[UInt8]: Int] = [:]
        var unknown = -1
        var byteIds = [Int](repeating: -1, count: 256)
        var byteOfId = [Int16](repeating: -1, count: proto.pieces.count)
        var minScore = Float.greatestFiniteMagnitude, maxScore = Float.leastNormalMagnitude  // C++ FLT_MAX, FLT_MIN
        // The checks of sentencepiece's ModelInterface::InitializePieces, in its order.
        func describe(_ id: Int) -> String { "piece \(id) \(String(decoding: proto.pieces[id].text, as: UTF8.self).debugDescription)" }
        if let long = proto.pieces.firstIndex(where: { $0.text.count >= Self.maxPieceBytes }) {
            throw TokenizerError.corruptModel(path: path, detail: "piece \(long) is too long (\(proto.pieces[long].text.count) bytes; sentencepiece refuses \(Self.maxPieceBytes) or more)")
        }
        var normalIds: [[UInt8]: Int] = [:]
        for (id, piece) in proto.pieces.enumerated() {
            guard !piece.text.isEmpty else { throw TokenizerError.corruptModel(path: path, detail: "piece \(id) is empty") }
            if piece.text == [0] && piece.type == .unused { continue }  // skipped by sentencepiece
            guard !piece.text.contains(0) else {
                throw TokenizerError.corruptModel(path: path, detail: "\(describe(id)) contains a null character")
            }
            // Normal, user-defined and unused pieces share one map, control, unknown and byte
            // pieces another; a text may appear once in each.
            let isNormal = piece.type == .normal || piece.type == .userDefined || piece.type == .unused
            if let first = isNormal ? normalIds[piece.text] : reserved[piece.text] {
                throw TokenizerError.corruptModel(path: path, detail: "\(describe(id)) is already defined (as piece \(first))")
            }
            if isNormal { normalIds[piece.text] = id }
            switch piece.type {
            case .normal, .userDefined, .unused:
                normalEntries.append((piece.text, Int32(id)))
                if piece.type == .userDefined { userDefinedEntries.append((piece.text, Int32(id))) }
                if piece.type == .normal { minScore = min(minScore, piece.score); maxScore = max(maxScore, piece.score) }
            case .unknown, .control, .byte:
                reserved[piece.text] = id
                if piece.type == .unknown {
                    guard unknown < 0 else { throw TokenizerError.corruptModel(path: path, detail: "two unknown pieces (\(unknown) and \(id))") }
                    unknown = id
                }
                if piece.type == .byte {
                    guard proto.byteFallback else {
                        throw TokenizerError.corruptModel(path: path, detail: "byte \(describe(id)) although trainer_spec.byte_fallback is false")
                    }
                    guard let byte = Self.byteValue(ofPiece: piece.text) else {
                        throw TokenizerError.corruptModel(path: path, detail: "byte \(describe(id)) is invalid (expected <0x00> ... <0xFF>)")
                    }
                    byteIds[Int(byte)] = id
                    byteOfId[id] = Int16(byte)
                }
            }
        }
        guard unknown >= 0 else { throw TokenizerError.corruptModel(path: path, detail: "no piece of type UNKNOWN") }
        if proto.byteFallback && byteIds.contains(-1) {
            throw TokenizerError.corruptModel(path: path, detail: "byte_fallback is set but not all 256 <0xXX> pieces exist")
        }
        guard proto.pieces.count <= Int(Int32.max) else {
            throw TokenizerError.corruptModel(path: path, detail: "\(proto.pieces.count) pieces, more than 32-bit ids can hold")
        }
        pieceTrie = ByteTrie(normalEntries)
        nodePieces = pieceTrie.values.map { value in
            let id = Int(value)
            guard id >= 0, proto.pieces[id].type != .unused else { return NodePiece(id: -1, score: 0, isUserDefined: false) }
            return NodePiece(id: value, score: proto.pieces[id].score, isUserDefined: proto.pieces[id].type == .userDefined)
        }
        var bigrams = Set<UInt64>()
        if proto.modelType == .bpe {
            for (text, _) in normalEntries {
                var previousKey: UInt32?
                var k = 0
                while k < text.count {
                    let length = min(utf8CharLength(text[k]), text.count - k)
                    let key = Self.characterKey(text, k, length)
                    if let previousKey { bigrams.insert(UInt64(previousKey) << 32 | UInt64(key)) }
                    previousKey = key
                    k += length
                }
            }
        }
        bpeBigrams = FastKeySet(bigrams)
        hasUnusedPieces = proto.pieces.contains { $0.type == .unused }
        userDefinedTrie = ByteTrie(userDefinedEntries)
        reservedTrie = ByteTrie(reserved.map { ($0.key, Int32($0.value)) })
        unknownId = unknown
        self.byteIds = byteIds
        self.byteOfId = byteOfId
        self.minScore = minScore
        self.maxScore = maxScore
        do {
            normalizer = try SentencePieceNormalizer(spec: proto.normalizer, treatWhitespaceAsSuffix: proto.treatWhitespaceAsSuffix,
                                                     userDefined: userDefinedTrie)
        } catch let error as ProtobufReader.Malformed {
            throw TokenizerError.corruptModel(path: path, detail: error.detail)
        }
        let count = proto.pieces.count
        bosTokenId = (0..<count).contains(proto.bosId) ? proto.bosId : nil
        eosTokenId = (0..<count).contains(proto.eosId) ? proto.eosId : nil
    }

    /// A character's (at most 4) UTF-8 bytes packed into one integer.
    @inline(__always)
    static func characterKey<C: RandomAccessCollection>(_ bytes: C, _ start: C.Index, _ length: Int) -> UInt32 where C.Element == UInt8, C.Index == Int {
        var key: UInt32 = 0
        for k in start..<(start + length) { key = key << 8 | UInt32(bytes[k]) }
        return key
    }

    /// "<0xE3>" → 0xE3.
    static func byteValue(ofPiece piece: [UInt8]) -> UInt8? {
        guard piece.count == 6, piece[0] == UInt8(ascii: "<"), piece[1] == UInt8(ascii: "0"),
              piece[2] == UInt8(ascii: "x"), piece[5] == UInt8(ascii: ">"),
              let value = UInt8(String(decoding: piece[3..<5], as: UTF8.self), radix: 16),
              String(decoding: piece[3..<5], as: UTF8.self) == String(format: "%02X", value) else { return nil }
        return value
    }

    public func piece(for id: Int) -> String? {
        guard pieces.indices.contains(id) else { return nil }
        return String(decoding: pieces[id], as: UTF8.self)
    }

    /// sentencepiece's PieceToId: reserved pieces first, then the vocabulary, else unk.
    func pieceId(_ bytes: ArraySlice<UInt8>) -> Int {
        let reserved = reservedTrie.value(of: bytes)
        if reserved >= 0 { return Int(reserved) }
        let id = pieceTrie.value(of: bytes)
        return id >= 0 ? Int(id) : unknownId
    }

    // MARK: Encoding

    public func encode(_ text: String, addSpecialTokens: Bool) -> [Int] {
        encode(utf8: Array(text.utf8), addSpecialTokens: addSpecialTokens)
    }

    public func encode(utf8 text: [UInt8], addSpecialTokens: Bool) -> [Int] {
        let normalized = normalizer.normalize(text)
        let segments: [Segment]
        switch proto.modelType {
        case .unigram: segments = unigramSegments(normalized)
        case .bpe: segments = bpeSegments(normalized)
        case .word: segments = wordSegments(normalized)
        case .char: segments = charSegments(normalized)
        }
        var ids: [Int] = []
        ids.reserveCapacity(segments.count + 2)
        if addSpecialTokens, addBosToken, let bos = bosTokenId { ids.append(bos) }
        var previousWasUnknown = false
        for segment in segments {
            let id = Int(segment.id)
            let range = Int(segment.start)..<Int(segment.end)
            let isUnknown = id == unknownId
            if isUnknown && proto.byteFallback {
                for byte in normalized[range] { ids.append(byteIds[Int(byte)]) }
            } else if !(isUnknown && previousWasUnknown) {  // a run of unknown pieces becomes one <unk>
                ids.append(id)
            }
            previousWasUnknown = isUnknown
        }
        if addSpecialTokens, addEosToken, let eos = eosTokenId { ids.append(eos) }
        return ids
    }

    /// Viterbi over the lattice of pieces (sentencepiece's EncodeOptimized): the best path
    /// ending at each byte offset, built left to right while walking the piece trie.
    /// A piece of the normalized text and its id (12 bytes: a megabyte line makes ~300k).
    struct Segment {
        var start: Int32
        var end: Int32
        var id: Int32
        init(start: Int32, end: Int32, id: Int32) { (self.start, self.end, self.id) = (start, end, id) }
        init(_ range: Range<Int>, _ id: Int) { self.init(start: Int32(range.lowerBound), end: Int32(range.upperBound), id: Int32(id)) }
    }

    /// The best path ending at one byte offset: its score, where its last piece starts, which piece.
    private struct BestPath {
        var score: Float
        var start: Int32
        var id: Int32
    }

    /// sentencepiece's kScoreResetThreshold (EncodeOptimized, 0.2.3).
    private static let scoreResetThreshold: Float = 100_000

    private func unigramSegments(_ text: [UInt8]) -> [Segment] {
        let size = text.count
        if size == 0 { return [] }
        let unknownScore = minScore - 10  // sentencepiece's kUnkPenalty
        var best = [BestPath](repeating: BestPath(score: 0, start: -1, id: -1), count: size + 1)
        text.withUnsafeBufferPointer { bytes in
            nodePieces.withUnsafeBufferPointer { nodePieces in
                best.withUnsafeMutableBufferPointer { best in
                    var start = 0
                    var frontier = 0  // the furthest end offset any piece has reached
                    while start < size {
                        var scoreHere = best[start].score
                        // sentencepiece 0.2.3 keeps float32 path scores small: past ±100,000 the
                        // score here is subtracted from every reached node from here to the
                        // frontier (exactly its loop, so the same near-ties break the same way).
                        if scoreHere < -Self.scoreResetThreshold || scoreHere > Self.scoreResetThreshold {
                            let offset = scoreHere
                            var k = start
                            while k <= frontier {
                                if k == start || best[k].start != -1 { best[k].score -= offset }
                                k += 1
                            }
                            scoreHere = 0
                        }
                        let charLength = min(utf8CharLength(bytes[start]), size - start)
                        var hasSingleCharPiece = false
                        var node = ByteTrie.root
                        var end = start
                        while end < size {
                            node = pieceTrie.child(node, bytes[end])
                            if node < 0 { break }
                            end += 1
                            let piece = nodePieces[Int(node)]
                            if piece.id < 0 { continue }
                            if end > frontier { frontier = end }
                            let length = end - start
                            // User-defined symbols score 0.1 (length - 1) (sentencepiece 0.2.3's
                            // GetUserDefinedScore, computed in double and returned as float), above
                            // any log probability. Single precision throughout, as sentencepiece
                            // computes it: ties between equal-scoring splits depend on the rounding.
                            let score: Float = piece.isUserDefined ? Float(0.1 * Double(length - 1)) : piece.score
                            let candidate = score + scoreHere
                            if best[end].start == -1 || candidate > best[end].score {
                                best[end] = BestPath(score: candidate, start: Int32(start), id: piece.id)
                            }
                            if length == charLength { hasSingleCharPiece = true }
                        }
                        if !hasSingleCharPiece {
                            let end = start + charLength
                            if end > frontier { frontier = end }
                            let candidate = unknownScore + scoreHere
                            if best[end].start == -1 || candidate > best[end].score {
                                best[end] = BestPath(score: candidate, start: Int32(start), id: Int32(unknownId))
                            }
                        }
                        start += charLength
                    }
                }
            }
        }
        var segments: [Segment] = []
        var end = size
        while end > 0 {
            let start = Int(best[end].start)
            segments.append(Segment(start: Int32(start), end: Int32(end), id: best[end].id))
            end = start
        }
        segments.reverse()
        return segments
    }

    /// A candidate merge in the agenda: 8 bytes, so that the heap of a long line stays in cache.
    /// It does not record the right symbol: when popped, the pair now at `left` is looked up
    /// again and merged only if its score is still `score`. That merges exactly what
    /// sentencepiece merges — always the adjacent pair with the highest score, leftmost on ties,
    /// because every pair that becomes adjacent gets its own entry with that same key.
    private struct Merge: Comparable {
        var score: Float
        var left: Int32
        /// sentencepiece pops the highest score first, then the leftmost.
        static func < (a: Merge, b: Merge) -> Bool {
            a.score < b.score || (a.score == b.score && a.left > b.left)
        }
    }

    /// sentencepiece's BPE: characters (and user-defined symbols, which never merge) in a
    /// linked list, candidate merges in a priority queue by the merged piece's score.
    /// One symbol of the BPE linked list.
    private struct Symbol {
        var start: Int32
        var length: Int32      // 0 once merged into its left neighbour
        var node: Int32        // its node in the piece trie, -1 when no piece starts with it
        var previous: Int32
        var next: Int32
        var frozen: Bool       // a user-defined symbol: never merged
    }

    private func bpeSegments(_ text: [UInt8]) -> [Segment] {
        if text.isEmpty { return [] }
        var symbols: [Symbol] = []
        symbols.reserveCapacity(text.count / 2 + 1)
        text.withUnsafeBufferPointer { bytes in
            var position = 0
            while position < bytes.count {
                var length = min(utf8CharLength(bytes[position]), bytes.count - position)
                var isUserDefined = false
                if !userDefinedTrie.isEmpty, let (matched, _) = userDefinedTrie.longestPrefix(bytes, from: position) {
                    length = matched
                    isUserDefined = true
                }
                var node = ByteTrie.root
                for k in position..<(position + length) {
                    node = pieceTrie.child(node, bytes[k])
                    if node < 0 { break }
                }
                let index = Int32(symbols.count)
                symbols.append(Symbol(start: Int32(position), length: Int32(length), node: node,
                                      previous: index - 1, next: index + 1, frozen: isUserDefined))
                position += length
            }
        }
        let count = symbols.count
        var agenda = BinaryHeap<Merge>(capacity: 64)
        var splitsOfUnused: [Int32: (Range<Int>, Range<Int>)] = [:]

        text.withUnsafeBufferPointer { bytes in
            symbols.withUnsafeMutableBufferPointer { symbols in
                /// The trie node of the piece that symbols `left` + `right` would form, or -1.
                func mergedNode(_ left: Int32, _ right: Int32) -> Int32 {
                    guard left >= 0, right >= 0 else { return -1 }
                    let l = symbols[Int(left)], r = symbols[Int(right)]
                    guard !l.frozen, !r.frozen, l.node >= 0 else { return -1 }
                    var node = l.node
                    for k in Int(r.start)..<Int(r.start + r.length) {
                        node = pieceTrie.child(node, bytes[k])
                        if node < 0 { return -1 }
                    }
                    return node
                }
                func consider(_ left: Int32, _ right: Int32) {
                    let node = mergedNode(left, right)
                    guard node >= 0 else { return }
                    let id = Int(pieceTrie.values[Int(node)])
                    guard id >= 0 else { return }
                    agenda.push(Merge(score: scores[id], left: left))
                    if hasUnusedPieces && types[id] == .unused {  // remember how to split it back (last wins)
                        let l = symbols[Int(left)], r = symbols[Int(right)]
                        splitsOfUnused[Int32(id)] = (Int(l.start)..<Int(l.start + l.length), Int(r.start)..<Int(r.start + r.length))
                    }
                }
                func mergeStretch(_ first: Int, _ end: Int) {
                    symbols[first].previous = -1
                    symbols[end - 1].next = -1
                    for index in (first + 1)..<max(end, first + 1) { consider(Int32(index - 1), Int32(index)) }
                    while let top = agenda.pop() {
                        let left = Int(top.left)
                        guard symbols[left].length > 0, symbols[left].next >= 0 else { continue }
                        let right = Int(symbols[left].next)
                        let node = mergedNode(Int32(left), Int32(right))
                        guard node >= 0 else { continue }
                        let id = Int(pieceTrie.values[Int(node)])
                        guard id >= 0, scores[id] == top.score else { continue }  // stale: the pair changed
                        symbols[left].length += symbols[right].length
                        symbols[left].node = node
                        let after = symbols[right].next
                        symbols[left].next = after
                        if after >= 0 { symbols[Int(after)].previous = Int32(left) }
                        symbols[right].length = 0
                        consider(symbols[left].previous, Int32(left))
                        consider(Int32(left), after)
                    }
                }
                var stretchStart = 0
                var previousKey: UInt32 = 0
                for index in 0...count {
                    var isBoundary = index == count
                    if index < count {
                        let symbol = symbols[index]
                        let key = Self.characterKey(bytes, Int(symbol.start), symbol.length <= 4 ? Int(symbol.length) : 0)
                        // With UNUSED pieces the order of the considered pairs decides how they are
                        // split back, so the text is then merged in one piece as sentencepiece does.
                        if index > 0 && !hasUnusedPieces {
                            isBoundary = symbol.frozen || symbols[index - 1].frozen
                                || !bpeBigrams.contains(UInt64(previousKey) << 32 | UInt64(key))
                        }
                        previousKey = key
                    }
                    if isBoundary && index > stretchStart {
                        mergeStretch(stretchStart, index)
                        stretchStart = index
                    }
                }
            }
        }
        var segments: [Segment] = []
        segments.reserveCapacity(count)
        for symbol in symbols where symbol.length > 0 {
            let range = Int(symbol.start)..<Int(symbol.start + symbol.length)
            // PieceToId: reserved pieces first, then the symbol's own trie node, else unk.
            let reserved = reservedTrie.value(of: text[range])
            let piece = symbol.node >= 0 ? Int(pieceTrie.values[Int(symbol.node)]) : -1
            let id = reserved >= 0 ? Int(reserved) : piece >= 0 ? piece : unknownId
            if types[id] == .unused {
                resegment(range, text, splitsOfUnused, into: &segments)
            } else {
                segments.append(Segment(range, id))
            }
        }
        return segments
    }

    /// sentencepiece's resegmentation: an UNUSED piece that BPE formed is replaced by the two
    /// symbols it was last formed from, recursively.
    private func resegment(_ range: Range<Int>, _ text: [UInt8], _ splits: [Int32: (Range<Int>, Range<Int>)],
                           into segments: inout [Segment]) {
        let id = pieceId(text[range])
        guard types[id] == .unused, let (left, _) = splits[Int32(id)] else {
            segments.append(Segment(range, id))
            return
        }
        resegment(range.lowerBound..<(range.lowerBound + left.count), text, splits, into: &segments)
        resegment((range.lowerBound + left.count)..<range.upperBound, text, splits, into: &segments)
    }

    /// The word model: whitespace-delimited words (sentencepiece's SplitIntoWords), each a piece or unk.
    private func wordSegments(_ text: [UInt8]) -> [Segment] {
        let space = SentencePieceNormalizer.spaceSymbol
        func isSpace(_ k: Int) -> Bool { k + 3 <= text.count && text[k] == space[0] && text[k + 1] == space[1] && text[k + 2] == space[2] }
        var words: [Range<Int>] = []
        var k = 0
        var inWhitespace = false
        if proto.treatWhitespaceAsSuffix {
            if !text.isEmpty { words.append(0..<0) }
            while k < text.count {
                let length = min(utf8CharLength(text[k]), text.count - k)
                let ws = isSpace(k)
                if ws { inWhitespace = true } else if inWhitespace {
                    if proto.allowWhitespaceOnlyPieces { words.append(k..<k) }
                    inWhitespace = false
                }
                words[words.count - 1] = words[words.count - 1].lowerBound..<(k + length)
                k += length
                if k < text.count && ws && !proto.allowWhitespaceOnlyPieces { words.append(k..<k) }
            }
        } else {
            while k < text.count {
                let length = min(utf8CharLength(text[k]), text.count - k)
                let ws = isSpace(k)
                if k == 0 || (ws && (!inWhitespace || !proto.allowWhitespaceOnlyPieces)) {
                    words.append(k..<k)
                    inWhitespace = true
                }
                if inWhitespace && !ws { inWhitespace = false }
                words[words.count - 1] = words[words.count - 1].lowerBound..<(k + length)
                k += length
            }
        }
        return words.map { Segment($0, pieceId(text[$0])) }
    }

    private func charSegments(_ text: [UInt8]) -> [Segment] {
        var segments: [Segment] = []
        var k = 0
        while k < text.count {
            let range = k..<min(k + utf8CharLength(text[k]), text.count)
            segments.append(Segment(range, pieceId(text[range])))
            k = range.upperBound
        }
        return segments
    }
}
