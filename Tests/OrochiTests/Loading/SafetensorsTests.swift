import Foundation
import Testing
@testable import Orochi

/// Hostile and broken safetensors files: each gets an error naming the file and the problem.
struct SafetensorsTests {
    let dir = TemporaryDirectory()

    /// Every file is opened both ways, mapped and read into memory (`WeightMemory`; small files
    /// too, which are otherwise always mapped): the two must agree, error for error and float for
    /// float. The read one is returned.
    func open(_ data: Data) throws -> SafetensorsFile {
        let path = dir.write("t.safetensors", data).path
        let mapped = Result { try SafetensorsFile(path: path, memory: .mapped, hugePageMinimum: 0) }
        let read = Result { try SafetensorsFile(path: path, memory: .hugePages, hugePageMinimum: 0) }
        switch (mapped, read) {
        case let (.success(a), .success(b)):
            #expect(a.memory == .mapped && b.memory == (HugePageRegion.available ? .hugePages : .mapped))
            #expect(a.entries.keys.sorted() == b.entries.keys.sorted())
            for name in a.entries.keys {
                guard let x = try? a.tensor(name), let y = try? b.tensor(name) else { continue }
                #expect(zip(UnsafeBufferPointer(start: x.data, count: x.count), UnsafeBufferPointer(start: y.data, count: y.count))
                            .allSatisfy { $0.bitPattern == $1.bitPattern }, "tensor \(name)")
            }
        case let (.failure(e1), .failure(e2)):
            #expect("\(e1)" == "\(e2)")
        default:
            Issue.record("mapped and read disagree: \(mapped) against \(read)")
        }
        return try read.get()
    }

    func expectError(_ data: Data, _ check: (LoadError) -> Bool) {
        do {
            _ = try open(data)
            Issue.record("expected an error")
        } catch let error as LoadError {
            #expect(check(error), "unexpected error: \(error)")
            #expect(error.description.contains("t.safetensors"), "message names the file: \(error)")
        } catch {
            Issue.record("unexpected error type: \(error)")
        }
    }

    @Test func readsWellFormedFile() throws {
        let file = try open(SafetensorsWriter.file(tensors: [("a", [2, 3], [1, 2, 3, 4, 5, 6]), ("b", [2], [7, 8])]))
        let a = try file.tensor("a")
        #expect(a.shape == [2, 3])
        #expect(Array(UnsafeBufferPointer(start: a.data, count: 6)) == [1, 2, 3, 4, 5, 6])
        #expect(try file.tensor("b").data[1] == 8)
    }

    @Test func convertsHalfAndBFloat16() throws {
        // 1.5 in F16 is 0x3E00; -2.0 in BF16 is 0xC000.
        let header = #"{"h":{"dtype":"F16","shape":[1],"data_offsets":[0,2]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[2,4]}}"#
        let file = try open(SafetensorsWriter.file(header: header, data: [0x00, 0x3E, 0x00, 0xC0]))
        #expect(try file.tensor("h").data[0] == 1.5)
        #expect(try file.tensor("b").data[0] == -2.0)
    }

    @Test func truncatedFile() {
        expectError(Data([1, 2, 3])) { if case .truncated = $0 { return true }; return false }
    }

    @Test func headerLengthPastTheEnd() {
        var data = SafetensorsWriter.file(tensors: [("a", [1], [1])])
        data.replaceSubrange(0..<8, with: [0xff, 0xff, 0, 0, 0, 0, 0, 0])
        expectError(data) { if case .truncated(_, let d) = $0 { return d.contains("header length") }; return false }
    }

    @Test func hugeHeaderLengthDoesNotOverflow() {
        var data = SafetensorsWriter.file(tensors: [("a", [1], [1])])
        data.replaceSubrange(0..<8, with: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
        expectError(data) { if case .truncated = $0 { return true }; return false }
    }

    @Test func headerIsNotJSON() {
        expectError(SafetensorsWriter.file(header: "{not json", data: [])) {
            if case .badHeader = $0 { return true }; return false
        }
    }

    @Test func unknownDType() {
        let header = #"{"a":{"dtype":"F8_E9","shape":[1],"data_offsets":[0,1]}}"#
        expectError(SafetensorsWriter.file(header: header, data: [0])) {
            $0 == .unknownDType(path: dir.url.appendingPathComponent("t.safetensors").path, tensor: "a", dtype: "F8_E9")
        }
    }

    @Test func shapeDisagreesWithSpan() {
        let header = #"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#
        expectError(SafetensorsWriter.file(header: header, data: [UInt8](repeating: 0, count: 8))) {
            if case .sizeMismatch(_, "a", 12, 8) = $0 { return true }; return false
        }
    }

    @Test func spanOutOfRange() {
        let header = #"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#
        expectError(SafetensorsWriter.file(header: header, data: [UInt8](repeating: 0, count: 8))) {
            if case .outOfRange(_, "a", 16, 8) = $0 { return true }; return false
        }
    }

    @Test func overlappingTensors() {
        let header = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        expectError(SafetensorsWriter.file(header: header, data: [UInt8](repeating: 0, count: 12))) {
            if case .overlapping(_, "a", "b") = $0 { return true }; return false
        }
    }

    @Test func negativeOrFractionalFields() {
        for header in [#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#,
                       #"{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#,
                       #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#,
                       #"{"a":{"dtype":"F32","shape":[1]}}"#,
                       #"[1, 2]"#] {
            expectError(SafetensorsWriter.file(header: header, data: [0, 0, 0, 0])) {
                if case .badHeader = $0 { return true }; return false
            }
        }
    }

    @Test func overflowingShape() {
        let header = #"{"a":{"dtype":"F32","shape":[4611686018427387904, 4],"data_offsets":[0,4]}}"#
        expectError(SafetensorsWriter.file(header: header, data: [0, 0, 0, 0])) {
            if case .badHeader(_, let d) = $0 { return d.contains("too large") }; return false
        }
    }

    @Test func integerTensorIsNotAWeight() throws {
        let header = #"{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#
        let file = try open(SafetensorsWriter.file(header: header, data: [UInt8](repeating: 0, count: 8)))
        #expect(throws: LoadError.self) { try file.tensor("a") }
    }
}
