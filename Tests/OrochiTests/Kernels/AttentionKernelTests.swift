import Foundation
import Testing
@testable import Orochi

/// The fused one-token attention (scores, online softmax and weighted values in one pass over
/// the cache) against a naive double-precision softmax(q·Kᵀ·scale)·V, for head sizes with and
/// without a specialised kernel, grouped and ungrouped heads, windows that start past row 0,
/// f32 and f16 caches, every kernel family this CPU has, on one thread and two.
struct AttentionKernelTests {
    @Test(arguments: [(1, 1, 8), (4, 4, 32), (8, 2, 64), (6, 3, 128), (2, 1, 80), (9, 1, 64)])
    func matchesNaiveAttention(_ shape: (Int, Int, Int)) {
        let (heads, kvHeads, d) = shape
        let capacity = 300, first = 7, n = 280, group = heads / kvHeads
        var rng = SplitMix64(seed: UInt64(heads * 100 + d))
        let keys = (0..<(kvHeads * capacity * d)).map { _ in rng.nextUnitFloat() * 2 - 1 }
        let values = (0..<(kvHeads * capacity * d)).map { _ in rng.nextUnitFloat() * 2 - 1 }
        let q = (0..<(heads * d)).map { _ in (rng.nextUnitFloat() * 2 - 1) * 3 }
        let scale = 1 / Float(d).squareRoot()
        let threadsBefore = BLAS.threads
        defer { BLAS.threads = threadsBefore; KernelInfo.force(nil) }
        for cache in [WeightType.f32, .f16] {
            // The cache as the kernel sees it, and the values the reference uses (rounded as stored).
            let k16 = keys.map { Float16($0).bitPattern }, v16 = values.map { Float16($0).bitPattern }
            let kRef = cache == .f16 ? k16.map { Double(Float16(bitPattern: $0)) } : keys.map(Double.init)
            let vRef = cache == .f16 ? v16.map { Double(Float16(bitPattern: $0)) } : values.map(Double.init)
            var expected = [Double](repeating: 0, count: heads * d)
            for h in 0..<heads {
                let g = h / group
                let scores = (first..<first + n).map { j in
                    (0..<d).reduce(0.0) { $0 + Double(q[h * d + $1]) * kRef[(g * capacity + j) * d + $1] } * Double(scale)
                }
                let top = scores.max()!
                let weights = scores.map { Foundation.exp($0 - top) }
                let total = weights.reduce(0, +)
                for (i, j) in (first..<first + n).enumerated() {
                    for c in 0..<d { expected[h * d + c] += weights[i] / total * vRef[(g * capacity + j) * d + c] }
                }
            }
            for family in ["portable", "avx2", "avx512"] where KernelInfo.force(family) == family {
                for threads in [1, 2] {
                    BLAS.threads = threads
                    var out = [Float](repeating: .nan, count: heads * d)
                    func run(_ k: UnsafeRawPointer, _ v: UnsafeRawPointer) {
                        attendOneToken(q: q, heads: heads, kvHeads: kvHeads, headDim: d, keys: k, values: v, cacheType: cache,
                                       capacity: capacity, first: first, count: n, scale: scale, into: &out)
                    }
                    if cache == .f16 {
                        k16.withUnsafeBytes { k in v16.withUnsafeBytes { v in run(k.baseAddress!, v.baseAddress!) } }
                    } else {
                        keys.withUnsafeBytes { k in values.withUnsafeBytes { v in run(k.baseAddress!, v.baseAddress!) } }
                    }
                    let worst = zip(out, expected).map { abs(Double($0) - $1) }.max()!
                    #expect(worst < 2e-5, "\(heads)/\(kvHeads) heads, d \(d), \(cache) cache, \(family), \(threads) threads: max error \(worst)")
                }
            }
        }
    }
}
