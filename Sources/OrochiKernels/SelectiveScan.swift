import COrochiKernels
import Foundation

/// Mamba's selective scan (Gu & Dao 2023, Algorithm 2): a linear recurrence per channel whose
/// step Δ and projections B, C depend on the input. Each channel's state of N values stays in
/// registers while the loop runs over time; the N state values are one SIMD vector (N = 16).
public enum SelectiveScan {
    /// For every channel c and step t, with h the channel's state row [N]:
    ///   Δ = softplus(delta[t,c] + deltaBias[c])
    ///   h ← exp(Δ · A[c]) ⊙ h + Δ · x[t,c] · B[t]      (Ā h + B̄ x: zero-order hold for A, Euler for B)
    ///   y[t,c] = (C[t] · h + D[c] · x[t,c]) · SiLU(z[t,c])
    ///
    /// - x: [T, E];  delta: [T, E] = dt_proj(Δ_low) without its bias;  deltaBias: [E] (dt_proj's bias)
    /// - a: [E, N] = −exp(A_log);  d: [E]
    /// - b, c: [T, N] rows with stride `ldbc` (slices of x_proj's output)
    /// - z: [T, E] rows with stride `ldz` (the gate half of in_proj's output)
    /// - state: [E, N], updated in place;  y: [T, E]
    /// Allocates nothing. With `threads` > 1 (prefill), the channels are split among that many
    /// threads: they are independent.
    public static func scan(steps t: Int, channels e: Int, stateSize n: Int,
                            x: UnsafePointer<Float>, delta: UnsafePointer<Float>, deltaBias: UnsafePointer<Float>,
                            a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafePointer<Float>, ldbc: Int,
                            d: UnsafePointer<Float>, z: UnsafePointer<Float>, ldz: Int,
                            state: UnsafeMutablePointer<Float>, into y: UnsafeMutablePointer<Float>, threads: Int = 1) {
        func run(_ channels: Range<Int>) {
            if n == 16 {
                scan16(steps: t, channels: channels, of: e, x: x, delta: delta, deltaBias: deltaBias, a: a, b: b, c: c, ldbc: ldbc,
                       d: d, z: z, ldz: ldz, state: state, into: y)
            } else {
                scanAnyN(steps: t, channels: channels, of: e, stateSize: n, x: x, delta: delta, deltaBias: deltaBias, a: a, b: b, c: c,
                         ldbc: ldbc, d: d, z: z, ldz: ldz, state: state, into: y)
            }
        }
        let parts = min(threads, e / 64)
        guard parts > 1, t >= 8 else { run(0..<e); return }
        DispatchQueue.concurrentPerform(iterations: parts) { i in run(e * i / parts..<e * (i + 1) / parts) }
    }

    /// The kernel the models run (scan.c): the recurrence above with sixteen channels side by side
    /// in one vector and the state values in registers, every exponential sixteen at a time, the
    /// channels split over the thread pool when it pays. `a` and `state` are blocked by 16
    /// ([⌈E/16⌉, N, 16], see `blocked`); x, delta, z, y rows are `ldx`, `ldDelta`, `ldz`, `ldy` apart.
    @inline(__always)
    public static func scanBlocked(steps t: Int, channels e: Int, stateSize n: Int,
                                   x: UnsafePointer<Float>, ldx: Int, delta: UnsafePointer<Float>, ldDelta: Int,
                                   deltaBias: UnsafePointer<Float>, a: UnsafePointer<Float>,
                                   b: UnsafePointer<Float>, c: UnsafePointer<Float>, ldbc: Int,
                                   d: UnsafePointer<Float>, z: UnsafePointer<Float>, ldz: Int,
                                   state: UnsafeMutablePointer<Float>, into y: UnsafeMutablePointer<Float>, ldy: Int) {
        orochi_selective_scan(t, e, Int32(n), x, ldx, delta, ldDelta, deltaBias, a, b, c, ldbc, d, z, ldz, state, y, ldy)
    }

    /// Decode's step (one token) with dt_proj folded in, as one job for the threads: each first
    /// computes delta = W_dt·Δ_low for its channels (into `delta` [E], scratch), then scans them
    /// (scan.c's orochi_selective_scan_step). x, z, y: [E]; b, c: [N]; a, state blocked by 16.
    @inline(__always)
    public static func scanStep(channels e: Int, stateSize n: Int, x: UnsafePointer<Float>,
                                dtProj: WeightMatrix, deltaLow: UnsafePointer<Float>, delta: UnsafeMutablePointer<Float>,
                                deltaBias: UnsafePointer<Float>, a: UnsafePointer<Float>,
                                b: UnsafePointer<Float>, c: UnsafePointer<Float>, d: UnsafePointer<Float>, z: UnsafePointer<Float>,
                                state: UnsafeMutablePointer<Float>, into y: UnsafeMutablePointer<Float>) {
        precondition(dtProj.rows == e, "dt_proj has E rows")
        orochi_selective_scan_step(e, Int32(n), x, dtProj.type.code, dtProj.raw, dtProj.columns, deltaLow, delta, deltaBias, a,
                                   b, c, d, z, state, y)
    }

    /// Floats of a per-channel [E, N] array in the blocked layout [⌈E/16⌉, N, 16].
    public static func blockedCount(channels e: Int, stateSize n: Int) -> Int { (e + 15) / 16 * n * 16 }
    /// [E, N] → blocked by 16 (padding zero).
    public static func block(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, channels e: Int, stateSize n: Int) {
        orochi_block16(src, dst, e, Int32(n))
    }
    /// Blocked by 16 → [E, N].
    public static func unblock(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, channels e: Int, stateSize n: Int) {
        orochi_unblock16(src, dst, e, Int32(n))
    }

    /// Any state size: one scalar loop over the N state values.
    static func scanAnyN(steps t: Int, channels: Range<Int>, of e: Int, stateSize n: Int,
                         x: UnsafePointer<Float>, delta: UnsafePointer<Float>, deltaBias: UnsafePointer<Float>,
                         a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafePointer<Float>, ldbc: Int,
                         d: UnsafePointer<Float>, z: UnsafePointer<Float>, ldz: Int,
                         state: UnsafeMutablePointer<Float>, into y: UnsafeMutablePointer<Float>) {
        for ch in channels {
            let h = state + ch * n, ac = a + ch * n, db = deltaBias[ch]
            for i in 0..<t {
                let dt = softplus(delta[i * e + ch] + db), u = x[i * e + ch]
                let bi = b + i * ldbc, ci = c + i * ldbc
                var acc: Float = 0
                for s in 0..<n {
                    h[s] = expf(dt * ac[s]) * h[s] + dt * u * bi[s]
                    acc += h[s] * ci[s]
                }
                y[i * e + ch] = (acc + d[ch] * u) * Kernels.silu(z[i * ldz + ch])
            }
        }
    }

    /// The common case N = 16: the state row is one SIMD16 value, kept in registers over time.
    /// Time runs in blocks of 16 steps: first the decays exp(ΔA) of the block (independent of h),
    /// then the recurrence itself, two short loops that keep few values live.
    static func scan16(steps t: Int, channels: Range<Int>, of e: Int,
                       x: UnsafePointer<Float>, delta: UnsafePointer<Float>, deltaBias: UnsafePointer<Float>,
                       a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafePointer<Float>, ldbc: Int,
                       d: UnsafePointer<Float>, z: UnsafePointer<Float>, ldz: Int,
                       state: UnsafeMutablePointer<Float>, into y: UnsafeMutablePointer<Float>) {
        typealias V = SIMD16<Float>
        let block = 16
        let raw = UnsafeMutableRawPointer(state)
        withUnsafeTemporaryAllocation(of: V.self, capacity: block) { decay in          // on the stack
            var du = V()                                                                // Δ·x of the block's steps
            for ch in channels {
                var h = raw.loadUnaligned(fromByteOffset: ch * 64, as: V.self)
                let ac = UnsafeRawPointer(a).loadUnaligned(fromByteOffset: ch * 64, as: V.self)
                let dc = d[ch], db = deltaBias[ch]
                var i0 = 0
                while i0 < t {
                    let m = min(block, t - i0)
                    for i in 0..<m {                                                    // Ā = exp(ΔA), B̄ scale Δ·x
                        let dt = softplus(delta[(i0 + i) * e + ch] + db)
                        du[i] = dt * x[(i0 + i) * e + ch]
                        decay[i] = Self.exp(dt * ac)
                    }
                    for i in 0..<m {                                                    // h = Ā h + B̄ x, y = C·h + D x
                        let ti = i0 + i
                        let bi = UnsafeRawPointer(b + ti * ldbc).loadUnaligned(as: V.self)
                        let ci = UnsafeRawPointer(c + ti * ldbc).loadUnaligned(as: V.self)
                        h = decay[i] * h + du[i] * bi
                        y[ti * e + ch] = ((h * ci).sum() + dc * x[ti * e + ch]) * Kernels.silu(z[ti * ldz + ch])
                    }
                    i0 += m
                }
                raw.storeBytes(of: h, toByteOffset: ch * 64, as: V.self)
            }
        }
    }

    /// Softplus as PyTorch computes it (threshold 20), log1p(eˣ) through logf, which is several
    /// times faster than glibc's log1pf: log1p(u) = log(w) · u / (w − 1) with w = 1 + u (Goldberg),
    /// accurate to a few ulps.
    @inline(__always)
    static func softplus(_ x: Float) -> Float {
        if x > 20 { return x }
        let u = expf(x), w = 1 + u
        return w == 1 ? u : logf(w) * (u / (w - 1))
    }

    /// eˣ for 16 lanes: x = k·ln2 + r with |r| ≤ ln2/2, eʳ by Cephes' degree-6 polynomial, 2ᵏ
    /// through the exponent bits. Relative error ~2e-7 on [−87, 88]; inputs are clamped to that
    /// range (below it the result is ~1.6e-38 instead of a denormal or 0: for Δ·A ≤ 0 the decay
    /// factor is then negligible either way). Only lane-wise arithmetic and bit casts, so that it
    /// compiles to vector instructions.
    @inline(__always)
    public static func exp(_ x: SIMD16<Float>) -> SIMD16<Float> {
        typealias V = SIMD16<Float>
        let lo = V(repeating: -87), hi = V(repeating: 88)
        let xc = x.replacing(with: lo, where: x .< lo).replacing(with: hi, where: x .> hi)
        // Adding 1.5·2²³ rounds x·log₂e to an integer k held in the low mantissa bits.
        let shifted = xc * 1.44269504088896341 + 12_582_912
        let k = shifted - 12_582_912
        let r = xc - k * 0.693359375 + k * 2.12194440e-4               // ln 2 split in two for exactness
        var p = V(repeating: 1.9875691500e-4)
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        let er = p * (r * r) + r + 1
        let kBits = unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- 0x4B40_0000      // k
        let scale = (kBits &+ 127) &* 0x80_0000                                          // 2ᵏ's bits: (k + 127) << 23
        return er * unsafeBitCast(scale, to: V.self)
    }
}
