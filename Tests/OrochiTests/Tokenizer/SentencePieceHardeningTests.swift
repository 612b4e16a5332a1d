import Foundation
import Testing
@testable import Orochi

/// Hostile tokenizer.model files (issue 11): refused at load as sentencepiece refuses them
/// (model_interface.cc, normalizer.cc), with an error naming the file — never a crash.
@Suite("SentencePiece hardening")
struct SentencePieceHardeningTests {
    /// Protobuf wire-format writing, enough for a ModelProto.
    struct Proto {
        var bytes: [UInt8] = []
        static func varint(_ value: UInt64) -> [UInt8] {
            var value = value, out: [UInt8] = []
            while value >= 0x80 { out.append(UInt8(value & 0x7F) | 0x80); value >>= 7 }
            out.append(UInt8(value))
            return out
        }
        mutating func varint(_ field: Int, _ value: UInt64) { bytes += Self.varint(UInt64(field << 3)) + Self.varint(value) }
        mutating func bytes(_ field: Int, _ payload: [UInt8]) {
            bytes += Self.varint(UInt64(field << 3 | 2)) + Self.varint(UInt64(payload.count)) + payload
        }
        mutating func float(_ field: Int, _ value: Float) {
            bytes += Self.varint(UInt64(field << 3 | 5))
            bytes += withUnsafeBytes(of: value.bitPattern.littleEndian, Array.init)
        }
    }

    enum Kind: UInt64 { case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6 }

    static func piece(_ text: [UInt8], _ score: Float = -1, _ kind: Kind = .normal) -> [UInt8] {
        var piece = Proto()
        piece.bytes(1, text)
        piece.float(2, score)
        piece.varint(3, kind.rawValue)
        return piece.bytes
    }

    /// A unigram model: <unk>, <s>, </s>, then `extra` pieces; trainer_spec with byte_fallback.
    static func model(_ extra: [[UInt8]] = [], byteFallback: Bool = false, charsmap: [UInt8]? = nil) -> [UInt8] {
        var model = Proto()
        model.bytes(1, piece(Array("<unk>".utf8), 0, .unknown))
        model.bytes(1, piece(Array("<s>".utf8), 0, .control))
        model.bytes(1, piece(Array("</s>".utf8), 0, .control))
        for (k, text) in ["a", "b", "ab", "▁"].enumerated() { model.bytes(1, piece(Array(text.utf8), -Float(k + 1))) }
        for piece in extra { model.bytes(1, piece) }
        var trainer = Proto()
        trainer.varint(3, 1)
        trainer.varint(35, byteFallback ? 1 : 0)
        model.bytes(2, trainer.bytes)
        var normalizer = Proto()
        normalizer.bytes(1, Array((charsmap == nil ? "identity" : "custom").utf8))
        if let charsmap { normalizer.bytes(2, charsmap) }
        model.bytes(3, normalizer.bytes)
        return model.bytes
    }

    private func expectRefused(_ bytes: [UInt8], _ fragments: String..., sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try SentencePieceTokenizer(bytes: bytes, path: "hostile.model")
            Issue.record("loaded", sourceLocation: sourceLocation)
        } catch let error as TokenizerError {
            guard case .corruptModel(let path, _) = error else { Issue.record("unexpected \(error)", sourceLocation: sourceLocation); return }
            #expect(path == "hostile.model", sourceLocation: sourceLocation)
            for fragment in fragments {
                #expect(error.description.contains(fragment), "\(error.description) lacks \(fragment)", sourceLocation: sourceLocation)
            }
        } catch {
            Issue.record("not a TokenizerError: \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test("the well-formed base model loads and encodes")
    func baseLoads() throws {
        let tokenizer = try SentencePieceTokenizer(bytes: Self.model(), path: "ok.model")
        #expect(tokenizer.encode("ab a", addSpecialTokens: false) == [6, 5, 6, 3])
    }

    @Test("a piece defined twice is refused, as sentencepiece refuses it")
    func duplicatePieces() throws {
        expectRefused(Self.model([Self.piece(Array("ab".utf8), -9)]), "\"ab\"", "already defined")
        expectRefused(Self.model([Self.piece(Array("a".utf8), -9, .userDefined)]), "already defined")
        expectRefused(Self.model([Self.piece(Array("<s>".utf8), 0, .control)]), "already defined")
        // A control piece may share its text with a normal piece: they live in separate maps.
        _ = try SentencePieceTokenizer(bytes: Self.model([Self.piece(Array("ab".utf8), 0, .control)]), path: "ok.model")
    }

    static func bytePieces() -> [[UInt8]] {
        (0...255).map { Self.piece(Array(String(format: "<0x%02X>", $0).utf8), 0, .byte) }
    }

    @Test("BYTE pieces need byte_fallback, and must be <0x00>...<0xFF>")
    func bytePiecesChecks() throws {
        expectRefused(Self.model([Self.piece(Array("<0x41>".utf8), 0, .byte)]), "<0x41>", "byte_fallback")
        expectRefused(Self.model(Self.bytePieces() + [Self.piece(Array("<0xZZ>".utf8), 0, .byte)], byteFallback: true), "<0xZZ>", "invalid")
        expectRefused(Self.model(Self.bytePieces() + [Self.piece(Array("<0x4a>".utf8), 0, .byte)], byteFallback: true), "<0x4a>", "invalid")
        expectRefused(Self.model(Array(Self.bytePieces().dropLast()), byteFallback: true), "256")
        let fallback = try SentencePieceTokenizer(bytes: Self.model(Self.bytePieces(), byteFallback: true), path: "ok.model")
        #expect(fallback.encode("x", addSpecialTokens: false) == [6, 7 + 0x78])
    }

    @Test("pieces with NUL bytes or of 8,000 bytes and more are refused")
    func pieceContents() throws {
        expectRefused(Self.model([Self.piece([0x61, 0x00, 0x62])]), "null")
        expectRefused(Self.model([Self.piece([UInt8](repeating: 0x61, count: 8000))]), "too long")
        // sentencepiece skips a lone "\0" marked UNUSED.
        _ = try SentencePieceTokenizer(bytes: Self.model([Self.piece([0x00], 0, .unused)]), path: "ok.model")
    }

    @Test("malformed protobuf is refused, never read past its end")
    func malformedProtobuf() {
        let base = Self.model()
        // A varint of 11 bytes.
        expectRefused(base + [0x08] + [UInt8](repeating: 0xFF, count: 10) + [0x01], "varint")
        // A length that overflows Int, and one past the end of the file.
        expectRefused(base + [0x0A] + Proto.varint(UInt64.max), "length")
        expectRefused(base + [0x0A] + Proto.varint(UInt64(Int.max)), "length")
        expectRefused(base + [0x0A, 0x05, 0x0A, 0x10, 0x61], "length")
        // A piece whose nested text runs past the piece (but not past the file).
        var model = Proto()
        model.bytes(1, [0x0A, 0x40, 0x61])
        expectRefused(model.bytes + base, "length")
        // A piece type of 2^64 - 1, and of 7.
        expectRefused(Self.model([[0x0A, 0x01, 0x61, 0x18] + Proto.varint(UInt64.max)]), "piece type")
        expectRefused(Self.model([[0x0A, 0x01, 0x61, 0x18, 0x07]]), "piece type")
        // Truncated fixed32 and fixed64, a group, field number 0.
        expectRefused(base + [0x0D, 0x00, 0x00], "fixed32")
        expectRefused(base + [0x09, 0x00, 0x00], "fixed64")
        expectRefused(base + [0x0B], "group")
        expectRefused(base + [0x02, 0x00], "tag")
    }

    /// The committed nmt_nfkc charsmap with `edit` applied.
    private func charsmap(_ edit: (inout [UInt8]) -> Void) throws -> [UInt8] {
        let source = try SentencePieceProto(bytes: [UInt8](Data(contentsOf: TokenizerFixtures.tokenizerFile("sp-unigram-nmt-nfkc"))))
        var blob = source.normalizer.precompiledCharsmap
        edit(&blob)
        return blob
    }

    @Test("a precompiled charsmap is validated as sentencepiece validates it")
    func charsmapValidation() throws {
        func store32(_ blob: inout [UInt8], at offset: Int, _ value: UInt32) {
            for k in 0..<4 { blob[offset + k] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(k))) }
        }
        _ = try SentencePieceTokenizer(bytes: Self.model(charsmap: try charsmap { _ in }), path: "ok.model")
        expectRefused(Self.model(charsmap: [0x61, 0x62, 0x63]), "precompiled_charsmap")
        expectRefused(Self.model(charsmap: try charsmap { store32(&$0, at: 0, 1 << 20) }), "precompiled_charsmap", "exceeds")
        expectRefused(Self.model(charsmap: try charsmap { store32(&$0, at: 0, 512) }), "precompiled_charsmap", "1024")
        expectRefused(Self.model(charsmap: try charsmap { store32(&$0, at: 0, 1025) }), "precompiled_charsmap", "1024")
        // sentencepiece's RejectCorruptedModel1269: a root unit steering the walk out of the array.
        expectRefused(Self.model(charsmap: try charsmap { store32(&$0, at: 4, 0x8000_0000 | (0x0020_0000 << 10)) }), "precompiled_charsmap")
        // A unit whose offset points past the array, and a leaf whose value points past the strings.
        expectRefused(Self.model(charsmap: try charsmap { store32(&$0, at: 8, 0x7FFF_FC00) }), "precompiled_charsmap")
        let trieUnits = try charsmap { _ in }.prefix(4).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) } / 4
        let hostile = try charsmap { blob in
            // Every leaf value (a unit whose label bit 31 is set) pointed far past the strings.
            for unit in 1..<trieUnits {
                let o = 4 + 4 * unit
                let value = UInt32(blob[o]) | UInt32(blob[o + 1]) << 8 | UInt32(blob[o + 2]) << 16 | UInt32(blob[o + 3]) << 24
                if value & 0x8000_0000 != 0 { store32(&blob, at: o, 0xFFFF_FFFF) }
            }
        }
        expectRefused(Self.model(charsmap: hostile), "precompiled_charsmap")
    }
}
