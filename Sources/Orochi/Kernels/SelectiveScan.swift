import Foundation

/// Mamba's selective scan (Gu & Dao 2023, Algorithm 2): a linear recurrence per channel whose
/// step Δ and projections B, C depend on the input. Each channel's state of N values stays in
/// registers while the loop runs over time; the N state values are one SIMD vector (N = 16).
public enum SelectiveScan {
    /// For every channel c and step t, with h the channel's state row [N]:
    ///   h ← exp(Δ[t,c] · A[c]) ⊙ h + Δ[t,c] · x[t,c] · B[t]      (Ā h + B̄ x, zero-order hold for A, Euler for B)
    ///   y[t,c] = (C[t] · h + D[c] · x[t,c]) · SiLU(z[t,c])
    ///
    /// - x, delta: [T, E] contiguous (delta already softplus(dt_proj(·) + bias))
    /// - a: [E, N] = −exp(A_log);  d: [E]
    /// - b, c: [T, N] rows with stride `ldbc` (slices of x_proj's output)
    /// - z: [T, E] rows with stride `ldz` (the gate half of in_proj's output)
    /// - state: [E, N], updated in place;  y: [T, E]
    /// Allocates nothing.
    public static func scan(steps t: Int, channels e: Int, stateSize n: Int,
                            x: UnsafePointer<Float>, delta: UnsafePointer<Float>,
                            a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafePointer<Float>, ldbc: Int,
                            d: UnsafePointer<Float>, z: UnsafePointer<Float>, ldz: Int,
                            state: UnsafeMutablePointer<Float>, into y: UnsafeMutablePointer<Float>) {
        if n == 16 {
            scan16(steps: t, channels: e, x: x, delta: delta, a: a, b: b, c: c, ldbc: ldbc, d: d, z: z, ldz: ldz,
                   state: state, into: y)
            return
        }
        for ch in 0..<e {
            let h = state + ch * n, ac = a + ch * n
            for i in 0..<t {
                let dt = delta[i * e + ch], u = x[i * e + ch]
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

    /// The common case N = 16: the state row is one SIMD16 value.
    @inline(__always)
    static func scan16(steps t: Int, channels e: Int,
                       x: UnsafePointer<Float>, delta: UnsafePointer<Float>,
                       a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafePointer<Float>, ldbc: Int,
                       d: UnsafePointer<Float>, z: UnsafePointer<Float>, ldz: Int,
                       state: UnsafeMutablePointer<Float>, into y: UnsafeMutablePointer<Float>) {
        typealias V = SIMD16<Float>
        let raw = UnsafeMutableRawPointer(state)
        for ch in 0..<e {
            var h = raw.loadUnaligned(fromByteOffset: ch * 64, as: V.self)
            let ac = UnsafeRawPointer(a).loadUnaligned(fromByteOffset: ch * 64, as: V.self)
            let dc = d[ch]
            for i in 0..<t {
                let dt = delta[i * e + ch], u = x[i * e + ch]
                let bi = UnsafeRawPointer(b + i * ldbc).loadUnaligned(as: V.self)
                let ci = UnsafeRawPointer(c + i * ldbc).loadUnaligned(as: V.self)
                h = Self.exp(dt * ac) * h + (dt * u) * bi
                y[i * e + ch] = ((h * ci).sum() + dc * u) * Kernels.silu(z[i * ldz + ch])
            }
            raw.storeBytes(of: h, toByteOffset: ch * 64, as: V.self)
        }
    }

    /// eˣ for 16 lanes: x = k·ln2 + r with |r| ≤ ln2/2, eʳ by Cephes' degree-6 polynomial, 2ᵏ
    /// through the exponent bits. Relative error ~2e-7 on [−87, 88]; below −87 it returns ~1e-38
    /// instead of a denormal or 0 (Δ·A ≤ 0, so the decay factor is then negligible either way).
    @inline(__always)
    public static func exp(_ x: SIMD16<Float>) -> SIMD16<Float> {
        typealias V = SIMD16<Float>
        let clamped = x.clamped(lowerBound: V(repeating: -87.3), upperBound: V(repeating: 88.3))
        let k = (clamped * 1.44269504088896341).rounded(.toNearestOrEven)
        let r = clamped - k * 0.693359375 + k * 2.12194440e-4               // ln 2 split in two for exactness
        var p = V(repeating: 1.9875691500e-4)
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        let er = p * (r * r) + r + 1
        let bits = (SIMD16<Int32>(k, rounding: .towardZero) &+ 127) &<< 23
        return er * unsafeBitCast(bits, to: V.self)
    }
}
