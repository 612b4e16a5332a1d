import Foundation

/// Writes a GGUF file (version 3): metadata in the order given, then tensor infos, then each
/// tensor's bytes at the next multiple of the alignment. What `orochi quantize` writes, and what
/// the tests build files (well-formed and not) with.
public struct GGUFWriter {
    public struct TensorEntry {
        public var name: String
        /// Outermost first, as safetensors writes shapes (the file stores them innermost first).
        public var shape: [Int]
        public var type: GGMLType
        public var bytes: [UInt8]
        public init(name: String, shape: [Int], type: GGMLType, bytes: [UInt8]) {
            self.name = name; self.shape = shape; self.type = type; self.bytes = bytes
        }
    }

    public var metadata: [(String, GGUFValue)] = []
    public var tensors: [TensorEntry] = []
    public var alignment = 32
    public var version: UInt32 = 3

    public init() {}

    public mutating func add(_ key: String, _ value: GGUFValue) { metadata.append((key, value)) }

    public mutating func add(tensor name: String, shape: [Int], type: GGMLType, bytes: [UInt8]) {
        tensors.append(TensorEntry(name: name, shape: shape, type: type, bytes: bytes))
    }

    public mutating func add(tensor name: String, shape: [Int], floats: [Float]) {
        let bytes = floats.withUnsafeBytes { Array($0) }
        add(tensor: name, shape: shape, type: GGMLType.known[0]!, bytes: bytes)
    }

    /// The file's bytes.
    public func encoded() -> [UInt8] {
        var out = header(sizes: tensors.map { ($0.name, $0.shape, $0.type, $0.bytes.count) })
        let dataStart = out.count
        for (t, o) in zip(tensors, offsets(tensors.map(\.bytes.count))) {
            out += [UInt8](repeating: 0, count: dataStart + o - out.count)
            out += t.bytes
        }
        return out
    }

    /// Each tensor's offset in the data section: its predecessors' bytes, each padded to the alignment.
    func offsets(_ sizes: [Int]) -> [Int] {
        var offset = 0
        return sizes.map { size in defer { offset = (offset + size + alignment - 1) / alignment * alignment }; return offset }
    }

    /// Everything before the tensor data, padded to the alignment, for tensors of the given sizes
    /// (the metadata above; the tensors' own bytes come after, from `encoded` or `write`).
    public func header(sizes: [(name: String, shape: [Int], type: GGMLType, bytes: Int)]) -> [UInt8] {
        var out: [UInt8] = []
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        func string(_ s: String) { u64(UInt64(s.utf8.count)); out += Array(s.utf8) }
        func typeCode(_ v: GGUFValue) -> UInt32 {
            switch v {
            case .uint8: return 0
            case .int8: return 1
            case .uint16: return 2
            case .int16: return 3
            case .uint32: return 4
            case .int32: return 5
            case .float32: return 6
            case .bool: return 7
            case .string: return 8
            case .array: return 9
            case .uint64: return 10
            case .int64: return 11
            case .float64: return 12
            }
        }
        func value(_ v: GGUFValue) {
            switch v {
            case let .uint8(x): out.append(x)
            case let .int8(x): out.append(UInt8(bitPattern: x))
            case let .uint16(x): withUnsafeBytes(of: x.littleEndian) { out += $0 }
            case let .int16(x): withUnsafeBytes(of: x.littleEndian) { out += $0 }
            case let .uint32(x): u32(x)
            case let .int32(x): withUnsafeBytes(of: x.littleEndian) { out += $0 }
            case let .float32(x): u32(x.bitPattern)
            case let .bool(x): out.append(x ? 1 : 0)
            case let .string(x): string(x)
            case let .array(elementType, items):
                u32(elementType); u64(UInt64(items.count))
                for item in items { value(item) }
            case let .uint64(x): u64(x)
            case let .int64(x): withUnsafeBytes(of: x.littleEndian) { out += $0 }
            case let .float64(x): u64(x.bitPattern)
            }
        }
        out += Array("GGUF".utf8)
        u32(version)
        u64(UInt64(sizes.count))
        u64(UInt64(metadata.count))
        for (key, v) in metadata { string(key); u32(typeCode(v)); value(v) }
        for (t, o) in zip(sizes, offsets(sizes.map(\.bytes))) {
            string(t.name)
            u32(UInt32(t.shape.count))
            for d in t.shape.reversed() { u64(UInt64(d)) }
            u32(t.type.id)
            u64(UInt64(o))
        }
        out += [UInt8](repeating: 0, count: (alignment - out.count % alignment) % alignment)
        return out
    }
}
