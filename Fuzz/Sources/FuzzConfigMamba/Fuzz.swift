import FuzzCommon
import Foundation
@testable import Orochi

// config.json of a Mamba model: decode, validate, and — when small enough (Fuzz.maxFloats) —
// construction with random weights and a few tokens.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfigMamba(_ pointer: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let data = pointer ?? UnsafePointer(bitPattern: 1)!
    let json = Data(bytes: data, count: size)
    _ = try? JSONDecoder().decode(ConfigHeader.self, from: json)
    guard let config = try? JSONDecoder().decode(MambaConfig.self, from: json) else { return 0 }
    guard (try? config.validate(path: "config.json")) != nil else { return 0 }
    let d = config.hidden_size, e = config.innerSize, n = config.state_size, r = config.dtRank
    let k = config.conv_kernel, l = config.num_hidden_layers, v = config.vocab_size
    guard let perLayer = Fuzz.sum(Fuzz.product(2, e, d), Fuzz.product(k, e), Fuzz.sum(r, Fuzz.product(2, n)).flatMap { Fuzz.product($0, e) },
                                  Fuzz.product(e, r), Fuzz.product(3, e, n), Fuzz.product(e, d), Fuzz.product(256, 6, e),
                                  Fuzz.product(256, 2, d)),
          let total = Fuzz.sum(Fuzz.product(l, perLayer), Fuzz.product(2, v, d)),
          total <= Fuzz.maxFloats
    else { return 0 }
    guard let model = try? BlockModel(config: config, checkpoint: nil, configPath: "config.json", randomSeed: 1) else { return 0 }
    try? model.prefill([0, v - 1, v / 2])
    try? model.decode(0)
    _ = Fuzz.checksum(model.lastLogits.baseAddress!, model.lastLogits.count)
    _ = try? model.loadState(model.saveState())
    return 0
}

@_cdecl("FuzzConfigMamba_main")
public func entryPoint(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    Fuzz.main(argc, argv, fuzzConfigMamba)
}
