import Foundation
import Testing

/// `orochi-server` and `orochi serve` as a user runs them. orochi-server sits beside the test
/// bundle; `orochi` is the root package's release build (`make test` builds it first).
struct CommandTests {
    /// The build's products folder: where the test executable is.
    static let buildDirectory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()

    struct Result { let status: Int32; let stdout: String; let stderr: String }

    static func run(_ executable: URL, _ arguments: [String]) throws -> Result {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                      stderr: String(decoding: stderr, as: UTF8.self))
    }

    static var orochi: URL { ServerFixtures.repository.appendingPathComponent(".build/release/orochi") }
    static var server: URL { buildDirectory.appendingPathComponent("orochi-server") }
    let model = ServerFixtures.model(ServerFixtures.llama).path

    /// Every flag is range-checked: a clear message naming it, exit status 64, before any model loads.
    @Test(arguments: [
        (["--port", "70000"], "--port must be between 0 and 65535"),
        (["--max-batch", "0"], "--max-batch must be between 1 and 256"),
        (["--max-queue=-1"], "--max-queue must be between 0 and 100000"),
        (["--context", "0"], "--context must be between 1"),
        (["--max-body-bytes", "10"], "--max-body-bytes must be between 1024"),
        (["--max-tokens-limit", "0"], "--max-tokens-limit must be between 1"),
        (["--prompt-cache-mb=-5"], "--prompt-cache-mb must be between 0"),
        (["--prefill-chunk", "0"], "--prefill-chunk must be between 1"),
        (["--threads", "1000"], "--threads must be between 1 and 256"),
        (["--kv-dtype", "f8"], "--kv-dtype must be f32 or f16"),
        (["--api-key", ""], "--api-key is empty"),
        (["--port", "many"], "--port"),
    ])
    func flagsAreRangeChecked(_ flags: [String], _ message: String) throws {
        let r = try Self.run(Self.server, ["--model", model] + flags)
        #expect(r.status == 64, "\(flags): \(r.stderr)")
        #expect(r.stderr.contains(message), "\(flags): \(r.stderr)")
    }

    @Test func modelsAreRequiredAndTheirIdsUnique() throws {
        let none = try Self.run(Self.server, [])
        #expect(none.status == 64 && none.stderr.contains("at least one --model"), "\(none.stderr)")
        let twice = try Self.run(Self.server, ["--model", model, "--model", model + "/"])
        #expect(twice.status == 64 && twice.stderr.contains("same last path component 'orochi-ja-llama'"), "\(twice.stderr)")
        let missing = try Self.run(Self.server, ["--model", "/nonexistent/model", "--port", "0"])
        #expect(missing.status == 1 && missing.stderr.contains("/nonexistent/model"), "\(missing.stderr)")
    }

    /// `orochi serve` runs orochi-server with the same arguments (its help and its errors).
    @Test func orochiServeRunsTheServer() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.orochi.path),
                     "\(Self.orochi.path) is missing: build the root package first (make build, or make test)")
        // orochi and orochi-server side by side, as `make server` leaves them.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("orochi-serve-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let orochi = dir.appendingPathComponent("orochi")
        try FileManager.default.copyItem(at: Self.orochi, to: orochi)
        try FileManager.default.copyItem(at: Self.server, to: dir.appendingPathComponent("orochi-server"))
        let help = try Self.run(orochi, ["serve", "--help"])
        #expect(help.status == 0 && help.stdout.contains("--max-queue") && help.stdout.contains("orochi serve"), "\(help.stdout)\(help.stderr)")
        let bad = try Self.run(orochi, ["serve", "--model", model, "--max-batch", "0"])
        #expect(bad.status == 64 && bad.stderr.contains("--max-batch must be between 1 and 256"), "\(bad.stderr)")
        #expect(try Self.run(orochi, ["--help"]).stdout.contains("serve"))
    }

    /// Without orochi-server beside it, `orochi serve` says how to build it.
    @Test func orochiServeWithoutTheServerSaysToBuildIt() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("orochi-serve-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let copy = dir.appendingPathComponent("orochi")
        try FileManager.default.copyItem(at: Self.orochi, to: copy)
        let r = try Self.run(copy, ["serve", "--model", model])
        #expect(r.status == 1 && r.stderr.contains("make server") && r.stderr.contains(dir.appendingPathComponent("orochi-server").path), "\(r.stderr)")
    }
}
