import FuzzCommon
import Foundation
@testable import Orochi

// config.json of a Llama-family model: decode, validate, rope parameters, and — when the model
// is small enough (Fuzz.maxFloats) — construction with random weights and a few tokens.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfigLlama(_ pointer: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let data = pointer ?? UnsafePointer(bitPattern: 1)!
    let json = Data(bytes: data, count: size)
    _ = try? JSONDecoder().decode(ConfigHeader.self, from: json)
    guard let config = try? JSONDecoder().decode(LlamaConfig.self, from: json) else { return 0 }
    guard (try? config.validate(path: "config.json")) != nil else { return 0 }
    guard (try? config.rope(path: "config.json")) != nil else { return 0 }
    // Size guard, with overflow-checked arithmetic (the guard itself must not trap).
    let d = config.hidden_size, f = config.intermediate_size, l = config.num_hidden_layers
    let h = config.num_attention_heads, g = config.kvHeads, hd = config.headDim, v = config.vocab_size
    // The CLI passes no context unless asked: the model then takes min(max_position_embeddings, 4096).
    // Small (or nonsensical) limits go through that default path; larger ones get a 64-token context.
    let maxPositions = config.max_position_embeddings ?? 4096
    let requested: Int? = maxPositions <= 64 ? nil : 64
    let context = max(0, min(maxPositions, 64))
    guard let perLayer = Fuzz.sum(Fuzz.product(2, h, hd, d), Fuzz.product(2, g, hd, d), Fuzz.product(3, d, f),
                                  Fuzz.product(2, g, hd, context), Fuzz.product(128, context)),
          let total = Fuzz.sum(Fuzz.product(l, perLayer), Fuzz.product(2, v, d)),
          total <= Fuzz.maxFloats
    else { return 0 }
    guard let model = try? BlockModel(config: config, checkpoint: nil, configPath: "config.json", context: requested,
                                      randomSeed: 1) else { return 0 }
    precondition(model.contextCapacity > 0, "a model was built with a context of \(model.contextCapacity) tokens")
    let tokens = [0, v - 1, v / 2].prefix(min(3, context))
    try? model.prefill(Array(tokens))
    if model.position < context { try? model.decode(0) }
    _ = Fuzz.checksum(model.lastLogits.baseAddress!, model.lastLogits.count)
    _ = try? model.loadState(model.saveState())
    return 0
}

@_cdecl("FuzzConfigLlama_main")
public func entryPoint(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    Fuzz.main(argc, argv, fuzzConfigLlama)
}
