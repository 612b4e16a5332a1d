import Testing
@testable import Orochi

struct MatvecTests {
    /// The single-thread kernel and OpenBLAS agree with a naive double-precision product, for
    /// shapes that leave row and column remainders, with a row stride and with accumulation.
    @Test(arguments: [(1, 1), (3, 15), (4, 16), (7, 33), (48, 512), (130, 70)])
    func matchesNaiveProduct(_ shape: (Int, Int)) {
        let (n, k) = shape
        let ldw = k + 3
        var rng = SplitMix64(seed: UInt64(n * 1000 + k))
        let w = (0..<(n * ldw)).map { _ in rng.nextUnitFloat() - 0.5 }
        let x = (0..<k).map { _ in rng.nextUnitFloat() - 0.5 }
        let start = (0..<n).map { _ in rng.nextUnitFloat() }
        let expected = (0..<n).map { i in (0..<k).reduce(0.0) { $0 + Double(w[i * ldw + $1]) * Double(x[$1]) } }
        for accumulate in [false, true] {
            var kernel = start, blas = start
            Kernels.matvec(w, outputs: n, inner: k, ldw: ldw, x, into: &kernel, accumulate: accumulate)
            w.withUnsafeBufferPointer { wp in
                x.withUnsafeBufferPointer { xp in
                    blas.withUnsafeMutableBufferPointer { yp in
                        BLAS.matvec(wp.baseAddress!, outputs: n, inner: k, ldw: ldw, xp.baseAddress!, into: yp.baseAddress!, accumulate: accumulate)
                    }
                }
            }
            for i in 0..<n {
                let want = expected[i] + (accumulate ? Double(start[i]) : 0)
                #expect(abs(Double(kernel[i]) - want) < 1e-4, "kernel row \(i)")
                #expect(abs(Double(blas[i]) - want) < 1e-4, "BLAS row \(i)")
            }
        }
    }
}
