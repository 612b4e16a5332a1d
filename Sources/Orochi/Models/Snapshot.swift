import Foundation

/// Errors of state snapshots (`--save-state` / `--load-state`).
public enum SnapshotError: Error, CustomStringConvertible, Equatable {
    case notASnapshot(detail: String)
    case truncated(detail: String)
    case wrongModel(expected: String, found: String)
    case corrupt(detail: String)
    case tooLong(tokens: Int, capacity: Int)
    case unsupportedVersion(found: String, expected: String)

    public var description: String {
        switch self {
        case let .notASnapshot(detail): return "not an Orochi state snapshot: \(detail)"
        case let .truncated(detail): return "snapshot is truncated: \(detail)"
        case let .wrongModel(expected, found): return "snapshot was saved from another model: it holds \(found), this model is \(expected)"
        case let .corrupt(detail): return "snapshot is corrupt: \(detail)"
        case let .tooLong(tokens, capacity): return "snapshot holds \(tokens) tokens but this model's context holds only \(capacity)"
        case let .unsupportedVersion(found, expected):
            return "snapshot format \(found) is not supported by this version of Orochi (it reads \(expected)); save the state again"
        }
    }
}

/// The container every architecture writes its cache or state into:
///   magic "OROCHIS2" | identity (length-prefixed UTF-8) | fingerprint u64 | position u64
///   | payload length u64 | payload (float32 values) | FNV-1a checksum of everything before it u64
/// The identity and fingerprint make a snapshot from another model fail with a clear error; the
/// checksum covers the header (position included) as well as the payload. Version 1 ("OROCHIS1",
/// whose checksum covered only the payload) is refused.
public struct StateArchive {
    static let magic = Array("OROCHIS2".utf8)
    static let formerMagics = ["OROCHIS1"]

    public var identity: String
    public var fingerprint: UInt64
    public var position: Int
    public var payload: [UInt8]

    public init(identity: String, fingerprint: UInt64, position: Int, payload: [UInt8]) {
        self.identity = identity
        self.fingerprint = fingerprint
        self.position = position
        self.payload = payload
    }

    public func encoded() -> [UInt8] {
        var out = Self.magic
        let id = Array(identity.utf8)
        out.appendLittleEndian(UInt64(id.count))
        out += id
        out.appendLittleEndian(fingerprint)
        out.appendLittleEndian(UInt64(position))
        out.appendLittleEndian(UInt64(payload.count))
        out += payload
        out.appendLittleEndian(fnv1a(out))
        return out
    }

    /// Decodes and checks that the snapshot belongs to the model described by `identity`/`fingerprint`.
    public static func decode(_ bytes: [UInt8], expecting identity: String, fingerprint: UInt64) throws -> StateArchive {
        var reader = ByteReader(bytes)
        let signature = bytes.count >= magic.count ? Array(bytes[0..<magic.count]) : []
        if let old = formerMagics.first(where: { Array($0.utf8) == signature }) {
            throw SnapshotError.unsupportedVersion(found: "\(old) (version \(old.last!))", expected: String(decoding: magic, as: UTF8.self))
        }
        guard signature == magic else {
            throw SnapshotError.notASnapshot(detail: "missing the \(String(decoding: magic, as: UTF8.self)) signature")
        }
        reader.offset = magic.count
        let idLength = try reader.u64("identity length")
        guard idLength <= 4096 else { throw SnapshotError.corrupt(detail: "identity length \(idLength)") }
        let id = String(decoding: try reader.bytes(Int(idLength), "identity"), as: UTF8.self)
        let print = try reader.u64("fingerprint")
        guard id == identity, print == fingerprint else {
            throw SnapshotError.wrongModel(expected: "\(identity) [\(String(fingerprint, radix: 16))]",
                                           found: "\(id) [\(String(print, radix: 16))]")
        }
        let position = try reader.u64("position")
        let length = try reader.u64("payload length")
        guard length <= UInt64(bytes.count) else {
            throw SnapshotError.truncated(detail: "payload of \(length) bytes but the file has \(bytes.count)")
        }
        let payload = try reader.bytes(Int(length), "payload")
        let covered = reader.offset
        let sum = try reader.u64("checksum")
        guard sum == fnv1a(bytes[..<covered]) else { throw SnapshotError.corrupt(detail: "checksum mismatch") }
        guard reader.offset == bytes.count else { throw SnapshotError.corrupt(detail: "\(bytes.count - reader.offset) trailing bytes") }
        // Checked even under a valid checksum: a snapshot may be crafted.
        guard position <= UInt64(Int.max) else { throw SnapshotError.corrupt(detail: "position \(position) is out of range") }
        guard payload.count % 4 == 0 else { throw SnapshotError.corrupt(detail: "payload of \(payload.count) bytes is not a whole number of float32 values") }
        let nonFinite = payload.withUnsafeBytes { raw -> Int in
            var n = 0
            for i in Swift.stride(from: 0, to: raw.count, by: 4) where !raw.loadUnaligned(fromByteOffset: i, as: Float.self).isFinite { n += 1 }
            return n
        }
        guard nonFinite == 0 else {
            throw SnapshotError.corrupt(detail: "the state holds \(nonFinite) non-finite values (NaN or infinity)")
        }
        return StateArchive(identity: id, fingerprint: print, position: Int(position), payload: payload)
    }
}

/// FNV-1a, 64-bit: a cheap checksum and fingerprint.
public func fnv1a<S: Sequence>(_ bytes: S, seed: UInt64 = 0xcbf29ce484222325) -> UInt64 where S.Element == UInt8 {
    var h = seed
    for b in bytes { h = (h ^ UInt64(b)) &* 0x100000001b3 }
    return h
}

extension Array where Element == UInt8 {
    mutating func appendLittleEndian(_ v: UInt64) {
        Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) }
    }
    /// Appends `count` floats as raw little-endian bytes.
    mutating func appendFloats(_ p: UnsafePointer<Float>, count: Int) {
        append(contentsOf: UnsafeRawBufferPointer(start: p, count: count * 4))
    }
}

/// Reads fields from a byte array, throwing `truncated` instead of reading past the end.
struct ByteReader {
    let bytes: [UInt8]
    var offset = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func u64(_ field: String) throws -> UInt64 {
        let b = try self.bytes(8, field)
        return b.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
    }

    mutating func bytes(_ n: Int, _ field: String) throws -> [UInt8] {
        guard n >= 0, offset + n <= bytes.count else {
            throw SnapshotError.truncated(detail: "\(field) needs \(n) bytes at offset \(offset), the file has \(bytes.count)")
        }
        defer { offset += n }
        return Array(bytes[offset..<offset + n])
    }

    mutating func floats(into p: UnsafeMutablePointer<Float>, count: Int, _ field: String) throws {
        guard count >= 0, offset + 4 * count <= bytes.count else {
            throw SnapshotError.truncated(detail: "\(field) needs \(4 * count) bytes at offset \(offset)")
        }
        bytes.withUnsafeBytes { raw in
            _ = memcpy(p, raw.baseAddress! + offset, 4 * count)
        }
        offset += 4 * count
    }
}
