/// Parses token ids written as "1 2 3" (spaces or commas), naming the first bad value.
public func parseTokenIds(_ text: String) throws -> [Int] {
    var ids: [Int] = []
    for part in text.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "\t" || $0 == "\n" }) {
        guard let id = Int(part), id >= 0 else { throw TokenIdsError.invalid(String(part)) }
        ids.append(id)
    }
    return ids
}

public enum TokenIdsError: Error, CustomStringConvertible {
    case invalid(String)
    public var description: String {
        switch self { case .invalid(let s): return "'\(s)' is not a token id (expected non-negative integers separated by spaces)" }
    }
}
