import Foundation
import Testing
@testable import Orochi

/// Hostile tokenizer files (issue 11): each must be refused with an error that names the file
/// and what was expected — never a crash, a hang, or ids outside the vocabulary.
@Suite("Tokenizer hardening")
struct TokenizerHardeningTests {
    /// A small BPE tokenizer.json with `model` and the rest of the root spliced in.
    private static func bpe(vocab: String = #"{"a": 0, "b": 1, "ab": 2}"#, merges: String = #"["a b"]"#,
                            model: String = "", root: String = "") -> String {
        #"{"model": {"type": "BPE", "vocab": \#(vocab), "merges": \#(merges)\#(model)}\#(root)}"#
    }

    private static let template = #"{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}], "special_tokens": {"<s>": {"id": "<s>", "ids": [IDS], "tokens": ["<s>"]}}}"#

    /// Loading `json` fails with a TokenizerError whose message names the file and contains
    /// every one of `fragments`.
    private func expectRefused(_ json: String, _ fragments: String..., sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try HFTokenizer(bytes: Array(json.utf8), path: "hostile.json")
            Issue.record("loaded: \(json.prefix(200))", sourceLocation: sourceLocation)
        } catch let error as TokenizerError {
            let message = error.description
            #expect(message.hasPrefix("hostile.json"), "\(message)", sourceLocation: sourceLocation)
            for fragment in fragments {
                #expect(message.contains(fragment), "\(message) lacks \(fragment)", sourceLocation: sourceLocation)
            }
        } catch {
            Issue.record("not a TokenizerError: \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test("the well-formed base file loads")
    func baseLoads() throws {
        let tokenizer = try HFTokenizer(bytes: Array(Self.bpe().utf8), path: "ok.json")
        #expect(tokenizer.encode("abba", addSpecialTokens: false) == [2, 1, 0])
        let withTemplate = Self.bpe(root: #", "post_processor": \#(Self.template.replacingOccurrences(of: "IDS", with: "1"))"#)
        #expect(try HFTokenizer(bytes: Array(withTemplate.utf8)).encode("ab", addSpecialTokens: true) == [1, 2])
    }

    @Test("vocabulary ids out of range or not integers are refused", arguments: ["2147483648", "4294967296", "1000000000000", "-1", "16777216", "1.5", "1e3", "true", "\"1\"", "null"])
    func vocabularyIds(id: String) {
        expectRefused(Self.bpe(vocab: #"{"a": 0, "b": \#(id), "ab": 2}"#), "model.vocab.b", "0..<16777216")
        expectRefused(#"{"model": {"type": "WordLevel", "vocab": {"a": \#(id)}, "unk_token": "a"}}"#, "model.vocab.a")
    }

    @Test("added token ids out of range or not integers are refused", arguments: ["-1", "1000000000000", "16777216", "2.0", "true"])
    func addedTokenIds(id: String) {
        expectRefused(Self.bpe(root: #", "added_tokens": [{"id": \#(id), "content": "<x>", "special": true}]"#), "added_tokens[0].id")
    }

    @Test("added_tokens must be an array of objects")
    func addedTokensShape() {
        expectRefused(Self.bpe(root: #", "added_tokens": {"id": 3, "content": "<x>"}"#), "added_tokens", "an array")
        expectRefused(Self.bpe(root: #", "added_tokens": "<x>""#), "added_tokens", "an array")
        expectRefused(Self.bpe(root: #", "added_tokens": null"#), "added_tokens", "an array")
        expectRefused(Self.bpe(root: #", "added_tokens": [3]"#), "added_tokens[0]")
        expectRefused(Self.bpe(root: #", "added_tokens": [{"id": 3}]"#), "added_tokens[0].content")
    }

    @Test("post-processor special ids must be ids of the vocabulary", arguments: ["-5", "1000000000000", "3", "1.5", "true", "\"1\""])
    func templateIds(id: String) {
        expectRefused(Self.bpe(root: #", "post_processor": \#(Self.template.replacingOccurrences(of: "IDS", with: id))"#),
                      "post_processor.special_tokens.<s>.ids[0]", "0..<3")
        expectRefused(Self.bpe(root: #", "post_processor": {"type": "BertProcessing", "cls": ["a", \#(id)], "sep": ["b", 1]}"#),
                      "post_processor.cls")
    }

    @Test("a template naming a missing special token, or ids and tokens of different lengths, is refused")
    func templateShape() {
        let missing = Self.template.replacingOccurrences(of: #""special_tokens": {"<s>""#, with: #""special_tokens": {"<t>""#)
        expectRefused(Self.bpe(root: #", "post_processor": \#(missing.replacingOccurrences(of: "IDS", with: "1"))"#), "special_tokens.<s>")
        expectRefused(Self.bpe(root: #", "post_processor": \#(Self.template.replacingOccurrences(of: "IDS", with: "1, 0"))"#), "same length")
        // The special token's own name must be a string, as tokenizers' SpecialToken { id: String } has it.
        let numbered = Self.template.replacingOccurrences(of: #"{"id": "<s>", "ids""#, with: #"{"id": 2147483648, "ids""#)
        expectRefused(Self.bpe(root: #", "post_processor": \#(numbered.replacingOccurrences(of: "IDS", with: "1"))"#), "special_tokens.<s>.id")
    }

    @Test("a BPE word whose every character is unknown, without an unk token, gives no ids")
    func bpeWithoutSymbols() throws {
        let tokenizer = try HFTokenizer(bytes: Array(Self.bpe().utf8), path: "no-unk.json")
        #expect(tokenizer.encode("xyz", addSpecialTokens: false) == [])
        #expect(tokenizer.encode("x", addSpecialTokens: false) == [])
        #expect(tokenizer.encode("xaby", addSpecialTokens: false) == [2])
        let fallback = Self.bpe(model: #", "byte_fallback": true"#)
        #expect(try HFTokenizer(bytes: Array(fallback.utf8)).encode("日本", addSpecialTokens: false) == [])
    }

    @Test("a Unigram model needs an unk_id inside its vocabulary")
    func unigramUnknownId() throws {
        let vocab = #"[["<unk>", 0.0], ["a", -1.0], ["b", -2.0]]"#
        expectRefused(#"{"model": {"type": "Unigram", "vocab": \#(vocab)}}"#, "model.unk_id", "unknown piece")
        expectRefused(#"{"model": {"type": "Unigram", "vocab": \#(vocab), "unk_id": null}}"#, "model.unk_id")
        for bad in ["3", "-1", "1.0", "true"] {
            expectRefused(#"{"model": {"type": "Unigram", "vocab": \#(vocab), "unk_id": \#(bad)}}"#, "model.unk_id", "0..<3")
        }
        let good = try HFTokenizer(bytes: Array(#"{"model": {"type": "Unigram", "vocab": \#(vocab), "unk_id": 0}}"#.utf8))
        #expect(good.encode("axb", addSpecialTokens: false) == [1, 0, 2])
    }

    @Test("counts read from the file must be non-negative integers")
    func negativeCounts() {
        expectRefused(Self.bpe(root: #", "decoder": {"type": "Strip", "content": " ", "start": -1, "stop": 0}"#), "decoder.start", "non-negative")
        expectRefused(#"{"model": {"type": "WordPiece", "vocab": {"[UNK]": 0, "a": 1}, "unk_token": "[UNK]", "max_input_chars_per_word": -1}}"#,
                      "max_input_chars_per_word", "non-negative")
    }

    @Test("JSON that serde_json refuses is refused, with its line and column", arguments: [
        (#"{"model": {"type": "BPE", "vocab": {"a": 0,}, "merges": []}}"#, "trailing comma"),
        (#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a a",]}}"#, "trailing comma"),
        ("{\"model\": {\"type\": \"BPE\",\n \"vocab\": {\"a\": 0}, \"merges\": []},\n}", "trailing comma"),
        (#"{"model": {"type": "BPE", "vocab": {"a": 00}, "merges": []}}"#, "leading zeros"),
        (#"{"model": {"type": "BPE", "vocab": {"a": NaN}, "merges": []}}"#, "a value"),
        (#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}} // comment"#, "end of the file"),
        (#"{"model": {"type": "BPE", "vocab": {"\ud800": 0}, "merges": []}}"#, "surrogate"),
        ("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\tb\": 0}, \"merges\": []}}", "control character"),
        ("\u{FEFF}{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}", "byte-order mark"),
        (String(repeating: "[", count: 100_000), "nesting"),
        (#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}"#, "'}'"),
    ])
    func strictSyntax(json: String, fragment: String) {
        expectRefused(json, fragment, "invalid JSON")
    }

    @Test("a syntax error names its line and column")
    func syntaxPosition() {
        expectRefused("{\"model\": {\"type\": \"BPE\",\n  \"vocab\": {\"a\": 0,},\n \"merges\": []}}", "hostile.json:2:20:")
    }

    @Test("a malformed tokenizer_config.json names its file, line and column")
    func malformedConfig() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("orochi-tok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try Data(Self.bpe().utf8).write(to: directory.appendingPathComponent("tokenizer.json"))
        let config = directory.appendingPathComponent("tokenizer_config.json")
        try Data("{\"add_bos_token\": true,\n}".utf8).write(to: config)
        #expect(throws: TokenizerError.jsonSyntax(path: config.path, line: 2, column: 1,
                                                  expected: "a member after ',' (a trailing comma before '}')")) {
            try loadTokenizer(modelDirectory: directory)
        }
    }

    @Test("invalid UTF-8 inside tokenizer.json is refused")
    func invalidUTF8() {
        var bytes = Array(Self.bpe(vocab: #"{"aX": 0}"#, merges: "[]").utf8)
        bytes[bytes.firstIndex(of: UInt8(ascii: "X"))!] = 0xFF
        #expect(throws: TokenizerError.self) { try HFTokenizer(bytes: bytes, path: "bad-utf8.json") }
    }
}
