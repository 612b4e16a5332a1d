import FuzzCommon
import Foundation
import OrochiKernels
@testable import Orochi

// A whole GGUF file as bytes: header, metadata, tensor table, data. Parsed from a file (mmap, as
// the loader does); then every tensor Orochi computes with is dequantized and multiplied by a
// vector on its blocks (touching every byte of every block, so that AddressSanitizer sees a read
// past the mapping), and the tokenizer, chat template and model are built from it when they can be.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGGUF(_ pointer: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let data = pointer ?? UnsafePointer(bitPattern: 1)!
    let url = Fuzz.write(Fuzz.bytes(data, size), to: "model.gguf")
    guard let file = try? GGUFFile(path: url.path) else { return 0 }
    let tensors = GGUFTensors(file: file)
    var h: UInt32 = 0
    for t in file.tensors where t.type.weightType != nil && t.valueCount <= 1 << 20 {
        if let f = try? tensors.floats(t.name) {
            precondition(f.count == t.valueCount, "tensor count disagrees with its shape")
            h ^= Fuzz.checksum(f.data, f.count)
        }
        let columns = t.dimensions[0], rows = t.valueCount / max(columns, 1)
        guard columns > 0, rows > 0, let w = try? tensors.storedMatrix(t.name, rows: rows, columns: columns) else { continue }
        let x = [Float](repeating: 1, count: columns)
        var y = [Float](repeating: 0, count: rows)
        w.matvec(x, into: &y)
        h ^= Fuzz.checksum(y, rows)
    }
    _ = try? loadTokenizer(file: url).encode("Hello, 世界 123", addSpecialTokens: true)
    _ = try? ChatSettings.load(directory: url)
    _ = try? ModelRegistry.load(directory: url, options: LoadOptions(context: 8))
    _ = h
    return 0
}

@_cdecl("FuzzGGUF_main")
public func entryPoint(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    Fuzz.main(argc, argv, fuzzGGUF)
}
