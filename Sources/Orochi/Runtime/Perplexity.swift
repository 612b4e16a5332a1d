import Foundation

/// Perplexity of a token sequence under a model, evaluated in sliding windows as
/// Scripts/eval_perplexity.py does (and as transformers' perplexity guide describes):
///
///     for begin in 0, stride, 2·stride, …:
///         end = min(begin + context, L)
///         run the window seq[begin..<end] from an empty cache/state
///         score targets t in [max(begin + 1, previous end), end), each predicted from position t − 1
///
/// With stride < context every token after the first is scored exactly once, with at least
/// context − stride tokens of history; with stride = context the first token of each later window
/// has no history in its window and is not scored (as in the PyTorch script).
public struct PerplexityResult: Sendable {
    public var negativeLogLikelihood: Double    // nats, summed over scored tokens
    public var scoredTokens: Int
    public var characters: Int                  // Unicode characters of the text, for bits per character

    public var perplexity: Double { exp(negativeLogLikelihood / Double(max(scoredTokens, 1))) }
    public var bitsPerToken: Double { negativeLogLikelihood / log(2) / Double(max(scoredTokens, 1)) }
    public var bitsPerCharacter: Double { negativeLogLikelihood / log(2) / Double(max(characters, 1)) }
}

public enum PerplexityError: Error, CustomStringConvertible, Equatable {
    case tooShort(tokens: Int)
    case badWindow(context: Int, stride: Int)

    public var description: String {
        switch self {
        case let .tooShort(tokens): return "the text gives \(tokens) token(s); at least 2 are needed to score one"
        case let .badWindow(context, stride): return "need 0 < stride ≤ context, got context \(context), stride \(stride)"
        }
    }
}

public enum Perplexity {
    /// Scores `tokens` (already including any BOS). `progress(scored, total)` is called after each window.
    public static func evaluate(model: any LanguageModel, tokens: [Int], characters: Int,
                                context: Int, stride: Int,
                                progress: (Int, Int) -> Void = { _, _ in }) throws -> PerplexityResult {
        guard tokens.count >= 2 else { throw PerplexityError.tooShort(tokens: tokens.count) }
        guard context > 1, stride > 0, stride <= context else { throw PerplexityError.badWindow(context: context, stride: stride) }
        let vocab = model.info.vocabSize
        let total = tokens.count
        // [window, V]: the window is bounded by the text, the product checked against memory.
        let logitCount = try Sizes.product([min(context, total), vocab], "window × vocab_size logits")
        try Sizes.checkFits(try Sizes.floatBytes(logitCount, "the logits"), "the logits of a \(min(context, total))-token window")
        var logits = [Float](repeating: 0, count: logitCount)   // [window, V]
        var nll = 0.0
        var scored = 0
        var previousEnd = 0
        var begin = 0
        while begin < total {
            let end = min(begin + context, total)
            let window = Array(tokens[begin..<end])
            model.reset()
            try logits.withUnsafeMutableBufferPointer {
                try model.prefill(window, allLogits: $0.baseAddress!)
                try FiniteCheck.checkRows($0.baseAddress!, rows: window.count, vocab: vocab, firstPosition: begin, model: model)
            }
            for t in max(begin + 1, previousEnd)..<end {
                let row = (t - 1 - begin) * vocab
                nll += logits.withUnsafeBufferPointer { negativeLogProbability(of: tokens[t], in: $0.baseAddress! + row, count: vocab) }
                scored += 1
            }
            previousEnd = end
            progress(scored, total - 1)
            if end == total { break }
            begin += stride
        }
        return PerplexityResult(negativeLogLikelihood: nll, scoredTokens: scored, characters: characters)
    }

    /// −log softmax(logits)[token], in double precision.
    static func negativeLogProbability(of token: Int, in logits: UnsafePointer<Float>, count: Int) -> Double {
        var maxValue = -Float.infinity
        for i in 0..<count where logits[i] > maxValue { maxValue = logits[i] }
        var sum = 0.0
        for i in 0..<count { sum += exp(Double(logits[i] - maxValue)) }
        return log(sum) - Double(logits[token] - maxValue)
    }
}
