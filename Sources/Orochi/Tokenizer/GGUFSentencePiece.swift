import Foundation

/// A GGUF file's `llama` tokenizer, as llama.cpp's llama-vocab.cpp runs it (LLAMA_VOCAB_TYPE_SPM):
/// not sentencepiece's own algorithm but llama.cpp's, so that ids equal `llama-tokenize`'s.
///
/// Control, unknown and user-defined tokens written in the text are cut out first, longest first.
/// Each piece of text between them gets a leading space when it follows a special token or starts
/// the text (`add_space_prefix`), spaces become "▁", and then the text's characters are merged
/// pairwise: always the adjacent pair whose concatenation is the vocabulary entry of highest score
/// (leftmost on ties). A symbol left that is not a token is split back along the merges that made
/// it, and what still is not a token becomes its bytes (`<0xXX>`).
final class GGUFSentencePiece: Tokenizer {
    enum TokenType: Int { case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6 }

    let path: String
    let tokens: [[UInt8]]
    let scores: [Float]
    let types: [Int]
    let idOf: [[UInt8]: Int]
    /// Control, unknown and user-defined tokens, longest first: what llama.cpp matches in the text.
    let special: [(bytes: [UInt8], id: Int)]
    let byteIds: [Int]
    let unknownId: Int?
    var addSpacePrefix = true
    var addBos = true
    var addEos = false
    let bosTokenId: Int?
    let eosTokenId: Int?

    var vocabSize: Int { tokens.count }

    init(path: String, tokens: [[UInt8]], scores: [Float], types: [Int], bos: Int?, eos: Int?, unknown: Int?) {
        self.path = path
        self.tokens = tokens; self.scores = scores; self.types = types
        var idOf: [[UInt8]: Int] = [:]
        // The last of equal texts wins, as llama.cpp's token_to_id map is filled in id order.
        for (id, t) in tokens.enumerated() { idOf[t] = id }
        self.idOf = idOf
        special = SpecialTokenText.tokens(tokens, types: types)
        let hex = Array("0123456789ABCDEF".utf8)
        byteIds = (0..<256).map { b in
            idOf[Array("<0x".utf8) + [hex[b >> 4], hex[b & 15], UInt8(ascii: ">")]] ?? idOf[[UInt8(b)]] ?? unknown ?? -1
        }
        unknownId = unknown
        bosTokenId = bos; eosTokenId = eos
    }

    func piece(for id: Int) -> String? {
        guard id >= 0 && id < tokens.count else { return nil }
        return String(decoding: tokens[id], as: UTF8.self)
    }

    func encode(_ text: String, addSpecialTokens: Bool) -> [Int] {
        var ids: [Int] = []
        if addSpecialTokens, addBos, let bos = bosTokenId { ids.append(bos) }
        var previousWasSpecial = true
        for fragment in partition(Array(text.utf8)) {
            switch fragment {
            case let .token(id):
                ids.append(id)
                previousWasSpecial = true
            case let .text(bytes):
                let space = SentencePieceNormalizer.spaceSymbol
                var escaped: [UInt8] = addSpacePrefix && previousWasSpecial ? space : []
                for b in bytes { if b == 0x20 { escaped += space } else { escaped.append(b) } }
                merge(escaped, into: &ids)
                previousWasSpecial = false
            }
        }
        if addSpecialTokens, addEos, let eos = eosTokenId { ids.append(eos) }
        return ids
    }

    func partition(_ text: [UInt8]) -> [SpecialTokenText.Fragment] { SpecialTokenText.partition(text, special) }

    private struct Symbol { var start: Int; var count: Int; var prev: Int; var next: Int }

    private struct Bigram: Comparable {
        var left: Int, right: Int, score: Float, size: Int
        /// Popped first: the higher score, then the leftmost.
        static func < (a: Bigram, b: Bigram) -> Bool { a.score < b.score || (a.score == b.score && a.left > b.left) }
    }

    private func merge(_ text: [UInt8], into ids: inout [Int]) {
        var symbols: [Symbol] = []
        var offset = 0
        while offset < text.count {
            let n = min(utf8Length(text[offset]), text.count - offset)
            symbols.append(Symbol(start: offset, count: n, prev: symbols.count - 1, next: offset + n == text.count ? -1 : symbols.count + 1))
            offset += n
        }
        guard !symbols.isEmpty else { return }
        var queue = BinaryHeap<Bigram>()
        var reverseMerge: [[UInt8]: (Int, Int)] = [:]
        func tryBigram(_ left: Int, _ right: Int) {
            guard left >= 0, right >= 0 else { return }
            let bytes = Array(text[symbols[left].start..<(symbols[left].start + symbols[left].count + symbols[right].count)])
            guard let id = idOf[bytes] else { return }
            queue.push(Bigram(left: left, right: right, score: scores[id], size: bytes.count))
            reverseMerge[bytes] = (left, right)
        }
        for i in 1..<symbols.count { tryBigram(i - 1, i) }
        while let bigram = queue.pop() {
            let l = symbols[bigram.left], r = symbols[bigram.right]
            guard l.count > 0, r.count > 0, l.count + r.count == bigram.size else { continue }
            symbols[bigram.left].count += r.count
            symbols[bigram.right].count = 0
            symbols[bigram.left].next = r.next
            if r.next >= 0 { symbols[r.next].prev = bigram.left }
            tryBigram(symbols[bigram.left].prev, bigram.left)
            tryBigram(bigram.left, symbols[bigram.left].next)
        }
        func resegment(_ s: Symbol) {
            let bytes = Array(text[s.start..<(s.start + s.count)])
            if let id = idOf[bytes] { ids.append(id); return }
            if let (left, right) = reverseMerge[bytes] {
                resegment(symbols[left]); resegment(symbols[right]); return
            }
            for b in bytes where byteIds[Int(b)] >= 0 { ids.append(byteIds[Int(b)]) }
        }
        var i = 0
        while i != -1 { resegment(symbols[i]); i = symbols[i].next }
    }

    private func utf8Length(_ lead: UInt8) -> Int {
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4][Int(lead >> 4)]
    }

    /// llama.cpp's pieces without special tokens: normal ones with "▁" as a space, byte tokens as
    /// their byte, user-defined ones as written; control, unknown and unused ones as nothing. The
    /// space the encoder put first is dropped.
    func decode(_ ids: [Int]) -> String {
        var out: [UInt8] = []
        var first = true
        for id in ids where id >= 0 && id < tokens.count {
            var piece: [UInt8]
            switch TokenType(rawValue: types[id]) {
            case .normal?:
                piece = []
                var i = 0
                let t = tokens[id]
                while i < t.count {
                    if i + 2 < t.count, t[i] == 0xE2, t[i + 1] == 0x96, t[i + 2] == 0x81 { piece.append(0x20); i += 3 } else { piece.append(t[i]); i += 1 }
                }
            case .byte?: piece = byteValue(tokens[id]).map { [$0] } ?? []
            case .userDefined?: piece = tokens[id]
            default: piece = []
            }
            if first, addSpacePrefix, piece.first == 0x20 { piece.removeFirst() }
            if !piece.isEmpty || types[id] == 1 { first = false }
            out += piece
        }
        return String(decoding: out, as: UTF8.self)
    }

    private func byteValue(_ t: [UInt8]) -> UInt8? {
        guard t.count == 6, t[0] == UInt8(ascii: "<"), t[1] == UInt8(ascii: "0"), t[2] == UInt8(ascii: "x"), t[5] == UInt8(ascii: ">") else {
            return t.count == 1 ? t[0] : nil
        }
        return UInt8(String(decoding: t[3..<5], as: UTF8.self), radix: 16)
    }
}

/// llama.cpp's first step for every tokenizer model (tokenizer_st_partition, special tokens parsed):
/// the text of control, unknown and user-defined tokens is cut out of the text, longest first.
enum SpecialTokenText {
    enum Fragment { case text(ArraySlice<UInt8>), token(Int) }

    static func tokens(_ tokens: [[UInt8]], types: [Int]) -> [(bytes: [UInt8], id: Int)] {
        tokens.indices
            .filter { [2, 3, 4].contains(types[$0]) && !tokens[$0].isEmpty }
            .map { (tokens[$0], $0) }
            .sorted { $0.bytes.count != $1.bytes.count ? $0.bytes.count > $1.bytes.count : $0.id < $1.id }
    }

    /// The text cut at every occurrence of each special token, longest tokens first.
    static func partition(_ text: [UInt8], _ special: [(bytes: [UInt8], id: Int)]) -> [Fragment] {
        var fragments: [Fragment] = text.isEmpty ? [] : [.text(text[...])]
        for (bytes, id) in special {
            var next: [Fragment] = []
            for fragment in fragments {
                guard case var .text(rest) = fragment else { next.append(fragment); continue }
                while let start = firstIndex(of: bytes, in: rest) {
                    if start > rest.startIndex { next.append(.text(rest[rest.startIndex..<start])) }
                    next.append(.token(id))
                    rest = rest[(start + bytes.count)...]
                }
                if !rest.isEmpty { next.append(.text(rest)) }
            }
            fragments = next
        }
        return fragments
    }

    private static func firstIndex(of needle: [UInt8], in haystack: ArraySlice<UInt8>) -> Int? {
        guard let first = needle.first, haystack.count >= needle.count else { return nil }
        var i = haystack.startIndex
        let last = haystack.endIndex - needle.count
        while i <= last {
            if haystack[i] == first && haystack[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }
}

/// A GGUF file's `t5` tokenizer (llama.cpp's UGM): a SentencePiece unigram model with its
/// normalization map, run by Orochi's sentencepiece-exact tokenizer on the text between the
/// special tokens llama.cpp cuts out first. `orochi quantize` writes unigram models so, since
/// llama.cpp's `llama` reading of a unigram vocabulary (merge by score, no normalization)
/// tokenizes most Japanese lines differently from how the model was trained. One difference from
/// llama.cpp remains: a character outside the vocabulary becomes its bytes (sentencepiece's byte
/// fallback, what the model saw in training) where llama.cpp gives the unknown token.
final class GGUFUnigram: Tokenizer {
    let model: SentencePieceTokenizer
    let special: [(bytes: [UInt8], id: Int)]
    var addBos = false
    var addEos = false
    let bosTokenId: Int?
    let eosTokenId: Int?
    var vocabSize: Int { model.vocabSize }

    init(model: SentencePieceTokenizer, types: [Int], bos: Int?, eos: Int?) {
        self.model = model
        special = SpecialTokenText.tokens(model.pieces, types: types)
        bosTokenId = bos; eosTokenId = eos
    }

    func encode(_ text: String, addSpecialTokens: Bool) -> [Int] {
        var ids: [Int] = []
        if addSpecialTokens, addBos, let bos = bosTokenId { ids.append(bos) }
        for fragment in SpecialTokenText.partition(Array(text.utf8), special) {
            switch fragment {
            case let .token(id): ids.append(id)
            case let .text(bytes): ids += model.encode(String(decoding: bytes, as: UTF8.self), addSpecialTokens: false)
            }
        }
        if addSpecialTokens, addEos, let eos = eosTokenId { ids.append(eos) }
        return ids
    }

    func decode(_ ids: [Int]) -> String { model.decode(ids) }
    func piece(for id: Int) -> String? { model.piece(for: id) }
}
