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

/// How chat messages become a prompt.
public enum ChatFormat {
    /// The model's chat_template (tokenizer_config.json or chat_template.jinja).
    case template(ChatTemplate)
    /// No template: "role: content" lines, then "assistant:" (docs/server.md).
    case plain
}

/// What a served model's directory says about chat: its template and special tokens.
public struct ChatSettings {
    public var format: ChatFormat
    public var bosToken: String
    public var eosToken: String

    /// Reads `chat_template` from tokenizer_config.json (a string, or a list of named templates of
    /// which "default" is used), else chat_template.jinja; parses it, refusing what the renderer
    /// does not support.
    public static func load(directory: URL) throws -> ChatSettings {
        var source: String? = nil
        var bos = "", eos = ""
        let configURL = directory.appendingPathComponent("tokenizer_config.json")
        if let data = FileManager.default.contents(atPath: configURL.path) {
            let config: JSON
            do { config = try JSON.parse([UInt8](data)) } catch {
                throw ChatTemplateError("\(configURL.path): \(error)")
            }
            func token(_ value: JSON?) -> String {
                if let s = value?.string { return s }
                return value?["content"]?.string ?? ""
            }
            bos = token(config["bos_token"])
            eos = token(config["eos_token"])
            switch config["chat_template"] {
            case nil, .null?: break
            case let .string(s)?: source = s
            case let .array(list)?:
                guard let entry = list.first(where: { $0["name"]?.string == "default" }), let s = entry["template"]?.string else {
                    throw ChatTemplateError("\(configURL.path): chat_template is a list without a template named \"default\"")
                }
                source = s
            default:
                throw ChatTemplateError("\(configURL.path): chat_template must be a string or a list of {name, template}")
            }
        }
        let jinja = directory.appendingPathComponent("chat_template.jinja")
        if source == nil, let data = FileManager.default.contents(atPath: jinja.path) {
            source = String(decoding: data, as: UTF8.self)
        }
        guard let source else { return ChatSettings(format: .plain, bosToken: bos, eosToken: eos) }
        do {
            return ChatSettings(format: .template(try ChatTemplate(source)), bosToken: bos, eosToken: eos)
        } catch let error as ChatTemplateError {
            throw ChatTemplateError("\(directory.lastPathComponent): its chat template cannot be used: \(error.message)")
        }
    }

    /// The prompt text of a conversation, ending where the assistant's reply begins.
    public func render(_ messages: [ChatMessage]) throws -> String {
        switch format {
        case let .template(template):
            let values: [[(String, TemplateValue)]] = messages.map { m in
                var d: [(String, TemplateValue)] = [("role", .string(m.role)), ("content", .string(m.content))]
                if let name = m.name { d.append(("name", .string(name))) }
                return d
            }
            return try template.render(messages: values, bosToken: bosToken, eosToken: eosToken, addGenerationPrompt: true)
        case .plain:
            return ChatSettings.plainPrompt(messages)
        }
    }

    /// The plain format: one "role: content" line per message (a developer message is a system
    /// one), then "assistant:", which the model continues.
    public static func plainPrompt(_ messages: [ChatMessage]) -> String {
        var text = ""
        for m in messages {
            let role = m.role == "developer" ? "system" : m.role
            text += "\(role): \(m.content)\n"
        }
        return text + "assistant:"
    }

    /// A plain-format chat also stops where the model starts the user's next line.
    public static let plainStop = "\nuser:"
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
