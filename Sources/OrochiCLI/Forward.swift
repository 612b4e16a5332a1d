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

    func run() throws {
        let tokens = try parseTokenIds(ids)
        guard !tokens.isEmpty else { throw ValidationError("--ids holds no token ids") }
        let model = try options.load()
        var logits = [Float](repeating: 0, count: tokens.count * model.info.vocabSize)
        try logits.withUnsafeMutableBufferPointer { try model.prefill(tokens, allLogits: $0.baseAddress!) }
        let data = logits.withUnsafeBufferPointer { NPY.encode(float32: $0, shape: [tokens.count, model.info.vocabSize]) }
        try data.write(to: URL(fileURLWithPath: out))
    }
}
