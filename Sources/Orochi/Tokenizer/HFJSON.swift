import Foundation

/// Typed access to a tokenizer.json subtree (as StrictJSON parses it), with errors that name
/// the field's path.
struct HFJSON {
    /// The largest vocabulary accepted: every token id of a tokenizer.json (model vocabulary,
    /// added tokens, unk_id, post-processor ids) must lie in 0..<maxVocabularySize before it
    /// is used to index or size anything. 2^24 is 16 times the largest vocabularies in use
    /// (~1M); tokenizers itself takes any u32, so a file it loads may still be refused here,
    /// with this bound named in the error.
    static let maxVocabularySize = 1 << 24

    let value: Any?
    let path: String   // e.g. "model.merges"
    let file: String

    func error(_ expected: String) -> TokenizerError {
        .invalidJSON(path: file, field: path, expected: expected)
    }

    subscript(_ key: String) -> HFJSON {
        HFJSON(value: (value as? [String: Any])?[key], path: path.isEmpty ? key : "\(path).\(key)", file: file)
    }

    var isNull: Bool { value == nil || value is NSNull }
    /// The key is missing (an explicit null is present).
    var isAbsent: Bool { value == nil }
    var object: [String: Any]? { value as? [String: Any] }

    var array: [HFJSON]? {
        (value as? [Any]).map { items in items.enumerated().map { HFJSON(value: $1, path: "\(path)[\($0)]", file: file) } }
    }
    var string: String? { value as? String }
    var bool: Bool? { value as? Bool }
    /// An integer literal (StrictJSON keeps `1.5`, `1e3` and `true` apart from integers).
    var int: Int? { value as? Int }
    var double: Double? { (value as? Double) ?? (value as? Int).map(Double.init) }

    /// The value as JSON text, short, for error messages.
    var shortDescription: String {
        switch value {
        case nil, is NSNull: return "null"
        case let string as String: return string.count > 40 ? "\"\(string.prefix(40))…\"" : "\"\(string)\""
        case let bool as Bool: return bool ? "true" : "false"
        case let int as Int: return String(int)
        case let double as Double: return String(double)
        case is [Any]: return "an array"
        default: return "an object"
        }
    }

    /// A token id: an integer in 0..<limit (at most maxVocabularySize).
    func tokenId(below limit: Int = HFJSON.maxVocabularySize, _ what: String = "a token id") throws -> Int {
        guard let id = int, id >= 0, id < limit else {
            throw error("\(what), an integer in 0..<\(limit), not \(shortDescription)")
        }
        return id
    }

    /// A non-negative integer (a usize in tokenizers), or `fallback` when absent.
    func nonNegativeInt(default fallback: Int) throws -> Int {
        if isNull { return fallback }
        guard let int, int >= 0 else { throw error("a non-negative integer, not \(shortDescription)") }
        return int
    }

    func string(default fallback: String) throws -> String {
        if isNull { return fallback }
        guard let string else { throw error("a string") }
        return string
    }
    func bool(default fallback: Bool) throws -> Bool {
        if isNull { return fallback }
        if let bool { return bool }
        throw error("true or false, not \(shortDescription)")
    }
    func requiredString() throws -> String {
        guard let string else { throw error("a string") }
        return string
    }
    func requiredArray() throws -> [HFJSON] {
        guard let array else { throw error("an array") }
        return array
    }
    /// The component's "type" field.
    func type() throws -> String { try self["type"].requiredString() }
}
