import Foundation
import Testing
@testable import Orochi

/// Crafted snapshots: positions out of range, non-finite states, old formats (issue 11).
struct SnapshotHardeningTests {
    static let llama = ("llama", "gqa_linear_f32")
    static let mamba = ("mamba", "k4_auto_tied_f32")

    static func load(_ f: (String, String)) throws -> any LanguageModel {
        try ModelRegistry.load(directory: Fixtures.directory(f.0, f.1))
    }

    /// Field offsets of a snapshot: magic 8 | id length 8 | id | fingerprint 8 | position 8 | payload length 8 | payload | checksum 8.
    static func positionOffset(_ bytes: [UInt8]) -> Int {
        let idLength = bytes[8..<16].withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
        return 16 + idLength + 8
    }

    /// Rewrites the position and, as a crafted file would, recomputes the checksum.
    static func withPosition(_ bytes: [UInt8], _ position: UInt64, recomputeChecksum: Bool = true) -> [UInt8] {
        var b = bytes
        let at = positionOffset(b)
        withUnsafeBytes(of: position.littleEndian) { b.replaceSubrange(at..<at + 8, with: $0) }
        if recomputeChecksum { resum(&b) }
        return b
    }

    static func resum(_ b: inout [UInt8]) {
        let sum = fnv1a(b[..<(b.count - 8)])
        withUnsafeBytes(of: sum.littleEndian) { b.replaceSubrange((b.count - 8)..<b.count, with: $0) }
    }

    static func error(_ f: (String, String), _ bytes: [UInt8]) -> SnapshotError? {
        let model = try! load(f)
        do { try model.loadState(bytes); return nil } catch { return error as? SnapshotError }
    }

    static func snapshot(_ f: (String, String)) throws -> [UInt8] {
        let model = try load(f)
        try model.prefill([3, 17, 42, 5])
        return model.saveState()
    }

    /// The position is covered by the checksum: editing it alone is detected.
    @Test(arguments: [llama, mamba])
    func positionIsCoveredByTheChecksum(_ f: (String, String)) throws {
        let bytes = try Self.snapshot(f)
        guard case .corrupt(let d) = Self.error(f, Self.withPosition(bytes, 3, recomputeChecksum: false)) else {
            Issue.record("an edited position loaded"); return
        }
        #expect(d.contains("checksum"))
    }

    /// Positions past 2^63 used to turn negative and make generation endless.
    @Test(arguments: [llama, mamba])
    func positionBeyondIntIsRefused(_ f: (String, String)) throws {
        let bytes = try Self.snapshot(f)
        for position in [UInt64(1) << 63, UInt64.max, UInt64(Int.max) + 5] {
            let error = Self.error(f, Self.withPosition(bytes, position))
            guard case .corrupt(let d)? = error else { Issue.record("\(f) position \(position): \(String(describing: error))"); continue }
            #expect(d.contains("position"))
        }
    }

    @Test func llamaPositionBeyondItsCapacityIsRefused() throws {
        let bytes = try Self.snapshot(Self.llama)
        let error = Self.error(Self.llama, Self.withPosition(bytes, 65))
        guard case .tooLong? = error else { Issue.record("\(String(describing: error))"); return }
    }

    /// A Mamba state is fixed-size, so the position is the only count of tokens: a sane bound.
    @Test func mambaPositionHasASaneBound() throws {
        let bytes = try Self.snapshot(Self.mamba)
        #expect(Self.error(Self.mamba, Self.withPosition(bytes, 1_000_000)) == nil)
        for position: UInt64 in [UInt64(MambaConfig.maxPosition) + 1, 1_000_000_000_000_000_000] {
            guard case .corrupt(let d)? = Self.error(Self.mamba, Self.withPosition(bytes, position)) else {
                Issue.record("position \(position) accepted"); continue
            }
            #expect(d.contains("position \(position)"))
        }
    }

    /// An all-NaN (or infinite) payload with a valid checksum is refused.
    @Test(arguments: [llama, mamba])
    func nonFiniteStateIsRefused(_ f: (String, String)) throws {
        var bytes = try Self.snapshot(f)
        let payloadStart = Self.positionOffset(bytes) + 16
        for value in [Float.nan, Float.infinity] {
            var b = bytes
            for i in Swift.stride(from: payloadStart, to: b.count - 8 - 3, by: 4) {
                withUnsafeBytes(of: value.bitPattern.littleEndian) { b.replaceSubrange(i..<i + 4, with: $0) }
            }
            Self.resum(&b)
            guard case .corrupt(let d)? = Self.error(f, b) else { Issue.record("\(f): \(value) state accepted"); continue }
            #expect(d.contains("non-finite"), "\(d)")
        }
        // One NaN is enough.
        withUnsafeBytes(of: Float.nan.bitPattern.littleEndian) { bytes.replaceSubrange(payloadStart + 4..<payloadStart + 8, with: $0) }
        Self.resum(&bytes)
        guard case .corrupt? = Self.error(f, bytes) else { Issue.record("one NaN accepted"); return }
    }

    @Test func formerFormatIsRefusedClearly() throws {
        var bytes = try Self.snapshot(Self.mamba)
        bytes.replaceSubrange(0..<8, with: Array("OROCHIS1".utf8))
        let error = Self.error(Self.mamba, bytes)
        guard case .unsupportedVersion? = error else { Issue.record("\(String(describing: error))"); return }
        #expect("\(error!)".contains("OROCHIS1") && "\(error!)".contains("save the state again"))
    }
}
