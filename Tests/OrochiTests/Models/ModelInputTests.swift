import Foundation
import Testing
@testable import Orochi

/// Bad model directories and bad input to a model: clear errors, never a crash.
struct ModelInputTests {
    let fixture = Fixtures.directory("llama", "mha_tied_f32")

    /// A copy of the fixture's config with some keys changed, and the given weights.
    func modelDirectory(config change: (inout [String: Any]) -> Void = { _ in },
                        weights: Data? = nil) throws -> TemporaryDirectory {
        let dir = TemporaryDirectory()
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: fixture.appendingPathComponent("config.json"))) as! [String: Any]
        change(&config)
        _ = dir.write("config.json", try JSONSerialization.data(withJSONObject: config))
        _ = dir.write("model.safetensors", try weights ?? Data(contentsOf: fixture.appendingPathComponent("model.safetensors")))
        return dir
    }

    func loadError(_ dir: URL, context: Int? = nil) -> String? {
        do { _ = try ModelRegistry.load(directory: dir, context: context); return nil } catch { return "\(error)" }
    }

    @Test func unknownModelType() throws {
        let dir = try modelDirectory { $0["model_type"] = "gpt9" }
        let message = try #require(loadError(dir.url))
        #expect(message.contains("unsupported model_type 'gpt9'"))
        #expect(message.contains("config.json"))
    }

    @Test func missingTensor() throws {
        let weights = SafetensorsWriter.file(tensors: [("model.embed_tokens.weight", [96, 64], [Float](repeating: 0, count: 96 * 64))])
        let dir = try modelDirectory(weights: weights)
        #expect(loadError(dir.url)?.contains("missing tensor 'model.layers.0.input_layernorm.weight'") == true)
    }

    @Test func wrongShape() throws {
        let weights = SafetensorsWriter.file(tensors: [("model.embed_tokens.weight", [64, 96], [Float](repeating: 0, count: 96 * 64))])
        let dir = try modelDirectory(weights: weights)
        let message = try #require(loadError(dir.url))
        #expect(message.contains("'model.embed_tokens.weight' has shape [64, 96], expected [96, 64]"))
    }

    @Test func missingAndMistypedConfigKeys() throws {
        let missing = try modelDirectory { $0.removeValue(forKey: "hidden_size") }
        #expect(loadError(missing.url)?.contains("missing key 'hidden_size'") == true)
        let mistyped = try modelDirectory { $0["num_hidden_layers"] = "two" }
        #expect(loadError(mistyped.url)?.contains("num_hidden_layers") == true)
        let badHeads = try modelDirectory { $0["num_key_value_heads"] = 3 }
        #expect(loadError(badHeads.url)?.contains("multiple of num_key_value_heads") == true)
        let badRope = try modelDirectory { $0["rope_parameters"] = ["rope_type": "yarn", "rope_theta": 10000.0] }
        #expect(loadError(badRope.url)?.contains("unsupported rope type 'yarn'") == true)
    }

    @Test func missingFiles() throws {
        let empty = TemporaryDirectory()
        #expect(loadError(empty.url)?.contains("no config.json") == true)
        #expect(loadError(empty.url.appendingPathComponent("nope"))?.contains("does not exist") == true)
        let noWeights = TemporaryDirectory()
        _ = noWeights.write("config.json", try Data(contentsOf: fixture.appendingPathComponent("config.json")))
        #expect(loadError(noWeights.url)?.contains("no model.safetensors") == true)
    }

    @Test func tokenOutsideVocabulary() throws {
        let model = try ModelRegistry.load(directory: fixture)
        #expect(throws: ModelError.tokenOutOfRange(token: 96, vocabSize: 96)) { try model.prefill([1, 96]) }
        #expect(throws: ModelError.tokenOutOfRange(token: -1, vocabSize: 96)) { try model.decode(-1) }
        #expect(model.position == 0)
    }

    @Test func promptLongerThanContext() throws {
        let model = try ModelRegistry.load(directory: fixture, context: 8)
        #expect(throws: ModelError.contextOverflow(requested: 9, capacity: 8)) { try model.prefill(Array(repeating: 1, count: 9)) }
        try model.prefill(Array(repeating: 1, count: 8))
        #expect(throws: ModelError.contextOverflow(requested: 9, capacity: 8)) { try model.decode(1) }
    }

    @Test func contextBeyondTheModelsMaximum() {
        #expect(loadError(fixture, context: 65)?.contains("exceeds max_position_embeddings 64") == true)
    }

    @Test func generationStopsWhenTheContextIsFull() throws {
        let model = try ModelRegistry.load(directory: fixture, context: 10)
        let generator = Generator(model: model, sampler: Sampler(settings: .init(temperature: 0), vocabSize: 96), stopTokens: [])
        let (ids, _) = try generator.generate(prompt: [1, 2, 3, 4], maxTokens: 50) { _ in true }
        #expect(ids.count == 6)   // 4 prompt tokens + 6 sampled fill the 10-token cache
    }
}

struct SamplerTests {
    func logits(_ values: [Float]) -> [Float] { values }

    @Test func greedyIsArgmax() {
        let sampler = Sampler(settings: .init(temperature: 0), vocabSize: 4)
        [0.1, 2.0, -1, 1.9].withUnsafeBufferPointer { #expect(sampler.sample($0) == 1) }
    }

    @Test func seedReproducesAndTopKRestricts() {
        let values: [Float] = (0..<50).map { Float($0 % 7) * 0.3 }
        func run(seed: UInt64, topK: Int) -> [Int] {
            let sampler = Sampler(settings: .init(temperature: 1, topK: topK, topP: 1, seed: seed), vocabSize: 50)
            return values.withUnsafeBufferPointer { buf in (0..<200).map { _ in sampler.sample(buf) } }
        }
        #expect(run(seed: 7, topK: 0) == run(seed: 7, topK: 0))
        #expect(run(seed: 7, topK: 0) != run(seed: 8, topK: 0))
        // The 3 largest logits are those of ids ≡ 6 (mod 7): 6, 13, 20, … tie; top-k keeps the lowest ids on ties.
        #expect(Set(run(seed: 1, topK: 3)).isSubset(of: [6, 13, 20]))
    }

    @Test func topPKeepsTheNucleus() {
        // Probabilities ≈ [0.64, 0.24, 0.09, 0.03]: top-p 0.7 keeps the first two.
        let values: [Float] = [3, 2, 1, 0]
        let sampler = Sampler(settings: .init(temperature: 1, topK: 0, topP: 0.7, seed: 3), vocabSize: 4)
        let drawn = values.withUnsafeBufferPointer { buf in Set((0..<300).map { _ in sampler.sample(buf) }) }
        #expect(drawn == [0, 1])
    }

    @Test func repetitionPenaltyDiscouragesRecentTokens() {
        let sampler = Sampler(settings: .init(temperature: 0, repetitionPenalty: 2), vocabSize: 3)
        [2.0, 1.5, 0].withUnsafeBufferPointer { #expect(sampler.sample($0, history: [0]) == 1) }
    }
}
