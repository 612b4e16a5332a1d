import FuzzCommon
import Foundation
import Orochi

// tokenizer.model (SentencePiece ModelProto, protobuf): load, then encode/decode samples.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSentencePiece(_ pointer: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let data = pointer ?? UnsafePointer(bitPattern: 1)!
    let bytes = [UInt8](Fuzz.bytes(data, size))
    guard let tokenizer = try? SentencePieceTokenizer(bytes: bytes, path: "tokenizer.model") else { return 0 }
    Fuzz.exercise(tokenizer)
    return 0
}

@_cdecl("FuzzSentencePiece_main")
public func entryPoint(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    Fuzz.main(argc, argv, fuzzSentencePiece)
}
