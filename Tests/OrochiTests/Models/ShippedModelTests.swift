import Foundation
import Testing
@testable import Orochi

/// The two models shipped in Models/: they load, generate reproducibly, and score held-out text
/// as transformers does, far below what the same shapes with random weights reach.
struct ShippedModelTests {
    static let names = ["orochi-ja-llama", "orochi-ja-mamba"]
    static let modelsRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Models")

    struct Reference: Decodable {
        struct Model: Decodable { let tokens: Int; let nll: Double; let perplexity: Double }
        let context: Int, stride: Int, characters: Int
        let models: [String: Model]
    }

    static func directory(_ name: String) -> URL { modelsRoot.appendingPathComponent(name) }

    func sample() throws -> (String, Reference) {
        let dir = Fixtures.root.appendingPathComponent("shipped")
        let text = try String(contentsOf: dir.appendingPathComponent("sample.txt"), encoding: .utf8)
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: dir.appendingPathComponent("reference.json")))
        return (text, reference)
    }

    func perplexity(_ model: any LanguageModel, _ tokenizer: any Tokenizer, _ text: String, _ reference: Reference) throws -> PerplexityResult {
        let tokens = [tokenizer.bosTokenId!] + tokenizer.encode(text, addSpecialTokens: false)
        return try Perplexity.evaluate(model: model, tokens: tokens, characters: text.unicodeScalars.count,
                                       context: reference.context, stride: reference.stride)
    }

    /// Agrees with transformers to 0.1 %, and is below 1,000 (a vocabulary of 8,000).
    @Test(arguments: names)
    func perplexityMatchesTransformers(_ name: String) throws {
        let (text, reference) = try sample()
        let expected = try #require(reference.models[name])
        let model = try ModelRegistry.load(directory: Self.directory(name), context: reference.context)
        let tokenizer = try loadTokenizer(modelDirectory: Self.directory(name))
        let result = try perplexity(model, tokenizer, text, reference)
        #expect(result.scoredTokens == expected.tokens - 1)
        #expect(abs(result.perplexity - expected.perplexity) / expected.perplexity < 1e-3,
                "\(name): \(result.perplexity) vs transformers \(expected.perplexity)")
        #expect(result.perplexity < 1000)
    }

    /// The same shapes with random weights stay near the vocabulary size, far above the bound.
    @Test(arguments: names)
    func randomWeightsCannotReachTheBound(_ name: String) throws {
        let (text, reference) = try sample()
        let dir = Self.directory(name)
        let configURL = dir.appendingPathComponent("config.json")
        let random: any LanguageModel = name.contains("mamba")
            ? try MambaModel(config: readJSONConfig(MambaConfig.self, from: configURL), checkpoint: nil, configPath: configURL.path, randomSeed: 1)
            : try LlamaModel(config: readJSONConfig(LlamaConfig.self, from: configURL), checkpoint: nil, configPath: configURL.path,
                             context: reference.context, randomSeed: 1)
        let result = try perplexity(random, try loadTokenizer(modelDirectory: dir), text, reference)
        #expect(result.perplexity > 2000, "\(name) with random weights: \(result.perplexity)")
    }

    @Test func bothModelsLoadWithMatchedSizes() throws {
        let models = try Self.names.map { try ModelRegistry.load(directory: Self.directory($0)) }
        #expect(models.map(\.info.architecture) == ["LlamaForCausalLM", "MambaForCausalLM"])
        let (a, b) = (Double(models[0].info.parameterCount), Double(models[1].info.parameterCount))
        #expect(abs(a - b) / max(a, b) <= 0.10, "parameter counts \(a) and \(b) differ by more than 10 %")
        #expect(models.allSatisfy { $0.info.vocabSize == 8000 })
    }

    @Test(arguments: names)
    func seededGenerationIsReproducible(_ name: String) throws {
        let dir = Self.directory(name)
        let tokenizer = try loadTokenizer(modelDirectory: dir)
        let prompt = tokenizer.encode("ファイルを開くには", addSpecialTokens: true)
        #expect(prompt.first == tokenizer.bosTokenId)
        func run(seed: UInt64) throws -> [Int] {
            let model = try ModelRegistry.load(directory: dir, context: 128)
            let sampler = Sampler(settings: .init(temperature: 0.8, topK: 40, topP: 0.95, seed: seed), vocabSize: model.info.vocabSize)
            return try Generator(model: model, sampler: sampler, stopTokens: []).generate(prompt: prompt, maxTokens: 24) { _ in true }.0
        }
        let first = try run(seed: 7)
        #expect(first.count == 24)
        #expect(try run(seed: 7) == first)
        #expect(try run(seed: 8) != first)
        #expect(!tokenizer.decode(first).isEmpty)
    }
}
