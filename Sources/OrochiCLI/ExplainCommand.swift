import ArgumentParser
import Foundation
import Orochi
import OrochiTeaching

/// `orochi explain`: the models side by side on one prompt, as one self-contained HTML page.
struct ExplainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Write one self-contained HTML page that puts models side by side on a prompt: maps, reach, one token's cost, memory.")

    @Option(name: .long, help: "A model directory (repeatable).")
    var model: [String] = []

    @Option(name: .long, help: "The prompt, encoded with each model's tokenizer.")
    var prompt: String

    @Option(name: .long, help: "The HTML file to write.")
    var out: String

    @Option(name: .long, help: "Threads for matrix products, 1–\(maxThreads).")
    var threads: Int = 2

    func validate() throws {
        guard !model.isEmpty else { throw ValidationError("give at least one --model DIR") }
        guard model.count <= 8 else { throw ValidationError("at most 8 models fit side by side, got \(model.count)") }
        guard !prompt.isEmpty else { throw ValidationError("--prompt is empty") }
        try validateThreads(threads)
    }

    func run() throws {
        BLAS.threads = threads
        var subjects: [ExplainPage.Subject] = []
        for path in model {
            let dir = URL(fileURLWithPath: path)
            let m = try ModelRegistry.load(directory: dir, options: LoadOptions())
            let tokenizer = try loadTokenizer(modelDirectory: dir)
            let tokens = tokenizer.encode(prompt, addSpecialTokens: true)
            guard tokens.count <= AttentionMaps.maxTokens else {
                throw RuntimeError("\(path): the prompt has \(tokens.count) tokens; the page is drawn for at most \(AttentionMaps.maxTokens)")
            }
            subjects.append(try ExplainPage.subject(name: dir.standardizedFileURL.lastPathComponent, model: m, tokens: tokens,
                                                     labels: tokens.map { tokenizer.piece(for: $0) ?? "\($0)" }))
        }
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("orochi-explain-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: work) }
        try ExplainPage.write(subjects, prompt: prompt, to: URL(fileURLWithPath: out), work: work)
        printError("wrote \(out)")
    }
}
