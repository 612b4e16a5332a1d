import Foundation

/// Lines of a UTF-8 text file, split on "\n" (a final newline ends the last line, it does not
/// start an empty one). Invalid UTF-8 is an error naming the file and the 1-based line.
public func readTextLines(path: String) throws -> [String] {
    guard let data = FileManager.default.contents(atPath: path) else { throw TokenizerError.fileNotFound(path: path) }
    let bytes = [UInt8](data)
    var lines: [String] = []
    var start = 0
    var lineNumber = 1
    while start < bytes.count {
        let end = bytes[start...].firstIndex(of: 0x0A) ?? bytes.count
        guard let line = String(validating: bytes[start..<end], as: UTF8.self) else {
            throw TokenizerError.invalidUTF8(source: path, line: lineNumber)
        }
        lines.append(line)
        start = end + 1
        lineNumber += 1
    }
    return lines
}

/// A whole UTF-8 text file, newlines kept. Invalid UTF-8 is an error naming the file and line.
public func readText(path: String) throws -> String {
    guard let data = FileManager.default.contents(atPath: path) else { throw TokenizerError.fileNotFound(path: path) }
    if let text = String(validating: data, as: UTF8.self) { return text }
    _ = try readTextLines(path: path)   // throws the error naming the first invalid line
    throw TokenizerError.invalidUTF8(source: path, line: 0)
}
