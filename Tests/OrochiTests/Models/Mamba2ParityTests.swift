import Foundation
import Testing
import OrochiKernels
import OrochiTeaching
@testable import Orochi

/// Mamba-2-specific checks; the parity of every fixture (logits at every position against
/// transformers' chunked path, prefill then decode by the recurrence, greedy text) is in ParityTests.
struct Mamba2ParityTests {
    static let cases = ["g2_chunk8_tied_f32", "g1_chunk16_limit_bias_untied_bf16", "g4_chunk5_state8_k3_f16"]
    static let tolerance = ParityTests.tolerance

    /// Prefill in pieces that start and end inside SSD chunks and inside the conv's window: the
    /// chunked scan continues from the state each piece leaves, and decode from any of them.
    @Test(arguments: [[1, 36], [8, 8, 8, 13], [3, 11, 2, 21], [13, 1, 1, 22], [36, 1]])
    func prefillInPiecesEqualsOnePrefill(_ pieces: [Int]) throws {
        for name in ["g2_chunk8_tied_f32", "g1_chunk16_limit_bias_untied_bf16"] {
            let dir = Fixtures.directory("mamba2", name)
            let reference = try Fixtures.reference(dir)
            let (expected, _) = try Fixtures.logits(dir)
            let model = try ModelRegistry.load(directory: dir)
            let vocab = model.info.vocabSize
            var start = 0
            for n in pieces {
                try model.prefill(Array(reference.ids[start..<start + n]))
                start += n
                let last = start - 1
                #expect(relativeError(model.lastLogits, expected[last * vocab..<(last + 1) * vocab]) <= Self.tolerance,
                        "\(name): after \(start) tokens in pieces \(pieces)")
            }
        }
    }

    /// The two paths of the kernel on their own: a chunked scan over T steps from a non-zero state
    /// equals T recurrent steps, for chunk sizes that do and do not divide T (chunks of 128 over 300
    /// steps: the heads' preparation split over threads).
    @Test(arguments: [(1, 23), (3, 23), (4, 23), (7, 23), (32, 23), (128, 300)])
    func chunkedScanEqualsRecurrence(_ chunk: Int, _ t: Int) {
        let shape = SSD.Shape(heads: 6, headDim: 5, stateSize: 11, groups: 3)
        let e = shape.inner, gn = shape.groups * shape.stateSize, h = shape.heads
        var seed: UInt64 = 17
        /// `n` values in `range` from a fixed sequence (SplitMix64), in a buffer the test frees.
        var buffers: [UnsafeMutablePointer<Float>] = []
        defer { buffers.forEach { $0.deallocate() } }
        func random(_ n: Int, _ range: ClosedRange<Float>) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: n)
            buffers.append(p)
            for i in 0..<n {
                seed &+= 0x9E37_79B9_7F4A_7C15
                var z = seed
                z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9; z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB; z ^= z >> 31
                p[i] = range.lowerBound + (range.upperBound - range.lowerBound) * Float(z >> 40) / Float(1 << 24)
            }
            return p
        }
        let x = random(t * e, -1...1), b = random(t * gn, -1...1), c = random(t * gn, -1...1)
        let delta = random(t * h, 0.01...0.7), a = random(h, -3 ... -0.2), d = random(h, 0.5...1.5)
        let stepState = random(e * shape.stateSize, -0.5...0.5), stepY = random(t * e, 0...0)
        let chunkState = random(e * shape.stateSize, 0...0), chunkY = random(t * e, 0...0)
        chunkState.update(from: stepState, count: e * shape.stateSize)
        for i in 0..<t {
            SSD.step(shape, x: x + i * e, delta: delta + i * h, a: a, b: b + i * gn, c: c + i * gn, d: d,
                     state: stepState, into: stepY + i * e)
        }
        SSD.chunked(shape, steps: t, x: x, ldx: e, b: b, c: c, ldbc: gn, delta: delta, a: a, d: d,
                    state: chunkState, into: chunkY, ldy: e, scratch: SSD.Scratch(chunk: chunk, shape: shape))
        let yError = relativeError(UnsafeBufferPointer(start: chunkY, count: t * e), ArraySlice(UnsafeBufferPointer(start: stepY, count: t * e)))
        let stateCount = e * shape.stateSize
        let sError = relativeError(UnsafeBufferPointer(start: chunkState, count: stateCount),
                                   ArraySlice(UnsafeBufferPointer(start: stepState, count: stateCount)))
        #expect(yError <= 1e-5 && sError <= 1e-5, "y \(yError), state \(sError)")
    }

    @Test func inspectDescribesTheModel() throws {
        let model = try ModelRegistry.load(directory: Fixtures.directory("mamba2", "g2_chunk8_tied_f32"))
        #expect(model.info.architecture == "Mamba2ForCausalLM" && model.info.maxContext == Int.max)
        #expect(model.info.parameterCount == 66928)     // the fixture's tensors (the head tied)
        // 2 layers × (conv 3 × (128 + 2·2·16) + ssm 8 heads × 16 × 16) floats, at any context length.
        let fixed = 2 * (3 * 192 + 8 * 16 * 16) * 4
        #expect(model.stateBytes(forTokens: 0) == fixed && model.stateBytes(forTokens: 1_000_000) == fixed)
        let lines = Dictionary(describe(model), uniquingKeysWith: { a, _ in a })
        #expect(lines["mixer"]?.contains("8 heads × 16") == true && lines["mixer"]?.contains("2 B/C groups") == true)
        #expect(lines["prefill"] == "chunked SSD, chunks of 8 tokens")
        let limited = try ModelRegistry.load(directory: Fixtures.directory("mamba2", "g1_chunk16_limit_bias_untied_bf16"))
        #expect(Dictionary(describe(limited), uniquingKeysWith: { a, _ in a })["mixer"]?.contains("Δ clamped to [0.05, 0.6]") == true)
    }

    /// A snapshot taken after a prefill that ends inside a chunk, loaded into a fresh model,
    /// decodes as the model that took it.
    @Test func snapshotRoundTrip() throws {
        let dir = Fixtures.directory("mamba2", "g4_chunk5_state8_k3_f16")
        let reference = try Fixtures.reference(dir)
        let (expected, _) = try Fixtures.logits(dir)
        let a = try ModelRegistry.load(directory: dir)
        try a.prefill(Array(reference.ids[..<12]))
        let snapshot = a.saveState()
        let b = try ModelRegistry.load(directory: dir)
        try b.loadState(snapshot)
        let vocab = b.info.vocabSize
        for t in 12..<reference.ids.count {
            try b.decode(reference.ids[t])
            #expect(relativeError(b.lastLogits, expected[t * vocab..<(t + 1) * vocab]) <= Self.tolerance, "position \(t)")
        }
        // Another architecture's snapshot is refused.
        let mamba = try ModelRegistry.load(directory: Fixtures.directory("mamba", "k4_auto_tied_f32"))
        #expect(throws: (any Error).self) { try mamba.loadState(snapshot) }
    }

    /// The duality: each head's SSD matrix M = L∘(C·Bᵀ)·Δ, formed in double precision from what
    /// the scan saw, rebuilds the scan's output (y = M·x + D·x); and it is lower-triangular.
    @Test func ssdMatrixRebuildsTheScan() throws {
        let dir = Fixtures.directory("mamba2", "g2_chunk8_tied_f32")
        let reference = try Fixtures.reference(dir)
        let model = try ModelRegistry.load(directory: dir)
        let layers = try AttentionMaps.compute(model: model, tokens: Array(reference.ids[..<20]))
        #expect(layers.count == 2 && layers.allSatisfy { $0.kind == .ssd && $0.maps.count == 8 && $0.tokens == 20 })
        for layer in layers {
            #expect((layer.identityError ?? 1) <= 1e-5, "layer \(layer.layer): \(layer.identityError ?? -1)")
            for map in layer.maps {
                for i in 0..<20 {
                    #expect(map[(i * 20 + i + 1)..<(i * 20 + 20)].allSatisfy { $0 == 0 })
                    #expect(abs(map[(i * 20)...(i * 20 + i)].reduce(0, +) - 1) < 1e-4)
                }
            }
        }
        let trace = try Trace.run(model: model, prompt: [3, 9, 27])
        #expect(trace.steps.contains { $0.operation.contains("SSD step per head") })
    }

    /// `orochi attention`'s pictures of a model with only Mamba-2 layers: a heatmap per head and
    /// the reach plot (whose gnuplot script once had no series for them and failed).
    @Test func ssdPicturesAreDrawn() throws {
        let model = try ModelRegistry.load(directory: Fixtures.directory("mamba2", "g2_chunk8_tied_f32"))
        let layers = try AttentionMaps.compute(model: model, tokens: Array(0..<12))
        let dir = TemporaryDirectory()
        let written = try AttentionPlot.write(layers, labels: (0..<12).map { "t\($0)" }, title: "mamba2", into: dir.url, heads: [0, 7])
        for name in ["layer0_head0.png", "layer1_head7.svg", "layer0_head7.npy", "reach.png", "reach.tsv"] {
            #expect(written.contains(name) && FileManager.default.fileExists(atPath: dir.url.appendingPathComponent(name).path), "\(name)")
        }
        #expect(!written.contains("layer0_head1.png"))
    }

    /// The benchmark preset's path: random weights, no checkpoint; decode after prefill equals
    /// one longer prefill.
    @Test func randomWeightsRun() throws {
        let config = Mamba2Config(hidden_size: 64, num_hidden_layers: 2, vocab_size: 50, num_heads: 4, head_dim: 32,
                                  state_size: 32, n_groups: 2, chunk_size: 16)
        let a = try BlockModel(config: config, checkpoint: nil, configPath: "<preset>", randomSeed: 7)
        let b = try BlockModel(config: config, checkpoint: nil, configPath: "<preset>", randomSeed: 7)
        let tokens = (0..<40).map { $0 % 50 }
        try a.prefill(Array(tokens[..<39])); try a.decode(tokens[39])
        try b.prefill(tokens)
        #expect(a.lastLogits.allSatisfy { $0.isFinite })
        #expect(relativeError(a.lastLogits, ArraySlice(b.lastLogits)) <= 1e-5)
    }
}

/// Broken Mamba-2 checkpoints and configs fail with an error naming the key or tensor.
struct Mamba2BadInputTests {
    static func error(drop: Set<String> = [], replace: [String: (shape: [Int], values: [Float])] = [:],
                      config edit: @escaping (inout [String: Any]) -> Void = { _ in }) throws -> String? {
        MambaBadInputTests.loadError(try MambaBadInputTests.brokenCopy(family: "mamba2", of: "g2_chunk8_tied_f32", drop: drop,
                                                                       replace: replace, config: edit))
    }

    @Test(arguments: [
        ("num_heads", 6, "num_heads × head_dim (6 × 16 = 96) must equal expand × hidden_size (2 × 64 = 128)"),
        ("n_groups", 3, "'n_groups' 3 must divide 'num_heads' 8"),
        ("chunk_size", 0, "'chunk_size' must be positive, found 0"),
        ("chunk_size", 1 << 20, "'chunk_size' 1048576 is larger than 4096"),
        ("state_size", 0, "'state_size' must be positive, found 0"),
        ("head_dim", -16, "'head_dim' must be positive, found -16"),
        ("hidden_size", 1 << 62, "overflow"),
    ] as [(String, Int, String)])
    func badConfigValue(_ key: String, _ value: Int, _ expected: String) throws {
        let message = try Self.error { $0[key] = value }
        #expect(message?.contains(expected) == true, "\(key) = \(value): \(message ?? "loaded")")
    }

    @Test func badTimeStepLimit() throws {
        for (limit, expected) in [([0.5, 0.1], "0 ≤ min ≤ max"), ([-1, 1], "0 ≤ min ≤ max"), ([0.1], "must be [min, max]")] as [([Double], String)] {
            let message = try Self.error { $0["time_step_limit"] = limit }
            #expect(message?.contains(expected) == true, "\(limit): \(message ?? "loaded")")
        }
        let nan = try Self.error { $0["time_step_limit"] = [["__float__": "NaN"], 1.0] }
        #expect(nan?.contains("time_step_limit") == true, "\(nan ?? "loaded")")
        let gate = try Self.error { $0["norm_before_gate"] = true }
        #expect(gate?.contains("norm_before_gate") == true, "\(gate ?? "loaded")")
    }

    /// Python's json writes ∞ as a bare `Infinity` (transformers before 5, and hub configs): read as ∞.
    @Test func bareInfinityInConfig() throws {
        let source = Fixtures.directory("mamba2", "g2_chunk8_tied_f32")
        let dir = TemporaryDirectory()
        _ = dir.write("model.safetensors", try Data(contentsOf: source.appendingPathComponent("model.safetensors")))
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: source.appendingPathComponent("config.json"))) as! [String: Any]
        config["time_step_limit"] = [0.0, "@INF@"]
        let text = String(decoding: try JSONSerialization.data(withJSONObject: config), as: UTF8.self)
            .replacingOccurrences(of: "\"@INF@\"", with: "Infinity")
        #expect(text.contains("Infinity]") && !text.contains("__float__"))
        _ = dir.write("config.json", Data(text.utf8))
        let model = try ModelRegistry.load(directory: dir.url)
        #expect(model.info.architecture == "Mamba2ForCausalLM")
        // Elsewhere (tokenizer.json) a bare Infinity stays refused, as serde_json refuses it.
        #expect(throws: (any Error).self) { try StrictJSON.parse(Array(#"{"a": Infinity}"#.utf8)) }
    }

    @Test(arguments: ["in_proj.weight", "conv1d.weight", "conv1d.bias", "dt_bias", "A_log", "D", "norm.weight", "out_proj.weight"])
    func missingMixerTensor(_ tensor: String) throws {
        let name = "backbone.layers.1.mixer." + tensor
        let message = try Self.error(drop: [name])
        #expect(message?.contains("missing tensor '\(name)'") == true, "\(message ?? "loaded")")
    }

    @Test func tensorsThatDisagreeWithTheConfig() throws {
        let conv = try Self.error(replace: ["backbone.layers.0.mixer.conv1d.weight": ([192, 1, 3], [Float](repeating: 0.1, count: 576))])
        #expect(conv?.contains("conv_kernel (4)") == true && conv?.contains("[192, 1, 3]") == true, "\(conv ?? "loaded")")
        let heads = try Self.error(replace: ["backbone.layers.0.mixer.A_log": ([4], [0, 0, 0, 0])])
        #expect(heads?.contains("num_heads (8)") == true && heads?.contains("A_log") == true, "\(heads ?? "loaded")")
        let groups = try Self.error { $0["n_groups"] = 4 }                    // in_proj has rows for 2 groups
        #expect(groups?.contains("in_proj.weight") == true && groups?.contains("disagree") == true, "\(groups ?? "loaded")")
    }

    @Test(arguments: ["A_log", "dt_bias", "D", "norm.weight"])
    func nonFiniteParameter(_ tensor: String) throws {
        let name = "backbone.layers.0.mixer." + tensor
        let count = tensor == "norm.weight" ? 128 : 8
        for bad in [Float.nan, .infinity] {
            var values = [Float](repeating: 0.5, count: count)
            values[3] = bad
            let message = try Self.error(replace: [name: ([count], values)])
            #expect(message?.contains(name) == true && message?.contains("NaN or infinite") == true, "\(message ?? "loaded")")
        }
    }
}
