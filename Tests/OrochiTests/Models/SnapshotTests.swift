import Foundation
import Testing
@testable import Orochi

/// `--save-state` / `--load-state` for both architectures: the Llama KV cache and the Mamba state.
struct SnapshotTests {
    static let models = [("llama", "gqa_linear_f32"), ("llama", "mha_tied_f32"),
                         ("mamba", "k4_auto_tied_f32"), ("mamba", "k2_rank5_bias_untied_f32")]

    static func load(_ fixture: (String, String)) throws -> any LanguageModel {
        try ModelRegistry.load(directory: Fixtures.directory(fixture.0, fixture.1))
    }

    static func greedy(_ model: any LanguageModel, prompt: [Int], tokens: Int, snapshot: [UInt8]? = nil,
                       afterPrompt: ((any LanguageModel) throws -> Void)? = nil) throws -> [Int] {
        let sampler = Sampler(settings: .init(temperature: 0), vocabSize: model.info.vocabSize)
        return try Generator(model: model, sampler: sampler, stopTokens: [])
            .generate(prompt: prompt, maxTokens: tokens, snapshot: snapshot, afterPrompt: afterPrompt) { _ in true }.0
    }

    static let prompt = [3, 17, 42, 5, 60, 8, 11, 29, 77, 1]

    /// Save after the prompt, load into a fresh model, continue: the same tokens as one run.
    @Test(arguments: models)
    func saveLoadContinueEqualsOneRun(_ fixture: (String, String)) throws {
        let uninterrupted = try Self.greedy(try Self.load(fixture), prompt: Self.prompt, tokens: 12)
        var saved: [UInt8] = []
        let first = try Self.greedy(try Self.load(fixture), prompt: Self.prompt, tokens: 12) { saved = $0.saveState() }
        #expect(first == uninterrupted)
        let fresh = try Self.load(fixture)
        let resumed = try Self.greedy(fresh, prompt: [], tokens: 12, snapshot: saved)
        #expect(resumed == uninterrupted, "\(fixture)")
        #expect(fresh.position == Self.prompt.count + 11)
    }

    /// A snapshot of part of the prompt, continued with the rest of it.
    @Test(arguments: models)
    func snapshotThenRestOfPrompt(_ fixture: (String, String)) throws {
        let uninterrupted = try Self.greedy(try Self.load(fixture), prompt: Self.prompt, tokens: 8)
        let model = try Self.load(fixture)
        try model.prefill(Array(Self.prompt[..<4]))
        let saved = model.saveState()
        let resumed = try Self.greedy(try Self.load(fixture), prompt: Array(Self.prompt[4...]), tokens: 8, snapshot: saved)
        #expect(resumed == uninterrupted, "\(fixture)")
    }

    @Test func snapshotFromAnotherModelIsRefused() throws {
        let pairs = [(Self.models[0], Self.models[2]), (Self.models[2], Self.models[0]),
                     (Self.models[2], Self.models[3]), (Self.models[0], Self.models[1])]
        for (from, to) in pairs {
            let source = try Self.load(from)
            try source.prefill(Self.prompt)
            let target = try Self.load(to)
            #expect(throws: SnapshotError.self) { try target.loadState(source.saveState()) }
            do { try target.loadState(source.saveState()) } catch let error as SnapshotError {
                guard case .wrongModel = error else { Issue.record("\(from) → \(to): \(error)"); continue }
                #expect("\(error)".contains("another model"))
            }
        }
        // Same shapes, other weights: the fingerprint differs.
        let config = MambaConfig(hidden_size: 32, num_hidden_layers: 2, vocab_size: 40)
        let a = try BlockModel(config: config, checkpoint: nil, configPath: "<test>", randomSeed: 1)
        let b = try BlockModel(config: config, checkpoint: nil, configPath: "<test>", randomSeed: 2)
        try a.prefill([1, 2, 3])
        #expect(throws: SnapshotError.self) { try b.loadState(a.saveState()) }
        do { try b.loadState(a.saveState()) } catch let error as SnapshotError {
            if case .wrongModel = error {} else { Issue.record("\(error)") }
        }
    }

    @Test(arguments: models)
    func truncatedOrCorruptSnapshotIsRefused(_ fixture: (String, String)) throws {
        let model = try Self.load(fixture)
        try model.prefill(Self.prompt)
        let bytes = model.saveState()
        func error(_ b: [UInt8]) -> SnapshotError? {
            let fresh = try! Self.load(fixture)
            do { try fresh.loadState(b); return nil } catch { return error as? SnapshotError }
        }
        for cut in [9, 20, bytes.count / 2, bytes.count - 20, bytes.count - 1] {
            guard case .truncated = error(Array(bytes[..<cut])) else {
                Issue.record("\(fixture): cut at \(cut) gave \(String(describing: error(Array(bytes[..<cut]))))"); continue
            }
        }
        guard case .notASnapshot = error([UInt8](repeating: 7, count: 64)) else { Issue.record("garbage accepted"); return }
        var flipped = bytes
        flipped[bytes.count - 100] ^= 0x40                    // inside the payload: the checksum catches it
        guard case .corrupt = error(flipped) else { Issue.record("\(fixture): corrupt payload accepted"); return }
        guard case .corrupt = error(bytes + [0]) else { Issue.record("\(fixture): trailing bytes accepted"); return }
        // A failed load leaves nothing half-done that a good one cannot replace.
        let fresh = try Self.load(fixture)
        try? fresh.loadState(flipped)
        try fresh.loadState(bytes)
        #expect(fresh.position == Self.prompt.count)
    }

    /// A Mamba snapshot has the same size after any prompt; a transformer's grows with it.
    @Test func snapshotSizes() throws {
        func size(_ fixture: (String, String), tokens: Int) throws -> Int {
            let model = try Self.load(fixture)
            try model.prefill((0..<tokens).map { ($0 * 7 + 3) % 90 })
            return model.saveState().count
        }
        let mamba = Self.models[2], llama = Self.models[0]
        #expect(try size(mamba, tokens: 3) == size(mamba, tokens: 40))
        let mambaModel = try Self.load(mamba)
        #expect(try size(mamba, tokens: 3) < mambaModel.stateBytes + mambaModel.info.vocabSize * 4 + 200)
        let llamaModel = try Self.load(llama)
        let perToken = llamaModel.stateBytes(forTokens: 1)
        #expect(try size(llama, tokens: 40) - size(llama, tokens: 3) == 37 * perToken)
    }

    /// Snapshots written by the code before the shared block model (commit 4a0489c, `orochi
    /// generate --prompt-ids "1 5 9 12 7" --max-tokens 0 --save-state`, a debug build) still load:
    /// the same size as a save of the same prompt today (the payload's layout), the same logits.
    @Test(arguments: [("llama", "gqa_linear_f32"), ("mamba", "k4_auto_tied_f32"), ("jamba", "attn2_moe4top2_tied_f16")])
    func snapshotsOfEarlierVersionsLoad(_ fixture: (String, String)) throws {
        let old = try [UInt8](Data(contentsOf: Fixtures.root.appendingPathComponent("snapshots/\(fixture.1).state")))
        let loaded = try Self.load(fixture)
        try loaded.loadState(old)
        #expect(loaded.position == 5)
        let fresh = try Self.load(fixture)
        try fresh.prefill([1, 5, 9, 12, 7])
        let saved = fresh.saveState()
        #expect(saved.count == old.count, "\(fixture): the layout of the payload changed")
        #expect(relativeError(loaded.lastLogits, ArraySlice(Array(fresh.lastLogits))) < 1e-5)
        try loaded.decode(3); try fresh.decode(3)
        #expect(relativeError(loaded.lastLogits, ArraySlice(Array(fresh.lastLogits))) < 1e-5, "\(fixture)")
    }
}
