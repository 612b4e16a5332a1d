import Foundation

/// Rotary position embeddings in the Hugging Face ("rotate half") layout: dimension i of a head
/// is rotated with dimension i + d/2, by the angle position · invFreq[i].
public struct RotaryEmbedding {
    /// invFreq[d/2]: the rotation speed of each pair after any scaling.
    public let invFreq: [Float]
    public let headDim: Int
    /// cos and sin tables [capacity, d/2], filled once for every position the cache can hold.
    private var cosTable: [Float]
    private var sinTable: [Float]
    public let capacity: Int

    public init(invFreq: [Float], headDim: Int, capacity: Int) {
        self.invFreq = invFreq
        self.headDim = headDim
        self.capacity = capacity
        let half = headDim / 2
        cosTable = [Float](repeating: 0, count: capacity * half)
        sinTable = [Float](repeating: 0, count: capacity * half)
        for p in 0..<capacity {
            for i in 0..<half {
                // Angle in float32, as transformers computes position · inv_freq.
                let angle = Float(p) * invFreq[i]
                cosTable[p * half + i] = cosf(angle)
                sinTable[p * half + i] = sinf(angle)
            }
        }
    }

    /// Rotates `heads` heads of `headDim` stored contiguously at `x`, for one position.
    @inline(__always)
    public func apply(_ x: UnsafeMutablePointer<Float>, heads: Int, position p: Int) {
        let half = headDim / 2
        cosTable.withUnsafeBufferPointer { cosBuf in
            sinTable.withUnsafeBufferPointer { sinBuf in
                let c = cosBuf.baseAddress! + p * half
                let s = sinBuf.baseAddress! + p * half
                for h in 0..<heads {
                    let v = x + h * headDim
                    for i in 0..<half {
                        let a = v[i], b = v[i + half]
                        v[i] = a * c[i] - b * s[i]
                        v[i + half] = b * c[i] + a * s[i]
                    }
                }
            }
        }
    }
}

/// How rotation frequencies are derived from config.json (`rope_scaling` / `rope_parameters`).
public enum RopeScaling: Equatable, Sendable {
    case none
    case linear(factor: Double)
    case llama3(factor: Double, lowFreqFactor: Double, highFreqFactor: Double, originalContext: Double)

    /// invFreq[i] = 1 / θ^(2i/d), then scaled as transformers' `ROPE_INIT_FUNCTIONS` do.
    public func inverseFrequencies(theta: Double, headDim d: Int) -> [Float] {
        let base = (0..<(d / 2)).map { i -> Float in
            1 / powf(Float(theta), Float(2 * i) / Float(d))
        }
        switch self {
        case .none:
            return base
        case .linear(let factor):
            return base.map { $0 / Float(factor) }
        case .llama3(let factor, let low, let high, let original):
            // Long wavelengths are slowed by `factor`, short ones kept, the band between blended.
            let lowWavelen = original / low
            let highWavelen = original / high
            return base.map { f -> Float in
                let wavelen = 2 * Double.pi / Double(f)
                if wavelen < highWavelen { return f }
                if wavelen > lowWavelen { return f / Float(factor) }
                let smooth = Float((original / wavelen - low) / (high - low))
                return (1 - smooth) * f / Float(factor) + smooth * f
            }
        }
    }
}
