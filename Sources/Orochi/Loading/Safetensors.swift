import Foundation

/// Element types a safetensors header may declare. Only the float types can be weights.
public enum DType: String, Sendable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16", f64 = "F64"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u8 = "U8", bool = "BOOL"
    case u16 = "U16", u32 = "U32", u64 = "U64"

    public var byteSize: Int {
        switch self {
        case .f64, .i64, .u64: return 8
        case .f32, .i32, .u32: return 4
        case .f16, .bf16, .i16, .u16: return 2
        case .i8, .u8, .bool: return 1
        }
    }
}

/// A read-only float32 view of one weight: either straight into the mapped file (F32) or into a
/// buffer converted once at load (F16, BF16).
public struct Tensor: @unchecked Sendable {
    public let name: String
    public let shape: [Int]
    public let data: UnsafePointer<Float>
    public var count: Int { shape.reduce(1, *) }
}

/// One `.safetensors` file, memory-mapped. Format: 8-byte little-endian header length N, N bytes
/// of JSON {name: {dtype, shape, data_offsets: [begin, end]}}, then the data section.
/// The header is untrusted: every field is checked before any tensor is touched.
public final class SafetensorsFile {
    public struct Entry: Sendable {
        public let name: String
        public let dtype: DType
        public let shape: [Int]
        public let begin: Int   // byte offsets within the data section
        public let end: Int
    }

    public let path: String
    public let entries: [String: Entry]
    public let metadata: [String: String]
    private let base: UnsafeMutableRawPointer
    private let mappedLength: Int
    private let dataStart: Int
    /// F16/BF16 and unaligned F32 tensors converted to float32 once, owned here.
    private var converted: [String: UnsafeMutablePointer<Float>] = [:]
    private let lock = NSLock()

    /// A header larger than this is refused rather than parsed (real headers are kilobytes).
    static let maxHeaderBytes = 100 << 20

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw LoadError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw LoadError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        let size = Int(st.st_size)
        guard size >= 8 else {
            throw LoadError.truncated(path: path, detail: "\(size) bytes, fewer than the 8-byte header length")
        }
        guard let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), mapped != MAP_FAILED else {
            throw LoadError.cannotOpen(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        base = mapped
        mappedLength = size
        do {
            let headerLength = UInt64(littleEndian: mapped.loadUnaligned(as: UInt64.self))
            guard headerLength <= UInt64(size - 8) else {
                throw LoadError.truncated(path: path, detail: "header length \(headerLength) runs past the end of the \(size)-byte file")
            }
            guard headerLength <= UInt64(Self.maxHeaderBytes) else {
                throw LoadError.badHeader(path: path, detail: "header length \(headerLength) exceeds the \(Self.maxHeaderBytes)-byte limit")
            }
            dataStart = 8 + Int(headerLength)
            let headerData = Data(bytes: mapped + 8, count: Int(headerLength))
            (entries, metadata) = try Self.parseHeader(headerData, path: path, dataBytes: size - dataStart)
        } catch {
            munmap(mapped, size)
            throw error
        }
    }

    deinit {
        for (_, p) in converted { p.deallocate() }
        munmap(base, mappedLength)
    }

    private struct DynamicKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
    private struct RawEntry: Decodable {
        let dtype: String
        let shape: [Int]
        let data_offsets: [Int]
    }
    /// The header as decoded before validation: tensor entries and the optional `__metadata__`.
    private struct RawHeader: Decodable {
        var entries: [String: RawEntry] = [:]
        var metadata: [String: String] = [:]
        init(from decoder: Decoder) throws {
            let container = try decoder.container(keyedBy: DynamicKey.self)
            for key in container.allKeys {
                if key.stringValue == "__metadata__" {
                    metadata = (try? container.decode([String: String].self, forKey: key)) ?? [:]
                    continue
                }
                do {
                    entries[key.stringValue] = try container.decode(RawEntry.self, forKey: key)
                } catch {
                    throw LoadError.badHeader(path: "", detail: "tensor '\(key.stringValue)' needs 'dtype' (string), 'shape' (list of integers) and 'data_offsets' (two integers)")
                }
            }
        }
    }

    static func parseHeader(_ data: Data, path: String, dataBytes: Int) throws -> ([String: Entry], [String: String]) {
        let header: RawHeader
        do {
            header = try JSONDecoder().decode(RawHeader.self, from: data)
        } catch LoadError.badHeader(_, let detail) {
            throw LoadError.badHeader(path: path, detail: detail)
        } catch {
            throw LoadError.badHeader(path: path, detail: "header is not a JSON object of tensor entries")
        }
        var entries: [String: Entry] = [:]
        for (name, raw) in header.entries {
            guard let dtype = DType(rawValue: raw.dtype) else {
                throw LoadError.unknownDType(path: path, tensor: name, dtype: raw.dtype)
            }
            guard raw.shape.allSatisfy({ $0 >= 0 }) else {
                throw LoadError.badHeader(path: path, detail: "tensor '\(name)': shape \(raw.shape) has a negative dimension")
            }
            let offsets = raw.data_offsets
            guard offsets.count == 2, offsets[0] >= 0, offsets[0] <= offsets[1] else {
                throw LoadError.badHeader(path: path, detail: "tensor '\(name)': data_offsets \(offsets) must be [begin, end] with 0 ≤ begin ≤ end")
            }
            // shape × dtype size, refusing products that overflow.
            var bytes = dtype.byteSize
            for dim in raw.shape {
                let (product, overflow) = bytes.multipliedReportingOverflow(by: dim)
                guard !overflow else {
                    throw LoadError.badHeader(path: path, detail: "tensor '\(name)': shape \(raw.shape) is too large")
                }
                bytes = product
            }
            guard bytes == offsets[1] - offsets[0] else {
                throw LoadError.sizeMismatch(path: path, tensor: name, expectedBytes: bytes, spanBytes: offsets[1] - offsets[0])
            }
            guard offsets[1] <= dataBytes else {
                throw LoadError.outOfRange(path: path, tensor: name, end: offsets[1], dataBytes: dataBytes)
            }
            entries[name] = Entry(name: name, dtype: dtype, shape: raw.shape, begin: offsets[0], end: offsets[1])
        }
        // No two tensors may share bytes (empty tensors occupy none).
        let sorted = entries.values.filter { $0.end > $0.begin }.sorted { ($0.begin, $0.name) < ($1.begin, $1.name) }
        for (a, b) in zip(sorted, sorted.dropFirst()) where b.begin < a.end {
            throw LoadError.overlapping(path: path, first: a.name, second: b.name)
        }
        return (entries, header.metadata)
    }

    /// The tensor as float32. F32 data that is 4-byte aligned is returned in place (no copy).
    public func tensor(_ name: String) throws -> Tensor {
        guard let entry = entries[name] else { throw LoadError.missingTensor(name: name, directory: path) }
        let raw = UnsafeRawPointer(base + dataStart + entry.begin)
        let count = entry.shape.reduce(1, *)
        switch entry.dtype {
        case .f32 where Int(bitPattern: raw) % MemoryLayout<Float>.alignment == 0:
            return Tensor(name: name, shape: entry.shape, data: raw.assumingMemoryBound(to: Float.self))
        case .f32, .f16, .bf16:
            lock.lock(); defer { lock.unlock() }
            if let done = converted[name] { return Tensor(name: name, shape: entry.shape, data: done) }
            let out = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
            Self.convert(raw, dtype: entry.dtype, count: count, into: out)
            converted[name] = out
            return Tensor(name: name, shape: entry.shape, data: out)
        default:
            throw LoadError.unsupportedDType(path: path, tensor: name, dtype: entry.dtype.rawValue)
        }
    }

    /// A float matrix as stored, without conversion: a view into the mapped file. F32 data that
    /// is not 4-byte aligned is converted (into an aligned copy) as `tensor` does.
    public func matrix(_ name: String, rows: Int, columns: Int) throws -> WeightMatrix {
        guard let entry = entries[name] else { throw LoadError.missingTensor(name: name, directory: path) }
        let raw = UnsafeRawPointer(base + dataStart + entry.begin)
        switch entry.dtype {
        case .f16: return WeightMatrix(raw: raw, type: .f16, rows: rows, columns: columns)
        case .bf16: return WeightMatrix(raw: raw, type: .bf16, rows: rows, columns: columns)
        default: return WeightMatrix(try tensor(name).data, rows: rows, columns: columns)
        }
    }

    static func convert(_ raw: UnsafeRawPointer, dtype: DType, count: Int, into out: UnsafeMutablePointer<Float>) {
        switch dtype {
        case .f32:
            memcpy(out, raw, count * 4)
        case .f16:
            for i in 0..<count {
                out[i] = Float(Float16(bitPattern: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            }
        case .bf16:
            // bfloat16 is the upper half of a float32.
            for i in 0..<count {
                let bits = UInt32(raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16
                out[i] = Float(bitPattern: bits)
            }
        default:
            break
        }
    }
}
