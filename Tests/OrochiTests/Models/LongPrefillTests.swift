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
