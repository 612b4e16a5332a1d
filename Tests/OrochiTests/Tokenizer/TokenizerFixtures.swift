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
        let skeleton = directory.appendingPathComponent(variant).appendingPathComponent("tokenizer.skeleton.json")
        if FileManager.default.fileExists(atPath: skeleton.path) { return try filledSkeleton(skeleton) }
        return try loadTokenizer(file: tokenizerFile(variant))
    }

    /// A tokenizer.json committed without its vocabulary and charsmap (see the fixture script's
    /// precompiled_from_sentencepiece): both come back from the sentencepiece model it was
    /// built from, exactly as the Python converter took them.
    static func filledSkeleton(_ url: URL) throws -> any Tokenizer {
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        let source = url.deletingLastPathComponent().appendingPathComponent(json["orochi_fill_from"] as! String)
        let proto = try SentencePieceProto(bytes: [UInt8](Data(contentsOf: source)))
        var model = json["model"] as! [String: Any]
        model["vocab"] = proto.pieces.map { [String(decoding: $0.text, as: UTF8.self), Double($0.score)] as [Any] }
        json["model"] = model
        var normalizer = json["normalizer"] as! [String: Any]
        var steps = normalizer["normalizers"] as! [[String: Any]]
        steps[0]["precompiled_charsmap"] = Data(proto.normalizer.precompiledCharsmap).base64EncodedString()
        normalizer["normalizers"] = steps
        json["normalizer"] = normalizer
        return try HFTokenizer(bytes: [UInt8](try JSONSerialization.data(withJSONObject: json)), path: url.path)
    }
}
