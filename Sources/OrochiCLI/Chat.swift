import ArgumentParser
import Foundation
import Orochi

struct Chat: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Talk to a model in the terminal, through its chat template.",
        discussion: """
            Each line you type is a user message; the reply streams as it is generated. The \
            conversation is rendered with the model's own chat template (a GGUF file's \
            tokenizer.chat_template, or tokenizer_config.json's) and kept in the KV cache between \
            turns, so only the new turn is read. When the context is full the oldest turns are \
            dropped (and it says so). Commands: /reset forgets the conversation, /system TEXT sets \
            the system message (and resets), Ctrl-D exits.
            """)

    @OptionGroup var options: ModelOptions

    @Option(name: .long, help: "A system message to start with.")
    var system: String?

    @Option(name: .long, help: "Most tokens per reply, ≥ 1.")
    var maxTokens: Int = 512

    @OptionGroup var sampling: SamplingOptions

    func validate() throws {
        guard maxTokens >= 1 else { throw ValidationError("--max-tokens must be ≥ 1") }
        _ = try settings()
    }

    func settings() throws -> Sampler.Settings { try sampling.settings(temperature: 0.7, repeatPenalty: 1.1) }

    func run() throws {
        let model = try options.load()
        let tokenizer = try loadTokenizer(modelDirectory: options.directory)
        let chat: ChatSettings
        do { chat = try ChatSettings.load(directory: options.directory) } catch { throw RuntimeError("\(error)") }
        var stops = Set(ModelRegistry.eosTokenIds(directory: options.directory))
        if let eos = tokenizer.eosTokenId { stops.insert(eos) }
        let session = ChatSession(model: model, tokenizer: tokenizer, chat: chat, stopTokens: stops,
                                  sampler: Sampler(settings: try settings(), vocabSize: model.info.vocabSize),
                                  maxReplyTokens: maxTokens)
        session.system = system
        if case .plain = chat.format { printError("(this model has no chat template: plain \"role: content\" lines)") }
        printError("\(options.directory.lastPathComponent): \(model.info.architecture), context \(model.contextCapacity) tokens. /reset, /system TEXT, Ctrl-D to quit.")
        while true {
            FileHandle.standardError.write(Data("> ".utf8))
            guard let line = readLine(strippingNewline: true) else { break }
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            if text == "/reset" { session.reset(); printError("(conversation forgotten)"); continue }
            if text == "/system" || text.hasPrefix("/system ") {
                let message = String(text.dropFirst("/system".count)).trimmingCharacters(in: .whitespaces)
                session.system = message.isEmpty ? nil : message
                session.reset()
                printError(message.isEmpty ? "(system message removed; conversation forgotten)" : "(system message set; conversation forgotten)")
                continue
            }
            let reply = try session.reply(to: text, onText: emit, onNotice: printError)
            emit("\n")
            printError(reply.timings.summary)
        }
        emit("\n")
    }
}
