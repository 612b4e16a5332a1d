import Foundation

/// An owned, zero-filled float32 buffer for caches and scratch space. Memory comes from `calloc`,
/// so a large cache that is only partly used occupies only the pages actually written.
public final class FloatBuffer {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int

    public init(count: Int) {
        self.count = count
        let raw = calloc(max(count, 1), MemoryLayout<Float>.stride)!
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    deinit { free(pointer) }

    public var bytes: Int { count * MemoryLayout<Float>.stride }

    public func zero() { memset(pointer, 0, bytes) }

    @inline(__always) public subscript(i: Int) -> Float {
        get { pointer[i] }
        set { pointer[i] = newValue }
    }
}
