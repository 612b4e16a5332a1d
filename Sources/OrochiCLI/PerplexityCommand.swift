import ArgumentParser
import Foundation
import Orochi

struct PerplexityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "perplexity",
        abstract: "Perplexity per token and bits per character of a UTF-8 text file.",
        discussion: """
            The whole file is one sequence, [BOS] + encode(text), scored in windows of --context tokens \
            that advance by --stride; each window starts from an empty cache or state. \
            Scripts/eval_perplexity.py computes the same with PyTorch. With --llama-cpp it scores as \
            llama.cpp's llama-perplexity does: encode(text) as the tokenizer adds BOS, cut into chunks \
            of --context tokens (BOS first in each when the tokenizer adds it), the second half of \
            each chunk scored; the figure is its "Final estimate: PPL".
            """)

    @Option(name: .long, help: "A Hugging Face model directory with a tokenizer, or a GGUF file.")
    var model: String

    @Option(name: .long, help: "UTF-8 text file to score.")
    var file: String

    @Option(name: .long, help: "Tokens per window (default 512, at most the model's maximum).")
    var context: Int?

    @Option(name: .long, help: "Tokens each window advances (default context/2).")
    var stride: Int?

    @Option(name: .long, help: "Threads for matrix products, 1–\(maxThreads).")
    var threads: Int = 2

    @Flag(name: .long, help: "Score as llama.cpp's llama-perplexity: chunks of --context tokens (default 512), the second half of each.")
    var llamaCpp = false

    func validate() throws {
        try validateThreads(threads)
        if let context, context < 2 { throw ValidationError("--context must be ≥ 2, got \(context)") }
        if let stride, stride < 1 { throw ValidationError("--stride must be ≥ 1, got \(stride)") }
        if llamaCpp, stride != nil { throw ValidationError("--stride has no meaning with --llama-cpp (its chunks do not overlap)") }
        if llamaCpp, let context, context < 4 { throw ValidationError("--context must be ≥ 4 with --llama-cpp, got \(context)") }
    }

    func run() throws {
        let directory = URL(fileURLWithPath: model)
        let text = try readText(path: file)
        guard !text.isEmpty else { throw RuntimeError("\(file) is empty: nothing to score") }
        BLAS.threads = threads
        let tokenizer = try loadTokenizer(modelDirectory: directory)
        // A --context beyond the model's maximum is refused by the loader, naming both.
        let lm = try ModelRegistry.load(directory: directory, context: context)
        let window = context ?? min(512, lm.contextCapacity)
        let step = stride ?? max(1, window / 2)
        let start = Clock.now()
        if llamaCpp {
            let tokens = tokenizer.encode(text, addSpecialTokens: true)
            let addsBos = tokenizer.bosTokenId != nil && tokenizer.encode("", addSpecialTokens: true).first == tokenizer.bosTokenId
            guard tokens.count >= window else {
                throw RuntimeError("\(file) gives \(tokens.count) tokens, fewer than one chunk of --context \(window)")
            }
            let result = try Perplexity.llamaCpp(model: lm, tokens: tokens, characters: text.unicodeScalars.count, context: window,
                                                 bos: addsBos ? tokenizer.bosTokenId : nil) { done, chunks in
                FileHandle.standardError.write(String(format: "\rchunk %d/%d", done, chunks).data(using: .utf8)!)
                if done == chunks { FileHandle.standardError.write("\n".data(using: .utf8)!) }
            }
            print(String(format: "Final estimate: PPL = %.4f | %d chunks of %d tokens, %d scored | %.1f s",
                         result.perplexity, tokens.count / window, window, result.scoredTokens, Clock.now() - start))
            return
        }
        let tokens = (tokenizer.bosTokenId.map { [$0] } ?? []) + tokenizer.encode(text, addSpecialTokens: false)
        var progressShown = false
        // The progress line ends with a newline however the evaluation ends.
        defer { if progressShown { FileHandle.standardError.write("\n".data(using: .utf8)!) } }
        let result = try Perplexity.evaluate(model: lm, tokens: tokens, characters: text.unicodeScalars.count,
                                             context: window, stride: step) { scored, total in
            progressShown = true
            FileHandle.standardError.write(String(format: "\rscored %d/%d tokens (%.0f%%)", scored, total,
                                                  100 * Double(scored) / Double(max(total, 1))).data(using: .utf8)!)
        }
        print(String(format: "perplexity %.4f | bits/token %.4f | bits/character %.4f | %d tokens scored, %d characters, context %d, stride %d | %.1f s",
                     result.perplexity, result.bitsPerToken, result.bitsPerCharacter, result.scoredTokens,
                     result.characters, window, step, Clock.now() - start))
    }
}
