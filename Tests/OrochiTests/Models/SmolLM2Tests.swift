import Foundation
import XCTest
@testable import Orochi

/// SmolLM2-135M-Instruct's tokenizer (its GGUF's tokenizer.* metadata, without the tensors:
/// Fixtures/smollm2/tokenizer.gguf) against llama.cpp's llama-tokenize on the same file, line by
/// line, on Japanese, English and multilingual text (Scripts/fixtures/smollm2.py).
final class SmolLM2TokenizerTests: XCTestCase {
    static let folder = Fixtures.root.appendingPathComponent("smollm2")

    func tokenizer() throws -> any Tokenizer {
        try loadTokenizer(file: Self.folder.appendingPathComponent("tokenizer.gguf"))
    }

    func lines(_ name: String) throws -> [String] {
        var lines = try String(contentsOf: Self.folder.appendingPathComponent(name), encoding: .utf8).components(separatedBy: "\n")
        if lines.last == "" { lines.removeLast() }
        return lines
    }

    func testIdsEqualLlamaTokenizeLineByLine() throws {
        let tokenizer = try tokenizer()
        XCTAssertEqual(tokenizer.vocabSize, 49152)
        for name in ["ja", "en", "multi"] {
            let texts = try lines("tokenize-\(name).txt"), ids = try lines("tokenize-\(name).ids")
            XCTAssertEqual(texts.count, ids.count, name)
            XCTAssertGreaterThan(texts.count, 50, name)
            var differing: [Int] = []
            for (i, (text, line)) in zip(texts, ids).enumerated() {
                let expected = line.split(separator: " ").map { Int($0)! }
                if tokenizer.encode(text, addSpecialTokens: true) != expected { differing.append(i + 1) }
            }
            XCTAssertEqual(differing, [], "\(name): lines differing from llama-tokenize")
        }
    }

    /// ChatML text with the control tokens written in it, as llama-tokenize parses it by default.
    func testChatMLControlTokens() throws {
        let tokenizer = try tokenizer()
        let cases = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.folder.appendingPathComponent("tokenize-chatml.json"))) as! [[String: Any]]
        XCTAssertFalse(cases.isEmpty)
        for entry in cases {
            let text = entry["text"] as! String
            let expected = (entry["llama"] as! [String: Any])["default"] as! [Int]
            XCTAssertEqual(tokenizer.encode(text, addSpecialTokens: true), expected, text)
        }
        XCTAssertEqual(tokenizer.eosTokenId, 2)
    }
}

/// The real model, Q4_1 as shipped, against transformers running its dequantized weights
/// (Fixtures/smollm2/reference.json): top-1 at every position, the log-probabilities of the
/// reference's 8 likeliest tokens, and greedy text up to the reference's first near-tie. Needs the
/// 98 MB file: `make smollm2-check` downloads it (`make smollm2`) and runs this with
/// OROCHI_SMOLLM2 set; without it the test says so and skips.
final class SmolLM2ModelTests: XCTestCase {
    struct Prompt: Decodable {
        let name: String
        let ids: [Int]
        let top_ids: [[Int]]
        let top_logprobs: [[Double]]
        let greedy_ids: [Int]
        let greedy_margins: [Double]
    }
    struct Reference: Decodable { let prompts: [Prompt] }

    /// Top-1 agreement and mean |Δ log p| over the reference's 8 likeliest tokens, and whether
    /// greedy decoding follows the reference up to its first near-tie (top two within 0.01).
    func compare(_ model: any LanguageModel, _ reference: Reference) throws -> (agree: Int, positions: Int, meanDelta: Double, greedyFollows: Bool) {
        let vocab = model.info.vocabSize
        var positions = 0, agree = 0, deltas: [Double] = [], follows = true
        for prompt in reference.prompts {
            model.reset()
            var logits = [Float](repeating: 0, count: prompt.ids.count * vocab)
            try logits.withUnsafeMutableBufferPointer { try model.prefill(prompt.ids, allLogits: $0.baseAddress!) }
            for t in 0..<prompt.ids.count {
                let row = logits[(t * vocab)..<((t + 1) * vocab)]
                let peak = row.max()!
                let logSum = Double(peak) + log(row.reduce(0.0) { $0 + exp(Double($1 - peak)) })
                if row.indices.max(by: { row[$0] < row[$1] })! - t * vocab == prompt.top_ids[t][0] { agree += 1 }
                for (id, lp) in zip(prompt.top_ids[t], prompt.top_logprobs[t]) { deltas.append(abs(Double(row[t * vocab + id]) - logSum - lp)) }
                positions += 1
            }
            let steps = prompt.greedy_margins.firstIndex { $0 < 0.01 } ?? prompt.greedy_ids.count
            var generated: [Int] = []
            model.reset()
            try model.prefill(prompt.ids)
            for _ in 0..<steps {
                let next = model.lastLogits.indices.max { model.lastLogits[$0] < model.lastLogits[$1] }!
                generated.append(next)
                try model.decode(next)
            }
            if generated != Array(prompt.greedy_ids.prefix(steps)) { follows = false }
        }
        return (agree, positions, deltas.reduce(0, +) / Double(deltas.count), follows)
    }

    func testAgainstTransformersOnTheDequantizedWeights() throws {
        guard let path = ProcessInfo.processInfo.environment["OROCHI_SMOLLM2"] else {
            throw XCTSkip("OROCHI_SMOLLM2 is not set: `make smollm2-check` runs this on the downloaded model")
        }
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf:
            SmolLM2TokenizerTests.folder.appendingPathComponent("reference.json")))
        // Widened to float32 at load, the arithmetic is transformers': the format is read exactly.
        let widened = try compare(ModelRegistry.load(directory: URL(fileURLWithPath: path), options: LoadOptions(context: 512, weights: .f32)), reference)
        // On the blocks, the inputs of each product are quantized to 8 bits per 32 values (as
        // llama.cpp does): close, not equal, and greedy text may part at a near-tie.
        let blocks = try compare(ModelRegistry.load(directory: URL(fileURLWithPath: path), options: LoadOptions(context: 512)), reference)
        for (name, r) in [("widened to f32", widened), ("on the blocks", blocks)] {
            print("SmolLM2 Q4_1 \(name) against transformers: top-1 \(r.agree)/\(r.positions), mean |Δ log p| over the reference's top 8 \(String(format: "%.4f", r.meanDelta)), greedy follows to the first near-tie: \(r.greedyFollows)")
        }
        XCTAssertEqual(widened.agree, widened.positions)
        XCTAssertLessThanOrEqual(widened.meanDelta, 0.001)
        XCTAssertTrue(widened.greedyFollows)
        XCTAssertGreaterThanOrEqual(Double(blocks.agree), 0.97 * Double(blocks.positions))
        XCTAssertLessThanOrEqual(blocks.meanDelta, 0.15)
    }
}
