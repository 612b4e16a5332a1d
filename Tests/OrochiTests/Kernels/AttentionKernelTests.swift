import Foundation
import Testing
@testable import Orochi

/// The fused one-token attention (scores, online softmax and weighted values in one pass over
/// the cache) against a naive double-precision softmax(q·Kᵀ·scale)·V, for head sizes with and
/// without a specialised kernel, grouped and ungrouped heads, windows that start past row 0,
/// f32 and f16 caches, every kernel family this CPU has, on one thread and two.
struct AttentionKernelTests {
    @Test(arguments: [(1, 1, 8), (4, 4, 32), (8, 2, 64), (6, 3, 128), (2, 1, 80), (9, 1, 64),
                      // Head sizes past the kernels' 512-float rows (fewer heads a pass; the last on the heap).
                      (16, 2, 513), (4, 1, 576), (2, 1, 1024), (2, 2, 4096), (1, 1, 5000)])
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

    /// One tile of prefill's online softmax against the same step in double precision: rows that
    /// see all, some or none of the tile's keys (causal edge, window edge), tile widths that are not
    /// a multiple of a vector, rows with a running maximum below, above or without (−∞) the tile's.
    @Test(arguments: [(0, 37, 0), (64, 256, 0), (300, 29, 100), (40, 200, 16)])
    func softmaxTileMatchesTheEquations(_ shape: (Int, Int, Int)) {
        let (c0, n, window) = shape
        let rows = 24, d = 40, ldo = 56
        let pos0 = c0 + n / 2 - rows / 2                       // rows before, inside and past the tile's last key
        var rng = SplitMix64(seed: UInt64(c0 * 1000 + n))
        let scores = (0..<(rows * n)).map { _ in (rng.nextUnitFloat() * 2 - 1) * 6 }
        let startMax: [Float] = (0..<rows).map { r in r % 3 == 0 ? -.infinity : (rng.nextUnitFloat() * 2 - 1) * 6 }
        let startSum: [Float] = startMax.map { $0 == -.infinity ? 0 : 1 + rng.nextUnitFloat() * 5 }
        let startOut = (0..<(rows * ldo)).map { _ in rng.nextUnitFloat() * 2 - 1 }
        defer { KernelInfo.force(nil) }
        for family in ["portable", "avx2", "avx512"] where KernelInfo.force(family) == family {
            var s = scores, rowMax = startMax, rowSum = startSum, out = startOut
            softmaxTile(&s, rows: rows, keys: n, firstKey: c0, firstPosition: pos0, window: window == 0 ? nil : window,
                        rowMax: &rowMax, rowSum: &rowSum, out: &out, outStride: ldo, headDim: d)
            for r in 0..<rows {
                let pos = pos0 + r
                let visible = (c0..<c0 + n).filter { $0 <= pos && (window == 0 || $0 > pos - window) }
                let row = (0..<n).map { Double(scores[r * n + $0]) }
                let seen = visible.map { row[$0 - c0] }
                let m = max(Double(startMax[r]), seen.max() ?? -.infinity)
                let c = startMax[r] == -.infinity || seen.isEmpty ? (seen.isEmpty ? 1 : 0) : Foundation.exp(Double(startMax[r]) - m)
                let p = (0..<n).map { j in visible.contains(c0 + j) ? Foundation.exp(row[j] - m) : 0 }
                let what = "\(family), tile at \(c0) of \(n), window \(window), row at \(pos)"
                #expect(zip(s[(r * n)..<((r + 1) * n)], p).allSatisfy { abs(Double($0) - $1) <= 1e-6 * max(1, $1) }, "\(what): probabilities")
                if seen.isEmpty {
                    #expect(rowMax[r] == startMax[r] && rowSum[r] == startSum[r], "\(what): a row that sees nothing keeps its state")
                    continue
                }
                #expect(Double(rowMax[r]) == m, "\(what): maximum")
                let sum = Double(startSum[r]) * c + p.reduce(0, +)
                #expect(abs(Double(rowSum[r]) - sum) <= 1e-5 * sum, "\(what): sum \(rowSum[r]) against \(sum)")
                for i in 0..<ldo {
                    let expected = i < d ? Double(startOut[r * ldo + i]) * c : Double(startOut[r * ldo + i])   // past d: untouched
                    #expect(abs(Double(out[r * ldo + i]) - expected) <= 1e-6, "\(what): output column \(i)")
                }
            }
        }
    }

    /// The tile's two products (S = scale·Q·Kᵀ, O += P·V) against double precision, in every
    /// kernel family: row counts that are not a multiple of the 4-row blocks, key counts that end
    /// inside a vector and inside a 64-key block, head sizes with a partial last vector (20, 100)
    /// and the common ones; Q and O rows wider apart than a head, and what lies between untouched;
    /// causal tiles (row r sees keys ≤ r + diagonal), with rows that see nothing, and full ones.
    @Test(arguments: [(1, 1, 32, nil), (5, 17, 20, 3), (128, 256, 32, 128), (128, 256, 32, nil), (13, 100, 64, -5),
                      (7, 65, 100, 60), (9, 31, 128, nil), (3, 8, 8, 0)] as [(Int, Int, Int, Int?)])
    func tileProductsMatchTheEquations(_ shape: (Int, Int, Int, Int?)) {
        let (rows, n, d, diagonal) = shape
        let ldq = d + 5, ldo = d + 3, scale: Float = 0.37
        func sees(_ r: Int, _ c: Int) -> Bool { diagonal.map { c <= r + $0 } ?? true }
        var rng = SplitMix64(seed: UInt64(rows * 10_000 + n * 100 + d))
        func random(_ count: Int) -> [Float] { (0..<count).map { _ in rng.nextUnitFloat() * 2 - 1 } }
        let q = random(rows * ldq), k = random(n * d), v = random(n * d)
        let p = random(rows * n).enumerated().map { i, x in sees(i / n, i % n) ? max(0, x) : 0 }   // 0 where unseen, as softmax leaves it
        let startOut = random(rows * ldo)
        defer { KernelInfo.force(nil) }
        for family in ["portable", "avx2", "avx512"] where KernelInfo.force(family) == family {
            var s = [Float](repeating: .nan, count: rows * n)
            var kt = [Float](repeating: .nan, count: d * attentionKeyColumns(n))
            attentionScores(q, queryStride: ldq, rows: rows, keys: k, count: n, headDim: d, scale: scale, diagonal: diagonal,
                            transposedKeys: &kt, into: &s)
            var out = startOut
            attentionValues(p, rows: rows, keys: n, diagonal: diagonal, values: v, headDim: d, into: &out, outStride: ldo)
            let what = "\(family), \(rows) rows × \(n) keys, head size \(d), diagonal \(diagonal.map(String.init) ?? "none")"
            var wrongScores = 0, wrongOut = 0
            for r in 0..<rows {
                for c in 0..<n where sees(r, c) {
                    let want = Double(scale) * (0..<d).reduce(0.0) { $0 + Double(q[r * ldq + $1]) * Double(k[c * d + $1]) }
                    if !(abs(Double(s[r * n + c]) - want) <= 1e-5) { wrongScores += 1 }     // NaN: never written
                }
                for i in 0..<ldo {
                    let add = i < d ? (0..<n).reduce(0.0) { $0 + Double(p[r * n + $1]) * Double(v[$1 * d + i]) } : 0
                    if !(abs(Double(out[r * ldo + i]) - (Double(startOut[r * ldo + i]) + add)) <= 1e-5) { wrongOut += 1 }
                }
            }
            #expect(wrongScores == 0, "\(what): \(wrongScores) wrong scores")
            #expect(wrongOut == 0, "\(what): \(wrongOut) wrong outputs")
        }
    }

    /// A NaN score (from a NaN weight) must come out as NaN, for the finite-logits check to catch,
    /// in every kernel family: a clamp inside the vector exponential once turned it into e⁻⁸⁷.
    @Test func softmaxTileKeepsNaN() {
        defer { KernelInfo.force(nil) }
        for family in ["portable", "avx2", "avx512"] where KernelInfo.force(family) == family {
            var s = (0..<40).map { Float($0) * 0.1 }
            s[21] = .nan
            var rowMax: [Float] = [-.infinity], rowSum: [Float] = [0], out = [Float](repeating: 1, count: 8)
            softmaxTile(&s, rows: 1, keys: 40, firstKey: 0, firstPosition: 39, window: nil,
                        rowMax: &rowMax, rowSum: &rowSum, out: &out, outStride: 8, headDim: 8)
            #expect(rowSum[0].isNaN && s[21].isNaN, "\(family): sum \(rowSum[0])")
        }
    }
}
