import Foundation
import Testing
@testable import Orochi

/// Runs the built `orochi` executable (it sits beside the test bundle) as a user would.
enum OrochiProcess {
    static var executable: URL {
        Bundle.module.bundleURL.deletingLastPathComponent().appendingPathComponent("orochi")
    }

    struct Result { let status: Int32; let stdout: String; let stderr: String }

    /// `environment`: variables to set (a nil value removes the variable) on top of this process's.
    static func run(_ arguments: [String], environment: [String: String?] = [:]) throws -> Result {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if !environment.isEmpty {
            var env = ProcessInfo.processInfo.environment
            for (key, value) in environment { env[key] = value }
            process.environment = env
        }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus,
                      stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self))
    }
}

struct CommandLineTests {
    let model = Fixtures.directory("llama", "gqa_linear_f32").path

    /// Greedy ids as transformers generates them, ending at the first end-of-sequence id (2 in
    /// config.json): gqa_linear_f32's continuation holds one, headdim_bias_bf16's does not.
    @Test(arguments: ["gqa_linear_f32", "headdim_bias_bf16"])
    func greedyGenerateMatchesTransformers(_ name: String) throws {
        let model = Fixtures.directory("llama", name).path
        let reference = try Fixtures.reference(URL(fileURLWithPath: model))
        var expected = reference.greedy_continuation
        if let eos = expected.firstIndex(of: 2) { expected = Array(expected[...eos]) }
        let r = try OrochiProcess.run(["generate", "--model", model,
                                       "--prompt-ids", reference.greedy_prompt.map(String.init).joined(separator: " "),
                                       "--max-tokens", "\(reference.greedy_continuation.count)",
                                       "--temperature", "0", "--output-ids"])
        #expect(r.status == 0)
        #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == expected.map(String.init).joined(separator: " "))
        #expect(r.stderr.contains("tokens/s"))
    }

    @Test func forwardWritesTheLogits() throws {
        let dir = TemporaryDirectory()
        let out = dir.url.appendingPathComponent("logits.npy").path
        let reference = try Fixtures.reference(URL(fileURLWithPath: model))
        let r = try OrochiProcess.run(["forward", "--model", model, "--ids", reference.ids.map(String.init).joined(separator: " "), "--out", out])
        #expect(r.status == 0, "\(r.stderr)")
        let (values, shape) = try NPY.decodeFloat32(Data(contentsOf: URL(fileURLWithPath: out)))
        let (expected, expectedShape) = try Fixtures.logits(URL(fileURLWithPath: model))
        #expect(shape == expectedShape)
        #expect(values.withUnsafeBufferPointer { relativeError($0, expected[...]) } <= 1e-4)
    }

    @Test func saveAndLoadStateContinueTheSameRun() throws {
        let dir = TemporaryDirectory()
        let state = dir.url.appendingPathComponent("state.bin").path
        let whole = try OrochiProcess.run(["generate", "--model", model, "--prompt-ids", "3 1 4 1 5", "--max-tokens", "9",
                                           "--temperature", "0.9", "--seed", "5", "--output-ids"])
        let saved = try OrochiProcess.run(["generate", "--model", model, "--prompt-ids", "3 1 4 1 5", "--max-tokens", "0",
                                           "--save-state", state])
        #expect(saved.status == 0)
        #expect(saved.stderr.contains("saved state after 5 tokens"))
        let resumed = try OrochiProcess.run(["generate", "--model", model, "--load-state", state, "--max-tokens", "9",
                                             "--temperature", "0.9", "--seed", "5", "--output-ids"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stdout == whole.stdout)
        let other = try OrochiProcess.run(["generate", "--model", Fixtures.directory("llama", "mha_tied_f32").path,
                                           "--load-state", state, "--max-tokens", "2"])
        #expect(other.status != 0)
        #expect(other.stderr.contains("snapshot was saved from another model"))
    }

    @Test(arguments: [
        (["generate", "--model", "/nonexistent", "--prompt-ids", "1"], "does not exist"),
        (["generate", "--model", "MODEL", "--prompt-ids", "1 x 2"], "'x' is not a token id"),
        (["generate", "--model", "MODEL", "--prompt-ids", "1 96"], "token id 96 is outside the vocabulary"),
        (["generate", "--model", "MODEL", "--prompt-ids", String(repeating: "1 ", count: 65)], "do not fit in the context of 64"),
        (["generate", "--model", "MODEL", "--prompt-ids", "1", "--context", "65"], "exceeds max_position_embeddings 64"),
        (["generate", "--model", "MODEL"], "give a prompt"),
        (["generate", "--model", "MODEL", "--prompt", "日本語"], "neither tokenizer.model"),
        (["forward", "--model", "MODEL", "--ids", "", "--out", "/tmp/x.npy"], "holds no token ids"),
    ])
    func errorsGoToStderrWithNonZeroStatus(_ arguments: [String], _ message: String) throws {
        let r = try OrochiProcess.run(arguments.map { $0 == "MODEL" ? model : $0 })
        #expect(r.status != 0)
        #expect(r.stderr.contains(message), "stderr: \(r.stderr)")
    }

    @Test func perplexityRefusesBadTextFiles() throws {
        let dir = TemporaryDirectory()
        let invalid = dir.write("invalid.txt", Data([0x61, 0x0A, 0x62, 0xFF, 0xFE, 0x0A])).path
        let empty = dir.write("empty.txt", Data()).path
        let good = dir.write("good.txt", "日本語の文".data(using: .utf8)!).path
        for (file, message) in [(invalid, "invalid UTF-8 on line 2"), (empty, "is empty"), (good, "neither tokenizer.model")] {
            let r = try OrochiProcess.run(["perplexity", "--model", model, "--file", file])
            #expect(r.status != 0)
            #expect(r.stderr.contains(message), "stderr: \(r.stderr)")
        }
    }
}
