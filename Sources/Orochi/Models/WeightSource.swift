import Foundation

/// Where a model's weights come from: a checkpoint, or seeded random values for a benchmark
/// preset. Each architecture names its tensors once, with their shapes and how a preset
/// initialises them, so that checkpoints and presets cannot drift apart.
protocol WeightSource: AnyObject {
    /// A weight matrix [rows, columns] in the source's storage type.
    func matrix(_ name: String, rows: Int, columns: Int, initial: RandomInit) throws -> WeightMatrix
    /// A 3-dimensional tensor [count, rows, columns] (experts stacked in one tensor, as Granite
    /// stores them) as `count` matrices [rows, columns], views into one.
    func stacked(_ name: String, count: Int, rows: Int, columns: Int, initial: RandomInit) throws -> [WeightMatrix]
    /// A tensor as float32 (norms, biases, filters), checked against `shape`.
    func vector(_ name: String, shape: [Int], initial: RandomInit) throws -> UnsafePointer<Float>
    /// Whether an optional tensor is there (a checkpoint: in the file; a preset: as the config says).
    func has(_ name: String, configured: Bool) -> Bool
    /// Parameters handed out so far.
    var parameterCount: Int { get }
    /// Tensor count per stored dtype, for `inspect`.
    var dtypeCounts: [String: Int] { get }
    /// Where the weights' bytes live, for `inspect`.
    var placement: String { get }
}

/// How a preset fills a tensor (roughly as transformers initialises it).
enum RandomInit {
    case normal(std: Float)
    case uniform(Float, Float)
    case constant(Float)
    /// Mamba's S4D-real initialisation of A_log: row c is log(1), log(2), …, log(N).
    case logRange(n: Int)
}

/// A file's tensors (`TensorSource`) as a model's weights: the architecture's names mapped onto
/// the file's, shapes checked, vectors widened to float32 and refused when not finite, matrices
/// in their stored type unless `storage` is f32. Written once for every file format.
final class SourceWeights: WeightSource {
    let tensors: any TensorSource
    let storage: WeightStorage
    /// The architecture's tensor name → the file's (GGUF names its tensors its own way).
    let fileName: (String) -> String
    private(set) var parameterCount = 0

    init(_ tensors: any TensorSource, storage: WeightStorage, fileName: @escaping (String) -> String = { $0 }) {
        self.tensors = tensors; self.storage = storage; self.fileName = fileName
    }

    func matrix(_ name: String, rows: Int, columns: Int, initial: RandomInit) throws -> WeightMatrix {
        let file = fileName(name)
        try tensors.checkedShape(file, expected: [rows, columns])
        let m = try (storage == .asStored ? tensors.storedMatrix(file, rows: rows, columns: columns) : nil)
            ?? WeightMatrix(try tensors.floats(file).data, rows: rows, columns: columns)
        parameterCount += m.count
        return m
    }

    func stacked(_ name: String, count: Int, rows: Int, columns: Int, initial: RandomInit) throws -> [WeightMatrix] {
        let file = fileName(name)
        try tensors.checkedShape(file, expected: [count, rows, columns])
        let all = count * rows
        let m = try (storage == .asStored ? tensors.storedMatrix(file, rows: all, columns: columns) : nil)
            ?? WeightMatrix(try tensors.floats(file).data, rows: all, columns: columns)
        parameterCount += m.count
        return (0..<count).map { m.rows($0 * rows, count: rows) }
    }

    /// A vector (a norm, a bias, a filter, an SSM parameter) with a NaN or an infinity is refused
    /// here, by name: it is small enough to check at every load, and one such value can leave the
    /// logits finite but wrong (A_log = +∞ zeroes a state rather than poisoning it).
    func vector(_ name: String, shape: [Int], initial: RandomInit) throws -> UnsafePointer<Float> {
        let file = fileName(name)
        try tensors.checkedShape(file, expected: shape)
        let t = try tensors.floats(file)
        var bad = 0
        for i in 0..<t.count where !t.data[i].isFinite { bad += 1 }
        guard bad == 0 else { throw LoadError.nonFinite(tensor: file, count: bad) }
        parameterCount += t.count
        return t.data
    }

    func has(_ name: String, configured: Bool) -> Bool { configured || tensors.shape(of: fileName(name)) != nil }
    var dtypeCounts: [String: Int] { tensors.formatCounts }
    var placement: String { tensors.placement }
}

/// Seeded random weights for benchmark presets: realistic shapes without a download. Matrices
/// are float32, or narrowed to f16 when `storage` says so (to measure half-precision decode).
/// Owns every buffer it hands out.
final class RandomWeights: WeightSource {
    private var buffers: [FloatBuffer] = []
    private var rng: SplitMix64
    private let half: Bool
    private(set) var parameterCount = 0
    private var tensors = 0

    init(seed: UInt64, storage: WeightType = .f32) { rng = SplitMix64(seed: seed); half = storage == .f16 }

    func matrix(_ name: String, rows: Int, columns: Int, initial: RandomInit) throws -> WeightMatrix {
        let values = fill(rows * columns, initial, columns: columns)
        guard half else { return WeightMatrix(values, rows: rows, columns: columns) }
        let narrow = FloatBuffer(count: (rows * columns + 1) / 2, hugePages: true)        // f16 values, two per float slot
        buffers.append(narrow)
        let bits = UnsafeMutableRawPointer(narrow.pointer).bindMemory(to: UInt16.self, capacity: rows * columns)
        narrowToHalf(values, into: bits, count: rows * columns)
        buffers.removeAll { $0.pointer == UnsafeMutablePointer(mutating: values) }   // the f32 values are not kept
        return WeightMatrix(raw: UnsafeRawPointer(bits), type: .f16, rows: rows, columns: columns)
    }

    func vector(_ name: String, shape: [Int], initial: RandomInit) throws -> UnsafePointer<Float> {
        fill(shape.reduce(1, *), initial, columns: shape.last ?? 1)
    }

    func stacked(_ name: String, count: Int, rows: Int, columns: Int, initial: RandomInit) throws -> [WeightMatrix] {
        let m = try matrix(name, rows: count * rows, columns: columns, initial: initial)
        return (0..<count).map { m.rows($0 * rows, count: rows) }
    }

    func has(_ name: String, configured: Bool) -> Bool { configured }

    var dtypeCounts: [String: Int] { [half ? "F16 (random)" : "F32 (random)": tensors] }
    var placement: String { HugePageRegion.available ? "generated in memory, on 2 MiB pages from \(HugePageRegion.minimumBytes >> 20) MiB a matrix" : "generated in memory" }

    private func fill(_ count: Int, _ initial: RandomInit, columns: Int) -> UnsafePointer<Float> {
        let b = FloatBuffer(count: count, hugePages: true)
        buffers.append(b)
        parameterCount += count
        tensors += 1
        switch initial {
        case let .normal(std):                                       // Box–Muller
            var i = 0
            while i < count {
                let u1 = max(rng.nextUnitFloat(), 1e-12), u2 = rng.nextUnitFloat()
                let r = (-2 * logf(u1)).squareRoot() * std
                b[i] = r * cosf(2 * .pi * u2)
                if i + 1 < count { b[i + 1] = r * sinf(2 * .pi * u2) }
                i += 2
            }
        case let .uniform(lo, hi):
            for i in 0..<count { b[i] = lo + (hi - lo) * rng.nextUnitFloat() }
        case let .constant(value):
            for i in 0..<count { b[i] = value }
        case let .logRange(n):
            for i in 0..<count { b[i] = logf(Float(i % n + 1)) }
        }
        return UnsafePointer(b.pointer)
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
