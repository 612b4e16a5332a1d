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

/// How a checkpoint's bytes are held in memory.
public enum WeightMemory: String, Sendable, CaseIterable {
    /// Read at load into private memory on 2 MiB pages (`HugePageRegion`), where the kernel offers
    /// them: fewer TLB misses when decode streams the weights. The default.
    case hugePages = "huge-pages"
    /// The file mapped read-only: pages load as they are first read and stay in the page cache,
    /// shared with other processes mapping the same file; 4 KiB pages.
    case mapped
}

/// One `.safetensors` file, read into huge pages or memory-mapped (`WeightMemory`). Format: 8-byte
/// little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin,
/// end]}}, then the data section. The header is untrusted: every field is checked before any
/// tensor is touched.
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
    /// How the bytes are held: `.mapped` where huge pages were asked for but not taken, and why.
    public let memory: WeightMemory
    public let mappedBecause: String?
    private let base: UnsafeMutableRawPointer
    private let mappedLength: Int
    private let region: HugePageRegion?
    private let dataStart: Int
    /// F16/BF16 and unaligned F32 tensors converted to float32 once, owned here (on huge pages
    /// when large, as FloatBuffers are).
    private var converted: [String: FloatBuffer] = [:]
    private let lock = NSLock()

    /// A header larger than this is refused rather than parsed (real headers are kilobytes).
    static let maxHeaderBytes = 100 << 20

    public convenience init(path: String, memory: WeightMemory = .hugePages) throws {
        try self.init(path: path, memory: memory, hugePageMinimum: HugePageRegion.minimumBytes)
    }

    /// `hugePageMinimum`: the size from which a file is read rather than mapped (smaller files
    /// would leave 2 MiB pages mostly empty; tests read the small fixtures too, through both paths).
    init(path: String, memory wanted: WeightMemory, hugePageMinimum: Int) throws {
        self.path = path
        let (fd, size) = try openWeightFile(path)
        defer { close(fd) }
        guard size >= 8 else {
            throw LoadError.truncated(path: path, detail: "\(size) bytes, fewer than the 8-byte header length")
        }
        guard let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), mapped != MAP_FAILED else {
            throw LoadError.cannotOpen(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        mappedLength = size
        do {
            // The header is read and checked through the mapping, before any data is read.
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
        // A file over half the physical memory stays mapped: a private copy could not be paged
        // back to the file under memory pressure, and would get the process killed instead.
        let fits = UInt64(size) <= ProcessInfo.processInfo.physicalMemory / 2
        if wanted == .hugePages, size >= hugePageMinimum, fits, let r = HugePageRegion.allocate(bytes: size) {
            // The whole file, read in pieces: a read may return fewer bytes than asked.
            var done = 0
            while done < size {
                let n = pread(fd, r.pointer + done, min(size - done, 1 << 30), off_t(done))
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else {
                    let reason = n == 0 ? "the file ended at byte \(done) of \(size) while reading it" : String(cString: strerror(errno))
                    r.release()
                    munmap(mapped, size)
                    throw LoadError.cannotOpen(path: path, reason: reason)
                }
                done += n
            }
            r.seal()
            munmap(mapped, size)
            region = r; base = r.pointer; memory = .hugePages; mappedBecause = nil
        } else {
            region = nil; base = UnsafeMutableRawPointer(mapped); memory = .mapped
            mappedBecause = wanted == .mapped ? "as asked" : !HugePageRegion.available ? "this system has no transparent huge pages"
                : size < hugePageMinimum ? "smaller than \(hugePageMinimum >> 20) MiB" : !fits ? "over half the physical memory" : "no memory to read it into"
        }
    }

    deinit {
        if let region { region.release() } else { munmap(base, mappedLength) }
    }

    /// The file's size: the bytes held in memory.
    public var byteCount: Int { mappedLength }

    /// Bytes of this file's data on huge pages now (nil: mapped, or not measurable).
    public var hugePageBytes: Int? { region.flatMap { HugePageRegion.residentHugeBytes(containing: $0.pointer) } }

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
        if let keys = topLevelKeys(data) {
            var seen = Set<String>()
            for key in keys where !seen.insert(key).inserted {
                throw LoadError.badHeader(path: path, detail: "tensor name '\(key)' appears more than once in the header")
            }
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
        // As the safetensors crate's `validate`: in offset order the tensors tile the data section
        // exactly, from byte 0 to its end, without gaps. A header length a few bytes short (which
        // shifts the data section) or bytes the header does not account for are refused.
        var covered = 0
        for e in entries.values.sorted(by: { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }) {
            guard e.begin == covered else {
                throw LoadError.badHeader(path: path, detail: "tensor '\(e.name)' starts at byte \(e.begin) of the data section, expected \(covered): tensors must cover the data section contiguously (is the header length right?)")
            }
            covered = e.end
        }
        guard covered == dataBytes else {
            throw LoadError.badHeader(path: path, detail: "the tensors cover \(covered) bytes of the \(dataBytes)-byte data section: \(dataBytes - covered) bytes are unaccounted for (is the header length right?)")
        }
        return (entries, header.metadata)
    }

    /// The keys of the header's top-level object, in order and with repetitions, or nil if the
    /// header is not a JSON object (the decoder reports that). JSON decoders keep one value per
    /// key silently; a repeated tensor name must be an error.
    static func topLevelKeys(_ data: Data) -> [String]? {
        let b = [UInt8](data)
        var i = 0
        func skipSpace() { while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 } }
        /// Skips a string starting at b[i] == '"'; returns its raw bytes including the quotes.
        func skipString() -> ArraySlice<UInt8>? {
            let start = i
            i += 1
            while i < b.count {
                if b[i] == 0x5C { i += 2; continue }            // backslash escape
                if b[i] == 0x22 { i += 1; return b[start..<i] }
                i += 1
            }
            return nil
        }
        /// Skips one value (object, array, string or scalar).
        func skipValue() -> Bool {
            skipSpace()
            guard i < b.count else { return false }
            if b[i] == 0x22 { return skipString() != nil }
            if b[i] == 0x7B || b[i] == 0x5B {
                var depth = 0
                while i < b.count {
                    switch b[i] {
                    case 0x22: if skipString() == nil { return false }; continue
                    case 0x7B, 0x5B: depth += 1
                    case 0x7D, 0x5D: depth -= 1; if depth == 0 { i += 1; return true }
                    default: break
                    }
                    i += 1
                }
                return false
            }
            while i < b.count, ![0x2C, 0x7D, 0x5D, 0x20, 0x0A, 0x0D, 0x09].contains(b[i]) { i += 1 }
            return true
        }
        skipSpace()
        guard i < b.count, b[i] == 0x7B else { return nil }
        i += 1
        var keys: [String] = []
        while true {
            skipSpace()
            guard i < b.count else { return nil }
            if b[i] == 0x7D { return keys }
            if b[i] == 0x2C { i += 1; continue }
            guard b[i] == 0x22, let raw = skipString() else { return nil }
            let key = (try? JSONSerialization.jsonObject(with: Data(raw), options: .fragmentsAllowed)) as? String
            keys.append(key ?? String(decoding: raw.dropFirst().dropLast(), as: UTF8.self))
            skipSpace()
            guard i < b.count, b[i] == 0x3A else { return nil }
            i += 1
            guard skipValue() else { return nil }
        }
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
            if let done = converted[name] { return Tensor(name: name, shape: entry.shape, data: done.pointer) }
            let out = try FloatBuffer(checkedCount: count, hugePages: true)
            Self.convert(raw, dtype: entry.dtype, count: count, into: out.pointer)
            converted[name] = out
            return Tensor(name: name, shape: entry.shape, data: out.pointer)
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
