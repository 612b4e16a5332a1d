import ArgumentParser
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `orochi serve …`: runs the `orochi-server` executable built beside `orochi`, with the same
/// arguments. The server (Hummingbird, SwiftNIO) lives in its own executable so that `orochi`
/// links none of it and `make run` builds as fast as before; `make server` builds it.
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve models over an OpenAI-compatible HTTP API (runs orochi-server; `orochi serve --help` lists its options).",
        discussion: "Needs the orochi-server executable next to orochi: `make server` builds it. See docs/server.md.")

    @Argument(parsing: .captureForPassthrough, help: "Options of orochi-server, e.g. --model DIR --port 8080.")
    var arguments: [String] = []

    func run() throws {
        try Serve.exec(arguments)
    }

    /// The orochi-server executable beside this one (symbolic links followed).
    static var serverPath: String {
        let own = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: own).deletingLastPathComponent().appendingPathComponent("orochi-server").path
    }

    /// Replaces this process with orochi-server; returns only by throwing.
    static func exec(_ arguments: [String]) throws -> Never {
        let path = serverPath
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw RuntimeError("orochi serve needs the server executable \(path), which is not built: run `make server` "
                + "(swift build -c release --product orochi-server), then `orochi serve` again")
        }
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        execv(path, argv)
        throw RuntimeError("\(path): cannot run it: \(String(cString: strerror(errno)))")
    }
}
