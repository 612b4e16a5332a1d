import Foundation
import Testing
@testable import Orochi

/// Broken Mamba checkpoints fail with an error naming what is wrong, never a crash.
struct MambaBadInputTests {
    static let fixture = "k4_auto_tied_f32"

    /// A copy of the F32 fixture with tensors dropped or replaced and config keys changed.
    static func brokenCopy(family: String = "mamba", of fixture: String = MambaBadInputTests.fixture, drop: Set<String> = [], replace: [String: (shape: [Int], values: [Float])] = [:],
                           config edit: (inout [String: Any]) -> Void = { _ in }) throws -> TemporaryDirectory {
        let source = Fixtures.directory(family, fixture)
        let file = try SafetensorsFile(path: source.appendingPathComponent("model.safetensors").path)
        var tensors: [(name: String, shape: [Int], values: [Float])] = []
        for name in file.entries.keys.sorted() where !drop.contains(name) {
            if let r = replace[name] { tensors.append((name, r.shape, r.values)); continue }
            let t = try file.tensor(name)
            tensors.append((name, t.shape, Array(UnsafeBufferPointer(start: t.data, count: t.count))))
        }
        let dir = TemporaryDirectory()
        _ = dir.write("model.safetensors", SafetensorsWriter.file(tensors: tensors))
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: source.appendingPathComponent("config.json"))) as! [String: Any]
        edit(&config)
        _ = dir.write("config.json", try JSONSerialization.data(withJSONObject: config))
        return dir
    }

    static func loadError(_ dir: TemporaryDirectory) -> String? {
        do { _ = try ModelRegistry.load(directory: dir.url); return nil } catch { return "\(error)" }
    }

    @Test(arguments: ["in_proj.weight", "conv1d.weight", "conv1d.bias", "x_proj.weight", "dt_proj.weight",
                      "dt_proj.bias", "A_log", "D", "out_proj.weight"])
    func missingMixerTensor(_ tensor: String) throws {
        let name = "backbone.layers.1.mixer." + tensor
        let message = Self.loadError(try Self.brokenCopy(drop: [name]))
        #expect(message?.contains("missing tensor '\(name)'") == true, "\(message ?? "loaded")")
    }

    @Test func convKernelDisagreesWithConfig() throws {
        // The file's filters have kernel 4; the config claims 3.
        let message = Self.loadError(try Self.brokenCopy(config: { $0["conv_kernel"] = 3 }))
        #expect(message?.contains("conv_kernel = 3") == true, "\(message ?? "loaded")")
        #expect(message?.contains("conv1d.weight") == true)
        // And a filter of kernel 2 in a kernel-4 model.
        let name = "backbone.layers.0.mixer.conv1d.weight"
        let short = Self.loadError(try Self.brokenCopy(replace: [name: ([64, 1, 2], [Float](repeating: 0.1, count: 128))]))
        #expect(short?.contains("conv_kernel = 4") == true && short?.contains("[64, 1, 2]") == true, "\(short ?? "loaded")")
    }

    @Test func stateSizeDisagreesWithALog() throws {
        // A_log is [64, 16]; a state_size of 8 must be refused (x_proj, read first, disagrees as well).
        let message = Self.loadError(try Self.brokenCopy(config: { $0["state_size"] = 8 }))
        #expect(message?.contains("disagrees with the checkpoint") == true, "\(message ?? "loaded")")
        let name = "backbone.layers.0.mixer.A_log"
        let aLog = Self.loadError(try Self.brokenCopy(replace: [name: ([64, 8], [Float](repeating: 0, count: 512))]))
        #expect(aLog?.contains("state_size = 16") == true && aLog?.contains("A_log") == true, "\(aLog ?? "loaded")")
    }

    @Test func badConfigValues() throws {
        let rank = Self.loadError(try Self.brokenCopy(config: { $0["time_step_rank"] = "big" }))
        #expect(rank?.contains("time_step_rank") == true, "\(rank ?? "loaded")")
        let act = Self.loadError(try Self.brokenCopy(config: { $0["hidden_act"] = "gelu" }))
        #expect(act?.contains("hidden_act") == true)
        let missing = Self.loadError(try Self.brokenCopy(config: { $0.removeValue(forKey: "hidden_size") }))
        #expect(missing?.contains("hidden_size") == true)
    }

    /// An untied checkpoint without lm_head.weight falls back to the embedding, as a tied one.
    @Test func missingLMHeadFallsBackToTheEmbedding() throws {
        let dir = try Self.brokenCopy(of: "k2_rank5_bias_untied_f32", drop: ["lm_head.weight"])
        let model = try ModelRegistry.load(directory: dir.url)
        let lines = Dictionary(describe(model), uniquingKeysWith: { a, _ in a })
        #expect(lines["lm_head"]?.hasPrefix("tied") == true)
        try model.prefill([1, 2, 3])
        let finite = model.lastLogits.allSatisfy { $0.isFinite }
        #expect(finite)
    }

    @Test func tokenOutOfRange() throws {
        let model = try ModelRegistry.load(directory: Fixtures.directory("mamba", Self.fixture))
        #expect(throws: ModelError.tokenOutOfRange(token: 96, vocabSize: 96)) { try model.prefill([1, 96]) }
        #expect(throws: ModelError.tokenOutOfRange(token: -1, vocabSize: 96)) { try model.decode(-1) }
    }
}
