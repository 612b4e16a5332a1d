import ArgumentParser
import Foundation
import Orochi

struct Forward: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the model over token ids and write the logits of every position to a .npy file.",
        discussion: "The file holds float32 logits of shape [T, vocab], row t predicting token t+1.")

    @OptionGroup var options: ModelOptions

    @Option(name: .long, help: "Token ids, e.g. \"1 2 3\".")
    var ids: String

    @Option(name: .long, help: "Output .npy file.")
    var out: String

    func validate() throws {
        guard !(try parseIdsOption(ids, flag: "--ids")).isEmpty else { throw ValidationError("--ids holds no token ids") }
    }

    func run() throws {
        let tokens = try parseIdsOption(ids, flag: "--ids")
        let model = try options.load()
        let vocab = model.info.vocabSize
        // Bounded by the model's context (checked by prefill) before the logits are allocated.
        guard tokens.count <= model.contextCapacity else {
            throw ModelError.contextOverflow(requested: tokens.count, capacity: model.contextCapacity)
        }
        let count = try Sizes.product([tokens.count, vocab], "--ids count × vocab_size logits")
        try Sizes.checkFits(try Sizes.floatBytes(count, "the logits"), "the logits of \(tokens.count) tokens")
        var logits = [Float](repeating: 0, count: count)
        try logits.withUnsafeMutableBufferPointer {
            try model.prefill(tokens, allLogits: $0.baseAddress!)
            try FiniteCheck.checkRows($0.baseAddress!, rows: tokens.count, vocab: vocab, firstPosition: 0, model: model)
        }
        let data = logits.withUnsafeBufferPointer { NPY.encode(float32: $0, shape: [tokens.count, model.info.vocabSize]) }
        try FileOutput.write(data, to: out)
    }
}
