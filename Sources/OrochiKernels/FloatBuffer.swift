import Foundation

/// An owned, zero-filled float32 buffer for caches and scratch space. Memory comes from `calloc`,
/// so a large cache that is only partly used occupies only the pages actually written; weights
/// of 4 MiB or more (`hugePages: true`) come from `HugePageRegion` instead. Not caches: a KV cache
/// written a row at a time would take (and zero) 2 MiB at its first token.
///
/// Sizes from files or flags must be checked first (`Sizes`): `init(checkedCount:)` throws
/// when the size is negative, overflows or cannot be allocated; `init(count:)` is for sizes
/// already checked and stops with a message naming the size rather than crash on a null pointer.
public final class FloatBuffer {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int
    private let region: HugePageRegion?

    public enum AllocationError: Error, CustomStringConvertible, Equatable {
        case invalidCount(Int)
        case outOfMemory(bytes: Int)
        public var description: String {
            switch self {
            case let .invalidCount(n): return "cannot allocate a buffer of \(n) floats"
            case let .outOfMemory(bytes): return "out of memory allocating \(bytes) bytes"
            }
        }
    }

    public init(checkedCount count: Int, hugePages: Bool = false) throws {
        guard count >= 0, count <= Int.max / MemoryLayout<Float>.stride else { throw AllocationError.invalidCount(count) }
        self.count = count
        if hugePages, count * MemoryLayout<Float>.stride >= HugePageRegion.minimumBytes,
           let r = HugePageRegion.allocate(bytes: count * MemoryLayout<Float>.stride) {
            region = r
            pointer = r.pointer.bindMemory(to: Float.self, capacity: count)
            return
        }
        guard let raw = calloc(max(count, 1), MemoryLayout<Float>.stride) else {
            throw AllocationError.outOfMemory(bytes: count * MemoryLayout<Float>.stride)
        }
        region = nil
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    public convenience init(count: Int, hugePages: Bool = false) {
        do { try self.init(checkedCount: count, hugePages: hugePages) } catch { fatalError("FloatBuffer: \(error)") }
    }

    deinit { if let region { region.release() } else { free(pointer) } }

    public var bytes: Int { count * MemoryLayout<Float>.stride }

    public func zero() { memset(pointer, 0, bytes) }

    @inline(__always) public subscript(i: Int) -> Float {
        get { pointer[i] }
        set { pointer[i] = newValue }
    }
}
