import Foundation
import OrochiKernels

/// A weight file format's tensors by name, before any architecture asks for them: safetensors
/// shards (`Checkpoint`) now, GGUF next. The loader (`SourceWeights`) checks shapes, widens,
/// scans for non-finite values and maps the architecture's names onto the file's once, over any
/// source, so that a new format is one conformance.
public protocol TensorSource: AnyObject {
    /// Every tensor's name, sorted.
    var tensorNames: [String] { get }
    /// A tensor's shape as the file gives it, outermost first; nil when there is none.
    func shape(of name: String) -> [Int]?
    /// A tensor's stored format as the file names it ("F32", "BF16", …); nil when there is none.
    func format(of name: String) -> String?
    /// Whether `floats` gives the tensor's values (real-valued formats, quantized ones dequantized).
    func holdsReals(_ name: String) -> Bool
    /// The tensor as float32: in place where the file holds aligned F32, else converted once.
    func floats(_ name: String) throws -> Tensor
    /// A matrix [rows, columns] in its stored format when the kernels read that format (no copy);
    /// nil when it must be widened to float32 first. The shape is checked by the caller.
    func storedMatrix(_ name: String, rows: Int, columns: Int) throws -> WeightMatrix?
    /// Where the bytes live (read into huge pages or mapped), for `inspect`.
    var placement: String { get }
    /// The directory or file, for errors.
    var location: String { get }
}

extension TensorSource {
    /// Tensor count per stored format, e.g. ["BF16": 57].
    public var formatCounts: [String: Int] {
        tensorNames.reduce(into: [:]) { counts, name in counts[format(of: name) ?? "?", default: 0] += 1 }
    }

    /// Tensors holding NaN or infinite values, with how many, in name order.
    public func nonFiniteCounts() throws -> [(tensor: String, count: Int)] {
        var result: [(tensor: String, count: Int)] = []
        for name in tensorNames where holdsReals(name) {
            let t = try floats(name)
            var n = 0
            for i in 0..<t.count where !t.data[i].isFinite { n += 1 }
            if n > 0 { result.append((name, n)) }
        }
        return result
    }

    /// The tensor's shape, checked against the one an architecture expects. A vector may be
    /// stored as [n] or [1, n]: the element count and layout are what matter.
    func checkedShape(_ name: String, expected: [Int]) throws {
        guard let found = shape(of: name) else { throw LoadError.missingTensor(name: name, directory: location) }
        guard found == expected || (found.filter { $0 != 1 } == expected.filter { $0 != 1 } && found.reduce(1, *) == expected.reduce(1, *)) else {
            throw LoadError.shapeMismatch(tensor: name, expected: expected, found: found)
        }
    }
}
