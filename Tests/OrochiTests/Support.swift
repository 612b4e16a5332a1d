import Foundation
@testable import Orochi

/// Where the committed fixtures live (copied as resources, read in place).
enum Fixtures {
    static let root = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!

    static func directory(_ family: String, _ name: String) -> URL {
        root.appendingPathComponent(family).appendingPathComponent(name)
    }

    struct Reference: Decodable {
        let ids: [Int]
        let greedy_prompt: [Int]
        let greedy_continuation: [Int]
    }

    static func reference(_ dir: URL) throws -> Reference {
        try JSONDecoder().decode(Reference.self, from: Data(contentsOf: dir.appendingPathComponent("reference.json")))
    }

    static func logits(_ dir: URL) throws -> (values: [Float], shape: [Int]) {
        try NPY.decodeFloat32(Data(contentsOf: dir.appendingPathComponent("logits.npy")))
    }
}

/// Largest |a − b| relative to the largest |b|: the parity measure of the tests.
func relativeError(_ a: UnsafeBufferPointer<Float>, _ b: ArraySlice<Float>) -> Float {
    var maxDiff: Float = 0, maxRef: Float = 0
    for (x, y) in zip(a, b) {
        maxDiff = max(maxDiff, abs(x - y))
        maxRef = max(maxRef, abs(y))
    }
    return maxDiff / max(maxRef, 1e-30)
}

/// A temporary directory removed at the end of the test.
final class TemporaryDirectory {
    let url: URL
    init() {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("orochi-test-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(at: url) }

    func write(_ name: String, _ data: Data) -> URL {
        let u = url.appendingPathComponent(name)
        try! data.write(to: u)
        return u
    }
}

/// Builds safetensors files byte by byte, including malformed ones.
enum SafetensorsWriter {
    /// A file from a raw header string and a data section.
    static func file(header: String, data: [UInt8]) -> Data {
        var out = Data()
        var length = UInt64(header.utf8.count).littleEndian
        out.append(Data(bytes: &length, count: 8))
        out.append(header.data(using: .utf8)!)
        out.append(contentsOf: data)
        return out
    }

    /// A well-formed F32 file holding the given tensors.
    static func file(tensors: [(name: String, shape: [Int], values: [Float])]) -> Data {
        var entries: [String] = []
        var data: [UInt8] = []
        for t in tensors {
            let begin = data.count
            t.values.withUnsafeBytes { data.append(contentsOf: $0) }
            entries.append("\"\(t.name)\":{\"dtype\":\"F32\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(begin),\(data.count)]}")
        }
        var header = "{" + entries.joined(separator: ",") + "}"
        while (8 + header.utf8.count) % 8 != 0 { header += " " }
        return file(header: header, data: data)
    }
}
