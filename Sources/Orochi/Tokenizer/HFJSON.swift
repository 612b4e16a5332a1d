import Foundation

/// Typed access to a tokenizer.json subtree, with errors that name the field's path.
struct HFJSON {
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
    var object: [String: Any]? { value as? [String: Any] }

    var array: [HFJSON]? {
        (value as? [Any]).map { items in items.enumerated().map { HFJSON(value: $1, path: "\(path)[\($0)]", file: file) } }
    }
    var string: String? { value as? String }
    var bool: Bool? {
        return value as? Bool
    }
    var int: Int? {
        if let number = value as? NSNumber { return number.intValue }
        return nil
    }
    var double: Double? { (value as? NSNumber)?.doubleValue }

    func string(default fallback: String) throws -> String {
        if isNull { return fallback }
        guard let string else { throw error("a string") }
        return string
    }
    func bool(default fallback: Bool) throws -> Bool {
        if isNull { return fallback }
        if let bool { return bool }
        if let number = value as? NSNumber { return number.boolValue }
        throw error("true or false")
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
