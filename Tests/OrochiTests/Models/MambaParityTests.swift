import Foundation
import Testing
@testable import Orochi

/// Mamba-specific checks; the parity of every fixture is in ParityTests.
struct MambaParityTests {
    static let cases = ["k4_auto_tied_f32", "k2_rank5_bias_untied_f32", "k3_noconvbias_state8_f32",
                        "k3_rank6_tied_f16", "k4_bias_noconvbias_untied_bf16"]
    static let tolerance = ParityTests.tolerance

    /// Chunks shorter than the conv kernel carry the conv state across prefill calls; decode from
    /// the start equals one prefill too.
    @Test(arguments: [[1, 13], [2, 1, 11], [7, 7], [1, 1, 1, 1, 10]])
    func chunkedPrefillEqualsOnePrefill(_ chunks: [Int]) throws {
        let dir = Fixtures.directory("mamba", "k4_auto_tied_f32")
        let reference = try Fixtures.reference(dir)
        let (expected, _) = try Fixtures.logits(dir)
        let model = try ModelRegistry.load(directory: dir)
        let vocab = model.info.vocabSize
        var start = 0
        for n in chunks {
            try model.prefill(Array(reference.ids[start..<start + n]))
            start += n
            let last = start - 1
            #expect(relativeError(model.lastLogits, expected[last * vocab..<(last + 1) * vocab]) <= Self.tolerance,
                    "after \(start) tokens")
        }
    }

    @Test func resetForgetsTheState() throws {
        let dir = Fixtures.directory("mamba", "k2_rank5_bias_untied_f32")
        let reference = try Fixtures.reference(dir)
        let (expected, _) = try Fixtures.logits(dir)
        let model = try ModelRegistry.load(directory: dir)
        try model.prefill([5, 6, 7, 8, 9])
        model.reset()
        try model.prefill(reference.ids)
        let last = reference.ids.count - 1, vocab = model.info.vocabSize
        #expect(relativeError(model.lastLogits, expected[last * vocab..<(last + 1) * vocab]) <= Self.tolerance)
    }

    @Test func inspectDescribesTheModel() throws {
        let model = try ModelRegistry.load(directory: Fixtures.directory("mamba", "k4_auto_tied_f32"))
        #expect(model.info.architecture == "MambaForCausalLM")
        #expect(model.info.parameterCount == 23008)     // transformers' count for this fixture
        #expect(model.info.maxContext == Int.max)
        #expect(model.contextCapacity == Int.max)
        // 2 layers × (conv 3 × 64 + ssm 64 × 16) floats, at any context length.
        let fixed = 2 * (3 * 64 + 64 * 16) * 4
        #expect(model.stateBytes(forTokens: 0) == fixed)
        #expect(model.stateBytes(forTokens: 1_000_000) == fixed)
        let lines = Dictionary(describe(model), uniquingKeysWith: { a, _ in a })
        #expect(lines["kv cache per token"] == nil)
        #expect(lines["state (fixed)"]?.hasPrefix("\(fixed) bytes") == true)
        #expect(lines["maximum context"] == "unbounded (recurrent state)")
        #expect(lines["checkpoint dtypes"] == "F32 ×22")
    }

    @Test func configDefaultsAndRankAuto() throws {
        let json = #"{"model_type": "mamba", "hidden_size": 40, "num_hidden_layers": 2, "vocab_size": 10, "time_step_rank": "auto"}"#
        let config = try JSONDecoder().decode(MambaConfig.self, from: Data(json.utf8))
        #expect(config.dtRank == 3 && config.innerSize == 80 && config.state_size == 16 && config.conv_kernel == 4)
        #expect(config.use_conv_bias && !config.use_bias && config.tie_word_embeddings)
        let explicit = MambaConfig(hidden_size: 768, num_hidden_layers: 24, vocab_size: 32000, state_size: 16, expand: 2, conv_kernel: 4)
        #expect(explicit.dtRank == 48 && explicit.innerSize == 1536)
    }

    /// The benchmark preset's path: random weights, no checkpoint.
    @Test func randomWeightsRunAndAreSeeded() throws {
        let config = MambaConfig(hidden_size: 64, num_hidden_layers: 2, vocab_size: 50, state_size: 16, expand: 2, conv_kernel: 4)
        let a = try BlockModel(config: config, checkpoint: nil, configPath: "<preset>", randomSeed: 7)
        let b = try BlockModel(config: config, checkpoint: nil, configPath: "<preset>", randomSeed: 7)
        let c = try BlockModel(config: config, checkpoint: nil, configPath: "<preset>", randomSeed: 8)
        #expect(a.info.fingerprint == b.info.fingerprint && a.info.fingerprint != c.info.fingerprint)
        try a.prefill([1, 2, 3, 4]); try a.decode(5)
        try b.prefill([1, 2, 3, 4, 5])
        let finite = a.lastLogits.allSatisfy { $0.isFinite }
        #expect(finite)
        #expect(relativeError(a.lastLogits, ArraySlice(b.lastLogits)) <= 1e-5)
    }
}

/// Benchmark presets build both architectures in code, without a checkpoint.
struct PresetConfigTests {
    @Test func llamaConfigInCode() throws {
        let config = LlamaConfig(hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2, num_attention_heads: 4,
                                 num_key_value_heads: 2, vocab_size: 50)
        let model = try BlockModel(config: config, checkpoint: nil, configPath: "<preset>", context: 32, randomSeed: 3)
        try model.prefill([1, 2, 3])
        #expect(model.info.architecture == "LlamaForCausalLM" && model.position == 3)
    }
}
