import Foundation

/// Every failure of loading or running a tokenizer. Messages name the file, line or field and
/// what was expected, so that a user can fix the input without reading the code.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    case fileNotFound(path: String)
    case noTokenizerInDirectory(path: String)
    case unknownFormat(path: String)
    case corruptModel(path: String, detail: String)
    case invalidJSON(path: String, field: String, expected: String)
    /// Not JSON as RFC 8259 (and serde_json, which tokenizers uses) defines it.
    case jsonSyntax(path: String, line: Int, column: Int, expected: String)
    case unsupported(path: String, component: String)
    case invalidUTF8(source: String, line: Int)
    case invalidId(Int, vocabSize: Int)

    public var description: String {
        switch self {
        case .fileNotFound(let path):
            return "\(path): no such file"
        case .noTokenizerInDirectory(let path):
            return "\(path): neither tokenizer.model (SentencePiece) nor tokenizer.json (Hugging Face) found in this directory"
        case .unknownFormat(let path):
            return "\(path): not a SentencePiece .model (protobuf) nor a Hugging Face tokenizer.json"
        case .corruptModel(let path, let detail):
            return "\(path): corrupt SentencePiece model: \(detail)"
        case .invalidJSON(let path, let field, let expected):
            return "\(path): field \"\(field)\": expected \(expected)"
        case .jsonSyntax(let path, let line, let column, let expected):
            return "\(path):\(line):\(column): invalid JSON: expected \(expected)"
        case .unsupported(let path, let component):
            return "\(path): unsupported \(component)"
        case .invalidUTF8(let source, let line):
            return "\(source):\(line): invalid UTF-8 on line \(line)"
        case .invalidId(let id, let vocabSize):
            return "token id \(id) is outside the vocabulary (0..<\(vocabSize))"
        }
    }
}
