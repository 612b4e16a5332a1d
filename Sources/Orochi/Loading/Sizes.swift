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
            return "\(what) needs \(formatBytes(bytes)) (\(bytes) bytes), more than the \(formatBytes(available)) this process may allocate (the least of physical memory, available memory and the address-space limit)"
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
        if let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8), let kib = procField(text, "MemTotal:") {
            return kib.multipliedReportingOverflow(by: 1024).overflow ? Int.max : kib * 1024
        }
        return Int.max
    }()

    /// What this process may still allocate now: the least of physical memory, the memory the
    /// kernel reports available (MemAvailable: free and reclaimable), and what is left under the
    /// address-space limit (`ulimit -v`, RLIMIT_AS) above the process's current size. Checked
    /// before a size from a flag, a file or a request is allocated, so that the answer is an
    /// error rather than a fatal out-of-memory when the limit is lower than the machine.
    public static func allocatable() -> Int {
        var result = physicalMemory
        let meminfo = (try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8)) ?? ""
        if let kib = procField(meminfo, "MemAvailable:"), kib >= 0 {
            result = min(result, kib.multipliedReportingOverflow(by: 1024).overflow ? Int.max : kib * 1024)
        }
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_AS.rawValue), &limit) == 0, limit.rlim_cur < UInt64(Int.max) {   // RLIM_INFINITY is UInt64.max
            let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
            let used = procField(status, "VmSize:").map { $0.multipliedReportingOverflow(by: 1024).overflow ? Int.max : $0 * 1024 } ?? 0
            result = min(result, max(0, Int(limit.rlim_cur) - used))
        }
        return result
    }

    /// The number of a "Key:  value kB" line of a /proc file ("VmSize:\t21474836480 kB": a tab,
    /// and no space at all once the number fills its field).
    public static func procField(_ text: String, _ key: String) -> Int? {
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(key) }) else { return nil }
        return Int(line.dropFirst(key.count).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "")
    }

    /// Refuses an allocation plan of `bytes` that exceeds what this process may allocate.
    public static func checkFits(_ bytes: Int, _ what: String, available: Int = Sizes.allocatable()) throws {
        guard bytes >= 0, bytes <= available else {
            throw SizeError.exceedsMemory(what: what, bytes: bytes, available: available)
        }
    }
}
