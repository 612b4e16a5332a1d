import COrochiKernels
import Foundation

/// Mamba's short convolution: depthwise (one filter per channel), causal (an output sees only
/// its own and earlier inputs), over time. Vectorised over channels.
public enum CausalConv {
    /// y[t, c] = bias[c] + Σ_{j<K} w[j, c] · x[t − (K−1) + j, c]  for t in 0..<T, c in 0..<E,
    /// then y = SiLU(y) when `silu` (the mixer's U), where inputs before the first row come from
    /// `state`, the last K−1 inputs seen so far (oldest first). Afterwards `state` holds the last
    /// K−1 inputs, including this call's.
    ///
    /// - x: [T, E] rows with stride `ldx` (e.g. the x half of in_proj's output)
    /// - weight: [K, E] (the checkpoint's [E, 1, K] transposed once at load)
    /// - bias: [E] or nil
    /// - state: [K−1, E], updated in place
    /// - y: [T, E], contiguous; must not alias `x` or `state`
    /// Allocates nothing; T = 1 is decode's conv step. The arithmetic is scan.c's
    /// `orochi_causal_conv` (vectorised over channels, rows split over threads).
    public static func forward(_ x: UnsafePointer<Float>, ldx: Int, steps t: Int, channels e: Int, kernel k: Int,
                               weight w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                               state: UnsafeMutablePointer<Float>, silu: Bool = false, into y: UnsafeMutablePointer<Float>) {
        let past = k - 1
        orochi_causal_conv(t, e, Int32(k), x, ldx, w, bias, state, silu ? 1 : 0, y)
        guard past > 0 else { return }
        // Keep the last K−1 inputs: the tail of the old state followed by this call's rows.
        let kept = max(0, past - t)                                    // old rows that stay
        if kept > 0 { memmove(state, state + (past - kept) * e, kept * e * 4) }
        for r in kept..<past {
            let src = t - (past - r)                                   // input row that lands in slot r
            memcpy(state + r * e, x + src * ldx, e * 4)
        }
    }

    /// Decode's in_proj and conv step for one token, as one job for the threads: xz[2E] = W_in·h
    /// (+ inBias), and as each thread finishes rows of x_in (the first E), the conv step and SiLU of
    /// those channels into u[E] and their `state` moved on by one input. The same arithmetic as the
    /// product followed by `forward` with T = 1; one hand-off to the threads instead of a product
    /// the caller then waits for, and a conv the other threads wait for.
    public static func stepAfterProduct(_ h: UnsafePointer<Float>, inProj: WeightMatrix, inBias: UnsafePointer<Float>?,
                                        into xz: UnsafeMutablePointer<Float>, channels e: Int, kernel k: Int,
                                        weight w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                        state: UnsafeMutablePointer<Float>, into u: UnsafeMutablePointer<Float>) {
        precondition(inProj.rows == 2 * e, "in_proj has 2E rows")
        orochi_mamba_in_conv_step(inProj.type.code, inProj.raw, e, inProj.columns, inBias, h, xz, Int32(k), w, bias, state, u)
    }
}
