import FuzzCommon
import Foundation
@testable import Orochi

// A whole .safetensors file as bytes: header length, JSON header, data section. Parsed from a
// file (mmap, as the loader does), then every tensor is read through both SafetensorsFile and
// Checkpoint, touching every float so that AddressSanitizer sees a view past the mapping.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafetensors(_ pointer: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let data = pointer ?? UnsafePointer(bitPattern: 1)!
    let dir = Fuzz.scratch.appendingPathComponent("st")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let url = Fuzz.write(Fuzz.bytes(data, size), to: "st/model.safetensors")
    guard let file = try? SafetensorsFile(path: url.path) else { return 0 }
    var h: UInt32 = 0
    for (name, entry) in file.entries.sorted(by: { $0.key < $1.key }) {
        guard let t = try? file.tensor(name) else { continue }
        precondition(t.count == entry.shape.reduce(1, *), "tensor count disagrees with its shape")
        h ^= Fuzz.checksum(t.data, t.count)
    }
    _ = file.metadata.count
    if let checkpoint = try? Checkpoint(directory: dir) {
        _ = checkpoint.dtypeCounts
        for name in checkpoint.tensorNames {
            let shape = file.entries[name]!.shape
            if let t = try? checkpoint.tensor(name, shape: shape) { h ^= Fuzz.checksum(t.data, t.count) }
        }
    }
    _ = h
    return 0
}

@_cdecl("FuzzSafetensors_main")
public func entryPoint(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    Fuzz.main(argc, argv, fuzzSafetensors)
}
