import ArgumentParser
import Foundation
import Orochi

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text (or token ids) after a prompt, streaming as it goes.",
        discussion: "Ends with a timings line on stderr. Temperature 0 is greedy decoding; a --seed reproduces a run.")

    @OptionGroup var options: ModelOptions

    @Option(name: .long, help: "Prompt text, encoded with the model's tokenizer (BOS added as its configuration asks).")
    var prompt: String?

    @Option(name: .long, help: "Prompt token ids, e.g. \"1 2 3\".")
    var promptIds: String?

    @Option(name: .long, help: "Most tokens to generate, ≥ 0.")
    var maxTokens: Int = 128

    @OptionGroup var sampling: SamplingOptions

    @Flag(name: .long, help: "Print the generated token ids, space-separated on one line, instead of text.")
    var outputIds = false

    @Flag(name: .long, help: "Time each part of the forward pass (norms, projections, attention, MLP, scan …) and print the split on stderr.")
    var profile = false

    @Flag(name: .long, help: "After the timings, say which BLAS core and which of our own kernels ran.")
    var verbose = false

    @Option(name: .long, help: "After the prompt, write the KV cache or SSM state to this file.")
    var saveState: String?

    @Option(name: .long, help: "Continue from a state written by --save-state instead of reading the prompt again.")
    var loadState: String?

    func validate() throws {
        guard maxTokens >= 0 else { throw ValidationError("--max-tokens must be ≥ 0") }
        _ = try settings()
        if let promptIds { _ = try parseIdsOption(promptIds, flag: "--prompt-ids") }
        guard prompt == nil || promptIds == nil else { throw ValidationError("give --prompt or --prompt-ids, not both") }
        guard prompt != nil || promptIds != nil || loadState != nil else {
            throw ValidationError("give a prompt (--prompt or --prompt-ids) or a state to continue from (--load-state)")
        }
    }

    func settings() throws -> Sampler.Settings { try sampling.settings(temperature: 0.8, repeatPenalty: 1) }

    func run() throws {
        let model = try options.load()
        // Text needs the tokenizer; ids print as text too when the directory has one.
        let tokenizer: (any Tokenizer)? = prompt != nil ? try loadTokenizer(modelDirectory: options.directory)
            : (try? loadTokenizer(modelDirectory: options.directory))
        let promptTokens: [Int]
        if let prompt, let tokenizer {
            promptTokens = tokenizer.encode(prompt, addSpecialTokens: true)
        } else {
            promptTokens = try promptIds.map { try parseIdsOption($0, flag: "--prompt-ids") } ?? []
        }
        let snapshot = try loadState.map { path -> [UInt8] in
            guard let data = FileManager.default.contents(atPath: path) else {
                throw RuntimeError("\(path): cannot read the state file (--load-state)")
            }
            return [UInt8](data)
        }
        let settings = try settings()
        var stopTokens = Set(ModelRegistry.eosTokenIds(directory: options.directory))
        if let eos = tokenizer?.eosTokenId { stopTokens.insert(eos) }
        let generator = Generator(
            model: model, sampler: Sampler(settings: settings, vocabSize: model.info.vocabSize),
            stopTokens: stopTokens)
        let stream = outputIds ? nil : tokenizer.map(StreamingDetokenizer.init)
        if let prompt, stream != nil { emit(prompt) }

        Profiler.enabled = profile
        let (ids, timings) = try generator.generate(
            prompt: promptTokens, maxTokens: maxTokens, snapshot: snapshot,
            afterPrompt: { model in
                guard let saveState else { return }
                let bytes = model.saveState()
                try FileOutput.write(bytes, to: saveState)
                printError("saved state after \(model.position) tokens to \(saveState): \(formatBytes(bytes.count))")
            },
            onToken: { id in
                if outputIds || stopTokens.contains(id) { return true }
                if let stream { emit(stream.append(id)) } else { emit("\(id) ") }
                return true
            })
        // Through the same unbuffered handle as the stream, so the text ends before the timings line.
        emit((outputIds ? ids.map(String.init).joined(separator: " ") : stream?.finish() ?? "") + "\n")
        printError(timings.summary)
        if verbose { printError(KernelInfo.summary) }
        if profile {
            let parts = Profiler.seconds
            let total = parts.reduce(0) { $0 + $1.1 }
            for (component, seconds) in parts {
                let name = component.description.padding(toLength: 26, withPad: " ", startingAt: 0)
                printError("  " + name + String(format: "%9.2f ms %5.1f%%", seconds * 1000, 100 * seconds / total))
            }
        }
    }
}
