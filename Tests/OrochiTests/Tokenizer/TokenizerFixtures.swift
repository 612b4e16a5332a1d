import Foundation
@testable import Orochi

/// The reference fixtures written by Scripts/tokenizers/make_tokenizer_fixtures.py.
enum TokenizerFixtures {
    static let directory: URL = Bundle.module.resourceURL!
        .appendingPathComponent("Fixtures").appendingPathComponent("tokenizers")

    static let variants: [String] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { !$0.hasSuffix(".txt") }.sorted()
    }()

    static func lines(_ name: String) -> [String] {
        // Split bytes, not Characters, so that no line's text is reinterpreted.
        let data = FileManager.default.contents(atPath: directory.appendingPathComponent(name).path)!
        var lines = [UInt8](data).split(separator: 0x0A, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        if lines.last == "" { lines.removeLast() }
        return lines
    }

    static let inputLines = lines("lines.txt")

    static func tokenizerFile(_ variant: String) -> URL {
        let folder = directory.appendingPathComponent(variant)
        let model = folder.appendingPathComponent("tokenizer.model")
        return FileManager.default.fileExists(atPath: model.path) ? model : folder.appendingPathComponent("tokenizer.json")
    }

    static func ids(_ variant: String, _ file: String) -> [[Int]] {
        lines("\(variant)/\(file)").map { $0.split(separator: " ").map { Int($0)! } }
    }

    static func tokenizer(_ variant: String) throws -> any Tokenizer {
        try loadTokenizer(file: tokenizerFile(variant))
    }
}
