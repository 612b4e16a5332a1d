import Foundation

/// A conversation with a model: its messages rendered with the model's chat template, the
/// rendered prompt's tokens kept in the model between turns so that each turn reads only what
/// is new, and the oldest turns dropped when the context would overflow.
public final class ChatSession {
    public let model: any LanguageModel
    public let tokenizer: any Tokenizer
    public let chat: ChatSettings
    public let stopTokens: Set<Int>
    public let sampler: Sampler
    public let maxReplyTokens: Int
    /// The system message, first in every prompt when set.
    public var system: String?
    /// The user and assistant messages so far.
    public private(set) var history: [ChatMessage] = []
    /// The tokens the model holds now (its position), to reuse as a prefix.
    private var held: [Int] = []

    public init(model: any LanguageModel, tokenizer: any Tokenizer, chat: ChatSettings, stopTokens: Set<Int>,
                sampler: Sampler, maxReplyTokens: Int) {
        self.model = model; self.tokenizer = tokenizer; self.chat = chat; self.stopTokens = stopTokens
        self.sampler = sampler; self.maxReplyTokens = maxReplyTokens
    }

    public func reset() {
        history = []
        held = []
        model.reset()
    }

    /// The prompt's tokens for `messages`, the template's text encoded without adding BOS/EOS
    /// again (the template writes them), as transformers' apply_chat_template does.
    public func promptTokens(_ messages: [ChatMessage]) throws -> [Int] {
        let all = (system.map { [ChatMessage(role: "system", content: $0)] } ?? []) + messages
        return tokenizer.encode(try chat.render(all), addSpecialTokens: false)
    }

    public struct Reply {
        public var text: String
        public var ids: [Int]
        public var timings: GenerationTimings
        /// Turns dropped to make room.
        public var droppedTurns: Int
    }

    /// Answers `message`: streams the reply's text through `onText`, keeps both in the history.
    public func reply(to message: String, onText: (String) -> Void, onNotice: (String) -> Void) throws -> Reply {
        var messages = history + [ChatMessage(role: "user", content: message)]
        var prompt = try promptTokens(messages)
        var dropped = 0
        // Room for the prompt and at least a short reply; drop the oldest user/assistant pair until it fits.
        let wanted = min(maxReplyTokens, 64)
        while prompt.count + wanted > model.contextCapacity && messages.count > 1 {
            messages.removeFirst(min(2, messages.count - 1))
            dropped += 1
            prompt = try promptTokens(messages)
        }
        guard prompt.count < model.contextCapacity else {
            throw ModelError.contextOverflow(requested: prompt.count + 1, capacity: model.contextCapacity)
        }
        if dropped > 0 { onNotice("(the context of \(model.contextCapacity) tokens is full: dropped the \(dropped) oldest turn\(dropped == 1 ? "" : "s"))") }

        var timings = GenerationTimings()
        // Reuse what the model already holds when the new prompt starts with it.
        let start = Clock.now()
        if held.isEmpty || model.position != held.count || !prompt.starts(with: held) || prompt.count == held.count {
            model.reset()
            held = []
        }
        let fresh = Array(prompt[held.count...])
        try model.prefill(fresh)
        held = prompt
        timings.promptTokens = fresh.count
        timings.promptSeconds = Clock.now() - start

        let stream = StreamingDetokenizer(tokenizer)
        var ids: [Int] = [], text = ""
        let budget = min(maxReplyTokens, model.contextCapacity - model.position)
        let genStart = Clock.now()
        while ids.count < budget {
            try FiniteCheck.checkLastLogits(model)
            let next = sampler.sample(model.lastLogits, history: held)   // what the model holds: the repetition window's past
            if stopTokens.contains(next) { break }
            ids.append(next)
            let piece = stream.append(next)
            text += piece
            onText(piece)
            if ids.count == budget { break }
            try model.decode(next)
            held.append(next)
        }
        let rest = stream.finish()
        text += rest
        onText(rest)
        if ids.count == budget && budget < maxReplyTokens { onNotice("(the context is full)") }
        timings.generatedTokens = ids.count
        timings.generationSeconds = Clock.now() - genStart
        self.history = messages + [ChatMessage(role: "assistant", content: text)]
        return Reply(text: text, ids: ids, timings: timings, droppedTurns: dropped)
    }
}
