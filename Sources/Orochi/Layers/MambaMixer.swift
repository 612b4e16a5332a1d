import Foundation
import OrochiKernels

// Mamba-1's selective-state-space mixer (Gu & Dao 2023), the mixer of Mamba and of Jamba's Mamba
// layers. For L new tokens (B = 1):
//
//   X_in, Z = split(H·W_inᵀ)                      the SSM branch and the gate          [L, E] ×2
//   U = SiLU(conv1d(X_in))                        causal depthwise conv over time       [L, E]
//   Δ_low, B, C = split(U·W_xᵀ)                   selection: they depend on the input   [L, R], [L, N] ×2
//   (Jamba: Δ_low, B, C = RMSNorm(Δ_low), RMSNorm(B), RMSNorm(C))
//   Δ = softplus(Δ_low·W_dtᵀ + b_dt)                                                    [L, E]
//   Ā = exp(ΔA), B̄U = ΔBU                         zero-order hold, A = −exp(A_log)      [L, E, N]
//   h_t = Ā_t h_{t−1} + B̄_t u_t,  y_t = C_t h_t + D u_t          the selective scan     [L, E]
//   X += (Y ⊙ SiLU(Z))·W_outᵀ                                                           [L, D]
//
// Glossary as mamba-minimal's: D hidden size, E inner channels (expand·D), N state size, R rank
// of Δ, K conv kernel, L tokens. The state is fixed-size: per layer the last K−1 conv inputs and
// the SSM state [E, N], whatever L and however many tokens came before.

/// One Mamba mixer's weights: matrices in their stored type, vectors float32, the conv filter and
/// A derived once at load.
struct MambaMixerWeights {
    let inProj: Linear                      // [2E, D] (+ [2E]): rows 0..<E give x_in, rows E..<2E the gate z
    let conv: UnsafePointer<Float>          // [K, E], the checkpoint's [E, 1, K] transposed
    let convBias: UnsafePointer<Float>?     // [E]
    let xProj: Linear                       // [R + 2N, E]: Δ_low, B, C
    let dtProj: Linear                      // [E, R] (its bias is added inside the scan, before softplus)
    let dtBias: UnsafePointer<Float>        // [E]
    let a: UnsafePointer<Float>             // [E, N] = −exp(A_log), blocked by 16 channels ([⌈E/16⌉, N, 16])
    let d: UnsafePointer<Float>             // [E]
    let outProj: Linear                     // [D, E] (+ [D])
    /// Jamba's RMSNorm weights on Δ_low [R], B [N] and C [N], with their ε.
    let innerNorms: (dt: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafePointer<Float>, eps: Float)?

    var matrices: [WeightMatrix] { [inProj, xProj, dtProj, outProj].map(\.weight) }

    /// The sizes a mixer's tensors must have, with the config keys that set them (for errors).
    struct Shape {
        var dim: Int, inner: Int, stateSize: Int, rank: Int, kernel: Int
        var convBias: Bool, projectionBias: Bool
        /// Jamba: RMSNorms on Δ_low, B and C with this ε.
        var innerNormEps: Float?
        /// Key names in config.json, for messages: (state size, conv kernel, Δ rank).
        var keys: (state: String, kernel: String, rank: String)
    }

    /// The weight table of one mixer: `prefix` is e.g. "backbone.layers.3.mixer." (Mamba) or
    /// "model.layers.3.mamba." (Jamba). `layers` scales out_proj's preset initialisation; derived
    /// buffers (transposed conv, A) are appended to `derived`, which the model keeps alive.
    static func load(_ source: WeightSource, prefix m: String, shape s: Shape, layers: Int, configPath: String,
                     derived: inout [FloatBuffer]) throws -> MambaMixerWeights {
        let d = s.dim, e = s.inner, n = s.stateSize, r = s.rank, k = s.kernel
        /// A tensor whose shape is set by a config key: a mismatch names the key as well.
        func sized<T>(_ key: String, _ value: Int, _ body: () throws -> T) throws -> T {
            do { return try body() } catch let LoadError.shapeMismatch(tensor, expected, found) {
                throw LoadError.badConfig(path: configPath, detail:
                    "tensor '\(tensor)' has shape \(found), expected \(expected): \(key) = \(value) in config.json disagrees with the checkpoint")
            }
        }
        func matrix(_ name: String, _ rows: Int, _ columns: Int, _ initial: RandomInit) throws -> WeightMatrix {
            try source.matrix(m + name, rows: rows, columns: columns, initial: initial)
        }
        func vector(_ name: String, _ shape: [Int], _ initial: RandomInit) throws -> UnsafePointer<Float> {
            try source.vector(m + name, shape: shape, initial: initial)
        }
        func transposedConv(_ w: UnsafePointer<Float>) -> UnsafePointer<Float> { transposedFilter(w, channels: e, kernel: k, derived: &derived) }
        /// A = −exp(A_log) [E, N], blocked by 16 channels for the scan kernel.
        func negExp(_ aLog: UnsafePointer<Float>) -> UnsafePointer<Float> {
            let plain = FloatBuffer(count: e * n)
            for i in 0..<e * n { plain[i] = -expf(aLog[i]) }
            let b = FloatBuffer(count: SelectiveScan.blockedCount(channels: e, stateSize: n))
            SelectiveScan.block(plain.pointer, into: b.pointer, channels: e, stateSize: n)
            derived.append(b)
            return UnsafePointer(b.pointer)
        }
        let kScale = 1 / Float(k).squareRoot(), rScale = 1 / Float(r).squareRoot()
        let keys = s.keys
        return MambaMixerWeights(
            inProj: Linear(try matrix("in_proj.weight", 2 * e, d, .normal(std: 1 / Float(d).squareRoot())),
                           bias: s.projectionBias ? try vector("in_proj.bias", [2 * e], .constant(0)) : nil),
            conv: transposedConv(try sized(keys.kernel, k) { try vector("conv1d.weight", [e, 1, k], .uniform(-kScale, kScale)) }),
            convBias: s.convBias ? try vector("conv1d.bias", [e], .constant(0)) : nil,
            xProj: Linear(try sized("\(keys.rank) + 2·\(keys.state)", r + 2 * n) {
                try matrix("x_proj.weight", r + 2 * n, e, .normal(std: 1 / Float(e).squareRoot())) }),
            dtProj: Linear(try sized(keys.rank, r) { try matrix("dt_proj.weight", e, r, .uniform(-rScale, rScale)) }),
            dtBias: try vector("dt_proj.bias", [e], .uniform(-6.9, -2.3)),             // softplus⁻¹ of Δ in [0.001, 0.1]
            a: negExp(try sized(keys.state, n) { try vector("A_log", [e, n], .logRange(n: n)) }),   // S4D-real: A = −(1…N)
            d: try vector("D", [e], .constant(1)),
            outProj: Linear(try matrix("out_proj.weight", d, e, .normal(std: 1 / Float(e).squareRoot() / Float(2 * layers).squareRoot())),
                            bias: s.projectionBias ? try vector("out_proj.bias", [d], .constant(0)) : nil),
            innerNorms: try s.innerNormEps.map { eps in
                (dt: try sized(keys.rank, r) { try vector("dt_layernorm.weight", [r], .constant(1)) },
                 b: try sized(keys.state, n) { try vector("b_layernorm.weight", [n], .constant(1)) },
                 c: try sized(keys.state, n) { try vector("c_layernorm.weight", [n], .constant(1)) }, eps: eps)
            })
    }
}

/// A conv1d filter [C, 1, K] as [K, C], so that the conv runs over contiguous channels (Mamba's and
/// Mamba-2's); the copy goes into `derived`, which the model keeps alive.
func transposedFilter(_ w: UnsafePointer<Float>, channels c: Int, kernel k: Int, derived: inout [FloatBuffer]) -> UnsafePointer<Float> {
    let b = FloatBuffer(count: k * c)
    for ch in 0..<c { for j in 0..<k { b[j * c + ch] = w[ch * k + j] } }
    derived.append(b)
    return UnsafePointer(b.pointer)
}

/// One Mamba layer's recurrent state, updated in place: what a sequence keeps of its whole
/// context in this layer, the same size at any length. Mamba-1's SSM state is [E, N], blocked by
/// 16 channels for its scan kernel; Mamba-2's is [H, P, N] as is, and its conv runs over x, B and C.
final class MambaState {
    let convChannels: Int, kernel: Int
    /// Mamba-1: (E, N) of the blocked SSM state; nil for Mamba-2's plain one.
    let blocked: (inner: Int, stateSize: Int)?
    let conv: FloatBuffer                   // [K−1, conv channels]: the last K−1 inputs of the conv, oldest first
    let ssm: FloatBuffer                    // Mamba-1 [E, N] blocked by 16 channels; Mamba-2 [H, P, N]

    /// Mamba-1's state.
    init(inner: Int, stateSize: Int, kernel: Int) {
        convChannels = inner; self.kernel = kernel; blocked = (inner, stateSize)
        conv = FloatBuffer(count: (kernel - 1) * inner)
        ssm = FloatBuffer(count: SelectiveScan.blockedCount(channels: inner, stateSize: stateSize))
    }

    /// Mamba-2's state: the conv over `convChannels` (x, B and C) and `ssmCount` = H·P·N values.
    init(convChannels: Int, kernel: Int, ssmCount: Int) {
        self.convChannels = convChannels; self.kernel = kernel; blocked = nil
        conv = FloatBuffer(count: (kernel - 1) * convChannels)
        ssm = FloatBuffer(count: ssmCount)
    }

    /// Conv inputs and SSM values, float32.
    var bytes: Int { ((kernel - 1) * convChannels + ssmValues) * 4 }
    /// Mamba-1: conv inputs [K−1, E] and SSM values [E, N], float32.
    static func bytes(inner: Int, stateSize: Int, kernel: Int) -> Int { ((kernel - 1) * inner + inner * stateSize) * 4 }
    /// SSM values as snapshots hold them (Mamba-1's without the blocking's padding).
    private var ssmValues: Int { blocked.map { $0.inner * $0.stateSize } ?? ssm.count }

    func reset() { conv.zero(); ssm.zero() }

    /// Snapshots hold the SSM state unblocked ([E, N] or [H, P, N]).
    func appendSSM(to payload: inout [UInt8]) {
        guard let (inner, stateSize) = blocked else { payload.appendFloats(ssm.pointer, count: ssm.count); return }
        let plain = FloatBuffer(count: inner * stateSize)
        SelectiveScan.unblock(ssm.pointer, into: plain.pointer, channels: inner, stateSize: stateSize)
        payload.appendFloats(plain.pointer, count: plain.count)
    }

    func readSSM(from reader: inout ByteReader, layer l: Int) throws {
        guard let (inner, stateSize) = blocked else {
            try reader.floats(into: ssm.pointer, count: ssm.count, "ssm state of layer \(l)")
            return
        }
        let plain = FloatBuffer(count: inner * stateSize)
        try reader.floats(into: plain.pointer, count: plain.count, "ssm state of layer \(l)")
        SelectiveScan.block(plain.pointer, into: ssm.pointer, channels: inner, stateSize: stateSize)
    }
}

/// Scratch of the Mamba mixer for up to `rows` tokens, shared by all its layers in a model.
final class MambaScratch {
    let rows: Int
    let xz, u, delta, y, dbc: FloatBuffer   // [L, 2E], [L, E] ×3, [L, R + 2N]
    init(rows: Int, inner: Int, dbc: Int) {
        self.rows = rows
        xz = FloatBuffer(count: rows * 2 * inner)
        u = FloatBuffer(count: rows * inner); delta = FloatBuffer(count: rows * inner); y = FloatBuffer(count: rows * inner)
        self.dbc = FloatBuffer(count: rows * dbc)
    }
}

/// One Mamba layer's mixer: its weights and shapes. Its state is per sequence
/// (`SequenceState.states[layer]`).
struct MambaMixer {
    let inner: Int, stateSize: Int, rank: Int, kernel: Int
    let weights: MambaMixerWeights
    /// This layer's index: its state in each sequence is `states[layer]`.
    let layer: Int

    /// A sequence's state for this layer, zero.
    /// Bytes of one sequence's state of this layer, without making one.
    var stateBytes: Int { MambaState.bytes(inner: inner, stateSize: stateSize, kernel: kernel) }

    func makeState() -> MambaState { MambaState(inner: inner, stateSize: stateSize, kernel: kernel) }

    /// X[L, D] += Mixer(H[L, D]) for the L tokens of `rows`, each continuing from its sequence's
    /// state. Allocates nothing.
    func forward(_ h: UnsafePointer<Float>, rows: Rows, addingTo x: UnsafeMutablePointer<Float>,
                 scratch s: MambaScratch, widen: Widening) {
        if case let .run(sequence, _, 1) = rows {
            step(h, state: sequence.states[layer]!, addingTo: x, scratch: s, widen: widen)
            return
        }
        let t = rows.count, e = inner, n = stateSize, r = rank, w = weights
        let xz = s.xz.pointer, u = s.u.pointer, delta = s.delta.pointer, y = s.y.pointer, dbc = s.dbc.pointer
        Profiler.time(.projection) { w.inProj(h, rows: t, into: xz, widen: widen) }          // [X_in | Z] [L, 2E]
        Profiler.time(.conv) {                                                               // U = SiLU(conv(X_in)) [L, E]
            switch rows {
            case let .run(sequence, _, _):                                                   // L steps of one sequence
                CausalConv.forward(xz, ldx: 2 * e, steps: t, channels: e, kernel: kernel, weight: w.conv,
                                   bias: w.convBias, state: sequence.states[layer]!.conv.pointer, silu: true, into: u)
            case let .batch(sequences):                                                      // one step of each
                for (i, sequence) in sequences.enumerated() {
                    CausalConv.forward(xz + i * 2 * e, ldx: 2 * e, steps: 1, channels: e, kernel: kernel, weight: w.conv,
                                       bias: w.convBias, state: sequence.states[layer]!.conv.pointer, silu: true, into: u + i * e)
                }
            }
        }
        Profiler.time(.projection) {
            w.xProj(u, rows: t, into: dbc, widen: widen)                                     // [Δ_low | B | C] [L, R+2N]
            normalizeSelection(dbc, rows: t)
            w.dtProj(dbc, rows: t, ldx: r + 2 * n, into: delta, widen: widen)                // Δ [L, E] before bias, softplus
        }
        Profiler.time(.scan) {                                                               // Y [L, E]
            // Rows i0..<i0+steps are consecutive steps of one sequence's scan.
            func scan(_ i0: Int, steps: Int, _ state: MambaState) {
                let ldbc = r + 2 * n, bc = dbc + i0 * ldbc
                SelectiveScan.scanBlocked(steps: steps, channels: e, stateSize: n, x: u + i0 * e, ldx: e,
                                          delta: delta + i0 * e, ldDelta: e, deltaBias: w.dtBias, a: w.a,
                                          b: bc + r, c: bc + r + n, ldbc: ldbc, d: w.d, z: xz + i0 * 2 * e + e, ldz: 2 * e,
                                          state: state.ssm.pointer, into: y + i0 * e, ldy: e)
            }
            switch rows {
            case let .run(sequence, _, _): scan(0, steps: t, sequence.states[layer]!)
            case let .batch(sequences): for (i, sequence) in sequences.enumerated() { scan(i, steps: 1, sequence.states[layer]!) }
            }
        }
        if let probe = Probe.active, case .run = rows { record(in: probe, u: u, delta: delta, dbc: dbc, xz: xz, y: y, rows: t) }
        Profiler.time(.projection) { w.outProj(y, rows: t, into: x, accumulate: true, widen: widen) }   // X += Y·W_outᵀ
    }

    /// One token of one sequence (decode): the same equations with two fewer hand-offs to the
    /// threads, which a small model feels (at 6.4M parameters a layer's products take a few
    /// microseconds): in_proj and the conv step as one job, each thread convolving the channels
    /// it has just projected; x_proj; dt_proj and the scan step as one job, each thread projecting
    /// Δ for the channels it then scans; out_proj. mamba-6m decode ran 7 % faster than with the
    /// five jobs and a serial conv (f32 and f16; paired runs of one binary with the step switched
    /// on and off, AMD EPYC, 2 threads); mamba-130m 2 %. Allocates nothing.
    private func step(_ h: UnsafePointer<Float>, state: MambaState, addingTo x: UnsafeMutablePointer<Float>,
                      scratch s: MambaScratch, widen: Widening) {
        let e = inner, n = stateSize, r = rank, w = weights
        let xz = s.xz.pointer, u = s.u.pointer, delta = s.delta.pointer, y = s.y.pointer, dbc = s.dbc.pointer
        Profiler.time(.projection) {                                                          // [x_in | z] [2E], u = SiLU(conv(x_in)) [E]
            CausalConv.stepAfterProduct(h, inProj: w.inProj.weight, inBias: w.inProj.bias, into: xz, channels: e, kernel: kernel,
                                        weight: w.conv, bias: w.convBias, state: state.conv.pointer, into: u)
            w.xProj(u, rows: 1, into: dbc, widen: widen)                                      // [Δ_low | B | C] [R+2N]
            normalizeSelection(dbc, rows: 1)
        }
        Profiler.time(.scan) {                                                                // Δ = Δ_low·W_dtᵀ [E], then y [E]
            SelectiveScan.scanStep(channels: e, stateSize: n, x: u, dtProj: w.dtProj.weight, deltaLow: dbc, delta: delta,
                                   deltaBias: w.dtBias, a: w.a, b: dbc + r, c: dbc + r + n, d: w.d, z: xz + e,
                                   state: state.ssm.pointer, into: y)
        }
        if let probe = Probe.active { record(in: probe, u: u, delta: delta, dbc: dbc, xz: xz, y: y, rows: 1) }
        Profiler.time(.projection) { w.outProj(y, rows: 1, into: x, accumulate: true, widen: widen) }   // x += y·W_outᵀ
    }

    /// Jamba's RMSNorms on Δ_low, B and C, in place on rows of [R + 2N] (Mamba has none).
    private func normalizeSelection(_ dbc: UnsafeMutablePointer<Float>, rows t: Int) {
        guard let norms = weights.innerNorms else { return }
        let r = rank, n = stateSize
        for i in 0..<t {
            let row = dbc + i * (r + 2 * n)
            Kernels.rmsNorm(row, weight: norms.dt, into: row, count: r, eps: norms.eps)
            Kernels.rmsNorm(row + r, weight: norms.b, into: row + r, count: n, eps: norms.eps)
            Kernels.rmsNorm(row + r + n, weight: norms.c, into: row + r + n, count: n, eps: norms.eps)
        }
    }
}
