/// A minimal reader of the protobuf wire format, enough for sentencepiece's `ModelProto`.
///
/// Hand-rolled rather than depending on swift-protobuf: the model file uses five wire types and a
/// dozen fields, and this avoids generating and committing a 3,000-line `.pb.swift` and the
/// 10-minute build of protoc's plugin.
struct ProtobufReader {
    enum WireType: UInt8 { case varint = 0, fixed64 = 1, lengthDelimited = 2, startGroup = 3, endGroup = 4, fixed32 = 5 }
    struct Malformed: Error { let detail: String }

    private let bytes: [UInt8]
    private(set) var offset: Int
    private let end: Int

    init(_ bytes: [UInt8], range: Range<Int>? = nil) {
        self.bytes = bytes
        self.offset = range?.lowerBound ?? 0
        self.end = range?.upperBound ?? bytes.count
    }

    var isAtEnd: Bool { offset >= end }

    mutating func readVarint() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < end else { throw Malformed(detail: "truncated varint at byte \(offset)") }
            let byte = bytes[offset]
            offset += 1
            guard shift < 64 else { throw Malformed(detail: "varint longer than 10 bytes at byte \(offset)") }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
    }

    /// The next field's number and wire type.
    mutating func readTag() throws -> (field: Int, wireType: WireType) {
        let tag = try readVarint()
        guard let type = WireType(rawValue: UInt8(tag & 7)), tag >> 3 > 0 else {
            throw Malformed(detail: "invalid field tag \(tag) at byte \(offset)")
        }
        return (Int(tag >> 3), type)
    }

    /// The byte range of a length-delimited field's payload; advances past it.
    mutating func readLengthDelimited() throws -> Range<Int> {
        let length = try readVarint()
        guard length <= UInt64(end - offset) else {
            throw Malformed(detail: "field length \(length) exceeds the remaining \(end - offset) bytes at byte \(offset)")
        }
        let range = offset..<(offset + Int(length))
        offset += Int(length)
        return range
    }

    mutating func readFixed32() throws -> UInt32 {
        guard end - offset >= 4 else { throw Malformed(detail: "truncated fixed32 at byte \(offset)") }
        var value: UInt32 = 0
        for k in 0..<4 { value |= UInt32(bytes[offset + k]) << (8 * UInt32(k)) }
        offset += 4
        return value
    }

    mutating func skip(_ type: WireType) throws {
        switch type {
        case .varint: _ = try readVarint()
        case .fixed64:
            guard end - offset >= 8 else { throw Malformed(detail: "truncated fixed64 at byte \(offset)") }
            offset += 8
        case .lengthDelimited: _ = try readLengthDelimited()
        case .fixed32: _ = try readFixed32()
        case .startGroup, .endGroup: throw Malformed(detail: "groups are not used by ModelProto (byte \(offset))")
        }
    }

    func slice(_ range: Range<Int>) -> [UInt8] { Array(bytes[range]) }
    func string(_ range: Range<Int>) -> String { String(decoding: bytes[range], as: UTF8.self) }
}
