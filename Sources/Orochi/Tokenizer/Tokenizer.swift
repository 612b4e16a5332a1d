import Foundation

/// Text ↔ token ids, id-for-id identical to the reference library of the file's format
/// (`sentencepiece` for tokenizer.model, Hugging Face `tokenizers` for tokenizer.json).
public protocol Tokenizer: AnyObject {
    var vocabSize: Int { get }
    var bosTokenId: Int? { get }
    var eosTokenId: Int? { get }
    /// Ids of `text`; with `addSpecialTokens`, also BOS/EOS (SentencePiece) or the
    /// post-processor's template (tokenizer.json).
    func encode(_ text: String, addSpecialTokens: Bool) -> [Int]
    func decode(_ ids: [Int]) -> String
    /// The vocabulary entry of `id` as stored in the file, nil when out of range.
    func piece(for id: Int) -> String?
}

/// The tokenizer of a model directory: `tokenizer.model` (SentencePiece) if present, else
/// `tokenizer.json`. BOS/EOS policy: `add_bos_token` / `add_eos_token` from
/// tokenizer_config.json when present; otherwise a SentencePiece model adds BOS and no EOS
/// (as Hugging Face's LlamaTokenizer does) and a tokenizer.json follows its post-processor.
public func loadTokenizer(modelDirectory: URL) throws -> any Tokenizer {
    if GGUFFile.isGGUF(modelDirectory.path) { return try GGUFTokenizer.load(try GGUFFile.open(modelDirectory.path)) }
    let fileManager = FileManager.default
    let model = modelDirectory.appendingPathComponent("tokenizer.model")
    let json = modelDirectory.appendingPathComponent("tokenizer.json")
    let tokenizer: any Tokenizer
    if fileManager.fileExists(atPath: model.path) {
        tokenizer = try SentencePieceTokenizer(contentsOf: model)
    } else if fileManager.fileExists(atPath: json.path) {
        tokenizer = try HFTokenizer(contentsOf: json)
    } else {
        var isDirectory: ObjCBool = false
        guard fileManager.fileExists(atPath: modelDirectory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw TokenizerError.fileNotFound(path: modelDirectory.path)
        }
        throw TokenizerError.noTokenizerInDirectory(path: modelDirectory.path)
    }
    try applyTokenizerConfig(modelDirectory.appendingPathComponent("tokenizer_config.json"), to: tokenizer)
    return tokenizer
}

/// A tokenizer file: a GGUF file's tokenizer (by its magic), `.model` → SentencePiece, `.json` →
/// Hugging Face; other names by content (a JSON object starts with "{").
public func loadTokenizer(file: URL) throws -> any Tokenizer {
    if GGUFFile.isGGUF(file.path) { return try GGUFTokenizer.load(try GGUFFile.open(file.path)) }
    guard let data = FileManager.default.contents(atPath: file.path) else {
        throw TokenizerError.fileNotFound(path: file.path)
    }
    let bytes = [UInt8](data)
    switch file.pathExtension.lowercased() {
    case "model": return try SentencePieceTokenizer(bytes: bytes, path: file.path)
    case "json": return try HFTokenizer(bytes: bytes, path: file.path)
    default:
        if bytes.first(where: { ![0x20, 0x09, 0x0A, 0x0D, 0xEF, 0xBB, 0xBF].contains($0) }) == UInt8(ascii: "{") {
            return try HFTokenizer(bytes: bytes, path: file.path)
        }
        do { return try SentencePieceTokenizer(bytes: bytes, path: file.path) } catch TokenizerError.corruptModel {
            throw TokenizerError.unknownFormat(path: file.path)
        }
    }
}

private func applyTokenizerConfig(_ url: URL, to tokenizer: any Tokenizer) throws {
    guard let data = FileManager.default.contents(atPath: url.path) else { return }
    let parsed: Any
    do { parsed = try StrictJSON.parse([UInt8](data)) } catch let error as StrictJSON.SyntaxError {
        throw TokenizerError.jsonSyntax(path: url.path, line: error.line, column: error.column, expected: error.detail)
    }
    guard let config = parsed as? [String: Any] else {
        throw TokenizerError.invalidJSON(path: url.path, field: "(root)", expected: "a JSON object")
    }
    let addBos = config["add_bos_token"] as? Bool
    let addEos = config["add_eos_token"] as? Bool
    if let sentencePiece = tokenizer as? SentencePieceTokenizer {
        if let addBos { sentencePiece.addBosToken = addBos }
        if let addEos { sentencePiece.addEosToken = addEos }
    } else if let hf = tokenizer as? HFTokenizer {
        hf.configure(bosToken: tokenContent(config["bos_token"]), eosToken: tokenContent(config["eos_token"]),
                     addBos: addBos, addEos: addEos)
    }
}

/// tokenizer_config.json writes a special token as a string or as {"content": ...}.
private func tokenContent(_ value: Any?) -> String? {
    if let string = value as? String { return string }
    if let object = value as? [String: Any] { return object["content"] as? String }
    return nil
}

extension Tokenizer {
    /// Every id must lie in the vocabulary; used by the CLI before decoding.
    public func validate(ids: [Int]) throws {
        if let bad = ids.first(where: { $0 < 0 || $0 >= vocabSize }) {
            throw TokenizerError.invalidId(bad, vocabSize: vocabSize)
        }
    }
}

/// Streams text as ids arrive: returns only complete UTF-8 text, holding back a partial
/// multi-byte character (a byte-fallback or byte-level token sequence cut mid-character).
///
/// It re-decodes a short window — from the token before the last emitted text — so that the
/// decoders' context rules (the dropped leading "▁", byte reassembly) apply as on the full text.
public final class StreamingDetokenizer {
    private let tokenizer: any Tokenizer
    private var ids: [Int] = []
    private var prefixStart = 0   // window start: ids decoded only for context
    private var emittedEnd = 0    // ids whose text has been returned

    public init(_ tokenizer: any Tokenizer) { self.tokenizer = tokenizer }

    public func append(_ id: Int) -> String {
        ids.append(id)
        let prefix = Array(tokenizer.decode(Array(ids[prefixStart..<emittedEnd])).unicodeScalars)
        let full = Array(tokenizer.decode(Array(ids[prefixStart...])).unicodeScalars)
        // Hold back while the tail is an incomplete character (decoded as U+FFFD).
        guard full.count > prefix.count, full.last != "\u{FFFD}", full.starts(with: prefix) else { return "" }
        var text = String.UnicodeScalarView()
        text.append(contentsOf: full[prefix.count...])
        prefixStart = emittedEnd
        emittedEnd = ids.count
        return String(text)
    }

    /// The text still held back (a trailing partial character decodes as U+FFFD).
    public func finish() -> String {
        let prefix = Array(tokenizer.decode(Array(ids[prefixStart..<emittedEnd])).unicodeScalars)
        let full = Array(tokenizer.decode(Array(ids[prefixStart...])).unicodeScalars)
        prefixStart = ids.count
        emittedEnd = ids.count
        guard full.count > prefix.count, full.starts(with: prefix) else { return "" }
        var text = String.UnicodeScalarView()
        text.append(contentsOf: full[prefix.count...])
        return String(text)
    }
}
