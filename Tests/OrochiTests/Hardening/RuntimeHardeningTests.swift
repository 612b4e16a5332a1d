import Foundation
import Testing
@testable import Orochi

/// A copy of a fixture whose tensor `poisoned` holds NaN at a few elements (issue 11).
func poisonedCopy(_ family: String, _ fixture: String, tensor poisoned: String, value: Float = .nan) throws -> TemporaryDirectory {
    let source = Fixtures.directory(family, fixture)
    let file = try SafetensorsFile(path: source.appendingPathComponent("model.safetensors").path)
    var tensors: [(name: String, shape: [Int], values: [Float])] = []
    for name in file.entries.keys.sorted() {
        let t = try file.tensor(name)
        var values = Array(UnsafeBufferPointer(start: t.data, count: t.count))
        if name == poisoned { for i in [0, 5, 9] where i < values.count { values[i] = value } }
        tensors.append((name, t.shape, values))
    }
    let dir = TemporaryDirectory()
    _ = dir.write("model.safetensors", SafetensorsWriter.file(tensors: tensors))
    _ = dir.write("config.json", try Data(contentsOf: source.appendingPathComponent("config.json")))
    return dir
}

struct RuntimeHardeningTests {
    /// Top-k off and a top-p so small that no token reaches llama2.c's cut-off: the most probable
    /// token is kept, never candidates[-1].
    @Test func samplerAlwaysReturnsAValidId() {
        let vocab = 50
        let values: [Float] = (0..<vocab).map { Float($0 % 7) }
        for (t, p) in [(Float(1e30), Float(0.0001)), (1e30, 0.5), (1, 1e-7), (Float.leastNonzeroMagnitude, 0.9), (Float.infinity, 0.3)] {
            let sampler = Sampler(settings: .init(temperature: t, topK: 0, topP: p, seed: 1), vocabSize: vocab)
            let ids = values.withUnsafeBufferPointer { buf in (0..<50).map { _ in sampler.sample(buf) } }
            #expect(ids.allSatisfy { $0 >= 0 && $0 < vocab }, "T \(t) top-p \(p): \(ids)")
        }
        // A clear favourite is what an extreme cut keeps.
        let peaked: [Float] = [0, 0, 9, 0]
        let sampler = Sampler(settings: .init(temperature: 1, topK: 0, topP: 1e-6, seed: 2), vocabSize: 4)
        peaked.withUnsafeBufferPointer { buf in #expect((0..<20).allSatisfy { _ in sampler.sample(buf) == 2 }) }
    }

    /// A .npy shape whose byte count overflows to the data's size is refused, not allocated.
    @Test func npyShapeOverflowIsRefused() {
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        let data = Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count & 0xff), UInt8(header.utf8.count >> 8)] + Array(header.utf8))
        #expect(throws: NPYError.self) { _ = try NPY.decodeFloat32(data) }
    }

    @Test func samplerSettingsAreRangeChecked() {
        let bad: [Sampler.Settings] = [
            .init(temperature: -1), .init(temperature: .nan), .init(temperature: .infinity),
            .init(topP: 0), .init(topP: 1.5), .init(topP: .nan), .init(topK: -1),
            .init(repetitionPenalty: 0), .init(repetitionPenalty: -1), .init(repetitionPenalty: .nan), .init(repetitionPenalty: .infinity),
        ]
        for s in bad { #expect(throws: SamplerError.self, "\(s)") { try s.validate() } }
        #expect(throws: Never.self) { try Sampler.Settings().validate() }
    }

    /// --max-tokens Int.max on an unbounded (Mamba) context: nothing is reserved from the number.
    @Test func hugeTokenBudgetReservesNothing() throws {
        let model = try ModelRegistry.load(directory: Fixtures.directory("mamba", "k4_auto_tied_f32"))
        let generator = Generator(model: model, sampler: Sampler(settings: .init(temperature: 0), vocabSize: 96), stopTokens: [])
        for budget in [Int.max, 1_000_000_000_000] {
            var n = 0
            let (ids, _) = try generator.generate(prompt: [1, 2, 3], maxTokens: budget) { _ in n += 1; return n < 5 }
            #expect(ids.count == 5)
        }
    }

    @Test(arguments: [("llama", "mha_tied_f32", "model.layers.1.mlp.up_proj.weight"),
                      ("mamba", "k4_auto_tied_f32", "backbone.layers.1.mixer.out_proj.weight"),
                      // Jamba's weights were not scanned: its NaN was blamed on overflowing activations.
                      ("jamba", "attn2_dense_tied_f32", "model.layers.1.feed_forward.up_proj.weight"),
                      ("jamba", "attn2_dense_tied_f32", "model.layers.1.self_attn.v_proj.weight")])
    func nonFiniteWeightsStopGenerationAndForward(_ family: String, _ fixture: String, _ tensor: String) throws {
        let dir = try poisonedCopy(family, fixture, tensor: tensor)
        let model = try ModelRegistry.load(directory: dir.url)
        #expect(try nonFiniteWeights(model).map(\.tensor) == [tensor])
        #expect(try nonFiniteWeights(model).first?.count == 3)
        let generator = Generator(model: model, sampler: Sampler(settings: .init(temperature: 0.8), vocabSize: 96), stopTokens: [])
        do {
            _ = try generator.generate(prompt: [1, 2, 3], maxTokens: 5) { _ in true }
            Issue.record("generated from NaN logits")
        } catch let ModelError.nonFiniteLogits(position, detail) {
            #expect(position == 2)
            #expect(detail.contains("layer 1") && detail.contains(tensor), "\(detail)")
        }
        // Perplexity: the first window's logits are checked.
        #expect(throws: ModelError.self) {
            _ = try Perplexity.evaluate(model: model, tokens: [1, 2, 3, 4], characters: 4, context: 4, stride: 2)
        }
    }

    /// A non-finite value in a vector (norm, bias, filter, SSM parameter) of any architecture is
    /// refused at load, naming the tensor: A_log = +∞ used to generate, its state zeroed each step.
    @Test(arguments: [("mamba", "k4_auto_tied_f32", "backbone.layers.1.mixer.A_log", Float.infinity),
                      ("mamba", "k4_auto_tied_f32", "backbone.layers.0.mixer.A_log", -Float.infinity),
                      ("mamba", "k4_auto_tied_f32", "backbone.layers.0.mixer.D", Float.nan),
                      ("mamba", "k4_auto_tied_f32", "backbone.layers.1.mixer.dt_proj.bias", Float.infinity),
                      ("mamba", "k4_auto_tied_f32", "backbone.layers.0.mixer.conv1d.weight", Float.nan),
                      ("jamba", "attn2_dense_tied_f32", "model.layers.0.mamba.A_log", Float.infinity),
                      ("jamba", "attn2_dense_tied_f32", "model.layers.2.mamba.dt_layernorm.weight", Float.nan),
                      ("jamba", "attn2_dense_tied_f32", "model.final_layernorm.weight", Float.infinity),
                      ("llama", "mha_tied_f32", "model.layers.0.input_layernorm.weight", Float.nan)])
    func nonFiniteVectorsAreRefusedAtLoad(_ family: String, _ fixture: String, _ tensor: String, _ value: Float) throws {
        let dir = try poisonedCopy(family, fixture, tensor: tensor, value: value)
        do {
            _ = try ModelRegistry.load(directory: dir.url)
            Issue.record("\(tensor) = \(value) loaded")
        } catch let error as LoadError {
            #expect(error == .nonFinite(tensor: tensor, count: 3) || "\(error)".contains(tensor), "\(error)")
            #expect("\(error)".contains("NaN or infinite"), "\(error)")
        }
    }

    /// Sampling settings at their limits: a temperature so small that logits/T overflowed gave a
    /// NaN distribution and a fixed garbage token; a repeat penalty of 1e-40 made a recent
    /// positive logit +∞. The limits now act as limits: greedy, and the recent token preferred.
    @Test func samplerLimitsActAsLimits() {
        let vocab = 40
        var rng = SplitMix64(seed: 3)
        for round in 0..<20 {
            let logits: [Float] = (0..<vocab).map { _ in (rng.nextUnitFloat() * 2 - 1) * 30 }
            let best = logits.indices.max { logits[$0] < logits[$1] }!
            for t: Float in [1e-38, 1e-30, 1e-20, Float.leastNormalMagnitude] {
                let sampler = Sampler(settings: .init(temperature: t, topK: 0, topP: 1, seed: UInt64(round)), vocabSize: vocab)
                let ids = logits.withUnsafeBufferPointer { buf in (0..<10).map { _ in sampler.sample(buf) } }
                #expect(ids.allSatisfy { $0 == best }, "T \(t): \(ids), greedy \(best)")
                let topK = Sampler(settings: .init(temperature: t, topK: 5, topP: 0.9, seed: 1), vocabSize: vocab)
                #expect(logits.withUnsafeBufferPointer { topK.sample($0) } == best)
            }
            // A penalty of 1e-40 on the recent tokens: the likeliest recent token with a positive logit wins.
            let recent = [5, 17, 33]
            let penalised = Sampler(settings: .init(temperature: 0.5, topK: 0, topP: 1, repetitionPenalty: 1e-40, seed: 2), vocabSize: vocab)
            let pick = logits.withUnsafeBufferPointer { penalised.sample($0, history: recent) }
            let positive = recent.filter { logits[$0] > 0 }
            if positive.isEmpty { #expect(pick >= 0 && pick < vocab) }
            else { #expect(positive.contains(pick), "penalty 1e-40: \(pick), recent \(recent)") }
        }
    }
}
