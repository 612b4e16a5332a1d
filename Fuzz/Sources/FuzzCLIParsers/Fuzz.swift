import FuzzCommon
import Foundation
@testable import Orochi

// The id parser of --ids / --prompt-ids / detokenize, and what the CLI does with its result:
// the ids go to a tokenizer's validate+decode and to a model's token checks and prefill.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCLIParsers(_ pointer: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let data = pointer ?? UnsafePointer(bitPattern: 1)!
    let text = String(decoding: Fuzz.bytes(data, size), as: UTF8.self)
    guard let ids = try? parseTokenIds(text) else { return 0 }
    for id in ids { precondition(id >= 0, "parseTokenIds accepted the negative id \(id)") }
    // A model refuses out-of-range ids; in range, prefill must work up to its capacity.
    let model = Fuzz.tinyLlama
    model.reset()
    let fits = ids.count <= model.contextCapacity
    if fits {
        let accepted = (try? model.prefill(ids)) != nil
        let inRange = ids.allSatisfy { $0 < model.info.vocabSize }
        precondition(accepted == (inRange && !ids.isEmpty) || (ids.isEmpty), "prefill of \(ids) accepted=\(accepted)")
    }
    return 0
}

@_cdecl("FuzzCLIParsers_main")
public func entryPoint(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    Fuzz.main(argc, argv, fuzzCLIParsers)
}
