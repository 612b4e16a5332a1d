import FuzzCommon
import Foundation
import Orochi

// tokenizer.json (Hugging Face tokenizers): load, then encode/decode samples.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHFTokenizer(_ pointer: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let data = pointer ?? UnsafePointer(bitPattern: 1)!
    let bytes = [UInt8](Fuzz.bytes(data, size))
    guard let tokenizer = try? HFTokenizer(bytes: bytes, path: "tokenizer.json") else { return 0 }
    Fuzz.exercise(tokenizer)
    return 0
}

@_cdecl("FuzzHFTokenizer_main")
public func entryPoint(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    Fuzz.main(argc, argv, fuzzHFTokenizer)
}
