import Foundation
import OrochiKernels
import XCTest
@testable import Orochi

/// GGUF: the reader against files gguf-py wrote (Scripts/fixtures/gguf.py), dequantization bit for
/// bit against gguf-py's, the quantized products against the dequantized weights, and a tiny Llama
/// in four formats against transformers loading the same files.
final class GGUFTests: XCTestCase {
    static let folder = Fixtures.root.appendingPathComponent("gguf")
    static let quantTypes: [String] = ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]

    func quants() throws -> GGUFFile { try GGUFFile(path: Self.folder.appendingPathComponent("quants.gguf").path) }

    func testMetadataOfEveryValueType() throws {
        let file = try quants()
        XCTAssertEqual(file.version, 3)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.folder.appendingPathComponent("quants.json"))) as! [String: Any]
        let expected = json["metadata"] as! [String: [String: Any]]
        XCTAssertGreaterThanOrEqual(expected.count, 15)
        for (key, entry) in expected {
            guard let value = file.value(key) else { XCTFail("\(key) missing"); continue }
            let type = entry["type"] as! String
            XCTAssertEqual(value.typeName.split(separator: " ").first.map(String.init), type.lowercased(), key)
            switch value {
            case .string(let s): XCTAssertEqual(s, entry["value"] as? String, key)
            case .bool(let b): XCTAssertEqual(b, entry["value"] as? Bool, key)
            case .float32(let f): XCTAssertEqual(Double(f), (entry["value"] as! NSNumber).doubleValue, key)
            case .float64(let d): XCTAssertEqual(d, (entry["value"] as! NSNumber).doubleValue, key)
            case .uint64(let u): XCTAssertEqual(u, (entry["value"] as! NSNumber).uint64Value, key)
            case .array(_, let items):
                let values = entry["value"] as! [Any]
                XCTAssertEqual(items.count, values.count, key)
                for (item, v) in zip(items, values) {
                    if let s = item.string { XCTAssertEqual(s, v as? String, key) }
                    else if let i = item.integer, !(v is [Any]) { XCTAssertEqual(i, (v as! NSNumber).intValue, key) }
                }
            default: XCTAssertEqual(value.integer, (entry["value"] as! NSNumber).intValue, key)
            }
        }
    }

    /// Every format's dequantization equals gguf-py's bit for bit (the expected.* tensors).
    func testDequantizationEqualsGGUFPyBitForBit() throws {
        let file = try quants()
        let tensors = GGUFTensors(file: file)
        for type in ["F32", "F16", "BF16"] + Self.quantTypes {
            let ours = try tensors.floats("q.\(type)"), theirs = try tensors.floats("expected.\(type)")
            XCTAssertEqual(ours.shape, [3, 512], type)
            var mismatches = 0
            for i in 0..<ours.count where ours.data[i].bitPattern != theirs.data[i].bitPattern { mismatches += 1 }
            XCTAssertEqual(mismatches, 0, "\(type): \(mismatches) of \(ours.count) values differ from gguf-py")
        }
    }

    /// Products on the blocks (the input quantized to 8 bits, as llama.cpp does) against the
    /// dequantized weights in double precision, for one token and for several, in every kernel family.
    func testQuantizedProductsAgreeWithDequantizedWeights() throws {
        let file = try quants()
        let tensors = GGUFTensors(file: file)
        var rng = SplitMix64(seed: 7)
        let k = 512, n = 3, m = 5
        let x = (0..<(m * k)).map { _ in rng.nextUnitFloat() * 2 - 1 }
        defer { KernelInfo.force(nil) }
        for family in KernelInfo.families where KernelInfo.force(family) == family {
            for type in Self.quantTypes {
                let w = try XCTUnwrap(tensors.storedMatrix("q.\(type)", rows: n, columns: k))
                XCTAssertTrue(w.type.isQuantized, type)
                let reference = try tensors.floats("expected.\(type)")
                var one = [Float](repeating: 0, count: n), many = [Float](repeating: 0, count: m * n)
                x.withUnsafeBufferPointer { xs in
                    w.matvec(xs.baseAddress!, into: &one)
                    w.matvecMulti(xs.baseAddress!, rows: m, into: &many)
                }
                for t in 0..<m {
                    for r in 0..<n {
                        var exact = 0.0, scale = 0.0
                        for j in 0..<k {
                            exact += Double(reference.data[r * k + j]) * Double(x[t * k + j])
                            scale += abs(Double(reference.data[r * k + j]) * Double(x[t * k + j]))
                        }
                        // 8-bit inputs: each product is off by at most half a step of its block's scale.
                        XCTAssertEqual(Double(many[t * n + r]), exact, accuracy: 0.02 * scale, "\(family) \(type) token \(t) row \(r)")
                        if t == 0 { XCTAssertEqual(one[r], many[r], accuracy: 1e-4 * Float(scale) + 1e-6, "\(family) \(type) row \(r)") }
                    }
                }
            }
        }
    }

    struct Tiny: Decodable {
        let ids: [Int]
        let greedy_prompt: [Int]
        let greedy: [String: [Int]]
    }

    func tiny() throws -> Tiny {
        try JSONDecoder().decode(Tiny.self, from: Data(contentsOf: Self.folder.appendingPathComponent("tiny.json")))
    }

    func load(_ format: String, weights: WeightStorage = .asStored) throws -> any LanguageModel {
        try ModelRegistry.load(directory: Self.folder.appendingPathComponent("tiny-\(format).gguf"),
                               options: LoadOptions(weights: weights))
    }

    func logits(_ model: any LanguageModel, _ ids: [Int]) throws -> [Float] {
        var out = [Float](repeating: 0, count: ids.count * model.info.vocabSize)
        try out.withUnsafeMutableBufferPointer { try model.prefill(ids, allLogits: $0.baseAddress!) }
        return out
    }

    func greedy(_ model: any LanguageModel, prompt: [Int], count: Int) throws -> [Int] {
        model.reset()
        try model.prefill(prompt)
        var out: [Int] = []
        for _ in 0..<count {
            let next = model.lastLogits.indices.max { model.lastLogits[$0] < model.lastLogits[$1] }!
            out.append(next)
            try model.decode(next)
        }
        return out
    }

    /// Widened to float32 at load, every format computes what transformers computes on the same
    /// file: q/k rows put back in Hugging Face's order, names mapped, metadata read.
    func testTinyLlamaWidenedMatchesTransformers() throws {
        let reference = try tiny()
        for format in ["f16", "q8_0", "q4_0", "q4_1", "q4_k_m"] {
            let model = try load(format, weights: format == "f16" ? .asStored : .f32)
            let expected = try NPY.decodeFloat32(Data(contentsOf: Self.folder.appendingPathComponent("tiny-\(format).logits.npy")))
            XCTAssertEqual(expected.shape, [reference.ids.count, model.info.vocabSize])
            let ours = try logits(model, reference.ids)
            ours.withUnsafeBufferPointer { XCTAssertLessThan(relativeError($0, expected.values[...]), 2e-5, format) }
            XCTAssertEqual(try greedy(model, prompt: reference.greedy_prompt, count: 12), reference.greedy[format], format)
        }
    }

    /// On the blocks (inputs quantized to 8 bits), against the same weights widened: the error the
    /// quantized inputs add is small beside the logits' spread, for prefill and for decode.
    func testTinyLlamaOnBlocksStaysCloseToWidened() throws {
        let ids = try tiny().ids
        for format in ["q8_0", "q4_0", "q4_1", "q4_k_m"] {
            let blocks = try load(format), widened = try load(format, weights: .f32)
            XCTAssertTrue(blocks.info.details.contains { $0.0 == "weights in memory" && $0.1.hasPrefix(String(format.prefix(2))) }, format)
            let a = try logits(blocks, ids), b = try logits(widened, ids)
            let vocab = blocks.info.vocabSize
            var agree = 0, maxRelative: Float = 0
            for t in 0..<ids.count {
                let rowA = a[(t * vocab)..<((t + 1) * vocab)], rowB = b[(t * vocab)..<((t + 1) * vocab)]
                if rowA.indices.max(by: { rowA[$0] < rowA[$1] }) == rowB.indices.max(by: { rowB[$0] < rowB[$1] }) { agree += 1 }
                let spread = rowB.max()! - rowB.min()!
                maxRelative = max(maxRelative, zip(rowA, rowB).map { abs($0 - $1) }.max()! / spread)
            }
            // This random model's logits are close together (top-2 gaps down to 0.03): a few top-1 flips are expected.
            XCTAssertGreaterThanOrEqual(agree, ids.count * 3 / 4, "\(format): top-1 agrees at \(agree) of \(ids.count) positions")
            XCTAssertLessThan(maxRelative, 0.2, format)
            // Decode after prefill continues from the same state as one long prefill.
            blocks.reset()
            try blocks.prefill(Array(ids.prefix(8)))
            for t in 8..<ids.count { try blocks.decode(ids[t]) }
            let last = Array(blocks.lastLogits)
            let lastRow = a[((ids.count - 1) * vocab)...]
            XCTAssertLessThan(zip(last, lastRow).map { abs($0 - $1) }.max()!, 0.1 * (lastRow.max()! - lastRow.min()!), format)
        }
    }

    /// `orochi perplexity --llama-cpp` prints llama-perplexity's figure on the same file and text:
    /// within 0.5 % for f16 weights; within 1.5 % for Q8_0, where llama.cpp's prefill quantizes the
    /// inputs of every product to 8 bits (Orochi's widens the weights for sgemm), on a random model
    /// whose perplexity of 6·10^5 turns a mean log-likelihood 0.01 nats apart into 1 %.
    func testPerplexityInLlamaCppProtocol() throws {
        let record = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.folder.appendingPathComponent("perplexity.json"))) as! [String: Any]
        let text = try String(contentsOf: Self.folder.appendingPathComponent("perplexity.txt"), encoding: .utf8)
        let expected = record["ppl"] as! [String: Double]
        XCTAssertEqual(expected.count, 2)
        for (name, ppl) in expected.sorted(by: { $0.key < $1.key }) {
            let url = Self.folder.appendingPathComponent(name)
            let tokens = try loadTokenizer(modelDirectory: url).encode(text, addSpecialTokens: true)
            let result = try Perplexity.llamaCpp(model: ModelRegistry.load(directory: url), tokens: tokens, characters: 0,
                                                 context: record["context"] as! Int, bos: nil)
            XCTAssertEqual(result.perplexity, ppl, accuracy: (name.contains("f16") ? 0.005 : 0.015) * ppl, name)
        }
    }

    func testTokenizerFromTheFile() throws {
        let data = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.folder.appendingPathComponent("tiny.json"))) as! [String: Any]
        let tokenizer = try loadTokenizer(modelDirectory: Self.folder.appendingPathComponent("tiny-f16.gguf"))
        for sample in data["tokenizer"] as! [[String: Any]] {
            let text = sample["text"] as! String, ids = sample["ids"] as! [Int]
            XCTAssertEqual(tokenizer.encode(text, addSpecialTokens: true), ids, text)
            // Decoding leaves out the control tokens, as transformers' skip_special_tokens does.
            XCTAssertEqual(tokenizer.decode(ids), text.replacingOccurrences(of: "<|im_start|>", with: "").replacingOccurrences(of: "<|im_end|>", with: ""))
        }
    }
}

/// Hostile GGUF files: each refused with an error naming what is wrong, never a crash or an
/// allocation sized from the file.
final class GGUFBadInputTests: XCTestCase {
    /// A small valid file: a few metadata values and two tensors.
    func valid() -> GGUFWriter {
        var w = GGUFWriter()
        w.add("general.architecture", .string("llama"))
        w.add("test.array", .array(elementType: 5, [.int32(1), .int32(2)]))
        w.add(tensor: "a.weight", shape: [2, 32], floats: (0..<64).map(Float.init))
        w.add(tensor: "b.weight", shape: [32], floats: [Float](repeating: 1, count: 32))
        return w
    }

    func refused(_ bytes: [UInt8], _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
        let dir = TemporaryDirectory()
        let url = dir.write("bad.gguf", Data(bytes))
        XCTAssertThrowsError(try GGUFFile(path: url.path), file: file, line: line) { error in
            XCTAssertTrue("\(error)".contains(expected), "\(error)", file: file, line: line)
            XCTAssertTrue("\(error)".contains(url.path), "\(error)", file: file, line: line)
        }
    }

    func testTheValidFileReads() throws {
        let dir = TemporaryDirectory()
        let file = try GGUFFile(path: dir.write("ok.gguf", Data(valid().encoded())).path)
        XCTAssertEqual(file.tensors.map(\.name), ["a.weight", "b.weight"])
        XCTAssertEqual(file.tensorByName["a.weight"]?.shape, [2, 32])
        XCTAssertEqual(try GGUFTensors(file: file).floats("a.weight").data[63], 63)
    }

    /// Cut anywhere, the file is refused (the data section's end included).
    func testTruncatedAnywhere() {
        let bytes = valid().encoded()
        let dir = TemporaryDirectory()
        for cut in 0..<bytes.count {
            let url = dir.write("cut.gguf", Data(bytes[..<cut]))
            XCTAssertThrowsError(try GGUFFile(path: url.path), "cut at \(cut)")
        }
    }

    func testHeaderFields() {
        var bytes = valid().encoded()
        bytes[0] = UInt8(ascii: "X")
        refused(bytes, "magic 'GGUF'")
        var w = valid(); w.version = 1
        refused(w.encoded(), "version 1 is not supported")
        w.version = 4
        refused(w.encoded(), "version 4 is not supported")
        bytes = valid().encoded()
        withUnsafeBytes(of: (UInt64(1) << 63).littleEndian) { bytes.replaceSubrange(8..<16, with: $0) }
        refused(bytes, "tensor count 9223372036854775808 cannot fit")
        bytes = valid().encoded()
        withUnsafeBytes(of: UInt64.max.littleEndian) { bytes.replaceSubrange(16..<24, with: $0) }
        refused(bytes, "metadata count 18446744073709551615 cannot fit")
        bytes = valid().encoded()
        withUnsafeBytes(of: (UInt64(1) << 63).littleEndian) { bytes.replaceSubrange(24..<32, with: $0) }   // the first key's length
        refused(bytes, "metadata key 0 claims 9223372036854775808 bytes")
    }

    func testMetadataValues() {
        var w = GGUFWriter()
        w.add("x", .array(elementType: 13, []))
        refused(w.encoded(), "unknown array element type 13")
        w = GGUFWriter()
        w.add("general.alignment", .uint32(24))
        refused(w.encoded(), "'general.alignment' must be a power of two")
        w = GGUFWriter()
        w.add("general.alignment", .string("32"))
        refused(w.encoded(), "'general.alignment' should be a uint32")
        w = GGUFWriter()
        w.add("k", .bool(true)); w.add("k", .bool(false))
        refused(w.encoded(), "'k' appears more than once")
        // An array whose count claims more elements than the file can hold.
        w = GGUFWriter()
        w.add("big", .array(elementType: 8, [.string("a")]))
        var bytes = w.encoded()
        let countAt = 24 + 8 + 3 + 4 + 4
        withUnsafeBytes(of: UInt64(1 << 62).littleEndian) { bytes.replaceSubrange(countAt..<(countAt + 8), with: $0) }
        refused(bytes, "an array of 4611686018427387904 elements cannot fit")
        // A bool that is neither 0 nor 1, and a string that is not UTF-8.
        w = GGUFWriter()
        w.add("b", .bool(true))
        bytes = w.encoded()
        bytes[24 + 8 + 1 + 4] = 7
        refused(bytes, "a bool must be 0 or 1")
        w = GGUFWriter()
        w.add("s", .string("ab"))
        bytes = w.encoded()
        bytes[24 + 8 + 1 + 4 + 8] = 0xff
        refused(bytes, "is not valid UTF-8")
    }

    func testTensorTable() {
        var w = valid()
        w.tensors[0].type = GGMLType(id: 99, name: "?", blockValues: 1, blockBytes: 4, weightType: nil)
        refused(w.encoded(), "tensor 'a.weight' has unknown ggml type 99")
        w = valid()
        w.tensors[1].name = "a.weight"
        refused(w.encoded(), "tensor 'a.weight' appears more than once")
        w = valid()
        w.tensors[0].shape = [1, 1, 1, 1, 1]
        refused(w.encoded(), "has 5 dimensions")
        w = valid()
        w.tensors[0].shape = [1 << 40, 1 << 40]
        refused(w.encoded(), "are too large (the size overflows)")
        w = valid()
        w.tensors[0].shape = [1, 1 << 62]                     // 2^62 values fit an Int, their 2^64 bytes do not
        refused(w.encoded(), "are too large (the size overflows)")
        w = valid()
        w.tensors[0].type = GGMLType.of(.q8_0)
        w.tensors[0].shape = [2, 33]
        refused(w.encoded(), "not whole Q8_0 blocks of 32")
        w = valid()
        w.tensors[0].shape = [200, 32]                       // more bytes than the file holds
        refused(w.encoded(), "runs past the end")
    }

    /// Offsets edited in place: misaligned, overlapping, past the end.
    func testTensorOffsets() {
        let w = valid()
        let bytes = w.encoded()
        // The offsets are the last 8 bytes of each tensor info; find b.weight's by its name.
        let name = Array("b.weight".utf8)
        let at = (0..<bytes.count).first { Array(bytes[$0..<min($0 + name.count, bytes.count)]) == name }! + name.count + 4 + 8 + 4
        func with(_ offset: UInt64) -> [UInt8] {
            var b = bytes
            withUnsafeBytes(of: offset.littleEndian) { b.replaceSubrange(at..<(at + 8), with: $0) }
            return b
        }
        refused(with(100), "not a multiple of the alignment 32")
        refused(with(0), "overlap")
        refused(with(1 << 40), "runs past the end")
        refused(with(UInt64.max - 31), "runs past the end")
    }

    func testModelMetadataOfTheWrongType() throws {
        let dir = TemporaryDirectory()
        var w = GGUFWriter()
        w.add("general.architecture", .string("llama"))
        w.add("llama.block_count", .string("two"))
        w.add(tensor: "token_embd.weight", shape: [8, 32], floats: [Float](repeating: 0, count: 256))
        let url = dir.write("m.gguf", Data(w.encoded()))
        XCTAssertThrowsError(try ModelRegistry.load(directory: url)) { XCTAssertTrue("\($0)".contains("'llama.embedding_length'") || "\($0)".contains("'llama.block_count' should be an integer"), "\($0)") }
        w.metadata[0] = ("general.architecture", .string("falcon"))
        XCTAssertThrowsError(try ModelRegistry.load(directory: dir.write("f.gguf", Data(w.encoded())))) {
            XCTAssertTrue("\($0)".contains("architecture 'falcon' is not supported"), "\($0)")
        }
    }

    func testTokenizerMetadata() throws {
        let dir = TemporaryDirectory()
        func tokenizer(_ edit: (inout GGUFWriter) -> Void) -> Error? {
            var w = GGUFWriter()
            w.add("tokenizer.ggml.model", .string("gpt2"))
            w.add("tokenizer.ggml.pre", .string("gpt-2"))
            w.add("tokenizer.ggml.tokens", .array(elementType: 8, ["a", "b", "ab"].map { .string($0) }))
            w.add("tokenizer.ggml.merges", .array(elementType: 8, [.string("a b")]))
            edit(&w)
            do { _ = try loadTokenizer(file: dir.write("t.gguf", Data(w.encoded()))); return nil } catch { return error }
        }
        XCTAssertNil(tokenizer { _ in })
        XCTAssertTrue("\(tokenizer { $0.metadata[3] = ("tokenizer.ggml.merges", .array(elementType: 8, [.string("a zz")])) }!)".contains("zz"))
        XCTAssertTrue("\(tokenizer { $0.add("tokenizer.ggml.token_type", .array(elementType: 5, [.int32(1)])) }!)".contains("1 entries for 3 tokens"))
        XCTAssertTrue("\(tokenizer { $0.metadata[1] = ("tokenizer.ggml.pre", .string("nonesuch")) }!)".contains("'tokenizer.ggml.pre' nonesuch is not supported"))
        XCTAssertTrue("\(tokenizer { $0.add("tokenizer.ggml.eos_token_id", .uint32(9)) }!)".contains("'tokenizer.ggml.eos_token_id' 9 is not a token id"))
        XCTAssertTrue("\(tokenizer { $0.metadata[2] = ("tokenizer.ggml.tokens", .array(elementType: 8, ["a", "b", "a"].map { .string($0) })) }!)".contains("twice"))
        XCTAssertTrue("\(tokenizer { $0.metadata[2] = ("tokenizer.ggml.tokens", .uint32(3)) }!)".contains("should be an array of strings"))
    }

    /// SentencePiece vocabularies (`llama`, `t5`): scores and types checked against the tokens.
    func testSentencePieceTokenizerMetadata() throws {
        let dir = TemporaryDirectory()
        func tokenizer(_ model: String, _ edit: (inout GGUFWriter) -> Void) -> Error? {
            var w = GGUFWriter()
            w.add("tokenizer.ggml.model", .string(model))
            w.add("tokenizer.ggml.tokens", .array(elementType: 8, ["<unk>", "<s>", "</s>", "▁a", "b"].map { .string($0) }))
            w.add("tokenizer.ggml.scores", .array(elementType: 6, [0, 0, 0, -1, -2].map { .float32($0) }))
            w.add("tokenizer.ggml.token_type", .array(elementType: 5, [2, 3, 3, 1, 1].map { .int32($0) }))
            w.add("tokenizer.ggml.unknown_token_id", .uint32(0))
            edit(&w)
            do { _ = try loadTokenizer(file: dir.write("t.gguf", Data(w.encoded()))); return nil } catch { return error }
        }
        for model in ["llama", "t5"] {
            XCTAssertNil(tokenizer(model) { _ in }, model)
            XCTAssertTrue("\(tokenizer(model) { $0.metadata.remove(at: 2) }!)".contains("missing metadata 'tokenizer.ggml.scores'"), model)
            XCTAssertTrue("\(tokenizer(model) { $0.metadata[2].1 = .array(elementType: 6, [.float32(0)]) }!)".contains("'tokenizer.ggml.scores' should be an array of 5 numbers"), model)
            XCTAssertTrue("\(tokenizer(model) { $0.metadata[2].1 = .array(elementType: 8, (0..<5).map { _ in .string("x") }) }!)".contains("'tokenizer.ggml.scores'[0] should be a number"), model)
            XCTAssertTrue("\(tokenizer(model) { $0.metadata[3].1 = .array(elementType: 5, [2, 3, 3, 1, 9].map { .int32($0) }) }!)".contains("'tokenizer.ggml.token_type'[4] is 9"), model)
            XCTAssertTrue("\(tokenizer(model) { $0.add("tokenizer.ggml.bos_token_id", .uint32(5)) }!)".contains("'tokenizer.ggml.bos_token_id' 5 is not a token id"), model)
        }
        XCTAssertTrue("\(tokenizer("t5") { $0.add("tokenizer.ggml.precompiled_charsmap", .string("x")) }!)".contains("'tokenizer.ggml.precompiled_charsmap' should be an array of bytes"))
        let corrupt = tokenizer("t5") { $0.add("tokenizer.ggml.precompiled_charsmap", .array(elementType: 0, [255, 255, 255, 127, 1].map { .uint8($0) })) }
        XCTAssertTrue("\(corrupt.map { "\($0)" } ?? "accepted")".contains("t5 tokenizer is not a valid SentencePiece model"), "\(String(describing: corrupt))")
        XCTAssertTrue("\(tokenizer("bert") { _ in }!)".contains("'tokenizer.ggml.model' bert is not supported yet (supported: gpt2, llama, t5)"))
    }

    /// Mamba and Jamba metadata: missing keys named, layer counts bounded by the tensor table
    /// before anything is sized from them, Jamba's layer pattern required to be periodic.
    func testMambaAndJambaMetadata() throws {
        let dir = TemporaryDirectory()
        func model(_ arch: String, _ edit: (inout GGUFWriter) -> Void) -> String {
            var w = GGUFWriter()
            w.add("general.architecture", .string(arch))
            for (key, value) in [("block_count", 4), ("embedding_length", 32), ("feed_forward_length", 64), ("attention.head_count", 4),
                                 ("ssm.inner_size", 64), ("ssm.state_size", 4), ("ssm.conv_kernel", 4), ("ssm.time_step_rank", 2),
                                 ("context_length", 64)] {
                w.add("\(arch).\(key)", .uint32(UInt32(value)))
            }
            w.add("\(arch).attention.head_count_kv", .array(elementType: 5, [0, 0, 2, 0].map { .int32($0) }))
            w.add(tensor: "token_embd.weight", shape: [8, 32], floats: [Float](repeating: 0, count: 256))
            for l in 0..<4 { w.add(tensor: "blk.\(l).attn_norm.weight", shape: [32], floats: [Float](repeating: 1, count: 32)) }
            edit(&w)
            do { _ = try ModelRegistry.load(directory: dir.write("m.gguf", Data(w.encoded()))); return "loaded" } catch { return "\(error)" }
        }
        for arch in ["mamba", "jamba"] {
            XCTAssertTrue(model(arch) { $0.metadata[1].1 = .uint64(1 << 40) }.contains("'\(arch).block_count' 1099511627776 is not in 1…5"), arch)
            XCTAssertTrue(model(arch) { $0.metadata.removeAll { $0.0 == "\(arch).ssm.inner_size" } }.contains("missing metadata '\(arch).ssm.inner_size'"), arch)
            XCTAssertTrue(model(arch) { _ in }.contains("missing tensor") || model(arch) { _ in }.contains("blk.0"), "\(arch): \(model(arch) { _ in })")
        }
        XCTAssertTrue(model("mamba") { $0.add("mamba.ssm.dt_b_c_rms", .bool(true)) }.contains("Falcon-Mamba"))
        XCTAssertTrue(model("jamba") { $0.metadata.removeAll { $0.0 == "jamba.attention.head_count_kv" }
            $0.add("jamba.attention.head_count_kv", .array(elementType: 5, [0, 2, 2, 0].map { .int32($0) })) }.contains("attention layers [1, 2] do not repeat with a period"))
        XCTAssertTrue(model("jamba") { $0.metadata.removeAll { $0.0 == "jamba.attention.head_count_kv" }
            $0.add("jamba.attention.head_count_kv", .array(elementType: 5, [0, 2, 4, 0].map { .int32($0) })) }.contains("expected one KV head count"))
        XCTAssertTrue(model("jamba") { $0.metadata.removeAll { $0.0 == "jamba.attention.head_count_kv" }
            $0.add("jamba.attention.head_count_kv", .array(elementType: 5, [0, 2].map { .int32($0) })) }.contains("has 2 entries for 4 layers"))
    }

    /// A model whose vocabulary is not its embedding's length is refused.
    func testVocabularyOfTheWrongLength() throws {
        let source = GGUFTests.folder.appendingPathComponent("tiny-f16.gguf")
        let file = try GGUFFile(path: source.path)
        var w = GGUFWriter()
        for key in file.keys { w.add(key, key == "tokenizer.ggml.tokens" ? .array(elementType: 8, (file.value(key)!.array!.dropLast()).map { $0 }) : file.value(key)!) }
        if let i = w.metadata.firstIndex(where: { $0.0 == "tokenizer.ggml.token_type" }) {
            w.metadata[i].1 = .array(elementType: 5, file.value("tokenizer.ggml.token_type")!.array!.dropLast().map { $0 })
        }
        for t in file.tensors {
            w.add(tensor: t.name, shape: t.shape, type: t.type, bytes: Array(UnsafeRawBufferPointer(start: file.data(of: t), count: t.byteCount)))
        }
        let dir = TemporaryDirectory()
        XCTAssertThrowsError(try ModelRegistry.load(directory: dir.write("v.gguf", Data(w.encoded())))) {
            XCTAssertTrue("\($0)".contains("511 tokens") && "\($0)".contains("512"), "\($0)")
        }
    }
}
