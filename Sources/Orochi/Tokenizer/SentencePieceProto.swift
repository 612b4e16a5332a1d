/// The parts of sentencepiece's `ModelProto` (sentencepiece_model.proto) that change encoding
/// or decoding, with the proto's defaults.
struct SentencePieceProto {
    enum PieceType: Int { case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6 }
    enum ModelType: Int { case unigram = 1, bpe = 2, word = 3, char = 4 }

    struct Piece {
        var text: [UInt8] = []
        var score: Float = 0
        var type: PieceType = .normal
    }

    struct NormalizerSpec {
        var name = ""
        var precompiledCharsmap: [UInt8] = []
        var addDummyPrefix = true
        var removeExtraWhitespaces = true
        var escapeWhitespaces = true
    }

    var pieces: [Piece] = []
    var modelType: ModelType = .unigram
    var treatWhitespaceAsSuffix = false
    var allowWhitespaceOnlyPieces = false
    var byteFallback = false
    var unkSurface: [UInt8] = Array(" \u{2047} ".utf8)
    var unkId = 0, bosId = 1, eosId = 2, padId = -1
    // Trainer options recorded for `inspect`; encoding obeys them through the vocabulary itself.
    var splitDigits = false, splitByWhitespace = true, splitByUnicodeScript = true, splitByNumber = true
    var maxPieceLength = 16
    var normalizer = NormalizerSpec()
    var denormalizer: NormalizerSpec?

    init(bytes: [UInt8]) throws {
        var reader = ProtobufReader(bytes)
        while !reader.isAtEnd {
            let (field, type) = try reader.readTag()
            switch (field, type) {
            case (1, .lengthDelimited):
                pieces.append(try Self.parsePiece(bytes, try reader.readLengthDelimited()))
            case (2, .lengthDelimited):
                try parseTrainerSpec(bytes, try reader.readLengthDelimited())
            case (3, .lengthDelimited):
                normalizer = try Self.parseNormalizerSpec(bytes, try reader.readLengthDelimited())
            case (5, .lengthDelimited):
                denormalizer = try Self.parseNormalizerSpec(bytes, try reader.readLengthDelimited())
            default:
                try reader.skip(type)
            }
        }
    }

    private static func parsePiece(_ bytes: [UInt8], _ range: Range<Int>) throws -> Piece {
        var reader = ProtobufReader(bytes, range: range)
        var piece = Piece()
        while !reader.isAtEnd {
            let (field, type) = try reader.readTag()
            switch (field, type) {
            case (1, .lengthDelimited): piece.text = reader.slice(try reader.readLengthDelimited())
            case (2, .fixed32): piece.score = Float(bitPattern: try reader.readFixed32())
            case (3, .varint):
                let raw = try reader.readVarint()
                guard raw <= 6, let kind = PieceType(rawValue: Int(raw)) else {
                    throw ProtobufReader.Malformed(detail: "piece type \(raw) is not one of 1...6")
                }
                piece.type = kind
            default: try reader.skip(type)
            }
        }
        return piece
    }

    private mutating func parseTrainerSpec(_ bytes: [UInt8], _ range: Range<Int>) throws {
        var reader = ProtobufReader(bytes, range: range)
        while !reader.isAtEnd {
            let (field, type) = try reader.readTag()
            if type == .varint {
                let value = try reader.readVarint()
                let int = Int(Int32(truncatingIfNeeded: value))
                switch field {
                case 3:
                    guard let kind = ModelType(rawValue: int) else {
                        throw ProtobufReader.Malformed(detail: "trainer_spec.model_type \(int) is not one of 1...4")
                    }
                    modelType = kind
                case 20: maxPieceLength = int
                case 21: splitByUnicodeScript = value != 0
                case 22: splitByWhitespace = value != 0
                case 23: splitByNumber = value != 0
                case 24: treatWhitespaceAsSuffix = value != 0
                case 25: splitDigits = value != 0
                case 26: allowWhitespaceOnlyPieces = value != 0
                case 35: byteFallback = value != 0
                case 40: unkId = int
                case 41: bosId = int
                case 42: eosId = int
                case 43: padId = int
                default: break
                }
            } else if field == 44, type == .lengthDelimited {
                unkSurface = reader.slice(try reader.readLengthDelimited())
            } else {
                try reader.skip(type)
            }
        }
    }

    private static func parseNormalizerSpec(_ bytes: [UInt8], _ range: Range<Int>) throws -> NormalizerSpec {
        var reader = ProtobufReader(bytes, range: range)
        var spec = NormalizerSpec()
        while !reader.isAtEnd {
            let (field, type) = try reader.readTag()
            switch (field, type) {
            case (1, .lengthDelimited): spec.name = reader.string(try reader.readLengthDelimited())
            case (2, .lengthDelimited): spec.precompiledCharsmap = reader.slice(try reader.readLengthDelimited())
            case (3, .varint): spec.addDummyPrefix = try reader.readVarint() != 0
            case (4, .varint): spec.removeExtraWhitespaces = try reader.readVarint() != 0
            case (5, .varint): spec.escapeWhitespaces = try reader.readVarint() != 0
            default: try reader.skip(type)
            }
        }
        return spec
    }
}
