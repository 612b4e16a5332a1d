import Foundation
import OrochiKernels

/// What the teaching tools see inside a forward pass. While `Probe.active` is set, every mixer
/// hands it what it computed for its layer: an attention layer its queries and keys (after the
/// rotation), a Mamba layer the inputs and outputs of its selective scan. Only a prefill from
/// position 0 of one sequence is captured; decode and serving never set it.
final class Probe {
    nonisolated(unsafe) static var active: Probe?

    /// One attention layer: Q [T, H·d] and K [T, G·d] of the prompt's T tokens.
    final class Attention {
        let heads: Int, kvHeads: Int, headDim: Int, window: Int?, scale: Float
        var q: [Float] = [], k: [Float] = []
        init(heads: Int, kvHeads: Int, headDim: Int, window: Int?, scale: Float) {
            self.heads = heads; self.kvHeads = kvHeads; self.headDim = headDim; self.window = window; self.scale = scale
        }
        var tokens: Int { q.count / (heads * headDim) }
    }

    /// One Mamba layer: the scan's input U [L, E], Δ before its bias and softplus [L, E], B and C
    /// [L, N] (after Jamba's norms), the gate Z [L, E] and the output Y [L, E]; and the layer's
    /// A [E, N], D [E] and Δ bias [E].
    final class Scan {
        let inner: Int, stateSize: Int
        let a: [Float], d: [Float], deltaBias: [Float]
        var u: [Float] = [], delta: [Float] = [], b: [Float] = [], c: [Float] = [], z: [Float] = [], y: [Float] = []
        init(inner: Int, stateSize: Int, a: [Float], d: [Float], deltaBias: [Float]) {
            self.inner = inner; self.stateSize = stateSize; self.a = a; self.d = d; self.deltaBias = deltaBias
        }
        var tokens: Int { u.count / inner }
    }

    /// One Mamba-2 layer: the scan's input X [L, E], Δ after softplus and clamp [L, H], B and C
    /// [L, G·N], its output Y [L, E] before the gate and norm; and the layer's A [H] and D [H].
    final class SSDScan {
        let shape: SSD.Shape
        let a: [Float], d: [Float]
        var x: [Float] = [], delta: [Float] = [], b: [Float] = [], c: [Float] = [], y: [Float] = []
        init(shape: SSD.Shape, a: [Float], d: [Float]) { self.shape = shape; self.a = a; self.d = d }
        var tokens: Int { delta.count / shape.heads }
    }

    var attention: [Int: Attention] = [:]
    var scans: [Int: Scan] = [:]
    var ssdScans: [Int: SSDScan] = [:]

    /// Runs `body` with this probe active (one at a time: the teaching commands are single-threaded).
    func capture<T>(_ body: () throws -> T) rethrows -> T {
        Probe.active = self
        defer { Probe.active = nil }
        return try body()
    }

    static func rows(_ p: UnsafePointer<Float>, count: Int, width: Int, stride: Int) -> [Float] {
        var out: [Float] = []
        out.reserveCapacity(count * width)
        for i in 0..<count { out.append(contentsOf: UnsafeBufferPointer(start: p + i * stride, count: width)) }
        return out
    }
}

extension AttentionMixer {
    /// Q and K rows of a chunk of one sequence, after the rotation.
    func record(in probe: Probe, q: UnsafePointer<Float>, k: UnsafePointer<Float>, rows t: Int) {
        let capture = probe.attention[layer] ?? Probe.Attention(heads: heads, kvHeads: kvHeads, headDim: headDim, window: window, scale: scoreScale)
        probe.attention[layer] = capture
        capture.q += Probe.rows(q, count: t, width: heads * headDim, stride: heads * headDim)
        capture.k += Probe.rows(k, count: t, width: kvHeads * headDim, stride: kvHeads * headDim)
    }
}

extension MambaMixer {
    /// The scan's inputs and output of a chunk of one sequence.
    func record(in probe: Probe, u: UnsafePointer<Float>, delta: UnsafePointer<Float>, dbc: UnsafePointer<Float>,
                xz: UnsafePointer<Float>, y: UnsafePointer<Float>, rows t: Int) {
        let e = inner, n = stateSize, r = rank
        let capture = probe.scans[layer] ?? {
            var a = [Float](repeating: 0, count: e * n)
            SelectiveScan.unblock(weights.a, into: &a, channels: e, stateSize: n)
            return Probe.Scan(inner: e, stateSize: n, a: a, d: Array(UnsafeBufferPointer(start: weights.d, count: e)),
                              deltaBias: Array(UnsafeBufferPointer(start: weights.dtBias, count: e)))
        }()
        probe.scans[layer] = capture
        capture.u += Probe.rows(u, count: t, width: e, stride: e)
        capture.delta += Probe.rows(delta, count: t, width: e, stride: e)
        capture.b += Probe.rows(dbc + r, count: t, width: n, stride: r + 2 * n)
        capture.c += Probe.rows(dbc + r + n, count: t, width: n, stride: r + 2 * n)
        capture.z += Probe.rows(xz + e, count: t, width: e, stride: 2 * e)
        capture.y += Probe.rows(y, count: t, width: e, stride: e)
    }
}

extension Mamba2Mixer {
    /// The SSD scan's inputs and output of a chunk of one sequence.
    func record(in probe: Probe, xbc: UnsafePointer<Float>, delta: UnsafePointer<Float>, y: UnsafePointer<Float>, rows t: Int) {
        let e = ssd.inner, gn = ssd.groups * ssd.stateSize, c = shape.convChannels
        let capture = probe.ssdScans[layer] ?? Probe.SSDScan(shape: ssd, a: Array(UnsafeBufferPointer(start: weights.a, count: ssd.heads)),
                                                             d: Array(UnsafeBufferPointer(start: weights.d, count: ssd.heads)))
        probe.ssdScans[layer] = capture
        capture.x += Probe.rows(xbc, count: t, width: e, stride: c)
        capture.b += Probe.rows(xbc + e, count: t, width: gn, stride: c)
        capture.c += Probe.rows(xbc + e + gn, count: t, width: gn, stride: c)
        capture.delta += Probe.rows(delta, count: t, width: ssd.heads, stride: ssd.heads)
        capture.y += Probe.rows(y, count: t, width: e, stride: e)
    }
}
