import Foundation
import Testing
@testable import Orochi

/// Writes that fail say so (hardening issue, class 6): `forward --out /dev/full`, `generate
/// --save-state /dev/full` and `bench --out /dev/full` printed success and exited 0. Every file
/// the project writes goes through FileOutput: each write and the close checked, a temporary file
/// renamed into place, so a failed write never leaves a file that looks valid.
struct FileOutputTests {
    let model = Fixtures.directory("llama", "gqa_linear_f32").path

    @Test(arguments: [
        ["forward", "--model", "MODEL", "--ids", "1 2 3", "--out", "/dev/full"],
        ["generate", "--model", "MODEL", "--prompt-ids", "1 2 3", "--max-tokens", "0", "--save-state", "/dev/full"],
        ["bench", "--preset", "llama-6m", "--contexts", "16", "--decode-tokens", "2", "--repetitions", "1",
         "--paired-steps", "0", "--no-bandwidth", "--breakdown-contexts", "none", "--out", "/dev/full"],
    ])
    func aFullDeviceIsAnError(_ arguments: [String]) throws {
        let r = try OrochiProcess.run(arguments.map { $0 == "MODEL" ? model : $0 })
        #expect(r.status != 0, "\(arguments[0]): status \(r.status)")
        #expect(r.stderr.contains("/dev/full: cannot write"), "\(arguments[0]): \(r.stderr)")
    }

    @Test func aFailedWriteLeavesTheOldFileAndNoTemporary() throws {
        let dir = TemporaryDirectory()
        let target = dir.url.appendingPathComponent("logits.npy").path
        try FileOutput.write("old", to: target)
        // A directory where the file should be: refused, naming it.
        let sub = dir.url.appendingPathComponent("sub").path
        try FileManager.default.createDirectory(atPath: sub, withIntermediateDirectories: false)
        #expect(throws: FileOutput.Failure.self) { try FileOutput.write("x", to: sub) }
        // No such directory: the temporary file cannot be made; the error names the path.
        do {
            try FileOutput.write("x", to: dir.url.appendingPathComponent("missing/f").path)
            Issue.record("wrote into a missing directory")
        } catch let f as FileOutput.Failure {
            #expect(f.description.contains("missing/f: cannot write"), "\(f)")
        }
        try FileOutput.write(Array(repeating: 7, count: 100_000), to: target)
        #expect(try Data(contentsOf: URL(fileURLWithPath: target)).count == 100_000)
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.url.path).filter { $0.hasPrefix(".") }
        #expect(left.isEmpty, "temporary files left: \(left)")
        let mode = try FileManager.default.attributesOfItem(atPath: target)[.posixPermissions] as? Int
        #expect(mode.map { $0 & 0o600 == 0o600 } == true, "readable and writable by its owner")
    }

    /// A device written in place: /dev/null takes the bytes and stays a device.
    @Test func devicesAreWrittenInPlace() throws {
        try FileOutput.write("bytes", to: "/dev/null")
        var info = stat()
        #expect(stat("/dev/null", &info) == 0 && (info.st_mode & S_IFMT) == S_IFCHR)
    }
}
