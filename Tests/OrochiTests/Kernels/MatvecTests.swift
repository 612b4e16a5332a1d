import Foundation
import Testing
@testable import Orochi

struct MatvecTests {
    /// Our one-token kernels, for every weight type and every kernel family this CPU has, agree
    /// with a naive double-precision product of the same (rounded) weights, for shapes that leave
    /// row and column remainders, on one thread and on two, with and without accumulation.
    @Test(arguments: [(1, 1), (3, 15), (4, 16), (7, 33), (48, 512), (130, 70), (600, 300)])
    func matchesNaiveProduct(_ shape: (Int, Int)) {
        let (n, k) = shape
        var rng = SplitMix64(seed: UInt64(n * 1000 + k))
        let w32 = (0..<(n * k)).map { _ in rng.nextUnitFloat() - 0.5 }
        let x = (0..<k).map { _ in rng.nextUnitFloat() - 0.5 }
        let start = (0..<n).map { _ in rng.nextUnitFloat() }
        let w16 = w32.map { Float16($0).bitPattern }
        let wb16 = w32.map { UInt16($0.bitPattern >> 16) }          // bf16 by truncation
        let threadsBefore = BLAS.threads
        defer { BLAS.threads = threadsBefore; KernelInfo.force(nil) }
        for type in WeightType.floats {
            let rounded: [Float] = switch type {
            case .f32: w32
            case .f16: w16.map { Float(Float16(bitPattern: $0)) }
            case .bf16: wb16.map { Float(bitPattern: UInt32($0) << 16) }
            default: fatalError("float types only")
            }
            let expected = (0..<n).map { i in (0..<k).reduce(0.0) { $0 + Double(rounded[i * k + $1]) * Double(x[$1]) } }
            for family in ["portable", "avx2", "avx512"] where KernelInfo.force(family) == family {
                for threads in [1, 2] {
                    BLAS.threads = threads
                    for accumulate in [false, true] {
                        var y = start
                        func run(_ raw: UnsafeRawPointer) {
                            WeightMatrix(raw: raw, type: type, rows: n, columns: k).matvec(x, into: &y, accumulate: accumulate)
                        }
                        switch type {
                        case .f32: w32.withUnsafeBytes { run($0.baseAddress!) }
                        case .f16: w16.withUnsafeBytes { run($0.baseAddress!) }
                        case .bf16: wb16.withUnsafeBytes { run($0.baseAddress!) }
                        default: fatalError("float types only")
                        }
                        for i in 0..<n {
                            let want = expected[i] + (accumulate ? Double(start[i]) : 0)
                            #expect(abs(Double(y[i]) - want) < 1e-4, "\(type) \(family) \(threads) threads, row \(i)")
                        }
                    }
                }
            }
        }
    }

    /// The few-tokens kernel (a batch of sequences decoding together): for 1 to 9 tokens, with
    /// strided input and output rows, every weight type and kernel family, one and two threads,
    /// it gives each token what the one-token kernel gives it.
    @Test(arguments: [(3, 15), (5, 17), (48, 512), (130, 70), (600, 300)])
    func fewTokensMatchOneTokenAtATime(_ shape: (Int, Int)) {
        let (n, k) = shape
        var rng = SplitMix64(seed: UInt64(n * 77 + k))
        let weights = RandomWeights(rows: n, columns: k, &rng)
        let ldx = k + 3, ldy = n + 5
        let threadsBefore = BLAS.threads
        defer { BLAS.threads = threadsBefore; KernelInfo.force(nil) }
        for type in WeightType.floats {
            func withWeights(_ body: (WeightMatrix) -> Void) { weights.with(type, body) }
            for family in ["portable", "avx2", "avx512"] where KernelInfo.force(family) == family {
                for threads in [1, 2] {
                    BLAS.threads = threads
                    for m in Array(1...9) + [17, 40] {        // up to Linear.fewTokensHalf: prefills of half-precision weights
                        let x = (0..<(m * ldx)).map { _ in rng.nextUnitFloat() - 0.5 }
                        let start = (0..<(m * ldy)).map { _ in rng.nextUnitFloat() }
                        for accumulate in [false, true] {
                            var y = start, expected = start
                            withWeights { w in
                                w.matvecMulti(x, rows: m, ldx: ldx, into: &y, ldy: ldy, accumulate: accumulate)
                                for i in 0..<m {
                                    x.withUnsafeBufferPointer { xs in expected.withUnsafeMutableBufferPointer { e in
                                        w.matvec(xs.baseAddress! + i * ldx, into: e.baseAddress! + i * ldy, accumulate: accumulate)
                                    } }
                                }
                            }
                            var worst: Float = 0
                            for i in 0..<m { for r in 0..<n { worst = max(worst, abs(y[i * ldy + r] - expected[i * ldy + r])) } }
                            #expect(worst < 1e-5, "\(type) \(family) \(threads) threads, \(m) tokens, accumulate \(accumulate): \(worst)")
                            // The gaps between strided rows are left alone.
                            for i in 0..<m { for r in n..<ldy { #expect(y[i * ldy + r] == start[i * ldy + r]) } }
                        }
                    }
                }
            }
        }
    }

    /// Two or three one-token products of the same input as one job for the threads (a layer's
    /// q, k and v; its gate and up): each output equals that matrix's own one-token product, for
    /// mixed storage types, every kernel family, one and two threads, groups too small to split
    /// and large ones whose chunks span the matrices; no output row past a matrix's own is written.
    @Test(arguments: [[256, 128, 128], [688, 688], [7, 33, 600], [3, 5]])
    func groupedProductsMatchEachProductAlone(_ rows: [Int]) {
        let k = rows.count == 2 ? 256 : rows[0] == 7 ? 70 : 15
        var rng = SplitMix64(seed: UInt64(rows.reduce(k, +)))
        let matrices = rows.map { RandomWeights(rows: $0, columns: k, &rng) }
        let x = (0..<k).map { _ in rng.nextUnitFloat() - 0.5 }
        let threadsBefore = BLAS.threads
        defer { BLAS.threads = threadsBefore; KernelInfo.force(nil) }
        let types: [WeightType] = [.f16, .f32, .bf16]
        for family in ["portable", "avx2", "avx512"] where KernelInfo.force(family) == family {
            for threads in [1, 2] {
                BLAS.threads = threads
                let guardRows = 5
                let grouped = rows.map { n -> UnsafeMutablePointer<Float> in
                    let p = UnsafeMutablePointer<Float>.allocate(capacity: n + guardRows)
                    p.initialize(repeating: .nan, count: n + guardRows)
                    return p
                }
                defer { grouped.forEach { $0.deallocate() } }
                var alone = rows.map { [Float](repeating: 0, count: $0) }
                for (i, m) in matrices.enumerated() {
                    m.with(types[i]) { w in x.withUnsafeBufferPointer { w.matvec($0.baseAddress!, into: &alone[i]) } }
                }
                func run(_ ws: [WeightMatrix]) {
                    x.withUnsafeBufferPointer { xs in
                        WeightMatrix.products(xs.baseAddress!, rows: 1, (ws[0], grouped[0]), (ws[1], grouped[1]), ws.count == 3 ? (ws[2], grouped[2]) : nil)
                    }
                }
                // The matrices' storage stays alive while the group runs.
                matrices[0].with(types[0]) { w0 in matrices[1].with(types[1]) { w1 in
                    if matrices.count == 3 { matrices[2].with(types[2]) { w2 in run([w0, w1, w2]) } } else { run([w0, w1]) }
                } }
                for i in rows.indices {
                    let out = Array(UnsafeBufferPointer(start: grouped[i], count: rows[i] + guardRows))
                    let differing = zip(out.prefix(rows[i]), alone[i]).filter { $0 != $1 }.count
                    #expect(differing == 0, "\(family) \(threads) threads, matrix \(i) (\(rows[i]) rows): \(differing) values differ")
                    let untouched = out.suffix(guardRows).allSatisfy { $0.isNaN }
                    #expect(untouched, "\(family) \(threads) threads, matrix \(i): rows past its end written")
                }
            }
        }
    }

    /// The same for a few and many tokens (a prefill's q, k and v through our multi-token kernel as
    /// one job): each output equals that matrix's own product by the same kernel, row for row.
    @Test(arguments: [[256, 128, 128], [688, 688], [7, 33, 600], [200, 80]])
    func groupedProductsOfManyTokensMatchEachAlone(_ rows: [Int]) {
        let k = rows.count == 2 ? (rows[0] == 688 ? 256 : 300) : rows[0] == 7 ? 70 : 96
        var rng = SplitMix64(seed: UInt64(rows.reduce(3 * k, +)))
        let matrices = rows.map { RandomWeights(rows: $0, columns: k, &rng) }
        let scratch = FloatBuffer(count: 1 << 16)
        let threadsBefore = BLAS.threads
        defer { BLAS.threads = threadsBefore; BLAS.setGEMM(.automatic); KernelInfo.force(nil) }
        BLAS.setGEMM(.orochi)                                      // many tokens through our kernel, as a group takes them
        let types: [WeightType] = [.bf16, .f32, .f16]
        for family in ["portable", "avx2", "avx512"] where KernelInfo.force(family) == family {
            for threads in [1, 2] {
                BLAS.threads = threads
                for m in [3, 17, 70] {
                    let x = (0..<(m * k)).map { _ in rng.nextUnitFloat() - 0.5 }
                    let grouped = rows.map { n -> UnsafeMutablePointer<Float> in
                        let p = UnsafeMutablePointer<Float>.allocate(capacity: m * n + 7)
                        p.initialize(repeating: .nan, count: m * n + 7)
                        return p
                    }
                    defer { grouped.forEach { $0.deallocate() } }
                    var alone = rows.map { [Float](repeating: 0, count: m * $0) }
                    for (i, w) in matrices.enumerated() {
                        w.with(types[i]) { w in
                            if m <= 16 { w.matvecMulti(x, rows: m, into: &alone[i]) }
                            else { w.matmul(x, rows: m, into: &alone[i], scratch: scratch.pointer, scratchCount: scratch.count) }
                        }
                    }
                    func run(_ ws: [WeightMatrix]) {
                        x.withUnsafeBufferPointer { xs in
                            WeightMatrix.products(xs.baseAddress!, rows: m, (ws[0], grouped[0]), (ws[1], grouped[1]),
                                                ws.count == 3 ? (ws[2], grouped[2]) : nil)
                        }
                    }
                    matrices[0].with(types[0]) { w0 in matrices[1].with(types[1]) { w1 in
                        if matrices.count == 3 { matrices[2].with(types[2]) { w2 in run([w0, w1, w2]) } } else { run([w0, w1]) }
                    } }
                    for i in rows.indices {
                        let out = Array(UnsafeBufferPointer(start: grouped[i], count: m * rows[i] + 7))
                        let differing = zip(out.prefix(m * rows[i]), alone[i]).filter { $0 != $1 }.count   // a count: printing 40,000 values would take minutes
                        #expect(differing == 0, "\(family) \(threads) threads, \(m) tokens, matrix \(i) (\(rows[i]) rows): \(differing) values differ")
                        let untouched = out.suffix(7).allSatisfy { $0.isNaN }
                        #expect(untouched, "\(family) \(threads) threads, \(m) tokens, matrix \(i): written past its end")
                    }
                }
            }
        }
    }

    /// Products of many tokens through our multi-token kernel (what runs when OpenBLAS has only SSE
    /// kernels) equal OpenBLAS's sgemm, for every storage type, with and without accumulating.
    /// Short inner sizes (k < 128, Mamba's dt_proj) take packed panels of 64 rows: partial panels,
    /// one thread (40 × 16) and several.
    @Test(arguments: [(130, 70), (600, 300), (64, 768), (40, 16), (1536, 48), (300, 1100)])
    func ownProductsOfManyTokensMatchOpenBLAS(_ shape: (Int, Int)) {
        let (n, k) = shape
        var rng = SplitMix64(seed: UInt64(n * 31 + k))
        let weights = RandomWeights(rows: n, columns: k, &rng)
        let scratch = FloatBuffer(count: 1 << 16)
        defer { BLAS.setGEMM(.automatic); KernelInfo.force(nil) }
        guard KernelInfo.force("avx512") == "avx512" else { return }     // the kernel is AVX-512's
        for type in WeightType.floats {
            func withWeights(_ body: (WeightMatrix) -> Void) { weights.with(type, body) }
            for m in [17, 70, 131] {
                let x = (0..<(m * k)).map { _ in rng.nextUnitFloat() - 0.5 }
                let start = (0..<(m * n)).map { _ in rng.nextUnitFloat() }
                for accumulate in [false, true] {
                    var ours = start, theirs = start
                    withWeights { w in
                        BLAS.setGEMM(.orochi)
                        w.matmul(x, rows: m, into: &ours, accumulate: accumulate, scratch: scratch.pointer, scratchCount: scratch.count)
                        BLAS.setGEMM(.openBLAS)
                        w.matmul(x, rows: m, into: &theirs, accumulate: accumulate, scratch: scratch.pointer, scratchCount: scratch.count)
                    }
                    let worst = zip(ours, theirs).map { abs($0 - $1) }.max() ?? 0
                    #expect(worst < 1e-4, "\(type) \(n)×\(k), \(m) tokens, accumulate \(accumulate): \(worst)")
                }
            }
        }
    }

    /// Widening half-precision rows (the embedding lookup and prefill's sgemm input) is exact,
    /// and narrowing to f16 rounds as Swift's Float16 does.
    @Test func conversionsAreExact() {
        var rng = SplitMix64(seed: 7)
        let values = (0..<1000).map { _ in (rng.nextUnitFloat() - 0.5) * 1000 } + [0, -0.0, 65504, 1e-7, 6e-5, .infinity]
        var half = [UInt16](repeating: 0, count: values.count)
        narrowToHalf(values, into: &half, count: values.count)
        #expect(half == values.map { Float16($0).bitPattern })
        var back = [Float](repeating: 0, count: values.count)
        half.withUnsafeBytes { WeightMatrix(raw: $0.baseAddress!, type: .f16, rows: 1, columns: values.count).row(0, into: &back) }
        #expect(back == half.map { Float(Float16(bitPattern: $0)) })
    }
}

/// The vectorised SiLU (Mamba's conv with a unit filter, every kernel family) and SwiGLU agree
/// with x·σ(x) computed in double precision, over the whole float range a layer produces and on
/// tails shorter than a vector.
struct ActivationTests {
    @Test func siluAndSwigluMatchDoublePrecision() {
        var rng = SplitMix64(seed: 3)
        let n = 1000 + 7
        let x = (0..<n).map { i in i < 8 ? [-200, -90, -20, -1e-3, 0, 1e-3, 20, 90][i] : (rng.nextUnitFloat() - 0.5) * 40 } as [Float]
        let up = (0..<n).map { _ in rng.nextUnitFloat() * 4 - 2 }
        func silu(_ v: Float) -> Double { Double(v) / (1 + Foundation.exp(-Double(v))) }
        defer { KernelInfo.force(nil) }
        for family in ["portable", "avx2", "avx512"] where KernelInfo.force(family) == family {
            var s = [Float](repeating: .nan, count: n), state: [Float] = [0]
            CausalConv.forward(x, ldx: 1, steps: n, channels: 1, kernel: 1, weight: [1], bias: nil, state: &state, silu: true, into: &s)
            for i in 0..<n {
                #expect(abs(Double(s[i]) - silu(x[i])) <= 1e-6 * max(1, abs(silu(x[i]))), "\(family) silu(\(x[i])) = \(s[i])")
            }
        }
        var g = x
        Kernels.swiglu(&g, up, count: n)
        for i in 0..<n {
            #expect(abs(Double(g[i]) - silu(x[i]) * Double(up[i])) <= 1e-6 * max(1, abs(silu(x[i]) * Double(up[i]))), "swiglu at \(i)")
        }
    }

    /// A prefill's RMSNorm and SwiGLU split their rows over the threads (from 32,768 elements): every
    /// row and element against double precision, on 2 threads, with sizes that split unevenly.
    @Test func prefillSizedNormAndSwigluMatchDoublePrecision() {
        var rng = SplitMix64(seed: 11)
        let threadsBefore = BLAS.threads
        defer { BLAS.threads = threadsBefore }
        BLAS.threads = 2
        let rows = 203, dim = 250, n = rows * dim
        let x = (0..<n).map { _ in (rng.nextUnitFloat() - 0.5) * 8 }, w = (0..<dim).map { _ in rng.nextUnitFloat() + 0.5 }
        var y = [Float](repeating: .nan, count: n)
        Kernels.rmsNorm(rows: rows, x, weight: w, into: &y, count: dim, eps: 1e-5)
        var wrongNorm = 0
        for r in 0..<rows {
            let row = (0..<dim).map { Double(x[r * dim + $0]) }
            let scale = 1 / (row.map { $0 * $0 }.reduce(0, +) / Double(dim) + 1e-5).squareRoot()
            for i in 0..<dim where !(abs(Double(y[r * dim + i]) - row[i] * scale * Double(w[i])) <= 1e-5) { wrongNorm += 1 }
        }
        #expect(wrongNorm == 0, "\(wrongNorm) wrong RMSNorm outputs")
        let up = (0..<n).map { _ in rng.nextUnitFloat() * 4 - 2 }
        var g = x
        Kernels.swiglu(&g, up, count: n)
        let wrongSwiglu = (0..<n).filter { i in
            let want = Double(x[i]) / (1 + Foundation.exp(-Double(x[i]))) * Double(up[i])
            return !(abs(Double(g[i]) - want) <= 1e-6 * max(1, abs(want)))
        }.count
        #expect(wrongSwiglu == 0, "\(wrongSwiglu) wrong SwiGLU outputs")
    }
}

/// A random [rows, columns] matrix in f32 and the same values narrowed to f16 and bf16.
struct RandomWeights {
    let rows: Int, columns: Int
    let f32: [Float], f16: [UInt16], bf16: [UInt16]

    init(rows: Int, columns: Int, _ rng: inout SplitMix64) {
        self.rows = rows; self.columns = columns
        f32 = (0..<(rows * columns)).map { _ in rng.nextUnitFloat() - 0.5 }
        f16 = f32.map { Float16($0).bitPattern }
        bf16 = f32.map { UInt16($0.bitPattern >> 16) }
    }

    /// The matrix stored as `type`, for the duration of `body`.
    func with(_ type: WeightType, _ body: (WeightMatrix) -> Void) {
        func run(_ raw: UnsafeRawPointer) { body(WeightMatrix(raw: raw, type: type, rows: rows, columns: columns)) }
        switch type {
        case .f32: f32.withUnsafeBytes { run($0.baseAddress!) }
        case .f16: f16.withUnsafeBytes { run($0.baseAddress!) }
        case .bf16: bf16.withUnsafeBytes { run($0.baseAddress!) }
        default: fatalError("float types only")
        }
    }
}
