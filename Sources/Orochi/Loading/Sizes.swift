import Foundation

/// Every size that comes from a file or a flag goes through here before anything is allocated:
/// products are overflow-checked, and a plan of allocations is refused when it exceeds the
/// machine's physical memory, with a message saying how much it needs.
public enum SizeError: Error, CustomStringConvertible, Equatable {
    /// A product of sizes overflows: `what` names the keys or flags involved.
    case overflow(what: String, factors: [Int])
    /// The planned allocation exceeds the machine's physical memory.
    case exceedsMemory(what: String, bytes: Int, available: Int)

    public var description: String {
        switch self {
        case let .overflow(what, factors):
            return "\(what) = \(factors.map(String.init).joined(separator: " × ")) is too large (the product overflows a 64-bit integer)"
        case let .exceedsMemory(what, bytes, available):
            return "\(what) needs \(formatBytes(bytes)) (\(bytes) bytes), more than this machine's \(formatBytes(available)) of physical memory"
        }
    }
}

public enum Sizes {
    /// The product of `factors`, or `SizeError.overflow` naming `what`.
    public static func product(_ factors: [Int], _ what: String) throws -> Int {
        var result = 1
        for f in factors {
            let (p, overflow) = result.multipliedReportingOverflow(by: f)
            guard !overflow else { throw SizeError.overflow(what: what, factors: factors) }
            result = p
        }
        return result
    }

    /// The sum of `terms`, or `SizeError.overflow` naming `what`.
    public static func sum(_ terms: [Int], _ what: String) throws -> Int {
        var result = 0
        for t in terms {
            let (s, overflow) = result.addingReportingOverflow(t)
            guard !overflow else { throw SizeError.overflow(what: what, factors: terms) }
            result = s
        }
        return result
    }

    /// Bytes of `count` float32 values, overflow-checked.
    public static func floatBytes(_ count: Int, _ what: String) throws -> Int {
        try product([count, MemoryLayout<Float>.stride], what)
    }

    /// The machine's physical memory in bytes (sysconf; MemTotal of /proc/meminfo as a fallback).
    public static let physicalMemory: Int = {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), pageSize = sysconf(Int32(_SC_PAGESIZE))
        if pages > 0, pageSize > 0 {
            let (bytes, overflow) = pages.multipliedReportingOverflow(by: pageSize)
            if !overflow { return bytes }
        }
        if let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
           let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemTotal:") }),
           let kib = Int(line.split(separator: " ").dropFirst().first ?? "") {
            return kib * 1024
        }
        return Int.max
    }()

    /// Refuses an allocation plan of `bytes` that exceeds physical memory.
    public static func checkFits(_ bytes: Int, _ what: String, available: Int = Sizes.physicalMemory) throws {
        guard bytes >= 0, bytes <= available else {
            throw SizeError.exceedsMemory(what: what, bytes: bytes, available: available)
        }
    }
}
