import Foundation
import OrochiKernels
import XCTest
@testable import Orochi

/// `orochi quantize` against llama.cpp's tools (Scripts/fixtures/quantize.py): Orochi's F16
/// conversion of the shipped Japanese Llama against convert_hf_to_gguf.py's, each file type made
/// from it and from the tiny GGUF against llama-quantize's (tensor types in llama.cpp's mixture, and
/// the blocks byte for byte), the converted file's `llama` tokenizer against llama-tokenize, and
/// what the written files compute.
final class QuantizeTests: XCTestCase {
    static let folder = Fixtures.root.appendingPathComponent("quantize")
    static let japaneseLlama = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Models/orochi-ja-llama")

    struct Expected { let name: String; let type: String; let digest: String }

    static let record: [String: Any] = {
        let data = try! Data(contentsOf: folder.appendingPathComponent("quantize.json"))
        return try! JSONSerialization.jsonObject(with: data) as! [String: Any]
    }()

    static func expected(_ list: Any?) -> [Expected] {
        (list as! [[String: String]]).map { Expected(name: $0["name"]!, type: $0["type"]!, digest: $0["fnv"]!) }
    }

    /// The fixture script's digest: Σ word[i] · K^(i+1) mod 2^64 over little-endian 64-bit words.
    static func digest(_ bytes: UnsafeRawBufferPointer) -> String {
        var h: UInt64 = 0, power: UInt64 = 1
        var i = 0
        while i < bytes.count {
            var word: UInt64 = 0
            for j in 0..<min(8, bytes.count - i) { word |= UInt64(bytes[i + j]) << (8 * UInt64(j)) }
            power = power &* 0x100000001B3
            h = h &+ word &* power
            i += 8
        }
        return String(h, radix: 16).leftPadded(to: 16) + "-\(bytes.count)"
    }

    /// Orochi's F16 conversion of a shipped directory, written once per test case into `name`.
    func f16File(of directory: URL, _ name: String) -> String {
        let path = temporary(name)
        try! GGUFExport.quantize(input: directory.path, output: path, target: .f16)
        return path
    }

    func temporary(_ name: String) -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("orochi-quantize-\(getpid())")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent(name).path
    }

    /// Each tensor of a file we wrote: (name, type, digest), in file order.
    func written(_ path: String) throws -> [Expected] {
        let file = try GGUFFile(path: path)
        return file.tensors.map { t in
            Expected(name: t.name, type: t.type.name,
                     digest: Self.digest(UnsafeRawBufferPointer(start: file.data(of: t), count: t.byteCount)))
        }
    }

    /// `ordered`: llama-quantize's order (convert_hf_to_gguf.py keeps the checkpoint's, we write llama.cpp's).
    /// Mamba's A (`ssm_a`) is −exp(A_log) computed by each converter's own exp: its bytes may differ
    /// in the last bit (testMambaConversion compares its values).
    func assertSame(_ found: [Expected], _ expected: [Expected], _ label: String, ordered: Bool = true,
                    file: StaticString = #filePath, line: UInt = #line) {
        if ordered {
            XCTAssertEqual(found.map(\.name), expected.map(\.name), "\(label): tensor order", file: file, line: line)
        } else {
            XCTAssertEqual(found.map(\.name).sorted(), expected.map(\.name).sorted(), "\(label): tensors", file: file, line: line)
        }
        let byName = Dictionary(uniqueKeysWithValues: found.map { ($0.name, $0) })
        for e in expected {
            guard let f = byName[e.name] else { continue }
            XCTAssertEqual(f.type, e.type, "\(label): \(e.name)'s type", file: file, line: line)
            if f.type == e.type && !e.name.hasSuffix(".ssm_a") { XCTAssertEqual(f.digest, e.digest, "\(label): \(e.name)'s bytes", file: file, line: line) }
        }
    }

    static let japaneseMamba = japaneseLlama.deletingLastPathComponent().appendingPathComponent("orochi-ja-mamba")

    lazy var convertedMambaF16 = f16File(of: Self.japaneseMamba, "ja-mamba-f16.gguf")

    /// Mamba from a directory: convert_hf_to_gguf.py's tensors and metadata; A = −exp(A_log) to
    /// within a rounding of each exp; and the file computes what the directory computes.
    func testMambaConversion() throws {
        let converted = Self.record["converted_mamba"] as! [String: Any]
        assertSame(try written(convertedMambaF16), Self.expected(converted["tensors"]), "mamba F16", ordered: false)
        let file = try GGUFFile(path: convertedMambaF16)
        for (key, value) in converted["metadata"] as! [String: Any] where key.hasPrefix("mamba.") {
            guard let ours = file.value(key) else { XCTFail("\(key) missing"); continue }
            XCTAssertEqual(ours.real ?? ours.bool.map { $0 ? 1 : 0 }, (value as? NSNumber)?.doubleValue, key)
        }
        let checkpoint = try Checkpoint(directory: Self.japaneseMamba, memory: .mapped)
        for l in 0..<6 {
            let aLog = try checkpoint.floats("backbone.layers.\(l).mixer.A_log")
            let a = try XCTUnwrap(file.tensorByName["blk.\(l).ssm_a"])
            XCTAssertEqual(a.type.name, "F32")
            let values = file.data(of: a).assumingMemoryBound(to: Float.self)
            for i in 0..<aLog.count { XCTAssertEqual(values[i], -expf(aLog.data[i]), accuracy: abs(values[i]) * 2e-7) }
        }
        func logits(_ url: URL, _ ids: [Int]) throws -> [Float] {
            let model = try ModelRegistry.load(directory: url)
            var out = [Float](repeating: 0, count: ids.count * model.info.vocabSize)
            try out.withUnsafeMutableBufferPointer { try model.prefill(ids, allLogits: $0.baseAddress!) }
            return out
        }
        let ids = [1, 400, 1200, 33, 2500, 90, 7, 3000]
        let reference = try logits(Self.japaneseMamba, ids), ours = try logits(URL(fileURLWithPath: convertedMambaF16), ids)
        XCTAssertEqual(reference.count, ours.count)
        XCTAssertLessThan(zip(reference, ours).map { abs($0 - $1) }.max()!, 1e-3)
    }

    static let japaneseJamba = japaneseLlama.deletingLastPathComponent().appendingPathComponent("orochi-ja-jamba")

    lazy var convertedJambaF16 = f16File(of: Self.japaneseJamba, "ja-jamba-f16.gguf")

    /// Jamba from a directory: convert_hf_to_gguf.py's tensors and metadata (KV heads per layer,
    /// 0 for the Mamba layers).
    func testJambaConversion() throws {
        let converted = Self.record["converted_jamba"] as! [String: Any]
        assertSame(try written(convertedJambaF16), Self.expected(converted["tensors"]), "jamba F16", ordered: false)
        let file = try GGUFFile(path: convertedJambaF16)
        var compared = 0
        for (key, value) in converted["metadata"] as! [String: Any] where key.hasPrefix("jamba.") {
            guard let ours = file.value(key) else { XCTFail("\(key) missing"); continue }
            if let object = value as? [String: Any] { XCTAssertEqual(ours.array?.count, object["count"] as? Int, key) }
            else { XCTAssertEqual(ours.real, (value as? NSNumber)?.doubleValue, key) }
            compared += 1
        }
        XCTAssertGreaterThan(compared, 10)
        XCTAssertEqual(try file.integers("jamba.attention.head_count_kv"), [0, 0, 4, 0])
    }

    /// Every Mamba, Mamba-2 and Jamba fixture (dense and mixture-of-experts, tied and untied, f32/f16/bf16)
    /// written as an F32 GGUF computes transformers' logits, as its directory does: the names,
    /// A, the conv filter, the stacked experts and the layer pattern survive the round trip.
    func testFixtureModelsThroughGGUF() throws {
        var checked = 0
        for family in ["mamba", "mamba2", "jamba"] {
            let root = Fixtures.root.appendingPathComponent(family)
            for name in try FileManager.default.contentsOfDirectory(atPath: root.path).sorted() {
                let dir = root.appendingPathComponent(name)
                guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("logits.npy").path) else { continue }
                let out = temporary("\(family)-\(name).gguf")
                if family == "mamba2" && name.contains("limit") {                   // GGUF has no key for a Δ limit
                    XCTAssertThrowsError(try GGUFExport.quantize(input: dir.path, output: out, target: .f32)) {
                        XCTAssertTrue("\($0)".contains("time_step_limit"), "\($0)")
                    }
                    continue
                }
                try GGUFExport.quantize(input: dir.path, output: out, target: .f32)
                let reference = try Fixtures.reference(dir)
                let (expected, _) = try Fixtures.logits(dir)
                let model = try ModelRegistry.load(directory: URL(fileURLWithPath: out))
                let vocab = model.info.vocabSize
                var logits = [Float](repeating: .nan, count: reference.ids.count * vocab)
                try logits.withUnsafeMutableBufferPointer { try model.prefill(reference.ids, allLogits: $0.baseAddress!) }
                for t in 0..<reference.ids.count {
                    let error = logits.withUnsafeBufferPointer { relativeError(UnsafeBufferPointer(rebasing: $0[t * vocab..<(t + 1) * vocab]), expected[t * vocab..<(t + 1) * vocab]) }
                    XCTAssertLessThanOrEqual(error, 1e-4, "\(family)/\(name) position \(t)")
                }
                checked += 1
            }
        }
        XCTAssertEqual(checked, 11)
    }

    lazy var convertedF16 = f16File(of: Self.japaneseLlama, "ja-llama-f16.gguf")

    func testDirectoryConversionEqualsConvertHfToGguf() throws {
        let converted = Self.record["converted"] as! [String: Any]
        assertSame(try written(convertedF16), Self.expected(converted["tensors"]), "F16", ordered: false)
        let file = try GGUFFile(path: convertedF16)
        let metadata = converted["metadata"] as! [String: Any]
        var compared = 0
        // The tokenizer model differs on purpose (t5, not llama: the next tests); general.* names the model.
        for (key, value) in metadata where key != "tokenizer.ggml.model"
            && (!key.hasPrefix("general.") || ["general.architecture", "general.file_type", "general.quantization_version"].contains(key)) {
            guard let ours = file.value(key) else { XCTFail("\(key) missing"); continue }
            switch value {
            case let s as String: XCTAssertEqual(ours.string, s, key)
            case let object as [String: Any]: XCTAssertEqual(ours.array?.count, object["count"] as? Int, key)
            case let n as NSNumber:
                if let b = ours.bool { XCTAssertEqual(b, n.boolValue, key) } else { XCTAssertEqual(ours.real ?? .nan, n.doubleValue, accuracy: 1e-12, key) }
            default: XCTFail("\(key): \(value)")
            }
            compared += 1
        }
        XCTAssertGreaterThan(compared, 20)
        // The vocabulary itself: the SentencePiece model's pieces, scores and types, in id order.
        let sp = try SentencePieceTokenizer(contentsOf: Self.japaneseLlama.appendingPathComponent("tokenizer.model"))
        XCTAssertEqual(try file.strings("tokenizer.ggml.tokens"), sp.proto.pieces.map { String(decoding: $0.text, as: UTF8.self) })
        XCTAssertEqual(file.value("tokenizer.ggml.scores")?.array?.map { Float($0.real!) }, sp.proto.pieces.map(\.score))
        XCTAssertEqual(try file.integers("tokenizer.ggml.token_type"), sp.proto.pieces.map(\.type.rawValue))
    }

    func testEveryFileTypeEqualsLlamaQuantize() throws {
        let quantized = Self.record["quantized"] as! [String: [String: Any]]
        let sources = ["ja-llama-f16": convertedF16, "ja-mamba-f16": convertedMambaF16, "ja-jamba-f16": convertedJambaF16,
                       "tiny-f16": Fixtures.root.appendingPathComponent("gguf/tiny-f16.gguf").path]
        XCTAssertEqual(Set(quantized.keys), Set(sources.keys))
        for (name, source) in sources.sorted(by: { $0.key < $1.key }) {
            for target in QuantizationTarget.allCases {
                guard let expected = quantized[name]?[target.rawValue] else { XCTFail("\(name) \(target.rawValue): no reference"); continue }
                let out = temporary("\(name)-\(target.rawValue).gguf")
                try GGUFExport.quantize(input: source, output: out, target: target)
                assertSame(try written(out), Self.expected(expected), "\(name) \(target.rawValue)")
                let file = try GGUFFile(path: out)
                XCTAssertEqual(try file.integer("general.file_type"), Int(target.fileType))
                // From a GGUF file, the whole file: metadata in llama-quantize's order, padding, offsets.
                if name == "tiny-f16" {
                    let bytes = try Data(contentsOf: URL(fileURLWithPath: out))
                    let files = Self.record["files"] as! [String: [String: String]]
                    XCTAssertEqual(bytes.withUnsafeBytes { Self.digest($0) }, files[name]?[target.rawValue], "\(name) \(target.rawValue): the file")
                }
            }
        }
        // The mixture as llama.cpp defines it, spelled out for the Japanese Llama's Q4_K_M (4 layers,
        // of which useMoreBits picks 2 and 3; feed-forward rows of 640: not whole 256-blocks).
        let types = Dictionary(uniqueKeysWithValues: Self.expected(quantized["ja-llama-f16"]!["Q4_K_M"]).map { ($0.name, $0.type) })
        XCTAssertEqual(types["token_embd.weight"], "Q6_K")  // tied to the output
        XCTAssertEqual(types["blk.1.attn_v.weight"], "Q4_K")
        XCTAssertEqual(types["blk.2.attn_v.weight"], "Q6_K")
        XCTAssertEqual(types["blk.1.ffn_down.weight"], "Q5_0")  // Q4_K's fallback
        XCTAssertEqual(types["blk.3.ffn_down.weight"], "Q8_0")  // Q6_K's fallback
        XCTAssertEqual((0..<8).map { QuantizationPlan.useMoreBits($0, 8) }, [true, false, false, true, false, false, true, true])
        XCTAssertEqual(types["blk.1.attn_norm.weight"], "F32")
    }

    func lines(_ name: String) throws -> [String] {
        var lines = try String(contentsOf: Self.folder.appendingPathComponent(name), encoding: .utf8).components(separatedBy: "\n")
        if lines.last == "" { lines.removeLast() }
        return lines
    }

    func ids(_ name: String) throws -> [[Int]] {
        try lines(name).map { $0.split(separator: " ").map { Int($0)! } }
    }

    /// Model `llama` (what convert_hf_to_gguf.py writes): llama.cpp's merge by score, line by line.
    func testLlamaModelTokenizerEqualsLlamaTokenize() throws {
        let tokenizer = try loadTokenizer(file: Self.folder.appendingPathComponent("ja-llama.vocab.gguf"))
        XCTAssert(tokenizer is GGUFSentencePiece)
        let texts = try lines("tokenize-ja.txt"), expected = try ids("tokenize-ja-llama.ids")
        XCTAssertEqual(texts.count, expected.count)
        XCTAssertGreaterThan(texts.count, 300)
        let differing = zip(texts, expected).enumerated().filter { tokenizer.encode($1.0, addSpecialTokens: false) != $1.1 }.map { $0.offset + 1 }
        XCTAssertEqual(differing, [], "lines differing from llama-tokenize")
        XCTAssertEqual(tokenizer.encode("こんにちは", addSpecialTokens: true).first, 1)
        for text in texts.prefix(60) where !text.contains("<") && !text.isEmpty && !text.hasPrefix(" ") && !text.contains("  ") {
            XCTAssertEqual(tokenizer.decode(tokenizer.encode(text, addSpecialTokens: true)), text)
        }
    }

    /// Model `t5`, what `orochi quantize` writes for a unigram model: the same keys and values as
    /// the vocabulary llama-tokenize read; ids equal to llama-tokenize's on every line where
    /// llama.cpp has no unknown token, and to sentencepiece's own on every plain line.
    func testUnigramTokenizerEqualsLlamaTokenizeAndSentencePiece() throws {
        let vocabulary = try GGUFFile(path: Self.folder.appendingPathComponent("ja-t5.vocab.gguf").path)
        let ours = try GGUFFile(path: convertedF16)
        let keys = vocabulary.keys.filter { $0.hasPrefix("tokenizer.") }
        XCTAssertEqual(Set(ours.keys.filter { $0.hasPrefix("tokenizer.") }), Set(keys))
        for key in keys { XCTAssert(ours.value(key) == vocabulary.value(key), key) }

        let tokenizer = try loadTokenizer(file: URL(fileURLWithPath: convertedF16))
        XCTAssert(tokenizer is GGUFUnigram)
        let texts = try lines("tokenize-ja.txt"), llama = try ids("tokenize-ja-t5.ids"), sentencePiece = try ids("tokenize-ja-sp.ids")
        XCTAssertEqual(Set([texts.count, llama.count, sentencePiece.count]).count, 1)
        var unknownInLlama = 0
        for (i, text) in texts.enumerated() {
            let found = tokenizer.encode(text, addSpecialTokens: false)
            let plain = !text.contains("<")
            if plain { XCTAssertEqual(found, sentencePiece[i], "line \(i + 1): sentencepiece") }
            if llama[i].contains(0) { unknownInLlama += 1 } else { XCTAssertEqual(found, llama[i], "line \(i + 1): llama-tokenize") }
        }
        XCTAssertLessThan(unknownInLlama, texts.count / 10)
        XCTAssertEqual(tokenizer.encode("<s>前</s>", addSpecialTokens: false), [1] + tokenizer.encode("前", addSpecialTokens: false) + [2])
        XCTAssertEqual(tokenizer.encode("テスト", addSpecialTokens: true).first, 1)
        XCTAssertEqual(tokenizer.decode(tokenizer.encode("日本語のテキスト", addSpecialTokens: true)), "日本語のテキスト")
    }

    /// The Q8_0 file computes what the safetensors directory computes, to Q8_0's precision.
    func testQuantizedJapaneseLlamaRuns() throws {
        let out = temporary("ja-llama-q8_0.gguf")
        try GGUFExport.quantize(input: Self.japaneseLlama.path, output: out, target: .q8_0)
        let ids = [1, 400, 1200, 33, 2500, 90, 7, 3000]
        func logits(_ directory: URL) throws -> [Float] {
            let model = try ModelRegistry.load(directory: directory)
            var out = [Float](repeating: 0, count: ids.count * model.info.vocabSize)
            try out.withUnsafeMutableBufferPointer { try model.prefill(ids, allLogits: $0.baseAddress!) }
            return out
        }
        let reference = try logits(Self.japaneseLlama), quantized = try logits(URL(fileURLWithPath: out))
        XCTAssertEqual(reference.count, quantized.count)
        var worst: Float = 0, scale: Float = 0
        for (a, b) in zip(reference, quantized) { worst = max(worst, abs(a - b)); scale = max(scale, abs(a)) }
        XCTAssertLessThan(worst, 0.05 * scale, "largest logit difference \(worst) against logits up to \(scale)")
    }

    /// float32 → half in every kernel family equals Swift's own IEEE conversion (round to nearest
    /// even), subnormal halves included: F16 files, F16 KV caches and block scales are written so.
    func testHalfConversionInEveryFamily() throws {
        var values: [Float] = [0, -0, 1, -1, 65504, 65520, 1e6, .infinity, -.infinity, 6.1e-5, 5.96e-8, 2.98e-8, 1e-10]
        for e in -26 ... -13 { for m in stride(from: Float(1), to: 2, by: 0.0625) { values += [m * Float(pow(2.0, Double(e))), -m * Float(pow(2.0, Double(e)))] } }
        var rng = SplitMix64(seed: 3)
        values += (0..<4096).map { _ in Float(bitPattern: UInt32(truncatingIfNeeded: rng.next())) }.filter { !$0.isNaN }
        let expected = values.map { Float16($0).bitPattern }
        defer { KernelInfo.force(nil) }
        var families = 0
        for family in KernelInfo.families where KernelInfo.force(family) == family {
            var half = [UInt16](repeating: 0, count: values.count)
            values.withUnsafeBufferPointer { src in half.withUnsafeMutableBufferPointer { narrowToHalf(src.baseAddress!, into: $0.baseAddress!, count: values.count) } }
            let wrong = zip(values, zip(half, expected)).filter { $1.0 != $1.1 }
            XCTAssertEqual(wrong.count, 0, "\(family): \(wrong.prefix(3).map { "\($0.0) → \($0.1.0) not \($0.1.1)" })")
            families += 1
        }
        XCTAssertGreaterThanOrEqual(families, 1)
    }

    func testBadInput() throws {
        let out = temporary("bad.gguf")
        XCTAssertThrowsError(try GGUFExport.quantize(input: "/nonexistent", output: out, target: .q8_0)) { error in
            XCTAssert("\(error)".contains("/nonexistent"), "\(error)")
        }
        let qwen3 = Fixtures.root.appendingPathComponent("qwen3").path
        if let dir = try FileManager.default.contentsOfDirectory(atPath: qwen3).first(where: { !$0.contains(".") }) {
            XCTAssertThrowsError(try GGUFExport.quantize(input: qwen3 + "/" + dir, output: out, target: .q8_0)) { error in
                XCTAssert("\(error)".contains("model_type"), "\(error)")
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + ".part"))
    }
}

private extension String {
    func leftPadded(to width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}

/// The Japanese Llama, Mamba and Jamba shipped as Q8_0 GGUF are what `orochi quantize` makes of the
/// shipped directories now (`make gguf-models` writes them).
final class ShippedGGUFTests: XCTestCase {
    func testShippedQ8_0IsCurrent() throws {
        for name in ["orochi-ja-llama", "orochi-ja-mamba", "orochi-ja-jamba"] {
            let models = QuantizeTests.japaneseLlama.deletingLastPathComponent()
            let shipped = models.appendingPathComponent("\(name).Q8_0.gguf")
            let fresh = FileManager.default.temporaryDirectory.appendingPathComponent("orochi-shipped-\(getpid())-\(name).gguf")
            defer { try? FileManager.default.removeItem(at: fresh) }
            try GGUFExport.quantize(input: models.appendingPathComponent(name).path, output: fresh.path, target: .q8_0)
            XCTAssert(try Data(contentsOf: shipped) == Data(contentsOf: fresh), "\(shipped.path) is stale: run make gguf-models")
        }
    }
}
