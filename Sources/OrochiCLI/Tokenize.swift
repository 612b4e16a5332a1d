import ArgumentParser
import Foundation
import Orochi

/// Where a tokenizer comes from: a model directory or a tokenizer file.
struct TokenizerSource: ParsableArguments {
    @Option(name: .long, help: "Model directory holding tokenizer.model or tokenizer.json (and tokenizer_config.json).")
    var model: String?

    @Option(name: .long, help: "A tokenizer file: SentencePiece .model or Hugging Face tokenizer.json.")
    var tokenizer: String?

    func validate() throws {
        guard (model == nil) != (tokenizer == nil) else {
            throw ValidationError("give exactly one of --model DIR or --tokenizer FILE")
        }
    }

    func load() throws -> any Tokenizer {
        if let model { return try loadTokenizer(modelDirectory: URL(fileURLWithPath: model)) }
        return try loadTokenizer(file: URL(fileURLWithPath: tokenizer!))
    }
}

/// Writes large outputs in chunks rather than one print per line.
struct TokenizeOutputBuffer {
    private var buffer: [UInt8] = []
    mutating func write(_ text: String) {
        buffer.append(contentsOf: text.utf8)
        if buffer.count > 1 << 16 { flush() }
    }
    mutating func flush() {
        FileHandle.standardOutput.write(Data(buffer))
        buffer.removeAll(keepingCapacity: true)
    }
}

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the token ids (or pieces) of each input line.",
        discussion: "Without --add-special no BOS/EOS is added: the ids equal sp.encode(line) and tok.encode(line, add_special_tokens=False).")

    @OptionGroup var source: TokenizerSource

    @Option(name: .long, help: "Text to tokenize; each line is encoded separately.")
    var text: String?

    @Option(name: .long, help: "UTF-8 file to tokenize, line by line.")
    var file: String?

    @Flag(name: .long, help: "Add the special tokens (BOS, template) as the model's configuration asks.")
    var addSpecial = false

    @Flag(name: .long, help: "Print pieces instead of ids.")
    var pieces = false

    @Option(name: .long, help: "Time N encodes of the whole input instead of printing; reports the median throughput.")
    var benchmark: Int?

    func validate() throws {
        guard (text == nil) != (file == nil) else { throw ValidationError("give exactly one of --text T or --file F") }
        if let n = benchmark, !(1...10_000).contains(n) {
            throw ValidationError("--benchmark must be between 1 and 10,000 encodes, got \(n)")
        }
    }

    func run() throws {
        let tokenizer = try source.load()
        let lines: [String]
        if let file {
            lines = try readTextLines(path: file)
        } else {
            lines = text!.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        }
        if let benchmark {
            try runBenchmark(tokenizer, lines, repetitions: benchmark)
            return
        }
        var output = TokenizeOutputBuffer()
        for line in lines {
            let ids = tokenizer.encode(line, addSpecialTokens: addSpecial)
            if pieces {
                output.write(ids.map { tokenizer.piece(for: $0) ?? "<\($0)>" }.joined(separator: " "))
            } else {
                output.write(ids.map(String.init).joined(separator: " "))
            }
            output.write("\n")
        }
        output.flush()
    }

    private func runBenchmark(_ tokenizer: any Tokenizer, _ lines: [String], repetitions: Int) throws {
        let bytes = lines.reduce(0) { $0 + $1.utf8.count }
        var seconds: [Double] = []
        var tokens = 0
        for _ in 0..<repetitions {
            let start = DispatchTime.now().uptimeNanoseconds
            tokens = 0
            for line in lines { tokens += tokenizer.encode(line, addSpecialTokens: false).count }
            seconds.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        let median = seconds.sorted()[seconds.count / 2]
        print(String(format: "bytes=%d lines=%d tokens=%d median_s=%.4f mb_per_s=%.2f", bytes, lines.count, tokens, median,
                     Double(bytes) / median / 1e6))
    }
}
