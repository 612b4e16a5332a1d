import Foundation
import Orochi

/// A tokenizer behind a lock: requests tokenize and detokenize from many tasks at once, and the
/// library's tokenizers do not promise to be thread-safe.
final class LockedTokenizer: Tokenizer, @unchecked Sendable {
    private let base: any Tokenizer
    private let lock = NSLock()
    init(_ base: any Tokenizer) { self.base = base }
    var vocabSize: Int { lock.withLock { base.vocabSize } }
    var bosTokenId: Int? { lock.withLock { base.bosTokenId } }
    var eosTokenId: Int? { lock.withLock { base.eosTokenId } }
    func encode(_ text: String, addSpecialTokens: Bool) -> [Int] { lock.withLock { base.encode(text, addSpecialTokens: addSpecialTokens) } }
    func decode(_ ids: [Int]) -> String { lock.withLock { base.decode(ids) } }
    func piece(for id: Int) -> String? { lock.withLock { base.piece(for: id) } }
}

/// One model as the server serves it: its engine, tokenizer and chat settings.
public final class ServedModel: @unchecked Sendable {
    /// The directory's last path component.
    public let id: String
    public let engine: BatchEngine
    let tokenizer: LockedTokenizer
    public let chat: ChatSettings
    /// End-of-sequence ids: config.json's and generation_config.json's, and the tokenizer's.
    public let stopTokenIds: Set<Int>
    /// Unix time the model was loaded, for /v1/models.
    public let created: Int
    /// Special token strings in chat prompts and their ids (a rendered template writes BOS/EOS
    /// as text; they are cut out and given their ids, as transformers' tokenizers do).
    let specialTokens: [(String, Int)]

    public init(id: String, engine: BatchEngine, tokenizer: any Tokenizer, chat: ChatSettings, stopTokenIds: Set<Int>) {
        self.id = id
        self.engine = engine
        self.tokenizer = LockedTokenizer(tokenizer)
        self.chat = chat
        var stops = stopTokenIds
        if let eos = tokenizer.eosTokenId { stops.insert(eos) }
        self.stopTokenIds = stops
        self.created = Int(Date().timeIntervalSince1970)
        var specials: [(String, Int)] = []
        if !chat.bosToken.isEmpty, let bos = tokenizer.bosTokenId { specials.append((chat.bosToken, bos)) }
        if !chat.eosToken.isEmpty, let eos = tokenizer.eosTokenId { specials.append((chat.eosToken, eos)) }
        specialTokens = specials.sorted { $0.0.count > $1.0.count }
    }

    /// Loads a model directory: weights, tokenizer (required: the API speaks text), chat settings.
    public static func load(directory: URL, loadOptions: LoadOptions, engineOptions: BatchEngine.Options) throws -> ServedModel {
        let model = try ModelRegistry.load(directory: directory, options: loadOptions)
        let tokenizer = try loadTokenizer(modelDirectory: directory)
        let chat = try ChatSettings.load(directory: directory)
        let engine = try BatchEngine(model: model, options: engineOptions)
        return ServedModel(id: directory.standardizedFileURL.lastPathComponent, engine: engine, tokenizer: tokenizer,
                           chat: chat, stopTokenIds: Set(ModelRegistry.eosTokenIds(directory: directory)))
    }

    /// Token ids of a completion prompt: as `orochi generate --prompt` encodes it (BOS added as
    /// the tokenizer's configuration asks).
    func encodeCompletion(_ text: String) -> [Int] {
        tokenizer.encode(text, addSpecialTokens: true)
    }

    /// Token ids of a chat prompt. A template writes the special tokens itself: their text is
    /// matched and given its id, the rest encoded without special tokens. The plain format is
    /// encoded as a completion prompt is.
    func encodeChat(_ messages: [ChatMessage]) throws -> [Int] {
        let text = try chat.render(messages)
        guard case .template = chat.format else { return encodeCompletion(text) }
        // One pass, left to right, the longest special token first at each byte: linear in the text
        // for any mix of special tokens (searching the rest for each token at every cut was
        // quadratic: 60,000 × "<s>" in a message took minutes).
        let bytes = Array(text.utf8)
        let specials = specialTokens.map { (Array($0.0.utf8), $0.1) }
        var ids: [Int] = []
        var segment = 0, i = 0
        func flush(_ end: Int) {
            if segment < end { ids += tokenizer.encode(String(decoding: bytes[segment..<end], as: UTF8.self), addSpecialTokens: false) }
        }
        while i < bytes.count {
            guard let (token, id) = specials.first(where: { bytes.count - i >= $0.0.count && bytes[i..<(i + $0.0.count)].elementsEqual($0.0) }) else {
                i += 1
                continue
            }
            flush(i)
            ids.append(id)
            i += token.count
            segment = i
        }
        flush(bytes.count)
        return ids
    }
}
