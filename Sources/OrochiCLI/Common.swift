import ArgumentParser
import Foundation
import Orochi

/// Options shared by the commands that load a model.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "A Hugging Face model directory (config.json, model.safetensors, tokenizer).")
    var model: String

    @Option(name: .long, help: "Tokens of context to allocate (default: the model's maximum, at most 4096).")
    var context: Int?

    @Option(name: .long, help: "Threads for matrix products.")
    var threads: Int = 2

    var directory: URL { URL(fileURLWithPath: model) }

    func load() throws -> any LanguageModel {
        BLAS.threads = threads
        return try ModelRegistry.load(directory: directory, context: context)
    }
}

/// Prints to standard error.
func printError(_ text: String) {
    FileHandle.standardError.write((text + "\n").data(using: .utf8)!)
}

/// Writes to standard output without a newline and flushes, for streaming.
func emit(_ text: String) {
    FileHandle.standardOutput.write(text.data(using: .utf8)!)
}
