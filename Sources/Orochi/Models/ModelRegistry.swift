import Foundation

/// Chooses the architecture from config.json's `model_type` and loads it. The CLI and the runtime
/// call only this, so they never know which architecture runs.
public enum ModelRegistry {
    public typealias Loader = (_ directory: URL, _ options: LoadOptions) throws -> any LanguageModel

    /// One line per architecture: its config.json's model types and its config type.
    static let architectures: [(types: [String], config: any Architecture.Type)] = [
        (["llama", "mistral", "qwen2"], LlamaConfig.self),
        (["mamba"], MambaConfig.self),
        (["mamba2"], Mamba2Config.self),
        (["jamba"], JambaConfig.self),
        (["qwen3"], Qwen3Config.self),
        (["gpt2"], GPT2Config.self),
        (["granitemoehybrid"], GraniteHybridConfig.self),
    ]

    static let loaders: [(types: [String], load: Loader)] = architectures.map { entry in
        (entry.types, { try BlockModel.load(entry.config, directory: $0, options: $1) })
    }

    public static var supportedTypes: [String] { loaders.flatMap(\.types) }

    /// Loads the model in `directory` with a cache for `context` tokens (nil: the model's default).
    public static func load(directory: URL, context: Int? = nil) throws -> any LanguageModel {
        try load(directory: directory, options: LoadOptions(context: context))
    }

    /// Loads with explicit options: context, weight storage (as stored or f32) and KV cache type.
    /// `directory` may also be a GGUF file.
    public static func load(directory: URL, options: LoadOptions) throws -> any LanguageModel {
        if GGUFFile.isGGUF(directory.path) { return try GGUFModels.load(path: directory.path, options: options) }
        let configURL = directory.appendingPathComponent("config.json")
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory) else {
            throw LoadError.missingFile(path: directory.path, detail: "model directory does not exist")
        }
        guard isDirectory.boolValue else {
            throw LoadError.missingFile(path: directory.path, detail: "neither a model directory nor a GGUF file (it does not start with 'GGUF')")
        }
        guard FileManager.default.fileExists(atPath: configURL.path) else {
            throw LoadError.missingFile(path: configURL.path, detail: "no config.json in the model directory")
        }
        let header = try readJSONConfig(ConfigHeader.self, from: configURL)
        guard let type = header.model_type else {
            throw LoadError.badConfig(path: configURL.path, detail: "missing key 'model_type'")
        }
        guard let entry = loaders.first(where: { $0.types.contains(type) }) else {
            throw LoadError.unsupportedModelType(path: configURL.path, modelType: type)
        }
        return try entry.load(directory, options)
    }

    /// End-of-sequence ids: generation_config.json first, then config.json.
    public static func eosTokenIds(directory: URL) -> [Int] {
        if GGUFFile.isGGUF(directory.path) {
            guard let file = try? GGUFFile.open(directory.path) else { return [] }
            let ids = ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"].compactMap { try? file.integer($0) }
            return Array(Set(ids)).sorted()
        }
        let gen = directory.appendingPathComponent("generation_config.json")
        if let g = try? readJSONConfig(GenerationConfig.self, from: gen), let ids = g.eos_token_id?.ids, !ids.isEmpty {
            return ids
        }
        let cfg = directory.appendingPathComponent("config.json")
        return (try? readJSONConfig(ConfigHeader.self, from: cfg))?.eos_token_id?.ids ?? []
    }
}
