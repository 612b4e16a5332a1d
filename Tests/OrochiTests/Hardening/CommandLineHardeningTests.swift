import Foundation
import Testing
@testable import Orochi

/// The command line: bad flags are usage errors (status 64), runtime failures a one-line error
/// (status 1), never a crash, hang or silent garbage (issue 11).
struct CommandLineHardeningTests {
    let model = Fixtures.directory("llama", "gqa_linear_f32").path
    let mamba = Fixtures.directory("mamba", "k4_auto_tied_f32").path

    func run(_ arguments: [String]) throws -> OrochiProcess.Result {
        try OrochiProcess.run(arguments.map { $0 == "MODEL" ? model : $0 == "MAMBA" ? mamba : $0 })
    }

    @Test(arguments: [
        (["--repeat-penalty", "0"], "--repeat-penalty"), (["--repeat-penalty=-1"], "--repeat-penalty"),
        (["--repeat-penalty", "nan"], "--repeat-penalty"),
        (["--temperature=-1"], "--temperature"), (["--temperature", "nan"], "--temperature"),
        (["--top-p", "0"], "--top-p"), (["--top-p", "1.5"], "--top-p"), (["--top-k=-1"], "--top-k"),
        (["--threads=-1"], "--threads"), (["--threads", "0"], "--threads"), (["--threads", "100000000"], "--threads"),
        (["--context", "0"], "--context"), (["--max-tokens=-1"], "--max-tokens"),
        (["--prompt-ids", "1 x"], "--prompt-ids: 'x' is not a token id"),
    ])
    func badGenerateFlagsAreUsageErrors(_ flags: [String], _ message: String) throws {
        var arguments = ["generate", "--model", "MODEL"] + flags
        if !flags.contains("--prompt-ids") { arguments += ["--prompt-ids", "1 2"] }
        let r = try run(arguments)
        #expect(r.status == 64, "\(flags): status \(r.status), \(r.stderr)")
        #expect(r.stderr.contains(message), "\(flags): \(r.stderr)")
    }

    @Test func otherCommandsCheckTheirFlags() throws {
        for (arguments, message) in [
            (["forward", "--model", "MODEL", "--ids", "1 -2", "--out", "/tmp/x.npy"], "--ids: '-2' is not a token id"),
            (["forward", "--model", "MODEL", "--ids", "1", "--out", "/tmp/x.npy", "--threads", "0"], "--threads"),
            (["detokenize", "--model", "MODEL", "--ids", "1 two"], "--ids: 'two' is not a token id"),
            (["perplexity", "--model", "MODEL", "--file", "/dev/null", "--threads=-3"], "--threads"),
            (["bench", "--preset", "llama-6m", "--format", "xml"], "'xml' is invalid for '--format"),
            (["bench", "--preset", "llama-6m", "--threads", "0"], "--threads"),
            (["bench", "--preset", "llama-6m", "--breakdown-contexts", "12,x"], "--breakdown-contexts"),
            (["bench", "--preset", "mamba-6m", "--decode-tokens", "1000000000000"], "--decode-tokens"),
            (["bench", "--preset", "mamba-6m", "--contexts", "128,1125899906842624"], "--contexts"),
            (["bench", "--preset", "llama-6m", "--contexts", "128", "--breakdown-contexts", "9223372036854775807"], "is not one of --contexts"),
            (["bench", "--preset", "llama-6m", "--max-seconds-per-point", "nan"], "--max-seconds-per-point"),
            (["tokenize", "--model", "MODEL", "--text", "x", "--benchmark", "0"], "--benchmark"),
        ] {
            let r = try run(arguments)
            #expect(r.status == 64, "\(arguments): status \(r.status), \(r.stderr)")
            #expect(r.stderr.contains(message), "\(arguments): \(r.stderr)")
        }
    }

    /// Runtime failures: one line, status 1, no usage text.
    @Test func runtimeFailuresAreNotUsageErrors() throws {
        let r = try run(["generate", "--model", "MODEL", "--load-state", "/nonexistent/state.bin", "--max-tokens", "2"])
        #expect(r.status == 1, "status \(r.status)")
        #expect(r.stderr.contains("/nonexistent/state.bin"), "\(r.stderr)")
        #expect(!r.stderr.contains("Usage:"), "\(r.stderr)")
        let dir = TemporaryDirectory()
        let empty = dir.write("empty.txt", Data()).path
        let p = try run(["perplexity", "--model", "MODEL", "--file", empty])
        #expect(p.status == 1 && !p.stderr.contains("Usage:"), "\(p.status) \(p.stderr)")
    }

    /// Size flags and config sizes that used to crash: a clear error, never a signal.
    @Test func hugeSizesAreRefusedWithoutCrashing() throws {
        let dir = TemporaryDirectory()
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: model + "/config.json"))) as! [String: Any]
        config.removeValue(forKey: "max_position_embeddings")
        _ = dir.write("config.json", try JSONSerialization.data(withJSONObject: config))
        _ = dir.write("model.safetensors", try Data(contentsOf: URL(fileURLWithPath: model + "/model.safetensors")))
        for context in ["1000000000", "4611686018427387904", "\(Int.max)"] {
            let r = try OrochiProcess.run(["generate", "--model", dir.url.path, "--prompt-ids", "1", "--context", context])
            #expect(r.status == 1, "--context \(context): status \(r.status) \(r.stderr)")
            #expect(r.stderr.contains("physical memory") || r.stderr.contains("too large"), "\(r.stderr)")
        }
        config["max_position_embeddings"] = -1
        _ = dir.write("config.json", try JSONSerialization.data(withJSONObject: config))
        let negative = try OrochiProcess.run(["generate", "--model", dir.url.path, "--prompt-ids", "1"])
        #expect(negative.status == 1 && negative.stderr.contains("max_position_embeddings"), "\(negative.status) \(negative.stderr)")
        config["max_position_embeddings"] = 64
        for key in ["head_dim", "hidden_size"] {
            var c = config
            c[key] = 1 << 40
            _ = dir.write("config.json", try JSONSerialization.data(withJSONObject: c))
            let r = try OrochiProcess.run(["inspect", "--model", dir.url.path])
            #expect(r.status == 1 && r.stderr.contains("config.json"), "\(key): \(r.status) \(r.stderr)")
        }
    }

    @Test func extremeSamplingStillGivesValidIds() throws {
        let r = try run(["generate", "--model", "MODEL", "--prompt-ids", "1 2", "--temperature", "1e30", "--top-k", "0",
                         "--top-p", "0.0001", "--max-tokens", "8", "--output-ids", "--seed", "3"])
        #expect(r.status == 0, "\(r.stderr)")
        let ids = r.stdout.split(separator: " ").compactMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        #expect(!ids.isEmpty && ids.allSatisfy { $0 >= 0 && $0 < 96 }, "\(r.stdout)")
    }

    @Test func nonFiniteWeightsAreReported() throws {
        let dir = try poisonedCopy("llama", "gqa_linear_f32", tensor: "model.layers.0.self_attn.q_proj.weight")
        let inspect = try OrochiProcess.run(["inspect", "--model", dir.url.path])
        #expect(inspect.status == 0)
        #expect(inspect.stdout.contains("model.layers.0.self_attn.q_proj.weight") && inspect.stdout.contains("3 NaN or infinite values"), "\(inspect.stdout)")
        let clean = try run(["inspect", "--model", "MODEL"])
        #expect(clean.stdout.contains("non-finite weights") && clean.stdout.contains("none"))
        let generate = try OrochiProcess.run(["generate", "--model", dir.url.path, "--prompt-ids", "1 2 3", "--max-tokens", "4", "--output-ids"])
        #expect(generate.status == 1 && generate.stderr.contains("non-finite logits") && generate.stderr.contains("layer 0"), "\(generate.stderr)")
        #expect(generate.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "no ids printed: \(generate.stdout)")
        let out = dir.url.appendingPathComponent("l.npy").path
        let forward = try OrochiProcess.run(["forward", "--model", dir.url.path, "--ids", "1 2 3", "--out", out])
        #expect(forward.status == 1 && forward.stderr.contains("at position 0"), "\(forward.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    @Test func perplexityProgressLineEndsWithANewline() throws {
        // The fixture has no tokenizer: use a shipped model, scoring a few characters.
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        let shipped = repository.appendingPathComponent("Models/orochi-ja-mamba").path
        let dir = TemporaryDirectory()
        let text = dir.write("t.txt", "ファイルを開くには".data(using: .utf8)!).path
        let r = try OrochiProcess.run(["perplexity", "--model", shipped, "--file", text, "--context", "8", "--stride", "4"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("scored") && r.stderr.hasSuffix("\n"), "\(r.stderr.debugDescription)")
    }
}

/// config.json is read as transformers reads it (Python's json): strictly, with the last of two
/// equal keys winning. Foundation's parser alone accepts trailing commas and keeps the first.
struct StrictConfigTests {
    @Test func trailingCommasAreRefusedAndTheLastDuplicateWins() throws {
        let dir = TemporaryDirectory()
        let comma = dir.write("comma.json", Data(#"{"model_type": "llama", "hidden_size": 8,}"#.utf8))
        #expect(throws: LoadError.self) { try readJSONConfig(ConfigHeader.self, from: comma) }
        let twice = dir.write("twice.json", Data(#"{"model_type": "mamba", "model_type": "llama"}"#.utf8))
        #expect(try readJSONConfig(ConfigHeader.self, from: twice).model_type == "llama")
    }
}
