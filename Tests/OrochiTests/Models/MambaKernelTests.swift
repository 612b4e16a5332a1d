import Foundation
import Testing
@testable import Orochi
@testable import OrochiKernels

/// The kernels under Mamba against plain reference loops.
struct MambaKernelTests {
    /// The largest error, or NaN when any is NaN (a value never written): `max()` would skip it.
    static func worst(_ errors: [Float]) -> Float { errors.contains { $0.isNaN } ? .nan : errors.max()! }

    static func random(_ count: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { _ in (rng.nextUnitFloat() * 2 - 1) * scale }
    }

    @Test func vectorExpMatchesLibm() {
        var worst: Double = 0
        var x: Float = -87
        while x < 88 {
            var v = SIMD16<Float>()
            for i in 0..<16 { v[i] = x + Float(i) * 0.0137 }
            let e = SelectiveScan.exp(v)
            for i in 0..<16 {
                let want = Foundation.exp(Double(v[i]))
                worst = max(worst, abs(Double(e[i]) - want) / want)
            }
            x += 0.61
        }
        #expect(worst < 5e-7, "worst relative error \(worst)")
        let tiny = SelectiveScan.exp(SIMD16<Float>(repeating: -1000))
        #expect(tiny[0] >= 0 && tiny[0] < 1e-37)
    }

    @Test func softplusMatchesTorchForm() {
        var x: Float = -40
        while x < 40 {
            let want = x > 20 ? Double(x) : log1p(Foundation.exp(Double(x)))
            let got = Double(SelectiveScan.softplus(x))
            #expect(abs(got - want) <= 4e-7 * want, "softplus(\(x)) = \(got), want \(want)")
            x += 0.173
        }
    }

    /// Causal depthwise conv, any kernel, in pieces of any length: the same as one pass with zero
    /// history, with and without SiLU, in every kernel family this CPU has, on one thread and two
    /// (the long shape splits its rows over threads), with channels that fill no whole vector.
    @Test(arguments: [(1, 24, 11), (2, 24, 11), (3, 24, 11), (4, 24, 11), (4, 37, 900)])
    func causalConvMatchesNaive(_ shape: (Int, Int, Int)) {
        let (k, e, t) = shape
        let x = Self.random(t * e, seed: 1), w = Self.random(k * e, seed: 2), bias = Self.random(e, seed: 3)
        var want = [Double](repeating: 0, count: t * e)
        for i in 0..<t { for c in 0..<e {
            var s = Double(bias[c])
            for j in 0..<k where i - (k - 1) + j >= 0 { s += Double(w[j * e + c]) * Double(x[(i - (k - 1) + j) * e + c]) }
            want[i * e + c] = s
        } }
        let pieceSets = t > 100 ? [[t], [1, 2, t - 3], [t - 1, 1]] : [[11], [1, 10], [2, 1, 1, 7], [5, 6], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]]
        let threadsBefore = BLAS.threads
        defer { BLAS.threads = threadsBefore; KernelInfo.force(nil) }
        for family in ["portable", "avx2", "avx512"] where KernelInfo.force(family) == family {
            for threads in [1, 2] { for silu in [false, true] { for pieces in pieceSets {
                BLAS.threads = threads
                var state = [Float](repeating: 0, count: max(k - 1, 1) * e)
                var got = [Float](repeating: .nan, count: t * e)
                var start = 0
                for n in pieces {
                    x.withUnsafeBufferPointer { xp in
                        got.withUnsafeMutableBufferPointer { yp in
                            CausalConv.forward(xp.baseAddress! + start * e, ldx: e, steps: n, channels: e, kernel: k,
                                               weight: w, bias: bias, state: &state, silu: silu, into: yp.baseAddress! + start * e)
                        }
                    }
                    start += n
                }
                let expected = silu ? want.map { $0 / (1 + Foundation.exp(-$0)) } : want
                let errors = zip(got, expected).map { abs(Double($0) - $1) }
                let wrong = errors.filter { !($0 < 1e-5) }.count                   // NaN (a value never written) counts
                #expect(wrong == 0, "\(family), \(threads) threads, kernel \(k), silu \(silu), pieces \(pieces): \(wrong) wrong, worst \(errors.max()!)")
            } } }
        }
    }

    /// The SIMD16 path equals the scalar path; several threads equal one.
    @Test func scanPathsAgree() {
        let t = 9, e = 256, n = 16, ldbc = 3 + 2 * n, ldz = 2 * e
        let x = Self.random(t * e, seed: 4)
        // Δ before softplus: mostly in [−3, 3], some far below 0 (softplus ≈ eˣ) and above its threshold of 20 (= x).
        let delta = Self.random(t * e, seed: 5, scale: 3).enumerated().map { i, v in i % 17 == 3 ? -40 + v : i % 23 == 5 ? 25 + v : v }
        let bias = Self.random(e, seed: 6), a = Self.random(e * n, seed: 7).map { -1 - abs($0) * 4 }
        let bc = Self.random(t * ldbc, seed: 8, scale: 2), d = Self.random(e, seed: 9), z = Self.random(t * ldz, seed: 10, scale: 3)
        let h0 = Self.random(e * n, seed: 11)
        func run(_ body: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Void) -> ([Float], [Float]) {
            var h = h0, y = [Float](repeating: .nan, count: t * e)
            h.withUnsafeMutableBufferPointer { hp in y.withUnsafeMutableBufferPointer { yp in body(hp.baseAddress!, yp.baseAddress!) } }
            return (h, y)
        }
        // b and c are views into bc, valid only inside withUnsafeBufferPointer.
        let scalar = run { h, y in
            bc.withUnsafeBufferPointer { bcp in
                SelectiveScan.scanAnyN(steps: t, channels: 0..<e, of: e, stateSize: n, x: x, delta: delta, deltaBias: bias,
                                       a: a, b: bcp.baseAddress! + 3, c: bcp.baseAddress! + 3 + n, ldbc: ldbc, d: d, z: z, ldz: ldz,
                                       state: h, into: y)
            }
        }
        for threads in [1, 2, 3] {
            let simd = run { h, y in
                bc.withUnsafeBufferPointer { bcp in
                    SelectiveScan.scan(steps: t, channels: e, stateSize: n, x: x, delta: delta, deltaBias: bias,
                                       a: a, b: bcp.baseAddress! + 3, c: bcp.baseAddress! + 3 + n, ldbc: ldbc, d: d, z: z, ldz: ldz,
                                       state: h, into: y, threads: threads)
                }
            }
            let errH = Self.worst(zip(simd.0, scalar.0).map { abs($0 - $1) / max(1, abs($1)) })
            let errY = Self.worst(zip(simd.1, scalar.1).map { abs($0 - $1) / max(1, abs($1)) })
            #expect(errH < 1e-5 && errY < 1e-5, "threads \(threads): state error \(errH), output error \(errY)")
        }
    }

    /// The kernel the models run (scan.c, channels blocked by 16) equals the equations' scalar
    /// loop: whole and partial blocks, N = 16 (registers) and others, one step (decode) and many,
    /// every kernel family this CPU has, one thread and two.
    @Test(arguments: [(256, 16, 9), (40, 16, 70), (7, 8, 5), (100, 5, 1), (512, 16, 300)])
    func blockedKernelMatchesTheEquations(_ shape: (Int, Int, Int)) {
        let (e, n, t) = shape
        let ldbc = 3 + 2 * n, ldz = 2 * e
        let x = Self.random(t * e, seed: 4)
        // Δ before softplus: mostly in [−3, 3], some far below 0 (softplus ≈ eˣ) and above its threshold of 20 (= x).
        let delta = Self.random(t * e, seed: 5, scale: 3).enumerated().map { i, v in i % 17 == 3 ? -40 + v : i % 23 == 5 ? 25 + v : v }
        let bias = Self.random(e, seed: 6), a = Self.random(e * n, seed: 7).map { -1 - abs($0) * 4 }
        let bc = Self.random(t * ldbc, seed: 8, scale: 2), d = Self.random(e, seed: 9), z = Self.random(t * ldz, seed: 10, scale: 3)
        let h0 = Self.random(e * n, seed: 11)
        var hRef = h0, yRef = [Float](repeating: .nan, count: t * e)
        bc.withUnsafeBufferPointer { bcp in
            SelectiveScan.scanAnyN(steps: t, channels: 0..<e, of: e, stateSize: n, x: x, delta: delta, deltaBias: bias,
                                   a: a, b: bcp.baseAddress! + 3, c: bcp.baseAddress! + 3 + n, ldbc: ldbc, d: d, z: z, ldz: ldz,
                                   state: &hRef, into: &yRef)
        }
        let blocked = SelectiveScan.blockedCount(channels: e, stateSize: n)
        var aBlocked = [Float](repeating: 0, count: blocked)
        SelectiveScan.block(a, into: &aBlocked, channels: e, stateSize: n)
        let threadsBefore = BLAS.threads
        defer { BLAS.threads = threadsBefore; KernelInfo.force(nil) }
        for family in ["portable", "avx2", "avx512"] where KernelInfo.force(family) == family {
            for threads in [1, 2] {
                BLAS.threads = threads
                var h = [Float](repeating: 0, count: blocked), y = [Float](repeating: .nan, count: t * e)
                SelectiveScan.block(h0, into: &h, channels: e, stateSize: n)
                bc.withUnsafeBufferPointer { bcp in
                    SelectiveScan.scanBlocked(steps: t, channels: e, stateSize: n, x: x, ldx: e, delta: delta, ldDelta: e,
                                              deltaBias: bias, a: aBlocked, b: bcp.baseAddress! + 3, c: bcp.baseAddress! + 3 + n,
                                              ldbc: ldbc, d: d, z: z, ldz: ldz, state: &h, into: &y, ldy: e)
                }
                var hPlain = [Float](repeating: .nan, count: e * n)
                SelectiveScan.unblock(h, into: &hPlain, channels: e, stateSize: n)
                let errH = Self.worst(zip(hPlain, hRef).map { abs($0 - $1) / max(1, abs($1)) })
                let errY = Self.worst(zip(y, yRef).map { abs($0 - $1) / max(1, abs($1)) })
                #expect(errH < 2e-5 && errY < 2e-5, "E \(e) N \(n) T \(t) \(family) \(threads) threads: state error \(errH), output error \(errY)")
            }
        }
    }

    /// Decode's fused jobs equal their parts run one after the other, value for value: in_proj
    /// with its conv step (orochi_mamba_in_conv_step) against the product, the bias and
    /// CausalConv.forward over one step; dt_proj with the scan step against the product and
    /// scanBlocked. Shapes on one thread and split over two (E 300 and 512), with channels that
    /// fill no whole block, kernels of 1, 2 and 4, with and without biases, f32 and f16 weights,
    /// every kernel family this CPU has.
    @Test(arguments: [(40, 16, 1), (300, 16, 2), (512, 16, 4), (300, 5, 4)])
    func decodeStepJobsEqualTheirParts(_ shape: (Int, Int, Int)) {
        let (e, n, k) = shape
        let dim = 64, rank = n == 16 ? 16 : 5
        let h = Self.random(dim, seed: 20), inW = Self.random(2 * e * dim, seed: 21, scale: 0.2), inBias = Self.random(2 * e, seed: 22)
        let convW = Self.random(k * e, seed: 23), convBias = Self.random(e, seed: 24), past0 = Self.random(max(k - 1, 1) * e, seed: 25)
        let dtW = Self.random(e * rank, seed: 26, scale: 0.5), dbc = Self.random(rank + 2 * n, seed: 27)
        let dtBias = Self.random(e, seed: 28), d = Self.random(e, seed: 29), z = Self.random(e, seed: 30, scale: 3)
        let a = Self.random(e * n, seed: 31).map { -1 - abs($0) * 4 }, h0 = Self.random(e * n, seed: 32)
        let blocked = SelectiveScan.blockedCount(channels: e, stateSize: n)
        var aBlocked = [Float](repeating: 0, count: blocked), hBlocked = [Float](repeating: 0, count: blocked)
        SelectiveScan.block(a, into: &aBlocked, channels: e, stateSize: n)
        SelectiveScan.block(h0, into: &hBlocked, channels: e, stateSize: n)
        let inHalf = inW.map { Float(Float16($0)) }, dtHalf = dtW.map { Float(Float16($0)) }
        var inW16 = [UInt16](repeating: 0, count: inW.count), dtW16 = [UInt16](repeating: 0, count: dtW.count)
        narrowToHalf(inW, into: &inW16, count: inW.count); narrowToHalf(dtW, into: &dtW16, count: dtW.count)
        let threadsBefore = BLAS.threads
        defer { BLAS.threads = threadsBefore; KernelInfo.force(nil) }
        for family in ["portable", "avx2", "avx512"] where KernelInfo.force(family) == family {
            for threads in [1, 2] { for half in [false, true] { for biases in [false, true] {
                BLAS.threads = threads
                let label = "E \(e) N \(n) K \(k), \(family), \(threads) threads, \(half ? "f16" : "f32"), biases \(biases)"
                func matrix<R>(_ f32: [Float], _ f16: [UInt16], rows: Int, _ body: (WeightMatrix) -> R) -> R {
                    half ? f16.withUnsafeBytes { body(WeightMatrix(raw: $0.baseAddress!, type: .f16, rows: rows, columns: f32.count / rows)) }
                         : f32.withUnsafeBytes { body(WeightMatrix(raw: $0.baseAddress!, type: .f32, rows: rows, columns: f32.count / rows)) }
                }
                // in_proj and the conv step: the parts, then the job.
                var xzRef = [Float](repeating: .nan, count: 2 * e), uRef = [Float](repeating: .nan, count: e), pastRef = past0
                matrix(half ? inHalf : inW, inW16, rows: 2 * e) { $0.matvec(h, into: &xzRef) }
                if biases { for i in 0..<2 * e { xzRef[i] += inBias[i] } }
                CausalConv.forward(xzRef, ldx: 2 * e, steps: 1, channels: e, kernel: k, weight: convW, bias: biases ? convBias : nil,
                                   state: &pastRef, silu: true, into: &uRef)
                var xz = [Float](repeating: .nan, count: 2 * e), u = [Float](repeating: .nan, count: e), past = past0
                matrix(half ? inHalf : inW, inW16, rows: 2 * e) { w in
                    inBias.withUnsafeBufferPointer { ib in convBias.withUnsafeBufferPointer { cb in
                        CausalConv.stepAfterProduct(h, inProj: w, inBias: biases ? ib.baseAddress! : nil, into: &xz, channels: e, kernel: k,
                                                    weight: convW, bias: biases ? cb.baseAddress! : nil, state: &past, into: &u)
                    } }
                }
                #expect(xz == xzRef && u == uRef && past == pastRef, "\(label): in_proj + conv step differ from their parts")
                // dt_proj and the scan step.
                var deltaRef = [Float](repeating: .nan, count: e), yRef = [Float](repeating: .nan, count: e), hRef = hBlocked
                matrix(half ? dtHalf : dtW, dtW16, rows: e) { $0.matvec(dbc, into: &deltaRef) }
                dbc.withUnsafeBufferPointer { bc in
                    SelectiveScan.scanBlocked(steps: 1, channels: e, stateSize: n, x: uRef, ldx: e, delta: deltaRef, ldDelta: e,
                                              deltaBias: dtBias, a: aBlocked, b: bc.baseAddress! + rank, c: bc.baseAddress! + rank + n,
                                              ldbc: rank + 2 * n, d: d, z: z, ldz: e, state: &hRef, into: &yRef, ldy: e)
                }
                var delta = [Float](repeating: .nan, count: e), y = [Float](repeating: .nan, count: e), hState = hBlocked
                matrix(half ? dtHalf : dtW, dtW16, rows: e) { w in
                    dbc.withUnsafeBufferPointer { bc in
                        SelectiveScan.scanStep(channels: e, stateSize: n, x: uRef, dtProj: w, deltaLow: bc.baseAddress!, delta: &delta,
                                               deltaBias: dtBias, a: aBlocked, b: bc.baseAddress! + rank, c: bc.baseAddress! + rank + n,
                                               d: d, z: z, state: &hState, into: &y)
                    }
                }
                #expect(delta == deltaRef && y == yRef && hState == hRef, "\(label): dt_proj + scan step differ from their parts")
            } } }
        }
    }
}
