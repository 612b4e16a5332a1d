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

    /// The long line of the fixture script's long_line(): every input line without its spaces
    /// and tabs, all joined, three times, pass r starting at line 97 r (about 230 KB).
    static let longLine: String = {
        let stripped = inputLines.map { line in
            var scalars = String.UnicodeScalarView()
            scalars.append(contentsOf: line.unicodeScalars.filter { $0 != " " && $0 != "\t" })
            return String(scalars)
        }
        var text = ""
        for pass in 0..<3 {
            for index in stripped.indices { text += stripped[(index + pass * 97) % stripped.count] }
        }
        return text
    }()

    /// Variants with reference ids for the long line (long.txt).
    static let longLineVariants: [String] = variants.filter {
        FileManager.default.fileExists(atPath: directory.appendingPathComponent($0).appendingPathComponent("long.txt").path)
    }

    static func tokenizerFile(_ variant: String) -> URL {
        let folder = directory.appendingPathComponent(variant)
        let model = folder.appendingPathComponent("tokenizer.model")
        return FileManager.default.fileExists(atPath: model.path) ? model : folder.appendingPathComponent("tokenizer.json")
    }

    /// Decimal ids separated by spaces (special.txt), or the compact ids.txt format: a header
    /// "#ids base64 width=W", then each id as W base-64 digits (see the fixture script).
    static func ids(_ variant: String, _ file: String) -> [[Int]] {
        var rows = lines("\(variant)/\(file)")
        guard let header = rows.first, header.hasPrefix("#ids base64 width="), let width = Int(header.dropFirst(18)) else {
            return rows.map { $0.split(separator: " ").map { Int($0)! } }
        }
        rows.removeFirst()
        let digits = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var value = [Int](repeating: -1, count: 256)
        for (index, digit) in digits.enumerated() { value[Int(digit)] = index }
        return rows.map { row in
            let bytes = Array(row.utf8)
            return stride(from: 0, to: bytes.count, by: width).map { start in
                bytes[start..<(start + width)].reduce(0) { $0 << 6 | value[Int($1)] }
            }
        }
    }

    static func tokenizer(_ variant: String) throws -> any Tokenizer {
        let skeleton = directory.appendingPathComponent(variant).appendingPathComponent("tokenizer.skeleton.json")
        if FileManager.default.fileExists(atPath: skeleton.path) { return try filledSkeleton(skeleton) }
        let derivation = directory.appendingPathComponent(variant).appendingPathComponent("derive.json")
        if FileManager.default.fileExists(atPath: derivation.path) { return try derivedModel(derivation) }
        return try loadTokenizer(file: tokenizerFile(variant))
    }

    /// A committed model with the listed pieces marked UNUSED (see unused_from_sentencepiece).
    static func derivedModel(_ url: URL) throws -> any Tokenizer {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        let source = url.deletingLastPathComponent().appendingPathComponent(json["from"] as! String)
        var proto = try SentencePieceProto(bytes: [UInt8](Data(contentsOf: source)))
        for id in json["unused"] as! [Int] { proto.pieces[id].type = .unused }
        return try SentencePieceTokenizer(proto: proto, path: url.path)
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
