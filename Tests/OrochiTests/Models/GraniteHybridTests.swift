import Foundation
import Testing
@testable import Orochi

/// Granite-4.0-H-specific checks; the parity of every fixture (logits at every position, prefill
/// then decode, greedy text against transformers) is in ParityTests.
struct GraniteHybridTests {
    static let cases = ["nope_moe_tied_f32", "rope_dense_untied_bf16"]
    static let tolerance = ParityTests.tolerance

    @Test func inspectDescribesTheHybrid() throws {
        let model = try ModelRegistry.load(directory: Fixtures.directory("granitehybrid", "nope_moe_tied_f32"))
        #expect(model.info.architecture == "GraniteMoeHybridForCausalLM" && model.info.maxContext == 128)
        let lines = Dictionary(describe(model), uniquingKeysWith: { a, _ in a })
        #expect(lines["layer pattern"]?.hasPrefix("MAMM") == true, "\(lines["layer pattern"] ?? "")")
        #expect(lines["feed-forward"] == "4 experts of 48, top-2, + shared SwiGLU 80")
        #expect(lines["multipliers"] == "embedding × 12.0, residual × 0.22, logits ÷ 6.0")
        // Three Mamba-2 layers: conv 3 × (128 + 2·16) and state 8 heads × 16 × 16 floats each; one
        // attention layer: 2 KV heads × 16 × K and V floats per token.
        let fixed = 3 * (3 * 160 + 8 * 16 * 16) * 4
        #expect(model.stateBytes(forTokens: 0) == fixed)
        #expect(model.stateBytes(forTokens: 10) == fixed + 10 * 2 * 2 * 16 * 4)
        #expect(model.info.parameterCount == 313192)          // transformers' count for this fixture
    }

    /// Prefill in pieces (across the Mamba-2 chunks of 8 and the attention cache) equals one prefill;
    /// a snapshot restores caches and states together.
    @Test(arguments: cases)
    func piecesAndSnapshots(_ name: String) throws {
        let dir = Fixtures.directory("granitehybrid", name)
        let reference = try Fixtures.reference(dir)
        let (expected, _) = try Fixtures.logits(dir)
        let model = try ModelRegistry.load(directory: dir)
        let vocab = model.info.vocabSize
        var start = 0
        for n in [3, 11, 9] {
            try model.prefill(Array(reference.ids[start..<start + n]))
            start += n
            #expect(relativeError(model.lastLogits, expected[(start - 1) * vocab..<start * vocab]) <= Self.tolerance, "\(name) after \(start)")
        }
        let snapshot = model.saveState()
        let fresh = try ModelRegistry.load(directory: dir)
        try fresh.loadState(snapshot)
        for t in start..<reference.ids.count {
            try fresh.decode(reference.ids[t])
            #expect(relativeError(fresh.lastLogits, expected[t * vocab..<(t + 1) * vocab]) <= Self.tolerance, "\(name) decode at \(t)")
        }
    }

    /// The same models as llama.cpp's convert_hf_to_gguf.py writes them (`granitehybrid`: q and k
    /// permuted, gate and up split, A as −exp(A_log); Scripts/fixtures/granite_gguf.py) compute
    /// transformers' logits at every position, and decode after a prefill.
    @Test(arguments: cases)
    func ggufFromConvertHfToGguf(_ name: String) throws {
        let dir = Fixtures.directory("granitehybrid", name)
        let reference = try Fixtures.reference(dir)
        let (expected, _) = try Fixtures.logits(dir)
        let model = try ModelRegistry.load(directory: Fixtures.directory("granitehybrid", name + ".gguf"))
        #expect(model.info.architecture == "GraniteMoeHybridForCausalLM")
        let vocab = model.info.vocabSize, t = reference.ids.count
        var logits = [Float](repeating: .nan, count: t * vocab)
        try logits.withUnsafeMutableBufferPointer { try model.prefill(reference.ids, allLogits: $0.baseAddress!) }
        for i in 0..<t {
            let error = logits.withUnsafeBufferPointer { relativeError(UnsafeBufferPointer(rebasing: $0[i * vocab..<(i + 1) * vocab]), expected[i * vocab..<(i + 1) * vocab]) }
            #expect(error <= Self.tolerance, "\(name).gguf position \(i): \(error)")
        }
        model.reset()
        try model.prefill(Array(reference.ids[..<20]))
        for i in 20..<t {
            try model.decode(reference.ids[i])
            #expect(relativeError(model.lastLogits, expected[i * vocab..<(i + 1) * vocab]) <= Self.tolerance, "\(name).gguf decode at \(i)")
        }
    }

    /// `orochi trace` walks a token through both kinds of layer, the experts and the shared MLP;
    /// `orochi attention` draws the attention heads and each Mamba-2 head's SSD matrix.
    @Test func traceAndMaps() throws {
        let model = try ModelRegistry.load(directory: Fixtures.directory("granitehybrid", "nope_moe_tied_f32"))
        let trace = try Trace.run(model: model, prompt: [3, 9, 27])
        #expect(trace.steps.contains { $0.operation.contains("SSD step") } && trace.steps.contains { $0.operation.contains("shared SwiGLU") })
        let layers = try AttentionMaps.compute(model: model, tokens: [3, 9, 27, 81, 5, 40, 41, 42, 43, 12])
        #expect(layers.map(\.kind) == [.ssd, .attention, .ssd, .ssd])
        #expect(layers.filter { $0.kind == .ssd }.allSatisfy { ($0.identityError ?? 1) <= 1e-5 })
        #expect(layers[1].maps.count == 4)
    }

    static func error(_ edit: @escaping (inout [String: Any]) -> Void) throws -> String? {
        MambaBadInputTests.loadError(try MambaBadInputTests.brokenCopy(family: "granitehybrid", of: "nope_moe_tied_f32", config: edit))
    }

    @Test(arguments: [
        ("layer_types", ["mamba", "attention"] as Any, "'layer_types' has 2 entries for 4 layers"),
        ("layer_types", ["mamba", "attention", "mamba", "moe"] as Any, "'layer_types' entry 'moe' is not supported"),
        ("position_embedding_type", "alibi" as Any, "'position_embedding_type' 'alibi' is not supported"),
        ("num_experts_per_tok", 5 as Any, "'num_experts_per_tok' 5 must be in 1…4"),
        ("mamba_n_heads", 6 as Any, "mamba_n_heads × mamba_d_head (6 × 16 = 96) must equal mamba_expand × hidden_size"),
        ("mamba_n_groups", 3 as Any, "'mamba_n_groups' 3 must divide 'mamba_n_heads' 8"),
        ("mamba_chunk_size", 0 as Any, "'mamba_chunk_size' must be positive"),
        ("logits_scaling", 0 as Any, "'logits_scaling' must be a finite number > 0"),
        ("mamba_d_head", "half" as Any, "mamba_d_head"),
    ] as [(String, Any, String)])
    func badConfig(_ key: String, _ value: Any, _ expected: String) throws {
        let message = try Self.error { $0[key] = value }
        #expect(message?.contains(expected) == true, "\(key): \(message ?? "loaded")")
    }

    @Test func expertsThatDisagreeWithTheConfigAreNamed() throws {
        let message = try Self.error { $0["num_local_experts"] = 3; $0["num_experts_per_tok"] = 2 }
        #expect(message?.contains("block_sparse_moe") == true && message?.contains("[4,") == true, "\(message ?? "loaded")")
    }
}
