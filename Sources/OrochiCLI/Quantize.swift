import ArgumentParser
import Foundation
import Orochi

struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a model as a GGUF file in one of llama.cpp's types (F16, Q8_0, Q4_0, Q4_K_M, …).",
        discussion: """
            The input is a GGUF file (its metadata copied, its weights requantized: llama-quantize's \
            --allow-requantize) or a Hugging Face Llama directory with a SentencePiece tokenizer.model \
            (written as llama.cpp's convert_hf_to_gguf.py writes it). Tensor types follow llama.cpp's \
            mixture for the type, and the blocks its reference quantizers.
            """)

    @Option(name: .long, help: "A model directory or a .gguf file.")
    var model: String

    @Option(name: .long, help: "The GGUF file to write.")
    var out: String

    @Option(name: .long, help: "\(QuantizationTarget.allCases.map(\.rawValue).joined(separator: ", ")).")
    var type: String = "Q8_0"

    @Flag(name: .long, help: "Print each tensor's type as it is written.")
    var verbose = false

    func run() throws {
        guard let target = QuantizationTarget.allCases.first(where: { $0.rawValue.lowercased() == type.lowercased() }) else {
            throw ValidationError("--type \(type) is not one of \(QuantizationTarget.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let started = Date()
        let summary = try GGUFExport.quantize(input: model, output: out, target: target) { name, type in
            if verbose { print("\(name.padding(toLength: 32, withPad: " ", startingAt: 0)) \(type)") }
        }
        let counts = Dictionary(summary.types.map { ($0.type, 1) }, uniquingKeysWith: +).sorted { $0.key < $1.key }
        print("\(out): \(target.rawValue), \(summary.types.count) tensors (\(counts.map { "\($0.value) \($0.key)" }.joined(separator: ", "))), "
              + String(format: "%.1f MB in %.1f s", Double(summary.bytes) / 1e6, Date().timeIntervalSince(started)))
        if !summary.hasTokenizer {
            printError("warning: \(model) has no tokenizer.model: \(out) holds no tokenizer (Orochi computes with it; llama.cpp will not load it)")
        }
        if summary.requantized > 0 {
            printError("note: \(summary.requantized) tensors were already quantized and were requantized: quality drops twice")
        }
    }
}
