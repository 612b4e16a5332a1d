import Foundation
import OrochiKernels

// The position-wise feed-forward blocks:
//
//   GELU MLP (GPT-2):                             X += GELU(H·Wupᵀ + b)·Wdownᵀ + b
//   SwiGLU (Llama's MLP, Jamba's dense layers):   X += (SiLU(H·Wgateᵀ) ⊙ H·Wupᵀ)·Wdownᵀ
//   Mixture of experts (Jamba's expert layers):   p = softmax(H·Wrouterᵀ) over the X experts;
//       each token goes through its k most probable experts, each a SwiGLU of its own, and
//       X += Σ over those k of p_e · expert_e(H)   (the weights are not renormalised to sum to 1;
//       Granite renormalises them, a softmax over the k largest logits, and adds a shared expert:
//       X += shared(H), a SwiGLU every token goes through)
//
// Shape letters: T tokens, D hidden size, F MLP size, X experts, k experts per token.

/// A SwiGLU MLP: gate and up projections, their product through SiLU, the down projection.
struct SwiGLU {
    let gate, up: Linear                  // [F, D] each
    let down: Linear                      // [D, F]

    /// `prefix` is e.g. "model.layers.3.mlp."; biases where the config asks (`bias`).
    static func load(_ source: WeightSource, prefix p: String, dim: Int, ffn: Int, bias: Bool = false) throws -> SwiGLU {
        func linear(_ name: String, _ rows: Int, _ columns: Int) throws -> Linear {
            Linear(try source.matrix(p + name + ".weight", rows: rows, columns: columns, initial: .normal(std: 1 / Float(columns).squareRoot())),
                   bias: bias ? try source.vector(p + name + ".bias", shape: [rows], initial: .constant(0)) : nil)
        }
        return SwiGLU(gate: try linear("gate_proj", ffn, dim), up: try linear("up_proj", ffn, dim), down: try linear("down_proj", dim, ffn))
    }

    var ffn: Int { gate.outputs }
    var matrices: [WeightMatrix] { [gate, up, down].map(\.weight) }

    /// Y[T, D] (+)= MLP(H[T, D]): added to Y when `accumulate` (the residual add), else written.
    /// `gateBuffer` and `upBuffer` hold [T, F] each.
    func forward(_ h: UnsafePointer<Float>, rows t: Int, into y: UnsafeMutablePointer<Float>, accumulate: Bool,
                 gateBuffer g: UnsafeMutablePointer<Float>, upBuffer u: UnsafeMutablePointer<Float>, widen: Widening) {
        Linear.together(h, rows: t, (gate, g), (up, u), widen: widen)   // G[T, F], U[T, F]
        Kernels.swiglu(g, u, count: t * ffn)                     // G = SiLU(G) ⊙ U
        down(g, rows: t, into: y, accumulate: accumulate, widen: widen)
    }
}

/// GPT-2's MLP: X += GELU(H·Wupᵀ + b_up)·Wdownᵀ + b_down, no gate.
struct GELUMLP {
    let up: Linear                        // [F, D] (+ [F])
    let down: Linear                      // [D, F] (+ [D])
    /// GELU's tanh form (GPT-2's "gelu_new"), else the exact one with erf.
    let tanhForm: Bool

    var ffn: Int { up.outputs }
    var matrices: [WeightMatrix] { [up, down].map(\.weight) }

    /// X[T, D] += MLP(H[T, D]); `buffer` holds [T, F].
    func forward(_ h: UnsafePointer<Float>, rows t: Int, addingTo x: UnsafeMutablePointer<Float>,
                 buffer u: UnsafeMutablePointer<Float>, widen: Widening) {
        up(h, rows: t, into: u, widen: widen)                    // U[T, F]
        Kernels.gelu(u, count: t * ffn, tanhForm: tanhForm)
        down(u, rows: t, into: x, accumulate: true, widen: widen)
    }
}

/// Scratch of the feed-forward blocks for up to `rows` tokens, shared by a model's layers.
final class FeedForwardScratch {
    let rows: Int
    let gate, up: FloatBuffer             // [T, F] ×2
    // Experts only (X > 0): router probabilities [T, X]; the rows routed to one expert, gathered
    // [T, D], and its output [T, D]; per expert the token rows and weights routed to it [X, T].
    let routerProbabilities, gathered, expertOut: FloatBuffer?
    let routedRows: UnsafeMutablePointer<Int>?
    let routedWeights: FloatBuffer?
    let routedCount: UnsafeMutablePointer<Int>?

    init(rows: Int, dim: Int, ffn: Int, experts: Int) {
        self.rows = rows
        gate = FloatBuffer(count: rows * ffn); up = FloatBuffer(count: rows * ffn)
        if experts > 0 {
            routerProbabilities = FloatBuffer(count: rows * experts)
            gathered = FloatBuffer(count: rows * dim); expertOut = FloatBuffer(count: rows * dim)
            routedRows = .allocate(capacity: experts * rows); routedRows!.initialize(repeating: 0, count: experts * rows)
            routedWeights = FloatBuffer(count: experts * rows)
            routedCount = .allocate(capacity: experts); routedCount!.initialize(repeating: 0, count: experts)
        } else {
            routerProbabilities = nil; gathered = nil; expertOut = nil; routedRows = nil; routedWeights = nil; routedCount = nil
        }
    }

    deinit { routedRows?.deallocate(); routedCount?.deallocate() }
}

/// A sparse mixture of SwiGLU experts with a top-k softmax router, as transformers' Jamba (and
/// Mixtral's block, without renormalisation) computes it.
struct MixtureOfExperts {
    let router: Linear                    // [X, D]
    let experts: [SwiGLU]                 // X of them, [F, D] / [F, D] / [D, F] each
    let topK: Int
    /// Granite: the k weights scaled to sum to 1 (a softmax over the k largest router logits).
    var renormalize = false
    /// Granite: a SwiGLU every token goes through, added to the routed experts' sum.
    var shared: SwiGLU? = nil

    /// The weight table: `prefix` is e.g. "model.layers.1.feed_forward."; the experts as separate
    /// tensors per expert (experts.<e>.gate_proj.weight …), as the published checkpoints and
    /// transformers' save_pretrained write them.
    static func load(_ source: WeightSource, prefix p: String, dim: Int, ffn: Int, experts: Int, topK: Int) throws -> MixtureOfExperts {
        let router = Linear(try source.matrix(p + "router.weight", rows: experts, columns: dim,
                                              initial: .normal(std: 1 / Float(dim).squareRoot())))
        return MixtureOfExperts(router: router, experts: try (0..<experts).map {
            try SwiGLU.load(source, prefix: p + "experts.\($0).", dim: dim, ffn: ffn)
        }, topK: topK)
    }

    var matrices: [WeightMatrix] { [router.weight] + experts.flatMap(\.matrices) + (shared?.matrices ?? []) }

    /// X[T, D] += MoE(H[T, D]). Tokens are grouped by expert, so that each expert runs once per
    /// call on all its tokens (one matrix product in a prefill). Allocates nothing.
    func forward(_ h: UnsafePointer<Float>, rows t: Int, addingTo x: UnsafeMutablePointer<Float>,
                 scratch s: FeedForwardScratch, widen: Widening) {
        let n = experts.count, dim = router.inputs
        let probabilities = s.routerProbabilities!.pointer, gathered = s.gathered!.pointer, out = s.expertOut!.pointer
        let routedRows = s.routedRows!, routedWeights = s.routedWeights!.pointer, routedCount = s.routedCount!
        router(h, rows: t, into: probabilities, widen: widen)                    // router logits [T, X]
        routedCount.update(repeating: 0, count: n)
        for i in 0..<t {
            let p = probabilities + i * n
            Kernels.softmax(p, count: n)
            // The k largest probabilities, the lower index first on ties. A taken expert is marked
            // −2 (probabilities are in [0, 1]); a NaN probability is never preferred but never
            // leaves a slot empty (the model stops at the non-finite logits it gives).
            var chosenSum: Float = 0
            for _ in 0..<topK {
                var best = -1
                for e in 0..<n where p[e] != -2 && (best < 0 || p[e] > p[best]) { best = e }
                let slot = best * t + routedCount[best]
                routedRows[slot] = i
                routedWeights[slot] = p[best]
                chosenSum += p[best]
                routedCount[best] += 1
                p[best] = -2                                                        // taken
            }
            if renormalize {                                                        // this token's k slots are the last of their experts'
                for e in 0..<n where p[e] == -2 { routedWeights[e * t + routedCount[e] - 1] /= chosenSum }
            }
        }
        for e in 0..<n where routedCount[e] > 0 {
            let rows = routedCount[e]
            for j in 0..<rows { (gathered + j * dim).update(from: h + routedRows[e * t + j] * dim, count: dim) }
            experts[e].forward(gathered, rows: rows, into: out, accumulate: false,
                               gateBuffer: s.gate.pointer, upBuffer: s.up.pointer, widen: widen)
            for j in 0..<rows {                                                    // X[row] += p_e · expert_e
                let weight = routedWeights[e * t + j], dst = x + routedRows[e * t + j] * dim, src = out + j * dim
                for c in 0..<dim { dst[c] += weight * src[c] }
            }
        }
        shared?.forward(h, rows: t, into: x, accumulate: true, gateBuffer: s.gate.pointer, upBuffer: s.up.pointer, widen: widen)
    }
}
