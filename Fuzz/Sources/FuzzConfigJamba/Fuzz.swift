import FuzzCommon
import Foundation
@testable import Orochi

// config.json of a Jamba model: decode, validate (layer pattern, experts, sizes), and — when
// small enough (Fuzz.maxFloats) — construction with random weights, a few tokens and a snapshot.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfigJamba(_ pointer: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let data = pointer ?? UnsafePointer(bitPattern: 1)!
    let json = Data(bytes: data, count: size)
    _ = try? JSONDecoder().decode(ConfigHeader.self, from: json)
    guard let config = try? JSONDecoder().decode(JambaConfig.self, from: json) else { return 0 }
    guard (try? config.validate(path: "config.json")) != nil else { return 0 }
    // Size guard with overflow-checked arithmetic: every layer counted as both kinds, with all experts.
    let d = config.hidden_size, e = config.innerSize, n = config.mamba_d_state, r = config.dtRank
    let k = config.mamba_d_conv, l = config.num_hidden_layers, v = config.vocab_size, f = config.intermediate_size
    let h = config.num_attention_heads, g = config.num_key_value_heads, hd = config.headDim, x = config.num_experts
    let context = max(0, min(config.max_position_embeddings, 64))
    guard let mixer = Fuzz.sum(Fuzz.product(3, e, d), Fuzz.product(k, e), Fuzz.sum(r, Fuzz.product(2, n)).flatMap { Fuzz.product($0, e) },
                               Fuzz.product(e, r), Fuzz.product(3, e, n), Fuzz.product(256, 6, e)),
          let attention = Fuzz.sum(Fuzz.product(2, h, hd, d), Fuzz.product(2, g, hd, d), Fuzz.product(2, g, hd, context),
                                   Fuzz.product(128, context), Fuzz.product(256, 2, h, hd)),
          let ffn = Fuzz.sum(Fuzz.product(x, 3, f, d), Fuzz.product(256, 2, f), Fuzz.product(256, 2, d)),
          let total = Fuzz.sum(Fuzz.product(l, Fuzz.sum(mixer, attention, ffn) ?? Int.max), Fuzz.product(2, v, d)),
          total <= Fuzz.maxFloats
    else { return 0 }
    guard let model = try? BlockModel(config: config, checkpoint: nil, configPath: "config.json",
                                      context: config.max_position_embeddings <= 64 ? nil : 64, randomSeed: 1) else { return 0 }
    precondition(model.contextCapacity > 0, "a model was built with a context of \(model.contextCapacity) tokens")
    try? model.prefill(Array([0, v - 1, v / 2].prefix(min(3, context))))
    if model.position < context { try? model.decode(0) }
    _ = Fuzz.checksum(model.lastLogits.baseAddress!, model.lastLogits.count)
    _ = try? model.loadState(model.saveState())
    return 0
}

@_cdecl("FuzzConfigJamba_main")
public func entryPoint(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    Fuzz.main(argc, argv, fuzzConfigJamba)
}
