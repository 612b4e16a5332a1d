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

    @Option(name: .long, help: "Weight matrices in memory: 'stored' keeps the checkpoint's type (f16 and bf16 stay half precision, half the bytes per token), 'f32' widens them at load.")
    var weightsDtype: WeightStorage = .asStored

    @Option(name: .long, help: "Element type of the attention KV cache: f32 (exact) or f16 (half the bytes per token of context).")
    var kvDtype: KVCacheType = .f32

    var directory: URL { URL(fileURLWithPath: model) }

    func load() throws -> any LanguageModel {
        BLAS.threads = threads
        return try ModelRegistry.load(directory: directory,
                                      options: LoadOptions(context: context, weights: weightsDtype, kvCache: kvDtype.type))
    }
}

extension WeightStorage: ExpressibleByArgument {}

/// The KV cache types a user can ask for.
enum KVCacheType: String, ExpressibleByArgument, CaseIterable {
    case f32, f16
    var type: WeightType { self == .f16 ? .f16 : .f32 }
}

/// Prints to standard error.
func printError(_ text: String) {
    FileHandle.standardError.write((text + "\n").data(using: .utf8)!)
}

/// Writes to standard output without a newline and flushes, for streaming.
func emit(_ text: String) {
    FileHandle.standardOutput.write(text.data(using: .utf8)!)
}
