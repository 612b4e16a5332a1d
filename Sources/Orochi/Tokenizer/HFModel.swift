import Foundation

/// tokenizer.json "model": one pre-tokenized word → ids.
protocol HFModel: AnyObject {
    /// token string → id, id → token string (without added tokens)
    var tokenToId: [String: Int] { get }
    var idToToken: [String?] { get }
    func tokenize(_ word: Scalars, into ids: inout [Int])
}

func loadHFModel(_ json: HFJSON) throws -> any HFModel {
    let type = json["type"].isNull ? (json["merges"].isNull ? (json["vocab"].array != nil ? "Unigram" : "WordPiece") : "BPE") : try json.type()
    switch type {
    case "BPE": return try HFBPEModel(json)
    case "Unigram": return try HFUnigramModel(json)
    case "WordPiece": return try HFWordPieceModel(json)
    case "WordLevel": return try HFWordLevelModel(json)
    case let other: throw TokenizerError.unsupported(path: json.file, component: "model \"\(other)\" (at \(json.path))")
    }
}

/// Reads {"token": id, ...} into both directions.
func readVocabObject(_ json: HFJSON) throws -> (tokenToId: [String: Int], idToToken: [String?]) {
    guard let object = json.object else { throw json.error("an object mapping tokens to ids") }
    var tokenToId: [String: Int] = [:]
    tokenToId.reserveCapacity(object.count)
    var maxId = -1
    for token in object.keys {
        let id = try json[token].tokenId()
        tokenToId[token] = id
        maxId = max(maxId, id)
    }
    var idToToken = [String?](repeating: nil, count: maxId + 1)
    for (token, id) in tokenToId { idToToken[id] = token }
    return (tokenToId, idToToken)
}

func byteFallbackToken(_ byte: UInt8) -> String {
    let hex = "0123456789ABCDEF".utf8.map { Character(Unicode.Scalar($0)) }
    return "<0x\(hex[Int(byte >> 4)])\(hex[Int(byte & 15)])>"
}

/// Hugging Face BPE: characters (or byte-fallback pieces, or unk) in a linked list, merges
/// applied lowest rank first (leftmost on ties) from a priority queue; linear in the word
/// length up to the log factor, so a 1 MB word without spaces is fine.
final class HFBPEModel: HFModel {
    let tokenToId: [String: Int]
    let idToToken: [String?]
    /// (left id, right id) → rank << 32 | merged id
    private var merges = FastKeyMap([])
    private var singleScalarIds = FastKeyMap([])
    private let unknownToken: String?
    private let unknownId: Int?
    private let fuseUnknown: Bool
    private let byteFallback: Bool
    private let ignoreMerges: Bool
    private let continuingPrefix: String?
    private let endOfWordSuffix: String?
    private var byteIds = [Int32](repeating: -1, count: 256)

    init(_ json: HFJSON) throws {
        let vocab = try readVocabObject(json["vocab"])
        (tokenToId, idToToken) = vocab
        unknownToken = json["unk_token"].string
        unknownId = unknownToken.flatMap { vocab.tokenToId[$0] }
        fuseUnknown = try json["fuse_unk"].bool(default: false)
        byteFallback = try json["byte_fallback"].bool(default: false)
        ignoreMerges = try json["ignore_merges"].bool(default: false)
        continuingPrefix = json["continuing_subword_prefix"].string
        endOfWordSuffix = json["end_of_word_suffix"].string
        if json["dropout"].double.map({ $0 > 0 }) == true {
            throw TokenizerError.unsupported(path: json.file, component: "BPE dropout (model.dropout), which is random")
        }
        singleScalarIds = FastKeyMap(tokenToId.compactMap { token, id in
            token.unicodeScalars.count == 1 ? (UInt64(token.unicodeScalars.first!.value), UInt64(id)) : nil
        })
        for byte in 0...255 { byteIds[byte] = Int32(tokenToId[byteFallbackToken(UInt8(byte))] ?? -1) }
        let prefixLength = continuingPrefix?.count ?? 0
        var mergeEntries: [(UInt64, UInt64)] = []
        for (rank, merge) in try json["merges"].requiredArray().enumerated() {
            let left: String, right: String
            if let pair = merge.string {
                let parts = pair.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw merge.error("\"left right\"") }
                (left, right) = (String(parts[0]), String(parts[1]))
            } else if let pair = merge.array, pair.count == 2, let l = pair[0].string, let r = pair[1].string {
                (left, right) = (l, r)
            } else {
                throw merge.error("\"left right\" or [\"left\", \"right\"]")
            }
            guard let leftId = tokenToId[left] else { throw merge.error("a merge of tokens in the vocabulary (\(left) is not)") }
            guard let rightId = tokenToId[right] else { throw merge.error("a merge of tokens in the vocabulary (\(right) is not)") }
            let merged = left + String(right.dropFirst(prefixLength))
            guard let newId = tokenToId[merged] else { throw merge.error("a merge whose result \(merged) is in the vocabulary") }
            mergeEntries.append((UInt64(leftId) << 32 | UInt64(rightId), UInt64(rank) << 32 | UInt64(newId)))
        }
        merges = FastKeyMap(mergeEntries)
    }

    @inline(__always)
    private func mergeOf(_ left: Int32, _ right: Int32) -> (rank: Int32, newId: Int32)? {
        guard let packed = merges[UInt64(UInt32(left)) << 32 | UInt64(UInt32(right))] else { return nil }
        return (Int32(truncatingIfNeeded: packed >> 32), Int32(truncatingIfNeeded: packed))
    }

    private struct Candidate: Comparable {
        var rank: Int32
        var position: Int32
        var newId: Int32
        /// Popped first: lowest rank, then leftmost.
        static func < (a: Candidate, b: Candidate) -> Bool {
            a.rank > b.rank || (a.rank == b.rank && a.position > b.position)
        }
    }

    func tokenize(_ word: Scalars, into ids: inout [Int]) {
        if word.isEmpty { return }
        if ignoreMerges, let id = tokenToId[HFNormalizer.string(word)] { ids.append(id); return }
        // Initial symbols.
        var symbols: [Int32] = []
        symbols.reserveCapacity(word.count)
        var pendingUnknown = false
        let plain = continuingPrefix == nil && endOfWordSuffix == nil
        for (index, scalar) in word.enumerated() {
            var id: Int32?
            var text: String?
            if plain {
                id = singleScalarIds[UInt64(scalar.value)].map { Int32(truncatingIfNeeded: $0) }
            } else {
                var s = String(scalar)
                if index > 0, let continuingPrefix { s = continuingPrefix + s }
                if index == word.count - 1, let endOfWordSuffix { s += endOfWordSuffix }
                id = tokenToId[s].map(Int32.init)
                text = s
            }
            if let id {
                if pendingUnknown, let unknownId { symbols.append(Int32(unknownId)); pendingUnknown = false }
                symbols.append(id)
                continue
            }
            if byteFallback {
                let bytes = Array((text ?? String(scalar)).utf8)
                if bytes.allSatisfy({ byteIds[Int($0)] >= 0 }) {
                    for byte in bytes { symbols.append(byteIds[Int(byte)]) }
                    continue
                }
            }
            guard let unknownId else { continue }  // no unk token: the character is dropped, as upstream
            if pendingUnknown && !fuseUnknown { symbols.append(Int32(unknownId)) }
            pendingUnknown = true
        }
        if pendingUnknown, let unknownId { symbols.append(Int32(unknownId)) }

        let count = symbols.count
        if count == 0 { return }  // every character unknown and no unk token: nothing, as upstream
        if count == 1 { ids.append(Int(symbols[0])); return }
        var links = (0..<count).map { Link(previous: Int32($0 - 1), next: $0 + 1 < count ? Int32($0 + 1) : -1, alive: true) }
        var queue = BinaryHeap<Candidate>(capacity: count)
        symbols.withUnsafeMutableBufferPointer { symbols in
            links.withUnsafeMutableBufferPointer { links in
                for position in 0..<(count - 1) {
                    if let merge = mergeOf(symbols[position], symbols[position + 1]) {
                        queue.push(Candidate(rank: merge.rank, position: Int32(position), newId: merge.newId))
                    }
                }
                while let top = queue.pop() {
                    let position = Int(top.position)
                    guard links[position].alive, links[position].next >= 0 else { continue }
                    let right = Int(links[position].next)
                    // Stale unless the pair now at `position` still merges into the same token.
                    guard let merge = mergeOf(symbols[position], symbols[right]), merge.newId == top.newId else { continue }
                    symbols[position] = top.newId
                    links[right].alive = false
                    let after = links[right].next
                    links[position].next = after
                    if after >= 0 { links[Int(after)].previous = Int32(position) }
                    let before = links[position].previous
                    if before >= 0, let merge = mergeOf(symbols[Int(before)], symbols[position]) {
                        queue.push(Candidate(rank: merge.rank, position: before, newId: merge.newId))
                    }
                    if after >= 0, let merge = mergeOf(symbols[position], symbols[Int(after)]) {
                        queue.push(Candidate(rank: merge.rank, position: Int32(position), newId: merge.newId))
                    }
                }
            }
        }
        for index in 0..<count where links[index].alive { ids.append(Int(symbols[index])) }
    }

    private struct Link {
        var previous: Int32
        var next: Int32
        var alive: Bool
    }
}

/// Hugging Face Unigram: Viterbi over pieces with f64 scores, unknown characters scored
/// min_score - 10 and fused into one <unk>, optional byte fallback for them.
final class HFUnigramModel: HFModel {
    let tokenToId: [String: Int]
    let idToToken: [String?]
    private let scores: [Double]
    private let trie: ByteTrie
    private let unknownId: Int?
    private let byteFallback: Bool
    private let minScore: Double

    init(_ json: HFJSON) throws {
        let entries = try json["vocab"].requiredArray()
        guard entries.count <= HFJSON.maxVocabularySize else {
            throw json["vocab"].error("at most \(HFJSON.maxVocabularySize) pieces, not \(entries.count)")
        }
        var tokenToId: [String: Int] = [:]
        var idToToken: [String?] = []
        var scores: [Double] = []
        var minScore = Double.infinity
        for (id, entry) in entries.enumerated() {
            guard let pair = entry.array, pair.count == 2, let token = pair[0].string, let score = pair[1].double else {
                throw entry.error("[\"piece\", score]")
            }
            tokenToId[token] = id  // a repeated piece maps to its last id, as upstream
            idToToken.append(token)
            scores.append(score)
            minScore = min(minScore, score)
        }
        self.tokenToId = tokenToId
        self.idToToken = idToToken
        self.scores = scores
        self.minScore = minScore
        trie = ByteTrie(tokenToId.map { (Array($0.key.utf8), Int32($0.value)) })
        // tokenizers loads a Unigram model without unk_id but fails on the first character
        // outside the vocabulary (MissingUnkId, byte fallback or not); encoding cannot fail
        // here, so such a model is refused when it is loaded instead of emitting id -1.
        if json["unk_id"].isNull {
            throw json["unk_id"].error("the id of the unknown piece (tokenizers cannot encode a character outside the vocabulary without it)")
        }
        unknownId = try json["unk_id"].tokenId(below: idToToken.count, "the id of the unknown piece")
        byteFallback = try json["byte_fallback"].bool(default: false)
    }

    func tokenize(_ word: Scalars, into ids: inout [Int]) {
        let text = Array(HFNormalizer.string(word).utf8)
        let size = text.count
        if size == 0 { return }
        let unknownScore = minScore - 10
        var bestScore = [Double](repeating: 0, count: size + 1)
        var bestStart = [Int32](repeating: -1, count: size + 1)
        var bestId = [Int32](repeating: -1, count: size + 1)
        let unknown = Int32(unknownId ?? -1)
        text.withUnsafeBufferPointer { bytes in
            var start = 0
            while start < size {
                let scoreHere = bestScore[start]
                let charLength = utf8CharLength(bytes[start])
                var hasSingleCharPiece = false
                var node = ByteTrie.root
                var end = start
                while end < size {
                    node = trie.child(node, bytes[end])
                    if node < 0 { break }
                    end += 1
                    let id = trie.values[Int(node)]
                    if id < 0 { continue }
                    let candidate = scores[Int(id)] + scoreHere
                    if bestStart[end] == -1 || candidate > bestScore[end] {
                        bestScore[end] = candidate
                        bestStart[end] = Int32(start)
                        bestId[end] = id
                    }
                    if end - start == charLength { hasSingleCharPiece = true }
                }
                if !hasSingleCharPiece {
                    let end = start + charLength
                    let candidate = unknownScore + scoreHere
                    if bestStart[end] == -1 || candidate > bestScore[end] {
                        bestScore[end] = candidate
                        bestStart[end] = Int32(start)
                        bestId[end] = unknown
                    }
                }
                start += charLength
            }
        }
        // Backtrack, fusing runs of unknown pieces.
        var pieces: [(Range<Int>, Int32)] = []
        var end = size
        while end > 0 {
            let start = Int(bestStart[end])
            let id = bestId[end]
            if id == unknown, let last = pieces.last, last.1 == unknown, last.0.lowerBound == end {
                pieces[pieces.count - 1] = (start..<last.0.upperBound, unknown)
            } else {
                pieces.append((start..<end, id))
            }
            end = start
        }
        for (range, id) in pieces.reversed() {
            if id != unknown || unknown < 0 { ids.append(Int(id)); continue }
            let bytes = text[range]
            if let known = tokenToId[String(decoding: bytes, as: UTF8.self)] { ids.append(known); continue }
            if byteFallback {
                let byteIds = bytes.map { tokenToId[byteFallbackToken($0)] }
                if byteIds.allSatisfy({ $0 != nil }) { ids.append(contentsOf: byteIds.map { $0! }); continue }
            }
            ids.append(Int(unknown))
        }
    }
}

/// WordPiece: greedy longest match with the continuing-subword prefix; unk for the whole word
/// when a part cannot be matched or the word is too long.
final class HFWordPieceModel: HFModel {
    let tokenToId: [String: Int]
    let idToToken: [String?]
    private let unknownId: Int?
    private let prefix: String
    private let maxCharacters: Int

    init(_ json: HFJSON) throws {
        let vocab = try readVocabObject(json["vocab"])
        (tokenToId, idToToken) = vocab
        unknownId = json["unk_token"].string.flatMap { vocab.tokenToId[$0] }
        prefix = try json["continuing_subword_prefix"].string(default: "##")
        maxCharacters = try json["max_input_chars_per_word"].nonNegativeInt(default: 100)
    }

    func tokenize(_ word: Scalars, into ids: inout [Int]) {
        if word.count > maxCharacters { if let unknownId { ids.append(unknownId) }; return }
        var found: [Int] = []
        var start = 0
        while start < word.count {
            var end = word.count
            var match: Int?
            while start < end {
                var piece = HFNormalizer.string(Array(word[start..<end]))
                if start > 0 { piece = prefix + piece }
                if let id = tokenToId[piece] { match = id; break }
                end -= 1
            }
            guard let match else { if let unknownId { ids.append(unknownId) }; return }
            found.append(match)
            start = end
        }
        ids.append(contentsOf: found)
    }
}

final class HFWordLevelModel: HFModel {
    let tokenToId: [String: Int]
    let idToToken: [String?]
    private let unknownId: Int?

    init(_ json: HFJSON) throws {
        let vocab = try readVocabObject(json["vocab"])
        (tokenToId, idToToken) = vocab
        unknownId = json["unk_token"].string.flatMap { vocab.tokenToId[$0] }
    }

    func tokenize(_ word: Scalars, into ids: inout [Int]) {
        if let id = tokenToId[HFNormalizer.string(word)] ?? unknownId { ids.append(id) }
    }
}
