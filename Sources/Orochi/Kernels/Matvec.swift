extension Kernels {
    /// W[n, k] · x[k] → y[n] (or y += …) on the calling thread, four rows at a time with vector
    /// accumulators: for the small matrices of decode, where threads cost more than they save.
    public static func matvec(_ w: UnsafePointer<Float>, outputs n: Int, inner k: Int, ldw: Int,
                              _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        typealias V = SIMD16<Float>
        let vk = k & ~15
        @inline(__always) func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
        var i = 0
        while i + 4 <= n {
            let w0 = w + i * ldw, w1 = w0 + ldw, w2 = w1 + ldw, w3 = w2 + ldw
            var a0 = V(), a1 = V(), a2 = V(), a3 = V()
            var j = 0
            while j < vk {
                let xv = load(x + j)
                a0 += load(w0 + j) * xv
                a1 += load(w1 + j) * xv
                a2 += load(w2 + j) * xv
                a3 += load(w3 + j) * xv
                j += 16
            }
            var s0 = a0.sum(), s1 = a1.sum(), s2 = a2.sum(), s3 = a3.sum()
            while j < k {
                s0 += w0[j] * x[j]; s1 += w1[j] * x[j]; s2 += w2[j] * x[j]; s3 += w3[j] * x[j]
                j += 1
            }
            if accumulate { y[i] += s0; y[i + 1] += s1; y[i + 2] += s2; y[i + 3] += s3 }
            else { y[i] = s0; y[i + 1] = s1; y[i + 2] = s2; y[i + 3] = s3 }
            i += 4
        }
        while i < n {
            let row = w + i * ldw
            var a = V()
            var j = 0
            while j < vk { a += load(row + j) * load(x + j); j += 16 }
            var s = a.sum()
            while j < k { s += row[j] * x[j]; j += 1 }
            y[i] = accumulate ? y[i] + s : s
            i += 1
        }
    }
}
