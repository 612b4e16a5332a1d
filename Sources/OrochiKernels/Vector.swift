import Foundation

/// Element-wise kernels on raw buffers: plain loops that the compiler vectorises.
/// Every kernel states its contract: shapes in, shapes out; none allocates.
public enum Kernels {
    /// RMSNorm: y[i] = x[i] / sqrt(mean(x²) + eps) · w[i], over one row of `n`; `y` may be `x`.
    /// The sum of squares in Float, as PyTorch's for float32 tensors, in sixteen-lane partial sums
    /// (a single running sum is a chain of n dependent adds: a tenth of a small model's prefill).
    @inline(__always)
    public static func rmsNorm(_ x: UnsafePointer<Float>, weight w: UnsafePointer<Float>,
                               into y: UnsafeMutablePointer<Float>, count n: Int, eps: Float) {
        typealias V = SIMD16<Float>
        var s0 = V(), s1 = V()
        var i = 0
        while i + 32 <= n {
            let a = UnsafeRawPointer(x + i).loadUnaligned(as: V.self), b = UnsafeRawPointer(x + i + 16).loadUnaligned(as: V.self)
            s0 = s0.addingProduct(a, a); s1 = s1.addingProduct(b, b)
            i += 32
        }
        if i + 16 <= n { let a = UnsafeRawPointer(x + i).loadUnaligned(as: V.self); s0 = s0.addingProduct(a, a); i += 16 }
        var sum = (s0 + s1).sum()
        while i < n { sum += x[i] * x[i]; i += 1 }
        let scale = 1 / (sum / Float(n) + eps).squareRoot()
        for i in 0..<n { y[i] = (x[i] * scale) * w[i] }
    }

    /// LayerNorm of one row: y = (x − mean) / √(variance + ε) · w + b, the variance over n (biased),
    /// as torch.nn.LayerNorm. Two passes over x: the mean first, then the centred squares.
    public static func layerNorm(_ x: UnsafePointer<Float>, weight w: UnsafePointer<Float>, bias b: UnsafePointer<Float>,
                                 into y: UnsafeMutablePointer<Float>, count n: Int, eps: Float) {
        var sum: Float = 0
        for i in 0..<n { sum += x[i] }
        let mean = sum / Float(n)
        var squares: Float = 0
        for i in 0..<n { let c = x[i] - mean; squares += c * c }
        let scale = 1 / (squares / Float(n) + eps).squareRoot()
        for i in 0..<n { y[i] = (x[i] - mean) * scale * w[i] + b[i] }
    }

    /// LayerNorm over `rows` rows of `n`, split over the pool's threads as `rmsNorm(rows:)`.
    public static func layerNorm(rows: Int, _ x: UnsafePointer<Float>, weight w: UnsafePointer<Float>, bias b: UnsafePointer<Float>,
                                 into y: UnsafeMutablePointer<Float>, count n: Int, eps: Float) {
        let parts = rows * n >= parallelElements ? min(BLAS.threads, rows) : 1
        Parallel.run(parts: parts) { part, parts in
            for r in rows * part / parts..<rows * (part + 1) / parts {
                layerNorm(x + r * n, weight: w, bias: b, into: y + r * n, count: n, eps: eps)
            }
        }
    }

    /// GELU in place over n values: the tanh form (GPT-2's "gelu_new", "gelu_pytorch_tanh"),
    /// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), or the exact one with erf.
    public static func gelu(_ x: UnsafeMutablePointer<Float>, count n: Int, tanhForm: Bool) {
        let parts = n >= parallelElements ? BLAS.threads : 1
        Parallel.run(parts: parts) { part, parts in
            let c: Float = 0.7978845608028654, invSqrt2: Float = 0.7071067811865476
            for i in n * part / parts..<n * (part + 1) / parts {
                let v = x[i]
                x[i] = tanhForm ? 0.5 * v * (1 + tanhf(c * (v + 0.044715 * v * v * v))) : 0.5 * v * (1 + erff(v * invSqrt2))
            }
        }
    }

    /// Work below this many elements stays on the calling thread: waking the pool costs more.
    static let parallelElements = 1 << 15

    /// RMSNorm over `rows` rows of `n`, row-major; the rows split over the pool's threads when
    /// there are enough of them (a prefill).
    public static func rmsNorm(rows: Int, _ x: UnsafePointer<Float>, weight w: UnsafePointer<Float>,
                               into y: UnsafeMutablePointer<Float>, count n: Int, eps: Float) {
        let parts = rows * n >= parallelElements ? min(BLAS.threads, rows) : 1
        Parallel.run(parts: parts) { part, parts in
            for r in rows * part / parts..<rows * (part + 1) / parts { rmsNorm(x + r * n, weight: w, into: y + r * n, count: n, eps: eps) }
        }
    }

    /// SiLU(x) = x · σ(x).
    @inline(__always)
    public static func silu(_ x: Float) -> Float { x / (1 + expf(-x)) }

    /// y[i] = SiLU(gate[i]) · up[i] (the SwiGLU product), in place over `gate`. Sixteen lanes at a
    /// time with the polynomial exp (`SelectiveScan.exp`): a prefill computes millions of these,
    /// and libm's expf one by one cost a tenth of a Llama prefill. Split over the pool's threads
    /// when there are enough of them.
    public static func swiglu(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count n: Int) {
        let parts = n >= parallelElements ? BLAS.threads : 1
        Parallel.run(parts: parts) { part, parts in
            let i0 = n * part / parts / 16 * 16, i1 = part == parts - 1 ? n : n * (part + 1) / parts / 16 * 16
            swigluRange(gate + i0, up + i0, count: i1 - i0)
        }
    }

    @inline(__always)
    static func swigluRange(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count n: Int) {
        typealias V = SIMD16<Float>
        var i = 0
        while i + 16 <= n {
            let g = UnsafeRawPointer(gate + i).loadUnaligned(as: V.self), u = UnsafeRawPointer(up + i).loadUnaligned(as: V.self)
            UnsafeMutableRawPointer(gate + i).storeBytes(of: g / (1 + SelectiveScan.exp(-g)) * u, as: V.self)
            i += 16
        }
        while i < n { gate[i] = silu(gate[i]) * up[i]; i += 1 }
    }

    /// y[i] += x[i].
    @inline(__always)
    public static func add(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count n: Int) {
        for i in 0..<n { y[i] += x[i] }
    }

    /// Numerically stable softmax in place over `n` values. The exponentials run 16 lanes at a
    /// time (`SelectiveScan.exp`, ~2e-7 relative error): in a long prefill the attention scores'
    /// softmax is the largest cost after the matrix products.
    @inline(__always)
    public static func softmax(_ x: UnsafeMutablePointer<Float>, count n: Int) {
        var maxValue = -Float.infinity
        for i in 0..<n where x[i] > maxValue { maxValue = x[i] }
        scale(x, by: 1 / expShifted(x, count: n, by: maxValue), count: n)
    }

    /// x[i] = exp(x[i] − shift) in place, sixteen lanes at a time; returns the sum (an online
    /// softmax's step: the caller keeps the running maximum `shift`).
    @inline(__always)
    public static func expShifted(_ x: UnsafeMutablePointer<Float>, count n: Int, by shift: Float) -> Float {
        typealias V = SIMD16<Float>
        let m = V(repeating: shift)
        var sums = V()
        var i = 0
        while i + 16 <= n {
            let e = SelectiveScan.exp(UnsafeRawPointer(x + i).loadUnaligned(as: V.self) - m)
            UnsafeMutableRawPointer(x + i).storeBytes(of: e, as: V.self)
            sums += e
            i += 16
        }
        var sum = sums.sum()
        while i < n { let e = expf(x[i] - shift); x[i] = e; sum += e; i += 1 }
        return sum
    }

    /// x[i] *= factor.
    @inline(__always)
    public static func scale(_ x: UnsafeMutablePointer<Float>, by factor: Float, count n: Int) {
        for i in 0..<n { x[i] *= factor }
    }

    /// Softplus as PyTorch computes it (threshold 20): log(1 + eˣ), or x when x > 20.
    @inline(__always)
    public static func softplus(_ x: Float) -> Float { x > 20 ? x : log1pf(expf(x)) }

    /// Index of the largest value (the first on ties).
    public static func argmax(_ x: UnsafePointer<Float>, count n: Int) -> Int {
        var best = 0
        var bestValue = x[0]
        for i in 1..<n where x[i] > bestValue { best = i; bestValue = x[i] }
        return best
    }
}
