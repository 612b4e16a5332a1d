import Foundation
import OrochiKernels

// Mamba-2's mixer (Dao & Gu 2024), as transformers' Mamba2Mixer computes it. For L new tokens:
//
//   Z, XBC, Δ_raw = split(H·W_inᵀ)                the gate, the SSM inputs, Δ per head   [L, E], [L, E+2GN], [L, H]
//   X, B, C = split(SiLU(conv1d(XBC)))           one causal conv over x, B and C        [L, E], [L, GN] ×2
//   Δ = clamp(softplus(Δ_raw + b_dt), limit)                                            [L, H]
//   per head h (P channels, group g = h / (H/G), scalar A_h = −exp(A_log_h)):
//       S_t = exp(Δ_t A_h)·S_{t−1} + Δ_t x_t ⊗ B_t,   y_t = S_t·C_t + D_h x_t           S [P, N]
//   Y = RMSNorm_G(Y ⊙ SiLU(Z)) · w                gated, normalised over each of G groups of E/G
//   X += Y·W_outᵀ
//
// What changed from Mamba-1: A is one scalar per head (not [E, N]), so Δ is per head and needs no
// projection of its own; B and C come from in_proj (through the conv), shared by the heads of a
// group; the state is larger (N = 64–256 against 16); and the scan of a prompt is computed in
// chunks as masked matrix products (`SSD.chunked`), the same numbers as the recurrence.
//
// Shape letters: D hidden size, E = H·P inner channels, H heads of P channels, G groups, N state
// size, K conv kernel, L tokens.

/// One Mamba-2 mixer's weights: matrices in their stored type, vectors float32, the conv filter
/// and A derived once at load.
struct Mamba2MixerWeights {
    let inProj: Linear                      // [2E + 2GN + H, D] (+ bias): z, xBC, Δ_raw
    let conv: UnsafePointer<Float>          // [K, E + 2GN], the checkpoint's [E + 2GN, 1, K] transposed
    let convBias: UnsafePointer<Float>?     // [E + 2GN]
    let dtBias: UnsafePointer<Float>        // [H]
    let a: UnsafePointer<Float>             // [H] = −exp(A_log)
    let d: UnsafePointer<Float>             // [H]
    let norm: UnsafePointer<Float>          // [E]: the gated RMSNorm's weight
    let outProj: Linear                     // [D, E] (+ bias)

    var matrices: [WeightMatrix] { [inProj.weight, outProj.weight] }

    /// The sizes a mixer's tensors must have.
    struct Shape {
        var dim: Int, ssd: SSD.Shape, kernel: Int
        var convBias: Bool, projectionBias: Bool
        var convChannels: Int { ssd.inner + 2 * ssd.groups * ssd.stateSize }
        var inProjRows: Int { ssd.inner + convChannels + ssd.heads }
    }

    /// The weight table of one mixer, `prefix` e.g. "backbone.layers.3.mixer.". Derived buffers
    /// (transposed conv, A) go into `derived`, which the model keeps alive.
    static func load(_ source: WeightSource, prefix m: String, shape s: Shape, layers: Int, configPath: String,
                     derived: inout [FloatBuffer]) throws -> Mamba2MixerWeights {
        let d = s.dim, e = s.ssd.inner, h = s.ssd.heads, c = s.convChannels, k = s.kernel
        /// A shape mismatch names the config keys that set the expected shape.
        func sized<T>(_ keys: String, _ body: () throws -> T) throws -> T {
            do { return try body() } catch let LoadError.shapeMismatch(tensor, expected, found) {
                throw LoadError.badConfig(path: configPath, detail:
                    "tensor '\(tensor)' has shape \(found), expected \(expected): \(keys) in config.json disagree with the checkpoint")
            }
        }
        func vector(_ name: String, _ shape: [Int], _ initial: RandomInit) throws -> UnsafePointer<Float> {
            try source.vector(m + name, shape: shape, initial: initial)
        }
        func transposedConv(_ w: UnsafePointer<Float>) -> UnsafePointer<Float> { transposedFilter(w, channels: c, kernel: k, derived: &derived) }
        func negExp(_ aLog: UnsafePointer<Float>) -> UnsafePointer<Float> {
            let b = FloatBuffer(count: h)
            for i in 0..<h { b[i] = -expf(aLog[i]) }
            derived.append(b)
            return UnsafePointer(b.pointer)
        }
        let headKeys = "num_heads (\(h))"
        let convKeys = "expand × hidden_size + 2 × n_groups × state_size (\(c)) and conv_kernel (\(k))"
        return Mamba2MixerWeights(
            inProj: Linear(try sized("expand × hidden_size, n_groups × state_size and num_heads (\(s.inProjRows) rows)") {
                               try source.matrix(m + "in_proj.weight", rows: s.inProjRows, columns: d,
                                                 initial: .normal(std: 1 / Float(d).squareRoot())) },
                           bias: s.projectionBias ? try sized("the in_proj rows") { try vector("in_proj.bias", [s.inProjRows], .constant(0)) } : nil),
            conv: transposedConv(try sized(convKeys) {
                try vector("conv1d.weight", [c, 1, k], .uniform(-1 / Float(k).squareRoot(), 1 / Float(k).squareRoot())) }),
            convBias: s.convBias ? try sized(convKeys) { try vector("conv1d.bias", [c], .constant(0)) } : nil,
            dtBias: try sized(headKeys) { try vector("dt_bias", [h], .uniform(-6.9, -2.3)) },     // softplus⁻¹ of Δ in [0.001, 0.1]
            a: negExp(try sized(headKeys) { try vector("A_log", [h], .logRange(n: h)) }),      // A_h = −h
            d: try sized(headKeys) { try vector("D", [h], .constant(1)) },
            norm: try sized("expand × hidden_size") { try vector("norm.weight", [e], .constant(1)) },
            outProj: Linear(try sized("expand × hidden_size") {
                                try source.matrix(m + "out_proj.weight", rows: d, columns: e,
                                                  initial: .normal(std: 1 / Float(e).squareRoot() / Float(2 * layers).squareRoot())) },
                            bias: s.projectionBias ? try vector("out_proj.bias", [d], .constant(0)) : nil))
    }
}

/// Scratch of the Mamba-2 mixer for up to `rows` tokens, shared by all its layers in a model.
final class Mamba2Scratch {
    let rows: Int
    let zxbcdt: FloatBuffer                 // [L, 2E + 2GN + H]: in_proj's output
    let xbc: FloatBuffer                    // [L, E + 2GN]: after the conv and SiLU
    let delta: FloatBuffer                  // [L, H]
    let y: FloatBuffer                      // [L, E]
    let ssd: SSD.Scratch                    // the chunked scan's
    init(rows: Int, shape s: Mamba2MixerWeights.Shape, chunk: Int) {
        self.rows = rows
        zxbcdt = FloatBuffer(count: rows * s.inProjRows)
        xbc = FloatBuffer(count: rows * s.convChannels)
        delta = FloatBuffer(count: rows * s.ssd.heads)
        y = FloatBuffer(count: rows * s.ssd.inner)
        ssd = SSD.Scratch(chunk: min(chunk, rows), shape: s.ssd)
    }
}

/// One Mamba-2 layer's mixer: its weights and shapes. Its state is per sequence
/// (`SequenceState.states[layer]`: the conv over x, B, C and the SSM state [H, P, N]).
struct Mamba2Mixer {
    let shape: Mamba2MixerWeights.Shape
    let weights: Mamba2MixerWeights
    /// Δ is clamped to this range after the softplus (`time_step_limit`; (0, ∞) does nothing).
    let deltaLimit: ClosedRange<Float>
    /// The chunk of the SSD algorithm (`chunk_size`).
    let chunk: Int
    let eps: Float
    /// This layer's index: its state in each sequence is `states[layer]`.
    let layer: Int

    var ssd: SSD.Shape { shape.ssd }
    var stateBytes: Int { ((shape.kernel - 1) * shape.convChannels + ssd.inner * ssd.stateSize) * 4 }

    func makeState() -> MambaState {
        MambaState(convChannels: shape.convChannels, kernel: shape.kernel, ssmCount: ssd.inner * ssd.stateSize)
    }

    /// X[L, D] += Mixer(H[L, D]) for the L tokens of `rows`, each continuing from its sequence's
    /// state: the chunked SSD for a run of tokens, the recurrent step for one. Allocates nothing.
    func forward(_ h: UnsafePointer<Float>, rows: Rows, addingTo x: UnsafeMutablePointer<Float>,
                 scratch s: Mamba2Scratch, widen: Widening) {
        let t = rows.count, e = ssd.inner, c = shape.convChannels, width = shape.inProjRows, heads = ssd.heads
        let gn = ssd.groups * ssd.stateSize, w = weights
        let zxbcdt = s.zxbcdt.pointer, xbc = s.xbc.pointer, delta = s.delta.pointer, y = s.y.pointer
        Profiler.time(.projection) { w.inProj(h, rows: t, into: zxbcdt, widen: widen) }             // [Z | XBC | Δ_raw]
        Profiler.time(.conv) {                                                                      // XBC = SiLU(conv(XBC))
            switch rows {
            case let .run(sequence, _, _):
                CausalConv.forward(zxbcdt + e, ldx: width, steps: t, channels: c, kernel: shape.kernel, weight: w.conv,
                                   bias: w.convBias, state: sequence.states[layer]!.conv.pointer, silu: true, into: xbc)
            case let .batch(sequences):
                for (i, sequence) in sequences.enumerated() {
                    CausalConv.forward(zxbcdt + i * width + e, ldx: width, steps: 1, channels: c, kernel: shape.kernel,
                                       weight: w.conv, bias: w.convBias, state: sequence.states[layer]!.conv.pointer,
                                       silu: true, into: xbc + i * c)
                }
            }
        }
        Profiler.time(.scan) {
            for i in 0..<t {                                                                        // Δ [L, H]
                let raw = zxbcdt + i * width + e + c
                for j in 0..<heads {
                    delta[i * heads + j] = min(max(Kernels.softplus(raw[j] + w.dtBias[j]), deltaLimit.lowerBound), deltaLimit.upperBound)
                }
            }
            func scan(_ i0: Int, steps: Int, _ state: MambaState) {                                 // Y [L, E]
                let row = xbc + i0 * c
                if steps == 1 {
                    SSD.step(ssd, x: row, delta: delta + i0 * heads, a: w.a, b: row + e, c: row + e + gn, d: w.d,
                             state: state.ssm.pointer, into: y + i0 * e)
                } else {
                    SSD.chunked(ssd, steps: steps, x: row, ldx: c, b: row + e, c: row + e + gn, ldbc: c,
                                delta: delta + i0 * heads, a: w.a, d: w.d, state: state.ssm.pointer, into: y + i0 * e, ldy: e,
                                scratch: s.ssd)
                }
            }
            switch rows {
            case let .run(sequence, _, _): scan(0, steps: t, sequence.states[layer]!)
            case let .batch(sequences): for (i, sequence) in sequences.enumerated() { scan(i, steps: 1, sequence.states[layer]!) }
            }
        }
        if let probe = Probe.active, case .run = rows { record(in: probe, xbc: xbc, delta: delta, y: y, rows: t) }
        Profiler.time(.norm) {                                                                      // Y = RMSNorm_G(Y ⊙ SiLU(Z))·w
            let groupWidth = e / ssd.groups
            for i in 0..<t {
                let yi = y + i * e, z = zxbcdt + i * width
                Kernels.swiglu(z, yi, count: e)                                                     // z = SiLU(z) ⊙ y (z is spent)
                for g in 0..<ssd.groups {
                    Kernels.rmsNorm(z + g * groupWidth, weight: w.norm + g * groupWidth, into: yi + g * groupWidth,
                                    count: groupWidth, eps: eps)
                }
            }
        }
        Profiler.time(.projection) { w.outProj(y, rows: t, into: x, accumulate: true, widen: widen) }   // X += Y·W_outᵀ
    }
}
