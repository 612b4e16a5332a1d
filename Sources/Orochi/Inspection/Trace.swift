import Foundation
import OrochiKernels

// One decoded token's walk through the forward pass: every timed step in order (the same timers
// as `bench`'s component breakdown and `generate --profile`), each with its layer, operation,
// shapes, multiply-adds, bytes read and what it does to the cache or state. The steps' times
// are measured; shapes, multiply-adds and bytes come from each architecture's plan of a decode
// step (`TracePlanning`), which lists the same steps in the same order.

/// One step of a decode.
public struct TraceStep: Sendable, Codable, Equatable {
    public var layer: Int?                 // nil: the embedding and the output head
    public var component: String           // the profiler's component (bench's breakdown)
    public var operation: String
    public var shapes: String
    public var multiplyAdds: Int
    /// Bytes of weight matrices read (as stored: 2 per f16/bf16 weight), the embedding row included.
    public var weightBytes: Int
    /// Other bytes read: the KV cache, the SSM state, norm weights, filters.
    public var otherBytes: Int
    /// Bytes added to the KV cache (grows), or of the state overwritten in place (fixed).
    public var cacheBytesAdded: Int
    public var stateBytesOverwritten: Int
    public var seconds: Double = 0
}

/// The decode of one token after a prompt, step by step.
public struct Trace: Sendable, Codable {
    public var architecture: String
    public var promptTokens: Int
    public var token: Int
    public var steps: [TraceStep]

    public var seconds: Double { steps.reduce(0) { $0 + $1.seconds } }
    public var multiplyAdds: Int { steps.reduce(0) { $0 + $1.multiplyAdds } }
    public var weightBytes: Int { steps.reduce(0) { $0 + $1.weightBytes } }
    public var otherBytes: Int { steps.reduce(0) { $0 + $1.otherBytes } }
    public var cacheBytesAdded: Int { steps.reduce(0) { $0 + $1.cacheBytesAdded } }
    public var stateBytesOverwritten: Int { steps.reduce(0) { $0 + $1.stateBytesOverwritten } }
    /// Seconds per profiler component, as `bench`'s breakdown groups them.
    public var secondsByComponent: [String: Double] { steps.reduce(into: [:]) { $0[$1.component, default: 0] += $1.seconds } }

    /// Prefills `prompt` into `model`'s sequence, then decodes its most likely next token with the
    /// timers on.
    public static func run(model: any LanguageModel, prompt: [Int]) throws -> Trace {
        guard let planner = model as? TracePlanning else {
            throw ModelError.unsupported("\(model.info.architecture) has no decode plan to trace")
        }
        guard !prompt.isEmpty else { throw ModelError.emptyInput }
        model.reset()
        try model.prefill(prompt)
        let token = Kernels.argmax(model.lastLogits.baseAddress!, count: model.lastLogits.count)
        var plan = planner.decodePlan(position: model.position)
        let wasEnabled = Profiler.enabled
        Profiler.enabled = true
        Profiler.reset()
        Profiler.log = []
        defer { Profiler.log = nil; Profiler.enabled = wasEnabled }
        try model.decode(token)
        let events = Profiler.log ?? []
        precondition(events.count == plan.count && zip(events, plan).allSatisfy { $0.0.description == $1.component },
                     "the decode plan of \(model.info.architecture) is out of step with its forward pass")
        for (i, event) in events.enumerated() { plan[i].seconds = event.1 }
        return Trace(architecture: model.info.architecture, promptTokens: prompt.count, token: token, steps: plan)
    }
}

/// An architecture that can list the steps of a decode at `position` (tokens already in the
/// cache), in the order its forward pass times them.
protocol TracePlanning {
    func decodePlan(position: Int) -> [TraceStep]
}

/// Plans of the shared layers, one decode token each.
enum TracePlan {
    static func step(_ layer: Int?, _ c: ProfileComponent, _ operation: String, _ shapes: String, macs: Int,
                     weights: Int = 0, other: Int = 0, added: Int = 0, overwritten: Int = 0) -> TraceStep {
        TraceStep(layer: layer, component: c.description, operation: operation, shapes: shapes, multiplyAdds: macs,
                  weightBytes: weights, otherBytes: other, cacheBytesAdded: added, stateBytesOverwritten: overwritten)
    }

    static func embedding(_ e: WeightMatrix) -> TraceStep {
        step(nil, .embedding, "embedding row of the token", "[\(e.columns)] of [\(e.rows), \(e.columns)]", macs: 0,
             weights: e.rowBytes)
    }

    static func norm(_ layer: Int?, _ norm: Norm, dim: Int) -> TraceStep {
        step(layer, .norm, norm.name + " (\(norm.kind))", "[\(dim)]", macs: 2 * dim, other: (norm.bias == nil ? 4 : 8) * dim)
    }

    static func linear(_ layer: Int?, _ name: String, _ ls: [Linear]) -> TraceStep {
        step(layer, .projection, name, ls.map { "[\($0.outputs), \($0.inputs)]" }.joined(separator: " "),
             macs: ls.reduce(0) { $0 + $1.outputs * $1.inputs },
             weights: ls.reduce(0) { $0 + $1.weight.bytes }, other: ls.reduce(0) { $0 + ($1.bias == nil ? 0 : 4 * $1.outputs) })
    }

    /// An attention layer at `position`: the four timed steps of `AttentionMixer.forward`.
    static func attention(_ l: Int, _ a: AttentionMixer, position p: Int, cacheType: WeightType) -> [TraceStep] {
        let w = a.weights, h = a.heads, g = a.kvHeads, d = a.headDim
        let visible = min(p + 1, a.window ?? Int.max)
        let perToken = 2 * g * d * cacheType.byteSize
        return [
            linear(l, "q_proj, k_proj, v_proj", [w.q, w.k, w.v]),
            step(l, .rope, (a.rope == nil ? "" : "rotate q and k by position \(p); ") + "append k, v to the cache",
                 "k, v [\(g), \(d)] each", macs: a.rope == nil ? 0 : 2 * (h + g) * d, added: perToken),
            step(l, .attention, "softmax(q·Kᵀ/√d)·V over \(visible) cached positions",
                 "q [\(h), \(d)], K and V [\(g), \(visible), \(d)]", macs: 2 * h * d * visible, other: visible * perToken),
            linear(l, "o_proj (+ residual)", [w.o]),
        ]
    }

    /// A Mamba layer: the three timed steps of `MambaMixer.step` (one token): in_proj with the
    /// conv step, then x_proj; dt_proj with the scan; out_proj.
    static func mamba(_ l: Int, _ m: MambaMixer) -> [TraceStep] {
        let w = m.weights, e = m.inner, n = m.stateSize, k = m.kernel
        let norms = w.innerNorms == nil ? "" : ", RMSNorms on Δ, B, C"
        var first = linear(l, "in_proj → x, z; causal conv1d over the last \(k) inputs, SiLU; x_proj → Δ, B, C\(norms)",
                           [w.inProj, w.xProj])
        first.shapes += " filter [\(k), \(e)], conv state [\(k - 1), \(e)]"
        first.multiplyAdds += k * e
        first.otherBytes += (2 * k - 1) * e * 4
        first.stateBytesOverwritten += (k - 1) * e * 4
        var scan = linear(l, "dt_proj → Δ; selective scan: h = exp(ΔA)·h + ΔB·u, y = C·h + D·u, gated by SiLU(z)", [w.dtProj])
        scan.component = ProfileComponent.scan.description
        scan.shapes += " A, h [\(e), \(n)]"
        scan.multiplyAdds += 4 * e * n
        scan.otherBytes += 2 * e * n * 4 + 4 * e * 4
        scan.stateBytesOverwritten += e * n * 4
        return [first, scan, linear(l, "out_proj (+ residual)", [w.outProj])]
    }

    /// A Mamba-2 layer: the five timed steps of `Mamba2Mixer.forward`.
    static func mamba2(_ l: Int, _ m: Mamba2Mixer) -> [TraceStep] {
        let w = m.weights, s = m.ssd, c = m.shape.convChannels, k = m.shape.kernel
        let conv = step(l, .conv, "causal conv1d over x‖B‖C (the last \(k) inputs), SiLU", "filter [\(k), \(c)], conv state [\(k - 1), \(c)]",
                        macs: k * c, other: (2 * k - 1) * c * 4, overwritten: (k - 1) * c * 4)
        let scan = step(l, .scan, "Δ = softplus(Δ_raw + b); SSD step per head: S = exp(ΔA)·S + Δ·x⊗B, y = S·C + D·x (A scalar per head, \(s.groups) B/C group\(s.groups == 1 ? "" : "s"))",
                        "S [\(s.heads), \(s.headDim), \(s.stateSize)]", macs: 3 * s.inner * s.stateSize,
                        other: 2 * s.inner * s.stateSize * 4 + 3 * s.heads * 4, overwritten: s.inner * s.stateSize * 4)
        let norm = step(l, .norm, "gated RMSNorm: y ⊙ SiLU(z), normalised over \(s.groups) group\(s.groups == 1 ? "" : "s")", "[\(s.inner)]",
                        macs: 3 * s.inner, other: 3 * s.inner * 4)
        return [linear(l, "in_proj → z, x‖B‖C, Δ_raw", [w.inProj]), conv, scan, norm, linear(l, "out_proj (+ residual)", [w.outProj])]
    }

    static func swiGLU(_ l: Int, _ f: SwiGLU) -> TraceStep {
        var s = linear(l, "SwiGLU: down(SiLU(gate·x) ⊙ up·x) (+ residual)", [f.gate, f.up, f.down])
        s.component = ProfileComponent.mlp.description
        return s
    }

    static func experts(_ l: Int, _ moe: MixtureOfExperts) -> TraceStep {
        let one = moe.experts[0]
        let expert = [one.gate, one.up, one.down].reduce(0) { $0 + $1.weight.bytes }
        let macs = [one.gate, one.up, one.down].reduce(0) { $0 + $1.outputs * $1.inputs }
        let shared = moe.shared.map { f in [f.gate, f.up, f.down] } ?? []
        return step(l, .mlp, "router, then the top \(moe.topK) of \(moe.experts.count) SwiGLU experts"
                        + (moe.shared == nil ? "" : " and the shared SwiGLU") + " (+ residual)",
                    "router [\(moe.router.outputs), \(moe.router.inputs)], \(moe.topK) × [\(one.gate.outputs), \(one.gate.inputs)] ×3"
                        + (moe.shared.map { ", shared [\($0.gate.outputs), \($0.gate.inputs)] ×3" } ?? ""),
                    macs: moe.router.outputs * moe.router.inputs + moe.topK * macs + shared.reduce(0) { $0 + $1.outputs * $1.inputs },
                    weights: moe.router.weight.bytes + moe.topK * expert + shared.reduce(0) { $0 + $1.weight.bytes })
    }

    static func head(dim: Int, _ lm: Linear) -> TraceStep {
        step(nil, .lmHead, "final norm, lm_head → logits", "[\(lm.outputs), \(lm.inputs)]", macs: 2 * dim + lm.outputs * lm.inputs,
             weights: lm.weight.bytes, other: 4 * dim)
    }
}

extension BlockModel: TracePlanning {
    func decodePlan(position p: Int) -> [TraceStep] {
        var steps = [TracePlan.embedding(embedding)]
        for (l, block) in blocks.enumerated() {
            steps.append(TracePlan.norm(l, block.mixerNorm, dim: dim))
            switch block.mixer {
            case let .attention(a): steps += TracePlan.attention(l, a, position: p, cacheType: cacheType)
            case let .mamba(m): steps += TracePlan.mamba(l, m)
            case let .mamba2(m): steps += TracePlan.mamba2(l, m)
            }
            guard let (norm, feedForward) = block.feedForward else { continue }
            steps.append(TracePlan.norm(l, norm, dim: dim))
            switch feedForward {
            case let .dense(f): steps.append(TracePlan.swiGLU(l, f))
            case let .experts(moe): steps.append(TracePlan.experts(l, moe))
            case let .gelu(f):
                var s = TracePlan.linear(l, "MLP: c_proj(GELU(c_fc·x)) (+ residual)", [f.up, f.down])
                s.component = ProfileComponent.mlp.description
                steps.append(s)
            }
        }
        return steps + [TracePlan.head(dim: dim, lmHead)]
    }
}
