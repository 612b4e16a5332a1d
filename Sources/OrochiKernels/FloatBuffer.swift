import Foundation

/// An owned, zero-filled float32 buffer for caches and scratch space. Memory comes from `calloc`,
/// so a large cache that is only partly used occupies only the pages actually written.
///
/// Sizes from files or flags must be checked first (`Sizes`): `init(checkedCount:)` throws
/// when the size is negative, overflows or cannot be allocated; `init(count:)` is for sizes
/// already checked and stops with a message naming the size rather than crash on a null pointer.
public final class FloatBuffer {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int

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

    public init(checkedCount count: Int) throws {
        guard count >= 0, count <= Int.max / MemoryLayout<Float>.stride else { throw AllocationError.invalidCount(count) }
        guard let raw = calloc(max(count, 1), MemoryLayout<Float>.stride) else {
            throw AllocationError.outOfMemory(bytes: count * MemoryLayout<Float>.stride)
        }
        self.count = count
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    public convenience init(count: Int) {
        do { try self.init(checkedCount: count) } catch { fatalError("FloatBuffer: \(error)") }
    }

    deinit { free(pointer) }

    public var bytes: Int { count * MemoryLayout<Float>.stride }

    public func zero() { memset(pointer, 0, bytes) }

    @inline(__always) public subscript(i: Int) -> Float {
        get { pointer[i] }
        set { pointer[i] = newValue }
    }
}
