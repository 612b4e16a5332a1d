import Foundation
import OrochiKernels

// What each layer reads from the past, for any prompt, as T × T matrices (row t: how much each
// earlier position s ≤ t contributes to position t):
//
// - an attention head: its weights softmax(q_t·k_s/√d) over s ≤ t (within a window, if any);
// - a Mamba layer: its hidden attention (Ali, Zimerman & Wolf 2024). The selective scan with a
//   zero initial state is linear in its input u, per channel c:
//       y_t = ( Σ_{s≤t} α_{t,s} u_s + D u_t ) · SiLU(z_t),
//       α_{t,s} = Σ_n C_{t,n} · exp(A_n · (Δ_{s+1} + … + Δ_t)) · Δ_s B_{s,n},
//   so α is the matrix Mamba applies to its inputs, though it never forms it. Channels are
//   aggregated as attention heads cannot be: each channel's |α_{t,·}| is scaled to sum to 1 over
//   s ≤ t, and the E channels' rows are averaged. Both kinds of matrix are then row-stochastic,
//   drawn on the same colour scale.
// - a Mamba-2 head: its SSD matrix (Dao & Gu 2024), which needs no derivation: with A a scalar
//   per head, the scan is exactly y = M·x + D·x with
//       M[t, s] = (C_t · B_s) · exp(A · (Δ_{s+1} + … + Δ_t)) · Δ_s     for s ≤ t, 0 above,
//   the same for the head's P channels; the chunked prefill computes it block by block. Each
//   row's |M| is scaled to sum to 1, one map per head, as attention heads.
//
// "Reach" of a matrix: for each row t, the largest distance t − s at which the weight is still
// at least 1 % of the current token's own (t, t); averaged over rows.

/// One layer's matrices for a prompt of T tokens.
public struct LayerMap: Sendable {
    public enum Kind: String, Sendable { case attention, ssm, ssd }
    public var layer: Int
    public var kind: Kind
    public var tokens: Int
    /// Attention and SSD: one per head; SSM: one (channels aggregated). Each [T, T], row-major, rows summing to 1.
    public var maps: [[Float]]
    /// Reach of each map, in tokens.
    public var reach: [Double]
    /// SSM and SSD: the largest error, relative to the largest |y|, of rebuilding the scan's output from α or M.
    public var identityError: Double?

    public var meanReach: Double { reach.reduce(0, +) / Double(max(1, reach.count)) }

    public init(layer: Int, kind: Kind, tokens: Int, maps: [[Float]], reach: [Double], identityError: Double?) {
        self.layer = layer; self.kind = kind; self.tokens = tokens; self.maps = maps; self.reach = reach
        self.identityError = identityError
    }

    /// An attention layer with its heads averaged into one map (its reach: the heads' mean).
    public var headsAveraged: LayerMap {
        guard kind != .ssm, maps.count > 1 else { return self }
        var mean = [Float](repeating: 0, count: tokens * tokens)
        for m in maps { for j in mean.indices { mean[j] += m[j] / Float(maps.count) } }
        return LayerMap(layer: layer, kind: kind, tokens: tokens, maps: [mean], reach: [meanReach], identityError: identityError)
    }
}

public enum AttentionMaps {
    /// The most tokens a prompt may have: the SSM matrices cost T² · E · N operations.
    public static let maxTokens = 1024
    /// A weight counts as "reached" down to this fraction of the current token's.
    public static let reachThreshold = 0.01

    /// Prefills `tokens` into a fresh sequence of `model` with the probe on and returns every
    /// layer's matrices, in layer order.
    public static func compute(model: any LanguageModel, tokens: [Int]) throws -> [LayerMap] {
        guard !tokens.isEmpty else { throw ModelError.emptyInput }
        guard tokens.count <= maxTokens else {
            throw ModelError.contextOverflow(requested: tokens.count, capacity: maxTokens)
        }
        let before = model.sequence
        defer { model.sequence = before }
        model.sequence = model.makeSequence()
        let probe = Probe()
        try probe.capture { try model.prefill(tokens) }
        var layers: [LayerMap] = []
        for (l, a) in probe.attention { layers.append(attention(a, layer: l)) }
        for (l, s) in probe.scans { layers.append(hiddenAttention(s, layer: l)) }
        for (l, s) in probe.ssdScans { layers.append(ssdMatrices(s, layer: l)) }
        return layers.sorted { $0.layer < $1.layer }
    }

    /// softmax(q_t·k_s/√d) over the visible s ≤ t, per query head.
    static func attention(_ a: Probe.Attention, layer: Int) -> LayerMap {
        let t = a.tokens, d = a.headDim, group = a.heads / a.kvHeads
        let scale = Double(a.scale)
        var maps: [[Float]] = []
        for h in 0..<a.heads {
            let g = h / group
            var m = [Float](repeating: 0, count: t * t)
            for i in 0..<t {
                let first = a.window.map { max(0, i + 1 - $0) } ?? 0
                var scores = [Double](repeating: 0, count: i + 1 - first)
                for j in first...i {
                    var dot = 0.0
                    for x in 0..<d { dot += Double(a.q[i * a.heads * d + h * d + x]) * Double(a.k[j * a.kvHeads * d + g * d + x]) }
                    scores[j - first] = dot * scale
                }
                let top = scores.max()!
                let sum = scores.reduce(0) { $0 + Foundation.exp($1 - top) }
                for j in first...i { m[i * t + j] = Float(Foundation.exp(scores[j - first] - top) / sum) }
            }
            maps.append(m)
        }
        return LayerMap(layer: layer, kind: .attention, tokens: t, maps: maps, reach: maps.map { reach($0, t) }, identityError: nil)
    }

    /// α per channel (double precision), aggregated; and the identity check against the scan's y.
    static func hiddenAttention(_ s: Probe.Scan, layer: Int) -> LayerMap {
        let t = s.tokens, e = s.inner, n = s.stateSize
        var aggregate = [Double](repeating: 0, count: t * t)
        var worst = 0.0, largest = 0.0
        var alpha = [Double](repeating: 0, count: t * t)          // one channel's α [T, T]
        var decay = [Double](repeating: 0, count: t * n)          // exp(A_n Δ_t) [T, N]
        var delta = [Double](repeating: 0, count: t)
        var v = [Double](repeating: 0, count: n)
        for c in 0..<e {
            for i in 0..<t {
                let x = Double(s.delta[i * e + c] + s.deltaBias[c])
                delta[i] = x > 20 ? x : Foundation.log1p(Foundation.exp(x))          // softplus, as the scan
                for k in 0..<n { decay[i * n + k] = Foundation.exp(Double(s.a[c * n + k]) * delta[i]) }
            }
            // Column by column: v = Δ_s B_s, decayed by each later step, read out by C_t.
            for j in 0..<t {
                for k in 0..<n { v[k] = delta[j] * Double(s.b[j * n + k]) }
                for i in j..<t {
                    if i > j { for k in 0..<n { v[k] *= decay[i * n + k] } }
                    var dot = 0.0
                    for k in 0..<n { dot += Double(s.c[i * n + k]) * v[k] }
                    alpha[i * t + j] = dot
                }
            }
            for i in 0..<t {
                var yHat = Double(s.d[c]) * Double(s.u[i * e + c]), mass = 0.0
                for j in 0...i { yHat += alpha[i * t + j] * Double(s.u[j * e + c]); mass += abs(alpha[i * t + j]) }
                let zi = Double(s.z[i * e + c])
                yHat *= zi / (1 + Foundation.exp(-zi))                                  // SiLU(z)
                let y = Double(s.y[i * e + c])
                worst = max(worst, abs(yHat - y)); largest = max(largest, abs(y))
                if mass > 0 { for j in 0...i { aggregate[i * t + j] += abs(alpha[i * t + j]) / mass } }
            }
        }
        let map = aggregate.map { Float($0 / Double(e)) }
        return LayerMap(layer: layer, kind: .ssm, tokens: t, maps: [map], reach: [reach(map, t)],
                        identityError: worst / max(largest, 1e-30))
    }

    /// Each head's M (double precision), and the identity check y = M·x + D·x against the scan's y.
    static func ssdMatrices(_ s: Probe.SSDScan, layer: Int) -> LayerMap {
        let t = s.tokens, shape = s.shape, h = shape.heads, p = shape.headDim, n = shape.stateSize, e = shape.inner
        let gn = shape.groups * n
        var maps: [[Float]] = [], worst = 0.0, largest = 0.0
        var m = [Double](repeating: 0, count: t * t)
        for head in 0..<h {
            let g = head / (h / shape.groups), a = Double(s.a[head])
            for i in 0..<t {
                var decay = 0.0                                                  // A·(Δ_{s+1} + … + Δ_t)
                for j in stride(from: i, through: 0, by: -1) {
                    if j < i { decay += a * Double(s.delta[(j + 1) * h + head]) }
                    var dot = 0.0
                    for k in 0..<n { dot += Double(s.c[i * gn + g * n + k]) * Double(s.b[j * gn + g * n + k]) }
                    m[i * t + j] = dot * Foundation.exp(decay) * Double(s.delta[j * h + head])
                }
            }
            for i in 0..<t {
                for c in 0..<p {
                    let channel = head * p + c
                    var yHat = Double(s.d[head]) * Double(s.x[i * e + channel])
                    for j in 0...i { yHat += m[i * t + j] * Double(s.x[j * e + channel]) }
                    let y = Double(s.y[i * e + channel])
                    worst = max(worst, abs(yHat - y)); largest = max(largest, abs(y))
                }
            }
            var map = [Float](repeating: 0, count: t * t)
            for i in 0..<t {
                let mass = (0...i).reduce(0.0) { $0 + abs(m[i * t + $1]) }
                if mass > 0 { for j in 0...i { map[i * t + j] = Float(abs(m[i * t + j]) / mass) } }
            }
            maps.append(map)
        }
        return LayerMap(layer: layer, kind: .ssd, tokens: t, maps: maps, reach: maps.map { reach($0, t) },
                        identityError: worst / max(largest, 1e-30))
    }

    /// Mean over rows of the largest distance whose weight is ≥ 1 % of the diagonal's.
    static func reach(_ m: [Float], _ t: Int) -> Double {
        var total = 0.0
        for i in 0..<t {
            let own = Double(m[i * t + i])
            var far = 0
            for j in 0...i where Double(m[i * t + j]) >= reachThreshold * own { far = i - j; break }
            total += Double(far)
        }
        return total / Double(t)
    }
}
