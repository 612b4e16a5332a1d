import Foundation
import Testing
@testable import Orochi

@Suite("Tokenizer behaviour")
struct TokenizerBehaviourTests {
    private func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("orochi-tok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test("a model directory picks tokenizer.model first and reads tokenizer_config.json")
    func modelDirectory() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.copyItem(at: TokenizerFixtures.tokenizerFile("sp-unigram-nmt-nfkc"),
                                         to: directory.appendingPathComponent("tokenizer.model"))
        let tokenizer = try loadTokenizer(modelDirectory: directory)
        #expect(tokenizer is SentencePieceTokenizer)
        let plain = tokenizer.encode("日本語", addSpecialTokens: false)
        #expect(tokenizer.encode("日本語", addSpecialTokens: true) == [tokenizer.bosTokenId!] + plain)

        try Data(#"{"add_bos_token": false, "add_eos_token": true}"#.utf8)
            .write(to: directory.appendingPathComponent("tokenizer_config.json"))
        let configured = try loadTokenizer(modelDirectory: directory)
        #expect(configured.encode("日本語", addSpecialTokens: true) == plain + [configured.eosTokenId!])
    }

    @Test("a directory without a tokenizer is a clear error")
    func emptyDirectory() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        #expect(throws: TokenizerError.noTokenizerInDirectory(path: directory.path)) {
            try loadTokenizer(modelDirectory: directory)
        }
        let missing = directory.appendingPathComponent("nope.model")
        #expect(throws: TokenizerError.fileNotFound(path: missing.path)) { try loadTokenizer(file: missing) }
    }

    @Test("a corrupt protobuf names the file and the problem")
    func corruptModel() throws {
        var bytes = [UInt8](try Data(contentsOf: TokenizerFixtures.tokenizerFile("sp-bpe-identity-digits-unk")))
        bytes = Array(bytes.prefix(bytes.count / 2))
        do {
            _ = try SentencePieceTokenizer(bytes: bytes, path: "half.model")
            Issue.record("a truncated model loaded")
        } catch let error as TokenizerError {
            guard case .corruptModel(let path, _) = error else { Issue.record("unexpected \(error)"); return }
            #expect(path == "half.model")
            #expect(error.description.contains("half.model"))
        }
        #expect(throws: TokenizerError.self) { try SentencePieceTokenizer(bytes: [0xFF, 0xFF, 0xFF], path: "junk.model") }
        #expect(throws: TokenizerError.self) { try HFTokenizer(bytes: Array(#"{"model": {"type": "BPE"}}"#.utf8), path: "t.json") }
    }

    @Test("invalid UTF-8 in an input file names the line")
    func invalidUTF8() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("input.txt")
        try Data([0x61, 0x0A, 0xE3, 0x81, 0x82, 0x0A, 0xE3, 0x81, 0x0A, 0x62]).write(to: file)
        #expect(throws: TokenizerError.invalidUTF8(source: file.path, line: 3)) { try readTextLines(path: file.path) }
        #expect(TokenizerError.invalidUTF8(source: "in.txt", line: 3).description.contains("line 3"))
    }

    @Test("streaming detokenizer holds back partial characters", arguments: ["sp-bpe-nmt-nfkc-bytes", "hf-bpe-bytelevel", "hf-bpe-metaspace-bytes", "sp-unigram-nmt-nfkc"])
    func streaming(variant: String) throws {
        let tokenizer = try TokenizerFixtures.tokenizer(variant)
        for line in TokenizerFixtures.inputLines.prefix(60) {
            let ids = tokenizer.encode(line, addSpecialTokens: false)
            let stream = StreamingDetokenizer(tokenizer)
            var text = ""
            for id in ids {
                let chunk = stream.append(id)
                #expect(!chunk.unicodeScalars.contains("\u{FFFD}") || tokenizer.decode(ids).unicodeScalars.contains("\u{FFFD}"))
                text += chunk
            }
            text += stream.finish()
            #expect(Array(text.utf8) == Array(tokenizer.decode(ids).utf8), "\(variant): \(line)")
        }
    }

    @Test("byte pieces of one character come out as one complete character")
    func streamingBytes() throws {
        let tokenizer = try TokenizerFixtures.tokenizer("sp-bpe-nmt-nfkc-bytes")
        let ids = tokenizer.encode("𪚲", addSpecialTokens: false)
        let stream = StreamingDetokenizer(tokenizer)
        var chunks = ids.map { stream.append($0) }
        chunks.append(stream.finish())
        #expect(chunks.filter { !$0.isEmpty } == ["𪚲"])
    }

    @Test("a long line without spaces costs about as much as the same text in short lines", arguments: ["sp-bpe-nmt-nfkc-bytes", "sp-unigram-nmt-nfkc", "hf-bpe-metaspace-bytes"])
    func linearTime(variant: String) throws {
        let tokenizer = try TokenizerFixtures.tokenizer(variant)
        let short = Array(TokenizerFixtures.inputLines.dropFirst(60).prefix(400)).map { $0.replacingOccurrences(of: " ", with: "") }
        let long = short.joined()
        func seconds(_ body: () -> Void) -> Double {  // best of two: the machine is shared
            var best = Double.infinity
            for _ in 0..<2 {
                let start = DispatchTime.now().uptimeNanoseconds
                body()
                best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            }
            return best
        }
        var shortCount = 0, longCount = 0
        let shortTime = seconds { shortCount = short.reduce(0) { $0 + tokenizer.encode($1, addSpecialTokens: false).count } }
        let longTime = seconds { longCount = tokenizer.encode(long, addSpecialTokens: false).count }
        #expect(longCount > 0 && shortCount > 0)
        // Quadratic merging would be ~400x slower here; allow generous noise from a shared machine.
        #expect(longTime < shortTime * 5 + 0.05, "long \(longTime)s vs short \(shortTime)s")
    }

    @Test("NFKC as tokenizers applies it: composed voiced marks, no Unicode 12+ mappings")
    func nfkcLikeTokenizers() {
        // Expected values printed by tokenizers 0.23.3: normalizers.NFKC().normalize_str(...)
        let input = Array("\u{1F16C}\u{32FF}\u{A69C}\u{FF76}\u{FF9E}\u{1F23B}\u{1FBF6}".unicodeScalars)
        let output = HFNormalizer.string(HFNormalizer.nfkc.apply(input))
        #expect(Array(output.unicodeScalars) == Array("\u{1F16C}\u{32FF}\u{044A}\u{30AC}\u{914D}\u{1FBF6}".unicodeScalars))
    }

    @Test("GPT-2 regex splits as the reference")
    func gpt2Regex() {
        let text = Array("Hello world's  2024年 ok!!  \tend  ".unicodeScalars)
        let pieces = GPT2Regex.split(text).map { HFNormalizer.string(Array(text[$0])) }
        #expect(pieces == ["Hello", " world", "'s", " ", " 2024", "年", " ok", "!!", "  ", "\t", "end", "  "])
    }
}
