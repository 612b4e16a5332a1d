import Foundation
import OrochiKernels

// GGUF, llama.cpp's one-file format (versions 2 and 3), read as llama.cpp's gguf.cpp reads it:
//
//   magic "GGUF" · version u32 · tensor count u64 · metadata count u64
//   metadata: key (u64 length + UTF-8) · value type u32 · value (arrays: element type u32, count u64, elements)
//   tensor infos: name · dimension count u32 · dimensions u64 (innermost first) · ggml type u32 · offset u64
//   padding to `general.alignment` (default 32) · tensor data, each tensor at its offset from here
//
// The file is untrusted: every count is checked against the bytes left before anything is
// allocated from it, every size product for overflow, every tensor against the data section
// (in bounds, aligned, not overlapping) before any tensor is read.

/// A metadata value.
public indirect enum GGUFValue: Equatable, Sendable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case uint64(UInt64), int64(Int64), float32(Float), float64(Double), bool(Bool), string(String)
    /// Elements of one type (`elementType`, a GGUF value type code).
    case array(elementType: UInt32, [GGUFValue])

    /// GGUF's value type codes, in order: uint8 … float64 (12).
    static let typeNames = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool", "string", "array",
                            "uint64", "int64", "float64"]

    public var typeName: String {
        switch self {
        case .uint8: return "uint8"
        case .int8: return "int8"
        case .uint16: return "uint16"
        case .int16: return "int16"
        case .uint32: return "uint32"
        case .int32: return "int32"
        case .uint64: return "uint64"
        case .int64: return "int64"
        case .float32: return "float32"
        case .float64: return "float64"
        case .bool: return "bool"
        case .string: return "string"
        case let .array(t, _): return "array of \(Int(t) < Self.typeNames.count ? Self.typeNames[Int(t)] : "?")"
        }
    }

    /// An integer of any width, when it is one.
    public var integer: Int? {
        switch self {
        case let .uint8(v): return Int(v)
        case let .int8(v): return Int(v)
        case let .uint16(v): return Int(v)
        case let .int16(v): return Int(v)
        case let .uint32(v): return Int(v)
        case let .int32(v): return Int(v)
        case let .uint64(v): return v <= UInt64(Int.max) ? Int(v) : nil
        case let .int64(v): return Int(v)
        default: return nil
        }
    }

    /// A real number (integers too), when it is one.
    public var real: Double? {
        switch self {
        case let .float32(v): return Double(v)
        case let .float64(v): return v
        default: return integer.map(Double.init)
        }
    }

    public var string: String? { if case let .string(s) = self { return s }; return nil }
    public var bool: Bool? { if case let .bool(b) = self { return b }; return nil }
    public var array: [GGUFValue]? { if case let .array(_, a) = self { return a }; return nil }
}

/// ggml's tensor types: the ones Orochi computes with, and the sizes of the others (so that a
/// file holding them can still be checked and listed).
public struct GGMLType: Equatable, Sendable, CustomStringConvertible {
    public let id: UInt32
    public let name: String
    /// Values per block and bytes per block.
    public let blockValues: Int
    public let blockBytes: Int
    /// The format Orochi's kernels read, nil when Orochi cannot compute with it.
    public let weightType: WeightType?

    static let known: [UInt32: GGMLType] = {
        var table: [UInt32: GGMLType] = [:]
        func add(_ id: UInt32, _ name: String, _ values: Int, _ bytes: Int, _ type: WeightType?) {
            table[id] = GGMLType(id: id, name: name, blockValues: values, blockBytes: bytes, weightType: type)
        }
        add(0, "F32", 1, 4, .f32); add(1, "F16", 1, 2, .f16); add(30, "BF16", 1, 2, .bf16)
        add(2, "Q4_0", 32, 18, .q4_0); add(3, "Q4_1", 32, 20, .q4_1); add(6, "Q5_0", 32, 22, .q5_0)
        add(7, "Q5_1", 32, 24, .q5_1); add(8, "Q8_0", 32, 34, .q8_0); add(9, "Q8_1", 32, 36, nil)
        add(10, "Q2_K", 256, 84, .q2_K); add(11, "Q3_K", 256, 110, .q3_K); add(12, "Q4_K", 256, 144, .q4_K)
        add(13, "Q5_K", 256, 176, .q5_K); add(14, "Q6_K", 256, 210, .q6_K); add(15, "Q8_K", 256, 292, nil)
        add(16, "IQ2_XXS", 256, 66, nil); add(17, "IQ2_XS", 256, 74, nil); add(18, "IQ3_XXS", 256, 98, nil)
        add(19, "IQ1_S", 256, 50, nil); add(20, "IQ4_NL", 32, 18, nil); add(21, "IQ3_S", 256, 110, nil)
        add(22, "IQ2_S", 256, 82, nil); add(23, "IQ4_XS", 256, 136, nil); add(24, "I8", 1, 1, nil)
        add(25, "I16", 1, 2, nil); add(26, "I32", 1, 4, nil); add(27, "I64", 1, 8, nil); add(28, "F64", 1, 8, nil)
        add(29, "IQ1_M", 256, 56, nil); add(34, "TQ1_0", 256, 54, nil); add(35, "TQ2_0", 256, 66, nil)
        return table
    }()

    public static func of(_ type: WeightType) -> GGMLType { known.values.first { $0.weightType == type }! }
    public var description: String { name }
}

/// One tensor's entry in the file.
public struct GGUFTensorInfo: Sendable {
    public let name: String
    /// Dimensions as the file gives them, innermost first (ggml's ne).
    public let dimensions: [Int]
    public let type: GGMLType
    /// Bytes from the start of the data section, and how many.
    public let offset: Int
    public let byteCount: Int
    /// Outermost first, as safetensors and transformers write shapes.
    public var shape: [Int] { dimensions.reversed() }
    public var valueCount: Int { dimensions.reduce(1, *) }
}

/// A GGUF file: its metadata and tensor table, checked, and its bytes mapped read-only.
public final class GGUFFile {
    public let path: String
    public let version: Int
    /// Metadata in file order, and by key.
    public let keys: [String]
    public let metadata: [String: GGUFValue]
    public let tensors: [GGUFTensorInfo]
    public let tensorByName: [String: GGUFTensorInfo]
    public let alignment: Int
    /// Where the data section starts, and its size.
    public let dataOffset: Int
    public let fileSize: Int
    private let base: UnsafeRawPointer

    /// Arrays nested deeper than this are refused (real files nest none).
    static let maxArrayDepth = 4
    /// ggml refuses longer tensor names (GGML_MAX_NAME − 1); so do we.
    static let maxTensorNameBytes = 63
    static let maxDimensions = 4

    public init(path: String) throws {
        self.path = path
        let (fd, size) = try openWeightFile(path)
        defer { close(fd) }
        guard size >= 24 else { throw LoadError.badGGUF(path: path, detail: "\(size) bytes, fewer than the 24-byte header") }
        guard let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), mapped != MAP_FAILED else {
            throw LoadError.cannotOpen(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(mapped)
        fileSize = size
        do {
            var r = GGUFReader(base: base, size: size, path: path)
            let parsed = try r.parseHeader()
            version = parsed.version; keys = parsed.keys; metadata = parsed.metadata
            tensors = parsed.tensors; alignment = parsed.alignment; dataOffset = parsed.dataOffset
            var byName: [String: GGUFTensorInfo] = [:]
            for t in tensors { byName[t.name] = t }
            tensorByName = byName
        } catch {
            munmap(mapped, size)
            throw error
        }
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), fileSize) }

    private struct Identity: Hashable { let path: String, device: UInt64, inode: UInt64, size: Int64, modified: Int }
    private final class Weak { weak var file: GGUFFile?; init(_ file: GGUFFile) { self.file = file } }
    private static var opened: [Identity: Weak] = [:]
    private static let openedLock = NSLock()

    /// The file at `path`, parsed once while anyone holds it: a model, its tokenizer, its chat
    /// template and its end ids all come from one file, whose metadata (SmolLM2's: 49,152 tokens
    /// and 48,900 merges) need not be parsed four times. Keyed by the file's identity (device,
    /// inode, size, modification time), so a file replaced under the same path is read anew.
    public static func open(_ path: String) throws -> GGUFFile {
        var st = stat()
        guard stat(path, &st) == 0 else { return try GGUFFile(path: path) }    // its error names the file
        let id = Identity(path: path, device: UInt64(st.st_dev), inode: UInt64(st.st_ino), size: Int64(st.st_size),
                          modified: st.st_mtim.tv_sec * 1_000_000_000 + st.st_mtim.tv_nsec)
        openedLock.lock(); defer { openedLock.unlock() }
        if let file = opened[id]?.file { return file }
        let file = try GGUFFile(path: path)
        opened = opened.filter { $0.value.file != nil }
        opened[id] = Weak(file)
        return file
    }

    /// Whether `path` names a GGUF file (by its first four bytes), not a model directory.
    public static func isGGUF(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
              let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        return (try? handle.read(upToCount: 4)) == Data("GGUF".utf8)
    }

    /// The bytes of a tensor (checked at open to lie within the file).
    public func data(of tensor: GGUFTensorInfo) -> UnsafeRawPointer { base + dataOffset + tensor.offset }

    // Typed metadata access, with errors that name the key and what it should hold.

    public func value(_ key: String) -> GGUFValue? { metadata[key] }

    public func integer(_ key: String) throws -> Int? {
        guard let v = metadata[key] else { return nil }
        guard let i = v.integer else { throw LoadError.badGGUF(path: path, detail: "metadata '\(key)' should be an integer, found \(v.typeName)") }
        return i
    }
    public func requiredInteger(_ key: String) throws -> Int {
        guard let i = try integer(key) else { throw LoadError.badGGUF(path: path, detail: "missing metadata '\(key)'") }
        return i
    }
    public func real(_ key: String) throws -> Double? {
        guard let v = metadata[key] else { return nil }
        guard let d = v.real, d.isFinite else { throw LoadError.badGGUF(path: path, detail: "metadata '\(key)' should be a finite number, found \(v.typeName)") }
        return d
    }
    public func string(_ key: String) throws -> String? {
        guard let v = metadata[key] else { return nil }
        guard let s = v.string else { throw LoadError.badGGUF(path: path, detail: "metadata '\(key)' should be a string, found \(v.typeName)") }
        return s
    }
    public func bool(_ key: String) throws -> Bool? {
        guard let v = metadata[key] else { return nil }
        guard let b = v.bool else { throw LoadError.badGGUF(path: path, detail: "metadata '\(key)' should be a bool, found \(v.typeName)") }
        return b
    }
    public func strings(_ key: String) throws -> [String]? {
        guard let v = metadata[key] else { return nil }
        guard case let .array(t, items) = v, t == 8 else {
            throw LoadError.badGGUF(path: path, detail: "metadata '\(key)' should be an array of strings, found \(v.typeName)")
        }
        return items.map { $0.string! }
    }
    public func integers(_ key: String) throws -> [Int]? {
        guard let v = metadata[key] else { return nil }
        let values = v.array?.compactMap(\.integer)
        guard let values, values.count == v.array?.count else {
            throw LoadError.badGGUF(path: path, detail: "metadata '\(key)' should be an array of integers, found \(v.typeName)")
        }
        return values
    }
}

/// A bounded cursor over the mapped file: every read checks the bytes left first.
struct GGUFReader {
    let base: UnsafeRawPointer
    let size: Int
    let path: String
    var offset = 0

    init(base: UnsafeRawPointer, size: Int, path: String) { self.base = base; self.size = size; self.path = path }

    var remaining: Int { size - offset }

    func fail(_ detail: String) -> LoadError { .badGGUF(path: path, detail: detail) }

    mutating func take(_ n: Int, _ what: @autoclosure () -> String) throws -> UnsafeRawPointer {
        guard n >= 0, n <= remaining else {
            throw fail("\(what()) needs \(n) bytes at offset \(offset), but the file ends after \(remaining) more (truncated?)")
        }
        defer { offset += n }
        return base + offset
    }
    mutating func scalar<T: FixedWidthInteger>(_ type: T.Type, _ what: @autoclosure () -> String) throws -> T {
        T(littleEndian: try take(MemoryLayout<T>.size, what()).loadUnaligned(as: T.self))
    }
    mutating func string(_ what: @autoclosure () -> String) throws -> String {
        let length = try scalar(UInt64.self, "the length of \(what())")
        guard length <= UInt64(remaining) else {
            throw fail("\(what()) claims \(length) bytes at offset \(offset), but only \(remaining) remain")
        }
        let bytes = UnsafeRawBufferPointer(start: try take(Int(length), what()), count: Int(length))
        guard let s = String(validating: bytes, as: UTF8.self) else { throw fail("\(what()) is not valid UTF-8") }
        return s
    }

    /// The smallest encoding of a value of GGUF type `t` (for bounding array counts), nil if unknown.
    static func minimumBytes(_ t: UInt32) -> Int? {
        switch t {
        case 0, 1, 7: return 1
        case 2, 3: return 2
        case 4, 5, 6: return 4
        case 8, 10, 11, 12: return 8
        case 9: return 12
        default: return nil
        }
    }

    mutating func value(type t: UInt32, key: String, depth: Int) throws -> GGUFValue {
        switch t {
        case 0: return .uint8(try scalar(UInt8.self, "'\(key)'"))
        case 1: return .int8(try scalar(Int8.self, "'\(key)'"))
        case 2: return .uint16(try scalar(UInt16.self, "'\(key)'"))
        case 3: return .int16(try scalar(Int16.self, "'\(key)'"))
        case 4: return .uint32(try scalar(UInt32.self, "'\(key)'"))
        case 5: return .int32(try scalar(Int32.self, "'\(key)'"))
        case 6: return .float32(Float(bitPattern: try scalar(UInt32.self, "'\(key)'")))
        case 7:
            let b = try scalar(UInt8.self, "'\(key)'")
            guard b <= 1 else { throw fail("metadata '\(key)': a bool must be 0 or 1, found \(b)") }
            return .bool(b == 1)
        case 8: return .string(try string("the value of '\(key)'"))
        case 9:
            guard depth < GGUFFile.maxArrayDepth else { throw fail("metadata '\(key)': arrays nested deeper than \(GGUFFile.maxArrayDepth)") }
            let elementType = try scalar(UInt32.self, "the element type of '\(key)'")
            guard let least = Self.minimumBytes(elementType) else {
                throw fail("metadata '\(key)': unknown array element type \(elementType) (expected 0–12)")
            }
            let count = try scalar(UInt64.self, "the length of '\(key)'")
            // Each element takes at least `least` bytes: a count the rest of the file cannot hold
            // is refused before anything is allocated from it.
            guard count <= UInt64(remaining / least) else {
                throw fail("metadata '\(key)': an array of \(count) elements cannot fit in the \(remaining) bytes left")
            }
            var items: [GGUFValue] = []
            items.reserveCapacity(Int(count))
            for _ in 0..<Int(count) { items.append(try value(type: elementType, key: key, depth: depth + 1)) }
            return .array(elementType: elementType, items)
        case 10: return .uint64(try scalar(UInt64.self, "'\(key)'"))
        case 11: return .int64(try scalar(Int64.self, "'\(key)'"))
        case 12: return .float64(Double(bitPattern: try scalar(UInt64.self, "'\(key)'")))
        default: throw fail("metadata '\(key)': unknown value type \(t) (expected 0–12)")
        }
    }

    struct Parsed {
        var version: Int
        var keys: [String]
        var metadata: [String: GGUFValue]
        var tensors: [GGUFTensorInfo]
        var alignment: Int
        var dataOffset: Int
    }

    mutating func parseHeader() throws -> Parsed {
        let magic = try take(4, "the magic")
        guard magic.load(as: UInt8.self) == 0x47, (magic + 1).load(as: UInt8.self) == 0x47,
              (magic + 2).load(as: UInt8.self) == 0x55, (magic + 3).load(as: UInt8.self) == 0x46 else {
            throw fail("the file does not start with the magic 'GGUF'")
        }
        let version = try scalar(UInt32.self, "the version")
        guard version == 2 || version == 3 else {
            throw fail("version \(version) is not supported (expected 2 or 3)")
        }
        let tensorCount = try scalar(UInt64.self, "the tensor count")
        let keyCount = try scalar(UInt64.self, "the metadata count")
        // A metadata entry takes at least 13 bytes (key length, type, a one-byte value), a tensor
        // entry at least 33 (name length, dimension count, one dimension, type, offset).
        guard keyCount <= UInt64(remaining / 13) else {
            throw fail("the metadata count \(keyCount) cannot fit in the \(remaining) bytes left")
        }
        guard tensorCount <= UInt64(remaining / 32) else {
            throw fail("the tensor count \(tensorCount) cannot fit in the \(remaining) bytes left")
        }
        var keys: [String] = [], metadata: [String: GGUFValue] = [:]
        for i in 0..<Int(keyCount) {
            let key = try string("metadata key \(i)")
            let type = try scalar(UInt32.self, "the type of '\(key)'")
            let v = try value(type: type, key: key, depth: 0)
            guard metadata.updateValue(v, forKey: key) == nil else { throw fail("metadata '\(key)' appears more than once") }
            keys.append(key)
        }
        var alignment = 32
        if let a = metadata["general.alignment"] {
            guard case let .uint32(value) = a else { throw fail("metadata 'general.alignment' should be a uint32, found \(a.typeName)") }
            guard value > 0, value & (value - 1) == 0, value <= 1 << 20 else {
                throw fail("metadata 'general.alignment' must be a power of two up to 2^20, found \(value)")
            }
            alignment = Int(value)
        }

        struct Raw { let name: String; let dims: [Int]; let type: GGMLType; let offset: UInt64; let bytes: Int }
        var raw: [Raw] = []
        var names = Set<String>()
        for i in 0..<Int(tensorCount) {
            let name = try string("the name of tensor \(i)")
            guard name.utf8.count <= GGUFFile.maxTensorNameBytes else {
                throw fail("tensor \(i)'s name is \(name.utf8.count) bytes long, more than \(GGUFFile.maxTensorNameBytes)")
            }
            guard names.insert(name).inserted else { throw fail("tensor '\(name)' appears more than once") }
            let rank = try scalar(UInt32.self, "the dimension count of tensor '\(name)'")
            guard rank >= 1, rank <= GGUFFile.maxDimensions else {
                throw fail("tensor '\(name)' has \(rank) dimensions (expected 1–\(GGUFFile.maxDimensions))")
            }
            var dims: [Int] = []
            for d in 0..<Int(rank) {
                let n = try scalar(UInt64.self, "dimension \(d) of tensor '\(name)'")
                guard n <= UInt64(Int64.max) else { throw fail("tensor '\(name)': dimension \(d) is \(n), beyond 2^63") }
                dims.append(Int(n))
            }
            let typeId = try scalar(UInt32.self, "the type of tensor '\(name)'")
            guard let type = GGMLType.known[typeId] else { throw fail("tensor '\(name)' has unknown ggml type \(typeId)") }
            let offset = try scalar(UInt64.self, "the offset of tensor '\(name)'")
            guard dims[0] % type.blockValues == 0 else {
                throw fail("tensor '\(name)': its rows of \(dims[0]) values are not whole \(type.name) blocks of \(type.blockValues)")
            }
            // Values and bytes, each product checked (a dimension of 0 makes both 0).
            func product(_ factors: [Int]) -> Int? {
                if factors.contains(0) { return 0 }
                var p = 1
                for f in factors {
                    let (q, overflow) = p.multipliedReportingOverflow(by: f)
                    if overflow { return nil }
                    p = q
                }
                return p
            }
            guard product(dims) != nil, let bytes = product([dims[0] / type.blockValues, type.blockBytes] + dims.dropFirst()) else {
                throw fail("tensor '\(name)': dimensions \(dims) are too large (the size overflows)")
            }
            raw.append(Raw(name: name, dims: dims, type: type, offset: offset, bytes: bytes))
        }
        let (padded, overflow) = offset.addingReportingOverflow(alignment - 1)
        guard !overflow else { throw fail("the header is too large") }
        let dataOffset = min(padded / alignment * alignment, size)
        let dataBytes = size - dataOffset
        var tensors: [GGUFTensorInfo] = []
        for t in raw {
            guard t.offset % UInt64(alignment) == 0 else {
                throw fail("tensor '\(t.name)' starts at offset \(t.offset), not a multiple of the alignment \(alignment)")
            }
            guard t.offset <= UInt64(dataBytes), UInt64(t.bytes) <= UInt64(dataBytes) - t.offset else {
                throw fail("tensor '\(t.name)' (\(t.bytes) bytes at offset \(t.offset)) runs past the end of the \(dataBytes)-byte data section (truncated?)")
            }
            tensors.append(GGUFTensorInfo(name: t.name, dimensions: t.dims, type: t.type, offset: Int(t.offset), byteCount: t.bytes))
        }
        let sorted = tensors.filter { $0.byteCount > 0 }.sorted { ($0.offset, $0.name) < ($1.offset, $1.name) }
        for (a, b) in zip(sorted, sorted.dropFirst()) where b.offset < a.offset + a.byteCount {
            throw fail("tensors '\(a.name)' and '\(b.name)' overlap in the data section")
        }
        return Parsed(version: Int(version), keys: keys, metadata: metadata, tensors: tensors, alignment: alignment,
                      dataOffset: dataOffset)
    }
}
