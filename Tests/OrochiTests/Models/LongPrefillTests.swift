import Foundation
import Testing
@testable import Orochi

/// Prefill attention goes by tiles (blocks of query rows and of keys, softmax online) and over
/// 512-token chunks; decode attends in one fused pass. Over a prompt long enough for several tiles,
/// chunks and a sliding window, the two must give the same logits at every position.
struct LongPrefillTests {
    @Test(arguments: [(nil, WeightType.f32), (300, .f32), (nil, .f16), (100, .f16)] as [(Int?, WeightType)])
    func tiledPrefillEqualsTokenByTokenDecode(_ setup: (Int?, WeightType)) throws {
        let (window, cache) = setup
        var config = LlamaConfig(hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2, num_attention_heads: 4,
                                 num_key_value_heads: 2, vocab_size: 50, max_position_embeddings: 2048)
        config.model_type = "mistral"
        config.sliding_window = window
        let n = 700
        var rng = SplitMix64(seed: 11)
        let ids = (0..<n).map { _ in Int(rng.next() % 50) }
        let prefilled = try BlockModel(config: config, checkpoint: nil, configPath: "test", context: 1024, randomSeed: 5, kvCache: cache)
        let decoded = try BlockModel(config: config, checkpoint: nil, configPath: "test", context: 1024, randomSeed: 5, kvCache: cache)
        var all = [Float](repeating: .nan, count: n * 50)
        try all.withUnsafeMutableBufferPointer { try prefilled.prefill(ids, allLogits: $0.baseAddress!) }
        for (i, id) in ids.enumerated() {
            try decoded.decode(id)
            if i % 37 == 0 || i == n - 1 || i == 511 || i == 512 {
                let error = relativeError(decoded.lastLogits, all[(i * 50)..<((i + 1) * 50)])
                #expect(error < 1e-4, "window \(String(describing: window)), \(cache) cache: position \(i) relative error \(error)")
            }
        }
    }
}

/// Head sizes past 512 (the decode kernel kept 512 floats a head on its stack: wrong output from
/// 513, a crash from about 2,048): decode token by token equals the tiled prefill, for Llama
/// (RoPE, so even sizes) and Jamba's attention (no positions, so 513 too). The kernel itself is
/// held to a double-precision reference at these sizes in AttentionKernelTests.
struct LargeHeadTests {
    @Test(arguments: [576, 1024, 4096])
    func llamaDecodeEqualsPrefill(_ headDim: Int) throws {
        let config = LlamaConfig(hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 4,
                                 num_key_value_heads: 2, head_dim: headDim, vocab_size: 40, max_position_embeddings: 256)
        try Self.compare(try BlockModel(config: config, checkpoint: nil, configPath: "test", context: 64, randomSeed: 3),
                         try BlockModel(config: config, checkpoint: nil, configPath: "test", context: 64, randomSeed: 3), "llama d \(headDim)")
    }

    @Test(arguments: [513, 1024])
    func jambaDecodeEqualsPrefill(_ headDim: Int) throws {
        let config = JambaConfig(vocab_size: 40, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 8,
                                 num_key_value_heads: 1, head_dim: headDim, max_position_embeddings: 256, num_experts: 1, num_experts_per_tok: 1,
                                 attn_layer_period: 2, attn_layer_offset: 1)
        try Self.compare(try BlockModel(config: config, checkpoint: nil, configPath: "test", context: 64, randomSeed: 3),
                         try BlockModel(config: config, checkpoint: nil, configPath: "test", context: 64, randomSeed: 3), "jamba d \(headDim)")
    }

    static func compare(_ prefilled: BlockModel, _ decoded: BlockModel, _ what: String) throws {
        let n = 40, vocab = prefilled.info.vocabSize
        var rng = SplitMix64(seed: 9)
        let ids = (0..<n).map { _ in Int(rng.next() % UInt64(vocab)) }
        var all = [Float](repeating: .nan, count: n * vocab)
        try all.withUnsafeMutableBufferPointer { try prefilled.prefill(ids, allLogits: $0.baseAddress!) }
        for (i, id) in ids.enumerated() {
            try decoded.decode(id)
            let error = relativeError(decoded.lastLogits, all[(i * vocab)..<((i + 1) * vocab)])
            #expect(error < 1e-4, "\(what): position \(i) relative error \(error)")
            #expect(decoded.lastLogits.allSatisfy { $0.isFinite }, "\(what): position \(i)")
        }
    }
}
