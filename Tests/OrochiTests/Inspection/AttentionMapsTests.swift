import Foundation
import Testing
@testable import Orochi

/// The matrices `orochi attention` draws: attention weights, and Mamba's hidden attention, whose
/// product with the scan's inputs must give back the scan's outputs.
struct AttentionMapsTests {
    static let prompt = [3, 17, 42, 5, 60, 8, 11, 29, 1, 33, 7, 7, 19, 50, 4, 28, 61, 13, 6, 40]

    static func maps(_ family: String, _ name: String, tokens: [Int] = prompt) throws -> [LayerMap] {
        let model = try ModelRegistry.load(directory: Fixtures.directory(family, name))
        return try AttentionMaps.compute(model: model, tokens: tokens.map { $0 % model.info.vocabSize })
    }

    /// Hidden attention reproduces the scan: y_t = (Σ_s α_{t,s} u_s + D u_t)·SiLU(z_t), to 1e-4
    /// relative, on every Mamba layer of Mamba and Jamba fixtures (N = 16 and N = 8 kernels, f32,
    /// f16 and bf16 weights, Jamba's norms).
    @Test(arguments: [("mamba", "k4_auto_tied_f32"), ("mamba", "k3_noconvbias_state8_f32"), ("mamba", "k3_rank6_tied_f16"),
                      ("mamba", "k4_bias_noconvbias_untied_bf16"), ("jamba", "attn2_dense_tied_f32"),
                      ("jamba", "attn4_dense_untied_bf16")])
    func hiddenAttentionReproducesTheScan(_ fixture: (String, String)) throws {
        let layers = try Self.maps(fixture.0, fixture.1)
        let ssm = layers.filter { $0.kind == .ssm }
        #expect(!ssm.isEmpty)
        for l in ssm {
            let error = try #require(l.identityError)
            #expect(error < 1e-4, "\(fixture) layer \(l.layer): \(error)")
        }
        #expect(Probe.active == nil)
    }

    /// Every matrix is causal and row-stochastic; attention has one per head, SSM layers one.
    @Test(arguments: [("llama", "gqa_linear_f32"), ("llama", "mistral_window_f32"), ("mamba", "k4_auto_tied_f32"),
                      ("jamba", "attn2_moe4top2_tied_f16")])
    func matricesAreCausalAndRowStochastic(_ fixture: (String, String)) throws {
        let model = try ModelRegistry.load(directory: Fixtures.directory(fixture.0, fixture.1))
        let layers = try AttentionMaps.compute(model: model, tokens: Self.prompt.map { $0 % model.info.vocabSize })
        #expect(layers.map(\.layer) == Array(0..<model.info.layerCount))
        let t = Self.prompt.count
        for l in layers {
            #expect(l.tokens == t)
            for m in l.maps {
                for i in 0..<t {
                    let row = m[(i * t)..<(i * t + t)]
                    #expect(abs(row.reduce(0, +) - 1) < 1e-4, "\(fixture) layer \(l.layer) row \(i)")
                    #expect(row.dropFirst(i + 1).allSatisfy { $0 == 0 }, "\(fixture) layer \(l.layer) row \(i) sees the future")
                    #expect(row.allSatisfy { $0 >= 0 })
                }
            }
            #expect(l.reach.allSatisfy { $0 >= 0 && $0 < Double(t) })
        }
    }

    /// Jamba's layers get the picture of their kind; Mistral's window hides what it cannot see.
    @Test func kindsAndWindows() throws {
        let jamba = try Self.maps("jamba", "attn4_dense_untied_bf16")
        let model = try ModelRegistry.load(directory: Fixtures.directory("jamba", "attn4_dense_untied_bf16"))
        let config = try readJSONConfig(JambaConfig.self, from: Fixtures.directory("jamba", "attn4_dense_untied_bf16").appendingPathComponent("config.json"))
        #expect(model.info.layerCount == config.num_hidden_layers)
        for l in jamba { #expect((l.kind == .attention) == config.isAttention(l.layer)) }
        let mistral = try ModelRegistry.load(directory: Fixtures.directory("llama", "mistral_window_f32"))
        let window = try #require(try readJSONConfig(LlamaConfig.self, from: Fixtures.directory("llama", "mistral_window_f32").appendingPathComponent("config.json")).window)
        let t = Self.prompt.count
        try #require(window < t)
        for l in try AttentionMaps.compute(model: mistral, tokens: Self.prompt) {
            for m in l.maps { #expect(m[(t - 1) * t + (t - 1 - window)] == 0 && m[(t - 1) * t + (t - window)] > 0) }
        }
    }

    /// Capturing leaves the model's own sequence as it was.
    @Test func theModelsSequenceIsKept() throws {
        let model = try ModelRegistry.load(directory: Fixtures.directory("llama", "gqa_linear_f32"))
        try model.prefill([1, 2, 3])
        let logits = Array(model.lastLogits)
        _ = try AttentionMaps.compute(model: model, tokens: [5, 6, 7, 8])
        #expect(model.position == 3 && Array(model.lastLogits) == logits)
        #expect(throws: ModelError.self) { try AttentionMaps.compute(model: model, tokens: []) }
    }
}
