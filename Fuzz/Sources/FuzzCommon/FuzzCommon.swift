import Foundation
@testable import Orochi

/// Helpers shared by the fuzz targets.
public enum Fuzz {
    /// A scratch directory private to this process (in /dev/shm when it exists: no disk I/O).
    public static let scratch: URL = {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        let url = URL(fileURLWithPath: base).appendingPathComponent("orochi-fuzz-\(getpid())")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(at: Fuzz.scratch) }
        return url
    }()

    /// Writes `bytes` to `name` in the scratch directory and returns its URL.
    @discardableResult
    public static func write(_ bytes: UnsafeRawBufferPointer, to name: String) -> URL {
        let url = scratch.appendingPathComponent(name)
        let fd = open(url.path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        precondition(fd >= 0, "cannot write \(url.path)")
        var done = 0
        while done < bytes.count {
            let n = Foundation.write(fd, bytes.baseAddress! + done, bytes.count - done)
            precondition(n > 0, "short write to \(url.path)")
            done += n
        }
        close(fd)
        return url
    }

    public static func bytes(_ data: UnsafePointer<UInt8>, _ size: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: size == 0 ? nil : UnsafeRawPointer(data), count: size)
    }

    /// a × b × …, nil on overflow or a negative factor.
    public static func product(_ xs: Int...) -> Int? {
        var p = 1
        for x in xs {
            guard x >= 0 else { return nil }
            let (r, o) = p.multipliedReportingOverflow(by: x)
            if o { return nil }
            p = r
        }
        return p
    }
    public static func sum(_ xs: Int?...) -> Int? {
        var s = 0
        for x in xs {
            guard let x else { return nil }
            let (r, o) = s.addingReportingOverflow(x)
            if o { return nil }
            s = r
        }
        return s
    }

    /// Floats a fuzz target lets a model allocate (weights + cache + scratch): above this the
    /// input is valid but too big to be worth the time, and is skipped after validation. 2^17
    /// (512 KiB) holds every fixture's model; filling a few hundred thousand random weights per
    /// input had made the config targets 3-6 times slower, for the same construction code.
    public static let maxFloats = 1 << 17

    /// Touches every float so that AddressSanitizer sees an out-of-bounds view.
    @inline(never)
    public static func checksum(_ p: UnsafePointer<Float>, _ count: Int) -> UInt32 {
        var h: UInt32 = 0
        for i in 0..<count { h = h &* 31 &+ p[i].bitPattern }
        return h
    }

    /// Test strings for tokenizers: ASCII, Japanese, spaces, byte-fallback material, specials.
    public static let sampleTexts: [String] = [
        "", " ", "Hello world", "  two  spaces ", "ファイルを開くには", "日本語の文。改行\nタブ\t",
        "<s></s><unk>[CLS]", "😀 emoji ÷ Ω", "1234567890", "\u{0}\u{1}\u{7f}", "ｶﾀｶﾅ ＡＢＣ",
    ]

    /// Tiny random-weight models for snapshot fuzzing (seeded: their fingerprints are stable).
    public static let tinyLlama: BlockModel = try! BlockModel(
        config: LlamaConfig(hidden_size: 16, intermediate_size: 32, num_hidden_layers: 2, num_attention_heads: 4,
                            num_key_value_heads: 2, vocab_size: 40, max_position_embeddings: 16),
        checkpoint: nil, configPath: "<fuzz>", context: 16, randomSeed: 7)
    public static let tinyMamba: BlockModel = try! BlockModel(
        config: MambaConfig(hidden_size: 16, num_hidden_layers: 2, vocab_size: 40, state_size: 4, expand: 2, conv_kernel: 3),
        checkpoint: nil, configPath: "<fuzz>", randomSeed: 7)

    /// When OROCHI_FUZZ_SEEDS names a folder, a target's initializer writes seed inputs there.
    public static var seedDirectory: URL? {
        ProcessInfo.processInfo.environment["OROCHI_FUZZ_SEEDS"].map { URL(fileURLWithPath: $0) }
    }
}

/// libFuzzer's driver (libclang_rt.fuzzer). SwiftPM links an executable's entry point as
/// `<Module>_main` (`--defsym main=…`), which a module with only `@_cdecl` functions lacks:
/// each target defines that symbol and starts libFuzzer from it.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

extension Fuzz {
    public static func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
                            _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt {
        var argc = argc
        var argv = argv
        return LLVMFuzzerRunDriver(&argc, &argv, callback)
    }
}
