import Foundation
import Testing
@testable import Orochi

/// The data section must be tiled exactly by the tensors, and names must be unique (issue 11).
struct SafetensorsHardeningTests {
    let dir = TemporaryDirectory()

    /// The error of opening the file, mapped and read into memory alike (the two must agree).
    func error(_ data: Data) -> String? {
        let path = dir.write("t.safetensors", data).path
        let messages = [WeightMemory.mapped, .hugePages].map { memory -> String? in
            do { _ = try SafetensorsFile(path: path, memory: memory, hugePageMinimum: 0); return nil } catch { return "\(error)" }
        }
        #expect(messages[0] == messages[1])
        return messages[1]
    }

    /// A header length 1–3 bytes short shifts the data section: the JSON still parses (its
    /// padding is cut), but the tensors no longer cover the data section exactly.
    @Test(arguments: [1, 2, 3])
    func headerLengthShort(_ by: Int) throws {
        var data = SafetensorsWriter.file(tensors: [("a", [2], [1, 2]), ("b", [3], [3, 4, 5])])
        let length = data.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        var header = String(decoding: data[8..<8 + Int(length)], as: UTF8.self)
        while header.utf8.count % 8 != 3 + 1 { header += " " }        // room for the shift inside the padding
        data = SafetensorsWriter.file(header: header, data: [UInt8](data[(8 + Int(length))...]))
        #expect(error(data) == nil, "the well-formed file loads")
        var shifted = data
        withUnsafeBytes(of: (UInt64(header.utf8.count) - UInt64(by)).littleEndian) { shifted.replaceSubrange(0..<8, with: $0) }
        let message = error(shifted)
        #expect(message?.contains("t.safetensors") == true && message?.contains("unaccounted") == true, "\(message ?? "loaded")")
    }

    @Test func gapsAndTrailingBytes() {
        let gap = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#
        let m = error(SafetensorsWriter.file(header: gap, data: [UInt8](repeating: 0, count: 12)))
        #expect(m?.contains("tensor 'b' starts at byte 8") == true, "\(m ?? "loaded")")
        let late = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        #expect(error(SafetensorsWriter.file(header: late, data: [UInt8](repeating: 0, count: 8)))?.contains("expected 0") == true)
        let trailing = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#
        let t = error(SafetensorsWriter.file(header: trailing, data: [UInt8](repeating: 0, count: 6)))
        #expect(t?.contains("2 bytes are unaccounted for") == true, "\(t ?? "loaded")")
        // Empty tensors occupy no bytes and may sit anywhere the tiling is unbroken.
        let empty = #"{"e":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#
        #expect(error(SafetensorsWriter.file(header: empty, data: [0, 0, 0, 0])) == nil)
    }

    @Test func duplicateTensorNames() {
        let header = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        let m = error(SafetensorsWriter.file(header: header, data: [UInt8](repeating: 0, count: 8)))
        #expect(m?.contains("'a' appears more than once") == true, "\(m ?? "loaded")")
        // The same name spelled with an escape is the same name.
        let escaped = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"\u0061":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        #expect(error(SafetensorsWriter.file(header: escaped, data: [UInt8](repeating: 0, count: 8)))?.contains("more than once") == true)
        // Keys inside values, and strings with braces, are not top-level names.
        let nested = #"{"__metadata__":{"a":"{x}","b":"a"},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#
        #expect(error(SafetensorsWriter.file(header: nested, data: [0, 0, 0, 0])) == nil)
    }

    /// Every shipped and fixture checkpoint satisfies the stricter checks.
    @Test func everyFixtureStillLoads() throws {
        let fm = FileManager.default
        var checked = 0
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        for root in [repository.appendingPathComponent("Tests/OrochiTests/Fixtures"), repository.appendingPathComponent("Models")] {
            guard let walker = fm.enumerator(at: root, includingPropertiesForKeys: nil) else { continue }
            for case let url as URL in walker where url.pathExtension == "safetensors" && !url.path.contains("/.build") {
                _ = try SafetensorsFile(path: url.path)
                checked += 1
            }
        }
        #expect(checked >= 12)
    }
}
