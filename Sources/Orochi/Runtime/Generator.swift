import Foundation

/// Timings of one generation, as llama.cpp reports them.
public struct GenerationTimings: Sendable {
    public var promptTokens = 0
    public var promptSeconds = 0.0
    public var generatedTokens = 0
    public var generationSeconds = 0.0
    public var promptTokensPerSecond: Double { promptSeconds > 0 ? Double(promptTokens) / promptSeconds : 0 }
    public var generationTokensPerSecond: Double { generationSeconds > 0 ? Double(generatedTokens) / generationSeconds : 0 }

    public var summary: String {
        String(format: "prompt: %d tokens in %.1f ms (%.1f tokens/s) | generation: %d tokens in %.1f ms (%.1f tokens/s)",
               promptTokens, promptSeconds * 1000, promptTokensPerSecond,
               generatedTokens, generationSeconds * 1000, generationTokensPerSecond)
    }
}

/// The generation loop: prefill the prompt, then sample and decode one token at a time until
/// `maxTokens` or an end-of-sequence id. `onToken` receives each new id as it is produced;
/// returning false stops early.
public struct Generator {
    public let model: any LanguageModel
    public let sampler: Sampler
    public let stopTokens: Set<Int>
    /// Most tokens reserved ahead in the history and output arrays (they grow beyond it as needed).
    static let reserveLimit = 4096

    public init(model: any LanguageModel, sampler: Sampler, stopTokens: Set<Int>) {
        self.model = model
        self.sampler = sampler
        self.stopTokens = stopTokens
    }

    /// Generates after `prompt`. With a `snapshot` (from `saveState`), the model continues from the
    /// saved context and `prompt` (possibly empty) is appended to it. `afterPrompt` runs once the
    /// context is in the model, e.g. to save a snapshot.
    @discardableResult
    public func generate(prompt: [Int], maxTokens: Int, snapshot: [UInt8]? = nil,
                         afterPrompt: ((any LanguageModel) throws -> Void)? = nil,
                         onToken: (Int) -> Bool) throws -> ([Int], GenerationTimings) {
        var timings = GenerationTimings()
        model.reset()
        if let snapshot { try model.loadState(snapshot) }
        guard !prompt.isEmpty || snapshot != nil else { throw ModelError.emptyInput }
        if !prompt.isEmpty {
            let start = Clock.now()
            try model.prefill(prompt)
            timings.promptSeconds = Clock.now() - start
            timings.promptTokens = prompt.count
        }
        try afterPrompt?(model)
        try FiniteCheck.checkLastLogits(model)
        // Leave room in the cache: stop when it is full rather than fail mid-stream.
        let room = model.position < model.contextCapacity ? model.contextCapacity - model.position : 0
        let budget = max(0, min(maxTokens, room))
        // Reserve from the budget only up to a bound: it may be any number a user typed.
        var history = prompt
        history.reserveCapacity(prompt.count + min(budget, Self.reserveLimit))
        var output: [Int] = []
        output.reserveCapacity(min(budget, Self.reserveLimit))
        let start = Clock.now()
        for i in 0..<budget {
            let token = sampler.sample(model.lastLogits, history: history)
            output.append(token)
            history.append(token)
            if stopTokens.contains(token) || !onToken(token) { break }
            // The last sampled token needs no forward pass of its own.
            if i + 1 < budget {
                try model.decode(token)
                try FiniteCheck.checkLastLogits(model)
            }
        }
        timings.generationSeconds = Clock.now() - start
        timings.generatedTokens = output.count
        return (output, timings)
    }
}
