import Foundation

/// Everything that can be wrong with a checkpoint on disk. Each message names the file, tensor
/// or key, and what was expected.
public enum LoadError: Error, CustomStringConvertible, Equatable {
    case cannotOpen(path: String, reason: String)
    case truncated(path: String, detail: String)
    case badHeader(path: String, detail: String)
    case unknownDType(path: String, tensor: String, dtype: String)
    case unsupportedDType(path: String, tensor: String, dtype: String)
    case sizeMismatch(path: String, tensor: String, expectedBytes: Int, spanBytes: Int)
    case outOfRange(path: String, tensor: String, end: Int, dataBytes: Int)
    case overlapping(path: String, first: String, second: String)
    case missingTensor(name: String, directory: String)
    case shapeMismatch(tensor: String, expected: [Int], found: [Int])
    case badConfig(path: String, detail: String)
    case unsupportedModelType(path: String, modelType: String)
    case missingFile(path: String, detail: String)
    case nonFinite(tensor: String, count: Int)
    case badGGUF(path: String, detail: String)

    public var description: String {
        switch self {
        case let .cannotOpen(path, reason):
            return "\(path): cannot open (\(reason))"
        case let .truncated(path, detail):
            return "\(path): file is truncated: \(detail)"
        case let .badHeader(path, detail):
            return "\(path): invalid safetensors header: \(detail)"
        case let .unknownDType(path, tensor, dtype):
            return "\(path): tensor '\(tensor)' has unknown dtype '\(dtype)' (expected one of F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL)"
        case let .unsupportedDType(path, tensor, dtype):
            return "\(path): tensor '\(tensor)' has dtype \(dtype); weights must be F32, F16 or BF16"
        case let .sizeMismatch(path, tensor, expected, span):
            return "\(path): tensor '\(tensor)': shape × dtype size is \(expected) bytes but its data_offsets span \(span) bytes"
        case let .outOfRange(path, tensor, end, dataBytes):
            return "\(path): tensor '\(tensor)' ends at byte \(end) of the data section, which has only \(dataBytes) bytes"
        case let .overlapping(path, first, second):
            return "\(path): tensors '\(first)' and '\(second)' overlap in the data section"
        case let .missingTensor(name, directory):
            return "\(directory): missing tensor '\(name)'"
        case let .shapeMismatch(tensor, expected, found):
            return "tensor '\(tensor)' has shape \(found), expected \(expected)"
        case let .badConfig(path, detail):
            return "\(path): \(detail)"
        case let .unsupportedModelType(path, modelType):
            return "\(path): unsupported model_type '\(modelType)' (supported: \(ModelRegistry.supportedTypes.joined(separator: ", ")))"
        case let .missingFile(path, detail):
            return "\(path): \(detail)"
        case let .badGGUF(path, detail):
            return "\(path): invalid GGUF file: \(detail)"
        case let .nonFinite(tensor, count):
            return "tensor '\(tensor)' holds \(count) NaN or infinite value\(count == 1 ? "" : "s"): the checkpoint is damaged"
        }
    }
}
