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
        // A window goes in pieces of at most `piece` tokens, each scored as it comes: the logits
        // held are [piece, V] whatever --context is (a 200,000-token window would need 6 GiB).
        let piece = min(context, total, piecePositions)
        let logitCount = try Sizes.product([piece, vocab], "piece × vocab_size logits")
        try Sizes.checkFits(try Sizes.floatBytes(logitCount, "the logits"), "the logits of \(piece) positions")
        var logits = [Float](repeating: 0, count: logitCount)   // [piece, V]
        var nll = 0.0
        var scored = 0
        var previousEnd = 0
        var begin = 0
        while begin < total {
            let end = min(begin + context, total)
            let firstTarget = max(begin + 1, previousEnd)
            model.reset()
            var p = begin
            while p < end {
                let q = min(p + piece, end)
                try logits.withUnsafeMutableBufferPointer {
                    try model.prefill(Array(tokens[p..<q]), allLogits: $0.baseAddress!)
                    try FiniteCheck.checkRows($0.baseAddress!, rows: q - p, vocab: vocab, firstPosition: p, model: model)
                }
                // Row r holds position p + r's logits, the prediction of token p + r + 1.
                for t in Swift.stride(from: max(firstTarget, p + 1), to: min(q + 1, end), by: 1) {
                    let row = (t - 1 - p) * vocab
                    nll += logits.withUnsafeBufferPointer { negativeLogProbability(of: tokens[t], in: $0.baseAddress! + row, count: vocab) }
                    scored += 1
                }
                p = q
            }
            previousEnd = end
            progress(scored, total - 1)
            if end == total { break }
            begin += stride
        }
        return PerplexityResult(negativeLogLikelihood: nll, scoredTokens: scored, characters: characters)
    }

    /// llama.cpp's protocol (llama-perplexity): the tokens cut into ⌊L / context⌋ chunks of
    /// `context`, each from an empty cache, its first token replaced by `bos` when given (a
    /// tokenizer that adds BOS), and only the second half of each scored: the targets j + 1 for
    /// j in context/2 ..< context − 1, each with at least half a context of history. The same
    /// figure as its "Final estimate: PPL".
    public static func llamaCpp(model: any LanguageModel, tokens: [Int], characters: Int, context: Int, bos: Int?,
                                progress: (Int, Int) -> Void = { _, _ in }) throws -> PerplexityResult {
        guard context >= 4 else { throw PerplexityError.badWindow(context: context, stride: context) }
        let chunks = tokens.count / context
        guard chunks >= 1 else { throw PerplexityError.tooShort(tokens: tokens.count) }
        let vocab = model.info.vocabSize
        let logitCount = try Sizes.product([context, vocab], "context × vocab_size logits")
        try Sizes.checkFits(try Sizes.floatBytes(logitCount, "the logits"), "the logits of \(context) positions")
        var logits = [Float](repeating: 0, count: logitCount)   // [context, V]
        var nll = 0.0, scored = 0
        let first = context / 2
        for chunk in 0..<chunks {
            var window = Array(tokens[(chunk * context)..<((chunk + 1) * context)])
            if let bos { window[0] = bos }
            model.reset()
            try logits.withUnsafeMutableBufferPointer {
                try model.prefill(window, allLogits: $0.baseAddress!)
                try FiniteCheck.checkRows($0.baseAddress!, rows: context, vocab: vocab, firstPosition: 0, model: model)
            }
            for j in first..<(context - 1) {
                nll += logits.withUnsafeBufferPointer { negativeLogProbability(of: window[j + 1], in: $0.baseAddress! + j * vocab, count: vocab) }
                scored += 1
            }
            progress(chunk + 1, chunks)
        }
        return PerplexityResult(negativeLogLikelihood: nll, scoredTokens: scored, characters: characters)
    }

    /// Positions a window is prefilled in at a time (a multiple of every model's prefill chunk).
    static let piecePositions = 512

    /// −log softmax(logits)[token], in double precision.
    static func negativeLogProbability(of token: Int, in logits: UnsafePointer<Float>, count: Int) -> Double {
        var maxValue = -Float.infinity
        for i in 0..<count where logits[i] > maxValue { maxValue = logits[i] }
        var sum = 0.0
        for i in 0..<count { sum += exp(Double(logits[i] - maxValue)) }
        return log(sum) - Double(logits[token] - maxValue)
    }
}
