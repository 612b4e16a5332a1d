import Foundation

/// Non-finite values stop a run with an error instead of producing garbage. The check is on the
/// logits only (one row of V values per step, or the rows of a prefill), never inside the
/// kernels; when it fires, the weights are scanned once to name the tensors (and so the layers)
/// that hold non-finite values.
public enum FiniteCheck {
    /// Index of the first non-finite value among `count`, or nil.
    public static func firstNonFinite(_ p: UnsafePointer<Float>, count: Int) -> Int? {
        for i in 0..<count where !p[i].isFinite { return i }
        return nil
    }

    /// Throws `ModelError.nonFiniteLogits` if the model's last logits are not all finite.
    public static func checkLastLogits(_ model: any LanguageModel) throws {
        let logits = model.lastLogits
        if firstNonFinite(logits.baseAddress!, count: logits.count) != nil {
            throw ModelError.nonFiniteLogits(position: max(model.position - 1, 0), detail: diagnosis(model))
        }
    }

    /// Throws for the first row of `logits` [rows, vocab] holding a non-finite value; row r is
    /// position `firstPosition + r`.
    public static func checkRows(_ logits: UnsafePointer<Float>, rows: Int, vocab: Int, firstPosition: Int,
                                 model: any LanguageModel) throws {
        for r in 0..<rows where firstNonFinite(logits + r * vocab, count: vocab) != nil {
            throw ModelError.nonFiniteLogits(position: firstPosition + r, detail: diagnosis(model))
        }
    }

    /// Which weights hold non-finite values, naming the layers.
    static func diagnosis(_ model: any LanguageModel) -> String {
        guard let counts = try? nonFiniteWeights(model) else { return "the weights could not be scanned" }
        if counts.isEmpty {
            return "every weight is finite, so the activations overflowed float32"
        }
        let layers = Set(counts.compactMap { layerIndex(of: $0.tensor) }).sorted()
        let named = counts.prefix(5).map { "\($0.tensor) (\($0.count))" }.joined(separator: ", ")
        let more = counts.count > 5 ? " and \(counts.count - 5) more tensors" : ""
        let layerText = layers.isEmpty ? "" : " in layer\(layers.count == 1 ? "" : "s") \(layers.map(String.init).joined(separator: ", "))"
        return "the weights hold non-finite values\(layerText): \(named)\(more)"
    }

    /// 3 for "model.layers.3.mlp.up_proj.weight" or "backbone.layers.3.mixer.D".
    static func layerIndex(of tensor: String) -> Int? {
        let parts = tensor.split(separator: ".")
        guard let i = parts.firstIndex(of: "layers"), i + 1 < parts.count else { return nil }
        return Int(parts[i + 1])
    }
}

/// Non-finite values per weight tensor of a loaded model (empty for random-weight presets).
public func nonFiniteWeights(_ model: any LanguageModel) throws -> [(tensor: String, count: Int)] {
    let source = (model as? BlockModel)?.source
    guard let tensors = (source as? SourceWeights)?.tensors else { return [] }
    return try tensors.nonFiniteCounts()
}
