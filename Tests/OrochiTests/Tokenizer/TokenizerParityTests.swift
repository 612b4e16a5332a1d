import Foundation
import Testing
@testable import Orochi

/// Every committed tokenizer variant against the ids and decodes of its reference library.
@Suite("Tokenizer parity")
struct TokenizerParityTests {
    @Test("fixtures are present")
    func fixturesPresent() {
        #expect(TokenizerFixtures.variants.count >= 12)
        #expect(TokenizerFixtures.inputLines.count >= 1000)
    }

    @Test("ids identical to the reference on every line", arguments: TokenizerFixtures.variants)
    func idsMatch(variant: String) throws {
        let tokenizer = try TokenizerFixtures.tokenizer(variant)
        let expected = TokenizerFixtures.ids(variant, "ids.txt")
        let lines = TokenizerFixtures.inputLines
        try #require(expected.count == lines.count)
        var mismatches = 0
        for (index, line) in lines.enumerated() {
            let ids = tokenizer.encode(line, addSpecialTokens: false)
            if ids != expected[index] {
                mismatches += 1
                if mismatches <= 3 {
                    Issue.record("\(variant) line \(index + 1) \(line.debugDescription): got \(ids), expected \(expected[index])")
                }
            }
        }
        #expect(mismatches == 0, "\(mismatches) of \(lines.count) lines differ")
    }

    /// Path scores of a 230 KB line reach hundreds of thousands, where float32 rounding and
    /// sentencepiece's score reset decide near-ties between segmentations.
    @Test("ids identical to the reference on one long line without spaces", arguments: TokenizerFixtures.longLineVariants)
    func longLine(variant: String) throws {
        let tokenizer = try TokenizerFixtures.tokenizer(variant)
        let expected = try #require(TokenizerFixtures.ids(variant, "long.txt").first)
        #expect(TokenizerFixtures.longLine.utf8.count == 230_046)
        let ids = tokenizer.encode(TokenizerFixtures.longLine, addSpecialTokens: false)
        let differing = zip(ids, expected).enumerated().filter { $0.element.0 != $0.element.1 }.map(\.offset)
        #expect(ids.count == expected.count && differing.isEmpty,
                "\(variant): \(ids.count) ids, expected \(expected.count); first differing positions \(differing.prefix(5))")
    }

    @Test("decode(encode(line)) equals the reference decode", arguments: TokenizerFixtures.variants)
    func decodeMatches(variant: String) throws {
        let tokenizer = try TokenizerFixtures.tokenizer(variant)
        let expected = TokenizerFixtures.lines("\(variant)/decoded.txt")
        let ids = TokenizerFixtures.ids(variant, "ids.txt")
        let lines = TokenizerFixtures.inputLines
        var mismatches = 0
        for (index, line) in lines.enumerated() {
            let reference = expected[index] == "=" ? line : String(expected[index].unicodeScalars.dropFirst())
            let decoded = tokenizer.decode(ids[index])
            // Compare bytes: String == would equate canonically equivalent texts.
            if Array(decoded.utf8) != Array(reference.utf8) {
                mismatches += 1
                if mismatches <= 3 {
                    Issue.record("\(variant) line \(index + 1): decoded \(decoded.debugDescription), expected \(reference.debugDescription)")
                }
            }
        }
        #expect(mismatches == 0, "\(mismatches) of \(lines.count) decodes differ")
    }

    @Test("special tokens as the reference adds them", arguments: TokenizerFixtures.variants)
    func specialTokens(variant: String) throws {
        let tokenizer = try TokenizerFixtures.tokenizer(variant)
        let expected = TokenizerFixtures.ids(variant, "special.txt")
        for (index, line) in TokenizerFixtures.inputLines.prefix(expected.count).enumerated() {
            #expect(tokenizer.encode(line, addSpecialTokens: true) == expected[index], "line \(index + 1)")
        }
    }
}
