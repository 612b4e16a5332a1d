/// Errors of running a model on given input.
public enum ModelError: Error, CustomStringConvertible, Equatable {
    case contextOverflow(requested: Int, capacity: Int)
    case tokenOutOfRange(token: Int, vocabSize: Int)
    case emptyInput
    /// The first non-finite logit: the position whose logits hold it, and what is known of the cause.
    case nonFiniteLogits(position: Int, detail: String)
    /// A batched decode step that is not one token for each of distinct sequences of the model.
    case badBatch(String)
    case unsupported(String)

    public var description: String {
        switch self {
        case let .contextOverflow(requested, capacity):
            return "\(requested) tokens do not fit in the context of \(capacity) tokens (raise --context, up to the model's maximum, or shorten the input)"
        case let .tokenOutOfRange(token, vocabSize):
            return "token id \(token) is outside the vocabulary (0..<\(vocabSize))"
        case .emptyInput:
            return "no input tokens"
        case let .nonFiniteLogits(position, detail):
            return "non-finite logits (NaN or infinity) at position \(position): \(detail)"
        case let .badBatch(detail):
            return "bad batch: \(detail)"
        case let .unsupported(detail):
            return detail
        }
    }
}
