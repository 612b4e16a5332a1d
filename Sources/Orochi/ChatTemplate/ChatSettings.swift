import Foundation

/// One chat message as the template sees it.
public struct ChatMessage: Equatable, Sendable {
    public var role: String
    public var content: String
    public var name: String?

    public init(role: String, content: String, name: String? = nil) {
        self.role = role; self.content = content; self.name = name
    }
}

/// How chat messages become a prompt.
public enum ChatFormat {
    /// The model's chat template (tokenizer_config.json, chat_template.jinja, or a GGUF's tokenizer.chat_template).
    case template(ChatTemplate)
    /// No template: "role: content" lines, then "assistant:" (docs/server.md).
    case plain
}

/// What a model says about chat: its template and special tokens. `orochi chat` and the server
/// read it the same way.
public struct ChatSettings {
    public var format: ChatFormat
    public var bosToken: String
    public var eosToken: String

    public init(format: ChatFormat, bosToken: String, eosToken: String) {
        self.format = format; self.bosToken = bosToken; self.eosToken = eosToken
    }

    /// A model directory's settings, or a GGUF file's (`tokenizer.chat_template`, and the BOS and
    /// EOS tokens its ids name). A directory's `chat_template` comes from tokenizer_config.json
    /// (a string, or a list of named templates of which "default" is used), else
    /// chat_template.jinja. The template is parsed here, refusing what the renderer does not support.
    public static func load(directory: URL) throws -> ChatSettings {
        var source: String? = nil
        var bos = "", eos = ""
        if GGUFFile.isGGUF(directory.path) {
            let file: GGUFFile
            do { file = try GGUFFile.open(directory.path) } catch { throw ChatTemplateError("\(error)") }
            let tokens = file.value("tokenizer.ggml.tokens")?.array ?? []
            func token(_ key: String) -> String {
                guard let id = (try? file.integer(key)) ?? nil, id >= 0, id < tokens.count else { return "" }
                return tokens[id].string ?? ""
            }
            bos = token("tokenizer.ggml.bos_token_id")
            eos = token("tokenizer.ggml.eos_token_id")
            do { source = try file.string("tokenizer.chat_template") } catch { throw ChatTemplateError("\(error)") }
        } else {
            let configURL = directory.appendingPathComponent("tokenizer_config.json")
            if let data = FileManager.default.contents(atPath: configURL.path) {
                let parsed: Any
                do { parsed = try StrictJSON.parse([UInt8](data)) } catch {
                    throw ChatTemplateError("\(configURL.path): \(error)")
                }
                guard let config = parsed as? [String: Any] else { throw ChatTemplateError("\(configURL.path): expected a JSON object") }
                func token(_ value: Any?) -> String {
                    if let s = value as? String { return s }
                    return (value as? [String: Any])?["content"] as? String ?? ""
                }
                bos = token(config["bos_token"])
                eos = token(config["eos_token"])
                switch config["chat_template"] {
                case nil, is NSNull: break
                case let s as String: source = s
                case let list as [Any]:
                    guard let entry = list.compactMap({ $0 as? [String: Any] }).first(where: { $0["name"] as? String == "default" }),
                          let s = entry["template"] as? String else {
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
