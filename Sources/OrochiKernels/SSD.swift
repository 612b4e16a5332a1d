import Foundation

/// Mamba-2's state-space layer (Dao & Gu 2024, "Transformers are SSMs"), for H heads of P channels,
/// N state values and G groups of B/C (head h reads group h / (H/G)). A is one scalar per head, so
/// the recurrence per head is
///
///   S_t = exp(Δ_t A) · S_{t−1} + Δ_t · x_t ⊗ B_t        state S [P, N]
///   y_t = S_t · C_t + D · x_t                            [P]
///
/// and the same map is a masked matrix (structured state-space duality, SSD): over a chunk of Q
/// steps, y = (L ∘ C Bᵀ) · (Δ x) with L[t, s] = exp(Σ_{s<τ≤t} Δ_τ A) for s ≤ t and 0 above the
/// diagonal. `step` is the recurrence (decode); `chunked` computes each chunk as that matrix
/// (matrix products through BLAS) and carries S across chunks by the recurrence, as the paper's
/// chunked algorithm and transformers' torch path do.
public enum SSD {
    /// The shapes of one layer's scan.
    public struct Shape: Sendable {
        public let heads: Int, headDim: Int, stateSize: Int, groups: Int
        public init(heads: Int, headDim: Int, stateSize: Int, groups: Int) {
            self.heads = heads; self.headDim = headDim; self.stateSize = stateSize; self.groups = groups
        }
        /// Channels: H·P.
        public var inner: Int { heads * headDim }
        @inline(__always) func group(_ h: Int) -> Int { h / (heads / groups) }
    }

    /// One step of every head (one token):
    /// - x [H·P], delta [H] (after softplus and clamp), a [H] (= −exp(A_log)), b, c [G·N], d [H]
    /// - state [H, P, N], updated in place; y [H·P]
    /// Heads split over the pool's threads when the state is large. Allocates nothing.
    public static func step(_ s: Shape, x: UnsafePointer<Float>, delta: UnsafePointer<Float>, a: UnsafePointer<Float>,
                            b: UnsafePointer<Float>, c: UnsafePointer<Float>, d: UnsafePointer<Float>,
                            state: UnsafeMutablePointer<Float>, into y: UnsafeMutablePointer<Float>) {
        let parts = s.inner * s.stateSize >= Kernels.parallelElements ? min(BLAS.threads, s.heads) : 1
        Parallel.run(parts: parts) { part, parts in
            for h in s.heads * part / parts..<s.heads * (part + 1) / parts {
                stepHead(s, h, x: x, delta: delta[h], a: a[h], b: b, c: c, d: d[h], state: state, into: y)
            }
        }
    }

    @inline(__always)
    static func stepHead(_ s: Shape, _ h: Int, x: UnsafePointer<Float>, delta: Float, a: Float,
                         b: UnsafePointer<Float>, c: UnsafePointer<Float>, d: Float,
                         state: UnsafeMutablePointer<Float>, into y: UnsafeMutablePointer<Float>) {
        typealias V = SIMD8<Float>
        let p = s.headDim, n = s.stateSize, g = s.group(h)
        let decay = expf(delta * a)
        let bg = b + g * n, cg = c + g * n
        for i in 0..<p {
            let xi = x[h * p + i]
            let u = delta * xi
            let row = state + (h * p + i) * n
            var acc = V()
            var j = 0
            while j + 8 <= n {
                let sv = UnsafeRawPointer(row + j).loadUnaligned(as: V.self) * decay
                    + UnsafeRawPointer(bg + j).loadUnaligned(as: V.self) * u
                UnsafeMutableRawPointer(row + j).storeBytes(of: sv, as: V.self)
                acc = acc.addingProduct(sv, UnsafeRawPointer(cg + j).loadUnaligned(as: V.self))
                j += 8
            }
            var sum = acc.sum()
            while j < n {
                let sv = row[j] * decay + bg[j] * u
                row[j] = sv
                sum += sv * cg[j]
                j += 1
            }
            y[h * p + i] = sum + d * xi
        }
    }

    /// Scratch of `chunked` for chunks of up to Q steps: C·Bᵀ per group, and per head its masked
    /// matrix, running sums of ΔA, Δ, and C and x scaled (so that the heads' elementwise work can
    /// be split over threads before their products run).
    public final class Scratch {
        public let chunk: Int
        let cb: FloatBuffer             // [G, Q, Q]: C·Bᵀ of each group
        let mask: FloatBuffer           // [H, Q, Q]: L ∘ C·Bᵀ · Δ of each head
        let cumulative: FloatBuffer     // [H, Q]: Σ ΔA up to each step
        let headDelta: FloatBuffer      // [H, Q]: each head's Δ
        let scaledC: FloatBuffer        // [H, Q, N]: exp(Σ ΔA)·C
        let scaledX: FloatBuffer        // [H, Q, P]: the weight of each step's Δx in the chunk's final state
        public init(chunk: Int, shape s: Shape) {
            self.chunk = chunk
            let h = s.heads
            cb = FloatBuffer(count: s.groups * chunk * chunk)
            mask = FloatBuffer(count: h * chunk * chunk)
            cumulative = FloatBuffer(count: h * chunk)
            headDelta = FloatBuffer(count: h * chunk)
            scaledC = FloatBuffer(count: h * chunk * s.stateSize)
            scaledX = FloatBuffer(count: h * chunk * s.headDim)
        }
    }

    /// T consecutive steps of one sequence, continuing from `state`, in chunks of the scratch's Q:
    /// - x [T, H·P] (row stride ldx), b and c [T, G·N] (row stride ldbc), delta [T, H] (contiguous)
    /// - a, d [H]; state [H, P, N], updated in place; y [T, H·P] (row stride ldy)
    /// Per chunk and head, with cumulative sums s_t = Σ_{τ≤t} Δ_τ A within the chunk:
    ///   y  = D x
    ///      + (L ∘ C·Bᵀ) · (Δ x)          the chunk's own tokens (the dual, masked-matrix form)
    ///      + diag(exp(s)) · C · S₀ᵀ      what the state carried in contributes
    ///   S  = exp(s_last) · S₀ + (w ∘ x)ᵀ · B,   w_t = exp(s_last − s_t) Δ_t
    /// The elementwise part of every head (masks, scalings, D x) is split over the pool's threads;
    /// the products run one head after another, each threaded by OpenBLAS. Allocates nothing.
    public static func chunked(_ s: Shape, steps t: Int, x: UnsafePointer<Float>, ldx: Int,
                               b: UnsafePointer<Float>, c: UnsafePointer<Float>, ldbc: Int,
                               delta: UnsafePointer<Float>, a: UnsafePointer<Float>, d: UnsafePointer<Float>,
                               state: UnsafeMutablePointer<Float>, into y: UnsafeMutablePointer<Float>, ldy: Int,
                               scratch: Scratch) {
        let p = s.headDim, n = s.stateSize, hCount = s.heads
        var t0 = 0
        while t0 < t {
            let q = min(scratch.chunk, t - t0)
            let xc = x + t0 * ldx, bc = b + t0 * ldbc, cc = c + t0 * ldbc, dc = delta + t0 * hCount, yc = y + t0 * ldy
            for g in 0..<s.groups {                                     // C·Bᵀ [Q, Q] per group
                BLAS.gemm(m: q, n: q, k: n, a: cc + g * n, lda: ldbc, b: bc + g * n, ldb: ldbc, transB: true,
                          c: scratch.cb.pointer + g * q * q, ldc: q)
            }
            let parts = q * q * hCount >= Kernels.parallelElements ? min(BLAS.threads, hCount) : 1
            Parallel.run(parts: parts) { part, parts in
                for h in hCount * part / parts..<hCount * (part + 1) / parts {
                    prepareHead(s, h, steps: q, x: xc, ldx: ldx, c: cc, ldbc: ldbc, delta: dc, a: a[h], d: d[h],
                                into: yc, ldy: ldy, scratch: scratch)
                }
            }
            for h in 0..<hCount {
                let g = s.group(h), yh = yc + h * p, hs = state + h * p * n
                let m = scratch.mask.pointer + h * scratch.chunk * scratch.chunk
                let sc = scratch.scaledC.pointer + h * scratch.chunk * n, xw = scratch.scaledX.pointer + h * scratch.chunk * p
                let last = scratch.cumulative.pointer[h * scratch.chunk + q - 1]
                BLAS.gemm(m: q, n: p, k: q, a: m, lda: q, b: xc + h * p, ldb: ldx, c: yh, ldc: ldy, beta: 1)       // Y += M·X
                BLAS.gemm(m: q, n: p, k: n, a: sc, lda: n, b: hs, ldb: n, transB: true, c: yh, ldc: ldy, beta: 1)  // Y += diag(exp(s))·C·S₀ᵀ
                BLAS.gemm(m: p, n: n, k: q, a: xw, lda: p, transA: true, b: bc + g * n, ldb: ldbc,                  // S = exp(s_last)·S₀ + (w∘X)ᵀ·B
                          c: hs, ldc: n, beta: expf(last))
            }
            t0 += q
        }
    }

    /// One head's elementwise work for a chunk: its running sums, its masked matrix M, C scaled by
    /// exp(s), x scaled by w, and Y = D x (the products then add to it).
    private static func prepareHead(_ s: Shape, _ h: Int, steps q: Int, x: UnsafePointer<Float>, ldx: Int,
                                    c: UnsafePointer<Float>, ldbc: Int, delta: UnsafePointer<Float>, a: Float, d: Float,
                                    into y: UnsafeMutablePointer<Float>, ldy: Int, scratch: Scratch) {
        let p = s.headDim, n = s.stateSize, hCount = s.heads, g = s.group(h), stride = scratch.chunk
        let xh = x + h * p, yh = y + h * p, cg = c + g * n
        let cum = scratch.cumulative.pointer + h * stride, dt = scratch.headDelta.pointer + h * stride
        let m = scratch.mask.pointer + h * stride * stride, cb = scratch.cb.pointer + g * q * q
        var running: Float = 0
        for i in 0..<q { dt[i] = delta[i * hCount + h]; running += dt[i] * a; cum[i] = running }
        // M = L ∘ C·Bᵀ, with Δ_s folded into column s: M[t, s] = exp(s_t − s_s) (C_t·B_s) Δ_s for s ≤ t,
        // sixteen columns at a time (the exponentials are most of the work outside the products).
        typealias V = SIMD16<Float>
        for i in 0..<q {
            let row = m + i * q, st = V(repeating: cum[i]), cbRow = cb + i * q
            var j = 0
            while j + 16 <= i + 1 {
                let e = SelectiveScan.exp(st - UnsafeRawPointer(cum + j).loadUnaligned(as: V.self))
                let v = UnsafeRawPointer(cbRow + j).loadUnaligned(as: V.self) * e * UnsafeRawPointer(dt + j).loadUnaligned(as: V.self)
                UnsafeMutableRawPointer(row + j).storeBytes(of: v, as: V.self)
                j += 16
            }
            while j <= i { row[j] = cbRow[j] * expf(cum[i] - cum[j]) * dt[j]; j += 1 }
            for j in (i + 1)..<q { row[j] = 0 }
        }
        let sc = scratch.scaledC.pointer + h * stride * n, xw = scratch.scaledX.pointer + h * stride * p
        let last = cum[q - 1]
        for i in 0..<q {
            let f = expf(cum[i]), w = expf(last - cum[i]) * dt[i]
            for j in 0..<n { sc[i * n + j] = cg[i * ldbc + j] * f }
            for j in 0..<p {
                xw[i * p + j] = xh[i * ldx + j] * w
                yh[i * ldy + j] = d * xh[i * ldx + j]
            }
        }
    }
}
