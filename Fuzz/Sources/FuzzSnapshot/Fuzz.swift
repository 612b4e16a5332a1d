import FuzzCommon
import Foundation
@testable import Orochi

// State snapshots (--load-state). Input: one control byte, then the snapshot file.
//   bit 0 of the control byte: recompute the checksum (so that mutations reach the payload checks)
//   bit 1: a tiny Mamba model instead of a tiny Llama
// After StateArchive.decode, the model's loadState; when it accepts, decoding must go on working.
// OROCHI_FUZZ_SEEDS=DIR writes seed snapshots of both tiny models there and exits.

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>) -> CInt {
    if let dir = Fuzz.seedDirectory {
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for (index, model) in [Fuzz.tinyLlama as any LanguageModel, Fuzz.tinyMamba].enumerated() {
            for tokens in [[], [1], [1, 2, 3, 4, 5]] {
                model.reset()
                try! model.prefill(tokens)
                let bytes = [UInt8(index * 2)] + model.saveState()
                try! Data(bytes).write(to: dir.appendingPathComponent("\(index == 0 ? "llama" : "mamba")-\(tokens.count).snap"))
            }
        }
        exit(0)
    }
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSnapshot(_ pointer: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let data = pointer ?? UnsafePointer(bitPattern: 1)!
    guard size > 0 else { return 0 }
    let control = data[0]
    var bytes = [UInt8](Fuzz.bytes(data + 1, size - 1))
    if control & 1 == 1 { fixChecksum(&bytes) }
    let model: any LanguageModel = control & 2 == 0 ? Fuzz.tinyLlama : Fuzz.tinyMamba
    let (identity, fingerprint) = control & 2 == 0
        ? (Fuzz.tinyLlama.identity, Fuzz.tinyLlama.info.fingerprint)
        : (Fuzz.tinyMamba.identity, Fuzz.tinyMamba.info.fingerprint)
    _ = try? StateArchive.decode(bytes, expecting: identity, fingerprint: fingerprint)
    model.reset()
    guard (try? model.loadState(bytes)) != nil else { return 0 }
    // Accepted: the position must be usable, and the model must go on (or refuse cleanly).
    precondition(model.position >= 0, "loadState accepted a negative position \(model.position)")
    precondition(model.position <= model.contextCapacity, "loadState accepted position \(model.position) beyond the capacity \(model.contextCapacity)")
    _ = Fuzz.checksum(model.lastLogits.baseAddress!, model.lastLogits.count)
    if model.position < model.contextCapacity { try? model.decode(1) }
    _ = model.saveState()
    return 0
}

/// Patches the trailing checksum to match the payload that the length field designates.
func fixChecksum(_ b: inout [UInt8]) {
    func u64(_ at: Int) -> UInt64? {
        guard at >= 0, at + 8 <= b.count else { return nil }
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(b[at + i]) << (8 * UInt64(i)) }
        return v
    }
    guard let idLength = u64(8), idLength <= 4096 else { return }
    let lengthAt = 8 + 8 + Int(idLength) + 16
    guard let length = u64(lengthAt), length <= UInt64(b.count) else { return }
    let start = lengthAt + 8
    guard start + Int(length) + 8 <= b.count else { return }
    let sum = fnv1a(b[start..<start + Int(length)])
    for i in 0..<8 { b[start + Int(length) + i] = UInt8(truncatingIfNeeded: sum >> (8 * UInt64(i))) }
}

@_cdecl("FuzzSnapshot_main")
public func entryPoint(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    Fuzz.main(argc, argv, fuzzSnapshot)
}
