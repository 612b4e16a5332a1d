import Foundation

/// Seeded random weights for benchmark presets: realistic shapes without a download.
/// Owns every buffer it hands out.
final class RandomWeights {
    private var buffers: [FloatBuffer] = []
    private var rng: SplitMix64
    private(set) var parameterCount = 0

    init(seed: UInt64) { rng = SplitMix64(seed: seed) }

    /// Values from N(0, std²) (Box–Muller).
    func normal(_ shape: [Int], std: Float) -> UnsafePointer<Float> {
        let b = allocate(shape)
        var i = 0
        while i < b.count {
            let u1 = max(rng.nextUnitFloat(), 1e-12), u2 = rng.nextUnitFloat()
            let r = (-2 * logf(u1)).squareRoot() * std
            b[i] = r * cosf(2 * .pi * u2)
            if i + 1 < b.count { b[i + 1] = r * sinf(2 * .pi * u2) }
            i += 2
        }
        return UnsafePointer(b.pointer)
    }

    /// Values uniform in [lo, hi).
    func uniform(_ shape: [Int], _ lo: Float, _ hi: Float) -> UnsafePointer<Float> {
        let b = allocate(shape)
        for i in 0..<b.count { b[i] = lo + (hi - lo) * rng.nextUnitFloat() }
        return UnsafePointer(b.pointer)
    }

    func constant(_ shape: [Int], _ value: Float) -> UnsafePointer<Float> {
        let b = allocate(shape)
        for i in 0..<b.count { b[i] = value }
        return UnsafePointer(b.pointer)
    }

    private func allocate(_ shape: [Int]) -> FloatBuffer {
        let b = FloatBuffer(count: shape.reduce(1, *))
        buffers.append(b)
        parameterCount += b.count
        return b
    }
}

/// A small, fast, seedable generator (Steele et al.'s SplitMix64), so that runs are reproducible.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9e3779b97f4a7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58476d1ce4e5b9
        z = (z ^ (z >> 27)) &* 0x94d049bb133111eb
        return z ^ (z >> 31)
    }
    /// A float uniform in [0, 1) with 24 random bits.
    public mutating func nextUnitFloat() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }
}
