import ArgumentParser
import Foundation
import Orochi

/// Options shared by the commands that load a model.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "A Hugging Face model directory (config.json, model.safetensors, tokenizer).")
    var model: String

    @Option(name: .long, help: "Tokens of context to allocate, ≥ 1 (default: the model's maximum, at most 4096; refused when the KV cache would exceed physical memory).")
    var context: Int?

    @Option(name: .long, help: "Threads for matrix products, 1–\(maxThreads).")
    var threads: Int = 2

    @Option(name: .long, help: "Weight matrices in memory: 'stored' keeps the checkpoint's type (f16 and bf16 stay half precision, half the bytes per token), 'f32' widens them at load.")
    var weightsDtype: WeightStorage = .asStored

    @Option(name: .long, help: "Element type of the attention KV cache: f32 (exact) or f16 (half the bytes per token of context).")
    var kvDtype: KVCacheType = .f32

    @Option(name: .long, help: "How the checkpoint is held in memory: 'huge-pages' reads it at load into private memory on 2 MiB pages where Linux offers them (faster decode: fewer TLB misses), 'mapped' maps the file (4 KiB pages, shared with other processes through the page cache).")
    var weightsMemory: WeightMemory = .hugePages

    var directory: URL { URL(fileURLWithPath: model) }

    func validate() throws {
        try validateThreads(threads)
        if let context, context <= 0 { throw ValidationError("--context must be ≥ 1, got \(context)") }
    }

    func load() throws -> any LanguageModel {
        BLAS.threads = threads
        return try ModelRegistry.load(directory: directory,
                                      options: LoadOptions(context: context, weights: weightsDtype, kvCache: kvDtype.type, weightMemory: weightsMemory))
    }
}

/// The sampling flags of `generate` and `chat`; each command gives its own defaults for the
/// temperature and the repeat penalty (a chat's replies are longer, and small models loop).
struct SamplingOptions: ParsableArguments {
    @Option(name: .long, help: "Sampling temperature, ≥ 0; 0 is greedy (default: generate 0.8, chat 0.7).")
    var temperature: Float?

    @Option(name: .long, help: "Keep only the K most likely tokens, K ≥ 0 (0: off).")
    var topK: Int = 40

    @Option(name: .long, help: "Keep the smallest set of tokens whose probability reaches P, in (0, 1] (1: off).")
    var topP: Float = 0.95

    @Option(name: .long, help: "Penalty for tokens among the last 64, > 0: above 1 discourages them, 1 is off (default: generate 1, chat 1.1).")
    var repeatPenalty: Float?

    @Option(name: .long, help: "Random seed (default: from the clock).")
    var seed: UInt64?

    /// The settings, with the command's defaults where a flag is not given; checked.
    func settings(temperature defaultTemperature: Float, repeatPenalty defaultPenalty: Float) throws -> Sampler.Settings {
        let settings = Sampler.Settings(temperature: temperature ?? defaultTemperature, topK: topK, topP: topP,
                                        repetitionPenalty: repeatPenalty ?? defaultPenalty, seed: seed ?? UInt64(Clock.now() * 1e6))
        do { try settings.validate() } catch { throw ValidationError("\(error)") }
        return settings
    }
}

extension WeightStorage: ExpressibleByArgument {}
extension WeightMemory: ExpressibleByArgument {}

/// Orochi's kernel families: `best` is the CPU's own; a lower one shows what a CPU with less would
/// get (OpenBLAS then gets the matching core too, chosen when the library first loads).
enum KernelFamily: String, ExpressibleByArgument, CaseIterable {
    case best, avx512, avx2, portable

    /// An error when this CPU lacks the family (before anything is forced, KernelInfo.isa is its best).
    func check(option: String) throws {
        let order = KernelInfo.families
        guard self != .best, let wanted = order.firstIndex(of: rawValue), let mine = order.firstIndex(of: KernelInfo.isa),
              wanted > mine else { return }
        throw ValidationError("\(option) \(rawValue): this CPU's best kernels are \(KernelInfo.isa)")
    }

    /// Puts the family in force for the rest of the process (before the first matrix product).
    func apply() { if self != .best { KernelInfo.force(rawValue) } }
}

/// The KV cache types a user can ask for.
enum KVCacheType: String, ExpressibleByArgument, CaseIterable {
    case f32, f16
    var type: WeightType { self == .f16 ? .f16 : .f32 }
}

/// The most threads `--threads` accepts.
let maxThreads = 256

func validateThreads(_ threads: Int) throws {
    guard threads >= 1 && threads <= maxThreads else {
        throw ValidationError("--threads must be between 1 and \(maxThreads), got \(threads)")
    }
}

/// Token ids given on the command line (`--ids`, `--prompt-ids`): the one parser of
/// `forward`, `generate` and `detokenize`; a bad value is a command-line error naming the flag.
func parseIdsOption(_ text: String, flag: String) throws -> [Int] {
    do { return try parseTokenIds(text) } catch {
        throw ValidationError("\(flag): \(error)")
    }
}

/// A failure at run time (a file that cannot be read, a state that does not load …): a one-line
/// message on stderr and exit status 1, without the usage text that command-line errors get.
struct RuntimeError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Prints to standard error.
func printError(_ text: String) {
    FileHandle.standardError.write((text + "\n").data(using: .utf8)!)
}

/// Writes to standard output without a newline and flushes, for streaming.
func emit(_ text: String) {
    FileHandle.standardOutput.write(text.data(using: .utf8)!)
}
