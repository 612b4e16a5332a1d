import Foundation

/// A Hugging Face tokenizer.json: added tokens matched first, then normalizer, pre-tokenizer,
/// model, and (with special tokens) the post-processor, as the `tokenizers` library runs them.
public final class HFTokenizer: Tokenizer {
    struct AddedToken {
        var id: Int
        var content: Scalars
        var special: Bool
        var normalized: Bool
        var leftStrip: Bool
        var rightStrip: Bool
        var singleWord: Bool
    }

    /// One step of a post-processor template: a special token's ids, or the encoded text.
    enum TemplateItem { case special([Int]), sequence }

    let model: any HFModel
    let normalizer: HFNormalizer?
    let preTokenizer: HFPreTokenizer?
    let decoder: HFDecoder?
    private(set) var template: [TemplateItem]
    let addedTokens: [AddedToken]
    /// Added tokens by their first scalar, longest first (leftmost-longest matching).
    private let rawMatcher: [UInt32: [Int]]
    private let normalizedMatcher: [UInt32: [Int]]
    private let idToToken: [String?]
    private let specialTokens: Set<String>

    public let vocabSize: Int
    public private(set) var bosTokenId: Int?
    public private(set) var eosTokenId: Int?

    public convenience init(contentsOf url: URL) throws {
        guard let data = FileManager.default.contents(atPath: url.path) else { throw TokenizerError.fileNotFound(path: url.path) }
        try self.init(bytes: [UInt8](data), path: url.path)
    }

    public convenience init(bytes: [UInt8], path: String = "<memory>") throws {
        let object: Any
        do { object = try StrictJSON.parse(bytes) } catch let error as StrictJSON.SyntaxError {
            throw TokenizerError.jsonSyntax(path: path, line: error.line, column: error.column, expected: error.detail)
        }
        try self.init(object: object, path: path)
    }

    /// A tokenizer.json already parsed (as StrictJSON parses it), or built in memory (a GGUF's tokenizer).
    init(object: Any, path: String) throws {
        let root = HFJSON(value: object, path: "", file: path)
        guard root.object != nil else { throw root.error("a JSON object") }
        guard !root["model"].isNull else { throw root["model"].error("the tokenizer model object") }
        model = try loadHFModel(root["model"])
        normalizer = root["normalizer"].isNull ? nil : try HFNormalizer(root["normalizer"])
        preTokenizer = root["pre_tokenizer"].isNull ? nil : try HFPreTokenizer(root["pre_tokenizer"])
        decoder = root["decoder"].isNull ? nil : try HFDecoder(root["decoder"])

        // A missing added_tokens is none; anything but an array (null included) is refused, as
        // serde_json refuses it.
        var added: [AddedToken] = []
        for entry in root["added_tokens"].isAbsent ? [] : try root["added_tokens"].requiredArray() {
            guard entry.object != nil else { throw entry.error("{\"id\": int, \"content\": string, ...}") }
            let id = try entry["id"].tokenId()
            let content = try entry["content"].requiredString()
            let special = try entry["special"].bool(default: false)
            added.append(AddedToken(id: id, content: Array(content.unicodeScalars), special: special,
                                    normalized: try entry["normalized"].bool(default: !special),
                                    leftStrip: try entry["lstrip"].bool(default: false),
                                    rightStrip: try entry["rstrip"].bool(default: false),
                                    singleWord: try entry["single_word"].bool(default: false)))
        }
        // Tokens matched on normalized text are stored normalized, as upstream does.
        if let normalizer {
            for k in added.indices where added[k].normalized { added[k].content = normalizer.apply(added[k].content) }
        }
        addedTokens = added
        func matcher(_ normalized: Bool) -> [UInt32: [Int]] {
            var table: [UInt32: [Int]] = [:]
            for (index, token) in added.enumerated() where token.normalized == normalized && !token.content.isEmpty {
                table[token.content[0].value, default: []].append(index)
            }
            return table.mapValues { $0.sorted { added[$0].content.count > added[$1].content.count } }
        }
        rawMatcher = matcher(false)
        normalizedMatcher = matcher(true)

        var table = model.idToToken
        for token in added {
            if token.id >= table.count { table += [String?](repeating: nil, count: token.id + 1 - table.count) }
            table[token.id] = HFNormalizer.string(token.content)
        }
        idToToken = table
        vocabSize = table.count
        template = root["post_processor"].isNull ? [.sequence] : try Self.readTemplate(root["post_processor"], vocabSize: table.count)
        specialTokens = Set(added.filter(\.special).map { HFNormalizer.string($0.content) })
        bosTokenId = Self.firstId(of: ["<s>", "<|begin_of_text|>", "<|startoftext|>", "<bos>", "[CLS]"], in: table)
        eosTokenId = Self.firstId(of: ["</s>", "<|endoftext|>", "<|end_of_text|>", "<eos>", "[SEP]"], in: table)
    }

    private static func firstId(of candidates: [String], in table: [String?]) -> Int? {
        for candidate in candidates { if let id = table.firstIndex(of: candidate) { return id } }
        return nil
    }

    /// tokenizer_config.json: special token names and whether BOS/EOS are added.
    func configure(bosToken: String?, eosToken: String?, addBos: Bool?, addEos: Bool?) {
        if let bosToken, let id = idToToken.firstIndex(of: bosToken) { bosTokenId = id }
        if let eosToken, let id = idToToken.firstIndex(of: eosToken) { eosTokenId = id }
        guard addBos != nil || addEos != nil else { return }
        template = []
        if addBos == true, let bos = bosTokenId { template.append(.special([bos])) }
        template.append(.sequence)
        if addEos == true, let eos = eosTokenId { template.append(.special([eos])) }
    }

    /// The single-sequence template of a post-processor. Its special token ids must name
    /// tokens of the vocabulary (0..<vocabSize, added tokens included): tokenizers takes any
    /// u32 there, and would hand a model an id it has no embedding for.
    private static func readTemplate(_ json: HFJSON, vocabSize: Int) throws -> [TemplateItem] {
        switch try json.type() {
        case "TemplateProcessing":
            var items: [TemplateItem] = []
            for item in try json["single"].requiredArray() {
                if !item["Sequence"].isNull {
                    items.append(.sequence)
                } else if let name = item["SpecialToken"]["id"].string {
                    let special = json["special_tokens"][name]
                    guard special.object != nil, let idList = special["ids"].array else {
                        throw special.error("{\"ids\": [...], \"tokens\": [...]} for the template's special token \(name)")
                    }
                    guard special["id"].string != nil else {       // tokenizers' SpecialToken { id: String, ids, tokens }
                        throw special["id"].error("the special token's name, a string")
                    }
                    if let tokens = special["tokens"].array, tokens.count != idList.count {
                        throw special.error("as many tokens as ids (tokenizers: \"ids and tokens must be of the same length\")")
                    }
                    items.append(.special(try idList.map { try $0.tokenId(below: vocabSize, "an id of the vocabulary") }))
                } else {
                    throw item.error("{\"Sequence\": ...} or {\"SpecialToken\": ...}")
                }
            }
            return items
        case "RobertaProcessing", "BertProcessing":
            func pair(_ field: String) throws -> Int {
                guard let pair = json[field].array, pair.count == 2, pair[0].string != nil else {
                    throw json[field].error("[token, id]")
                }
                return try pair[1].tokenId(below: vocabSize, "an id of the vocabulary")
            }
            return [.special([try pair("cls")]), .sequence, .special([try pair("sep")])]
        case "ByteLevel":
            return [.sequence]
        case "Sequence":
            // Only one processor of a sequence may add tokens in practice; take the one that does.
            let steps = try json["processors"].requiredArray().map { try readTemplate($0, vocabSize: vocabSize) }
            return steps.first { $0.count > 1 } ?? [.sequence]
        case let other:
            throw TokenizerError.unsupported(path: json.file, component: "post-processor \"\(other)\" (at \(json.path))")
        }
    }

    public func piece(for id: Int) -> String? {
        idToToken.indices.contains(id) ? idToToken[id] : nil
    }

    // MARK: Encoding

    public func encode(_ text: String, addSpecialTokens: Bool) -> [Int] {
        var ids: [Int] = []
        let scalars = Array(text.unicodeScalars)
        for (section, start, tokenId) in splitAddedTokens(scalars, matcher: rawMatcher) {
            if let tokenId { ids.append(tokenId); continue }
            let normalized = normalizer?.apply(section) ?? section
            for (part, partStart, partTokenId) in splitAddedTokens(normalized, matcher: normalizedMatcher) {
                if let partTokenId { ids.append(partTokenId); continue }
                let atStart = start == 0 && partStart == 0
                let splits = preTokenizer?.apply([PreSplit(text: part, atStart: atStart)]) ?? [PreSplit(text: part, atStart: atStart)]
                for split in splits where !split.text.isEmpty { model.tokenize(split.text, into: &ids) }
            }
        }
        guard addSpecialTokens else { return ids }
        var result: [Int] = []
        for item in template {
            switch item {
            case .special(let special): result.append(contentsOf: special)
            case .sequence: result.append(contentsOf: ids)
            }
        }
        return result
    }

    /// Cuts `text` around added tokens (leftmost-longest), honouring lstrip / rstrip /
    /// single_word. Returns the pieces with their start offset and, for a token, its id.
    private func splitAddedTokens(_ text: Scalars, matcher: [UInt32: [Int]]) -> [(Scalars, Int, Int?)] {
        if text.isEmpty { return [] }
        if matcher.isEmpty { return [(text, 0, nil)] }
        var result: [(Scalars, Int, Int?)] = []
        var sectionStart = 0
        var position = 0
        while position < text.count {
            var matched: (index: Int, end: Int)?
            for index in matcher[text[position].value] ?? [] {
                let content = addedTokens[index].content
                if position + content.count <= text.count && text[position..<(position + content.count)].elementsEqual(content) {
                    matched = (index, position + content.count)
                    break
                }
            }
            guard let (index, matchEnd) = matched else { position += 1; continue }
            let token = addedTokens[index]
            if token.singleWord {
                let startsWord = position > 0 && isWordCharacter(text[position - 1])
                let endsWord = matchEnd < text.count && isWordCharacter(text[matchEnd])
                if startsWord || endsWord { position = matchEnd; continue }
            }
            var start = position, stop = matchEnd
            if token.leftStrip {
                while start > sectionStart && text[start - 1].properties.isWhitespace { start -= 1 }
            }
            if token.rightStrip {
                while stop < text.count && text[stop].properties.isWhitespace { stop += 1 }
            }
            if sectionStart < start { result.append((Array(text[sectionStart..<start]), sectionStart, nil)) }
            result.append((Array(text[start..<stop]), start, token.id))
            sectionStart = stop
            position = max(matchEnd, stop)
        }
        if sectionStart < text.count { result.append((Array(text[sectionStart...]), sectionStart, nil)) }
        return result
    }

    private func isWordCharacter(_ scalar: Unicode.Scalar) -> Bool {
        if scalar == "_" { return true }
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
             .decimalNumber, .letterNumber, .otherNumber, .nonspacingMark, .spacingMark, .enclosingMark, .connectorPunctuation:
            return true
        default: return false
        }
    }

    // MARK: Decoding

    /// As `tokenizers`' decode(ids) with its default skip_special_tokens=True: special added
    /// tokens are dropped, the rest go through the decoder (or are joined by spaces without one).
    public func decode(_ ids: [Int]) -> String {
        var tokens: [String] = []
        for id in ids where idToToken.indices.contains(id) {
            guard let token = idToToken[id], !specialTokens.contains(token) else { continue }
            tokens.append(token)
        }
        guard let decoder else { return tokens.joined(separator: " ") }
        return decoder.decodeChain(tokens).joined()
    }
}
