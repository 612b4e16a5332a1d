import Foundation

// The tokenizer inside a GGUF file (`tokenizer.ggml.*`), as llama.cpp's llama-vocab.cpp builds it.
// Model `gpt2` is byte-level BPE over `tokens` and `merges`, its text first split by the
// regular expressions llama.cpp picks for `tokenizer.ggml.pre`, each applied in turn to the
// pieces of the one before (matches and the text between them both kept). That is a
// tokenizer.json's Sequence of Split pre-tokenizers, so it is built as one and run by HFTokenizer.
// Control tokens (token type 3) and user-defined ones (4) are matched in the text before the
// model, as `llama-tokenize` does by default (it parses special tokens).

enum GGUFTokenizer {
    /// GPT-2's pattern, which most of the others extend.
    static let gpt2 = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"#
    static let llama3 = #"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2 = #"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// What a `tokenizer.ggml.pre` value means: its split patterns, whether a word found whole in
    /// the vocabulary skips the merges, and whether BOS is added when the file does not say.
    struct PreTokenizer { var patterns: [String]; var ignoreMerges = false; var addBos = false }

    static func preTokenizer(_ name: String) -> PreTokenizer? {
        switch name {
        case "default": return PreTokenizer(patterns: [#"[\p{P}\$\+<=>\^~\|]+"#, gpt2, #"\p{N}+"#, "[0-9][0-9][0-9]"])
        case "gpt-2", "phi-2", "roberta-bpe", "mpt", "olmo", "jais", "trillion": return PreTokenizer(patterns: [gpt2])
        case "smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva":
            return PreTokenizer(patterns: [#"\p{N}"#, gpt2])
        case "llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral":
            return PreTokenizer(patterns: [llama3], ignoreMerges: true, addBos: true)
        case "qwen2", "deepseek-r1-qwen", "stablelm2": return PreTokenizer(patterns: [qwen2])
        default: return nil
        }
    }
    static let supportedPre = ["default", "gpt-2", "smollm", "starcoder", "llama-bpe", "llama3", "qwen2", "stablelm2"]

    static func load(_ file: GGUFFile) throws -> any Tokenizer {
        guard let model = try file.string("tokenizer.ggml.model") else {
            throw LoadError.badGGUF(path: file.path, detail: "missing metadata 'tokenizer.ggml.model': the file has no tokenizer")
        }
        switch model {
        case "gpt2": return try byteLevelBPE(file)
        case "llama": return try sentencePiece(file)
        case "t5": return try unigram(file)
        default:
            throw LoadError.badGGUF(path: file.path, detail: "'tokenizer.ggml.model' \(model) is not supported yet (supported: gpt2, llama, t5)")
        }
    }

    /// The vocabulary every model type has: tokens, and token types (all normal when absent).
    static func vocabulary(_ file: GGUFFile) throws -> (tokens: [String], types: [Int]) {
        guard let tokens = try file.strings("tokenizer.ggml.tokens"), !tokens.isEmpty else {
            throw LoadError.badGGUF(path: file.path, detail: "missing metadata 'tokenizer.ggml.tokens' (an array of strings)")
        }
        guard tokens.count <= HFJSON.maxVocabularySize else {
            throw LoadError.badGGUF(path: file.path, detail: "'tokenizer.ggml.tokens' has \(tokens.count) entries, more than \(HFJSON.maxVocabularySize)")
        }
        let types = try file.integers("tokenizer.ggml.token_type") ?? [Int](repeating: 1, count: tokens.count)
        guard types.count == tokens.count else {
            throw LoadError.badGGUF(path: file.path, detail: "'tokenizer.ggml.token_type' has \(types.count) entries for \(tokens.count) tokens")
        }
        if let bad = types.firstIndex(where: { $0 < 0 || $0 > 6 }) {
            throw LoadError.badGGUF(path: file.path, detail: "'tokenizer.ggml.token_type'[\(bad)] is \(types[bad]), not a token type (0–6)")
        }
        return (tokens, types)
    }

    /// A token id from `key`, checked against the vocabulary.
    static func tokenId(_ file: GGUFFile, _ key: String, count: Int) throws -> Int? {
        guard let id = try file.integer(key) else { return nil }
        guard id >= 0 && id < count else {
            throw LoadError.badGGUF(path: file.path, detail: "'\(key)' \(id) is not a token id (0..<\(count))")
        }
        return id
    }

    /// `tokenizer.ggml.scores`, one number per token.
    static func scores(_ file: GGUFFile, count: Int) throws -> [Float] {
        guard let scoreValues = file.value("tokenizer.ggml.scores") else {
            throw LoadError.badGGUF(path: file.path, detail: "missing metadata 'tokenizer.ggml.scores' (a SentencePiece tokenizer needs its scores)")
        }
        guard let items = scoreValues.array, items.count == count else {
            throw LoadError.badGGUF(path: file.path, detail: "'tokenizer.ggml.scores' should be an array of \(count) numbers, found \(scoreValues.typeName) of \(scoreValues.array?.count ?? 0)")
        }
        var scores = [Float](repeating: 0, count: count)
        for (i, item) in items.enumerated() {
            guard let real = item.real else {
                throw LoadError.badGGUF(path: file.path, detail: "'tokenizer.ggml.scores'[\(i)] should be a number, found \(item.typeName)")
            }
            scores[i] = Float(real)
        }
        return scores
    }

    /// Model `t5` (llama.cpp's UGM): a SentencePiece unigram model with its normalization map.
    static func unigram(_ file: GGUFFile) throws -> any Tokenizer {
        let (tokens, types) = try vocabulary(file)
        let scores = try scores(file, count: tokens.count)
        var proto = try SentencePieceProto(bytes: [])
        proto.pieces = zip(tokens, zip(scores, types)).map { token, rest in
            SentencePieceProto.Piece(text: Array(token.utf8), score: rest.0, type: SentencePieceProto.PieceType(rawValue: rest.1) ?? .normal)
        }
        proto.modelType = .unigram
        proto.byteFallback = types.contains(6)
        let count = tokens.count
        // llama.cpp's defaults for t5 files: EOS 1, unknown 2, padding 0, no BOS.
        proto.unkId = try tokenId(file, "tokenizer.ggml.unknown_token_id", count: count) ?? min(2, count - 1)
        proto.bosId = try tokenId(file, "tokenizer.ggml.bos_token_id", count: count) ?? -1
        proto.eosId = try tokenId(file, "tokenizer.ggml.eos_token_id", count: count) ?? min(1, count - 1)
        proto.padId = try tokenId(file, "tokenizer.ggml.padding_token_id", count: count) ?? -1
        if let charsmap = file.value("tokenizer.ggml.precompiled_charsmap") {
            guard case let .array(elementType, items) = charsmap, elementType <= 1 else {
                throw LoadError.badGGUF(path: file.path, detail: "'tokenizer.ggml.precompiled_charsmap' should be an array of bytes, found \(charsmap.typeName)")
            }
            proto.normalizer.precompiledCharsmap = items.map { UInt8(truncatingIfNeeded: $0.integer ?? 0) }
            proto.normalizer.name = "gguf"
        } else {
            proto.normalizer.name = "identity"
        }
        proto.normalizer.addDummyPrefix = try file.bool("tokenizer.ggml.add_space_prefix") ?? false
        proto.normalizer.removeExtraWhitespaces = try file.bool("tokenizer.ggml.remove_extra_whitespaces") ?? false
        let model: SentencePieceTokenizer
        do { model = try SentencePieceTokenizer(proto: proto, path: file.path) } catch {
            throw LoadError.badGGUF(path: file.path, detail: "the t5 tokenizer is not a valid SentencePiece model: \(error)")
        }
        let tokenizer = GGUFUnigram(model: model, types: types, bos: proto.bosId >= 0 ? proto.bosId : nil, eos: proto.eosId)
        tokenizer.addBos = try file.bool("tokenizer.ggml.add_bos_token") ?? false
        tokenizer.addEos = try file.bool("tokenizer.ggml.add_eos_token") ?? true
        return tokenizer
    }

    /// Model `llama`: SentencePiece's vocabulary and scores, tokenized as llama.cpp does.
    static func sentencePiece(_ file: GGUFFile) throws -> any Tokenizer {
        let (tokens, types) = try vocabulary(file)
        let scores = try scores(file, count: tokens.count)
        let count = tokens.count
        let tokenizer = GGUFSentencePiece(
            path: file.path, tokens: tokens.map { Array($0.utf8) }, scores: scores, types: types,
            bos: try tokenId(file, "tokenizer.ggml.bos_token_id", count: count) ?? (count > 1 ? 1 : nil),
            eos: try tokenId(file, "tokenizer.ggml.eos_token_id", count: count) ?? (count > 2 ? 2 : nil),
            unknown: try tokenId(file, "tokenizer.ggml.unknown_token_id", count: count) ?? 0)
        tokenizer.addBos = try file.bool("tokenizer.ggml.add_bos_token") ?? true
        tokenizer.addEos = try file.bool("tokenizer.ggml.add_eos_token") ?? false
        tokenizer.addSpacePrefix = try file.bool("tokenizer.ggml.add_space_prefix") ?? true
        return tokenizer
    }

    static func byteLevelBPE(_ file: GGUFFile) throws -> any Tokenizer {
        let (tokens, types) = try vocabulary(file)
        guard let merges = try file.strings("tokenizer.ggml.merges") else {
            throw LoadError.badGGUF(path: file.path, detail: "missing metadata 'tokenizer.ggml.merges' (a gpt2 tokenizer needs its merges)")
        }
        let preName = try file.string("tokenizer.ggml.pre") ?? "default"
        guard let pre = preTokenizer(preName) else {
            throw LoadError.badGGUF(path: file.path, detail: "'tokenizer.ggml.pre' \(preName) is not supported (supported: \(supportedPre.joined(separator: ", ")))")
        }
        var vocab: [String: Any] = [:]
        var added: [[String: Any]] = []
        for (id, token) in tokens.enumerated() {
            guard vocab[token] == nil else {
                throw LoadError.badGGUF(path: file.path, detail: "'tokenizer.ggml.tokens' holds \(token.debugDescription) twice (ids \(vocab[token]!) and \(id))")
            }
            vocab[token] = id
            if types[id] == 3 || types[id] == 4 {
                added.append(["id": id, "content": token, "special": types[id] == 3, "normalized": false])
            }
        }
        let object: [String: Any] = [
            "model": ["type": "BPE", "vocab": vocab, "merges": merges, "ignore_merges": pre.ignoreMerges] as [String: Any],
            "pre_tokenizer": ["type": "Sequence", "pretokenizers":
                pre.patterns.map { ["type": "Split", "pattern": ["Regex": $0], "behavior": "Isolated", "invert": false] as [String: Any] }
                + [["type": "ByteLevel", "add_prefix_space": false, "use_regex": false]]] as [String: Any],
            "decoder": ["type": "ByteLevel"],
            "added_tokens": added,
        ]
        let tokenizer = try HFTokenizer(object: object, path: file.path)
        func token(_ key: String) throws -> String? { try tokenId(file, key, count: tokens.count).map { tokens[$0] } }
        tokenizer.configure(bosToken: try token("tokenizer.ggml.bos_token_id"), eosToken: try token("tokenizer.ggml.eos_token_id"),
                            addBos: try file.bool("tokenizer.ggml.add_bos_token") ?? pre.addBos,
                            addEos: try file.bool("tokenizer.ggml.add_eos_token") ?? false)
        return tokenizer
    }
}
