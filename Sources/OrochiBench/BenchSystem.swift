import Foundation
import Orochi

/// The process's resident memory, from /proc/self/status (Linux), with getrusage as the fallback.
public enum ProcessMemory {
    /// Current resident set (VmRSS), bytes.
    public static var residentBytes: Int? { statusField("VmRSS:") }

    /// Peak resident set (VmHWM) since the process started or since the last `resetPeak()`, bytes.
    public static var peakBytes: Int? {
        if let v = statusField("VmHWM:") { return v }
        var usage = rusage()
        guard getrusage(0 /* RUSAGE_SELF */, &usage) == 0 else { return nil }
        return Int(usage.ru_maxrss) * 1024   // kilobytes on Linux
    }

    /// Resets the peak to the current resident set (writing 5 to /proc/self/clear_refs, Linux ≥ 4.0),
    /// so that each benchmark point reports its own peak. Returns false where that is not possible;
    /// the peak is then the process's since it started.
    @discardableResult
    public static func resetPeak() -> Bool {
        // First hand freed heap memory back to the system: after a large model is freed, glibc keeps
        // tensors below its (raised) mmap threshold in the heap, and that memory would otherwise
        // count in the next point's peak.
        // malloc_trim is not in Swift's Glibc module: look it up (RTLD_DEFAULT is a null handle).
        if let symbol = dlsym(nil, "malloc_trim") {
            typealias Trim = @convention(c) (Int) -> Int32
            _ = unsafeBitCast(symbol, to: Trim.self)(0)
        }
        guard let fd = fopen("/proc/self/clear_refs", "w") else { return false }
        defer { fclose(fd) }
        return fputs("5", fd) >= 0 && fflush(fd) == 0
    }

    static func statusField(_ key: String) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(key) {
            let parts = line.dropFirst(key.count).split(separator: " ")
            guard let value = parts.first.flatMap({ Int($0) }) else { return nil }
            return value * 1024   // "kB"
        }
        return nil
    }
}

/// What the figures were measured on, for titles and records.
public struct BenchMachine: Sendable, Codable, Equatable {
    public var cpu: String
    public var logicalCPUs: Int
    public var memoryBytes: Int
    public var threads: Int
    public var openblasCoreType: String?
    public var os: String
    /// The OpenBLAS core in use and why (Orochi's choice or the user's OPENBLAS_CORETYPE).
    public var blasCore: String?
    /// How OpenBLAS's idle threads wait (OPENBLAS_THREAD_TIMEOUT, Orochi's or the user's).
    public var blasIdle: String?
    /// Our own kernels' instruction set (avx512, avx2, portable).
    public var kernels: String?
    /// Streaming read bandwidth measured before the sweep, bytes/s: the decode roofline.
    public var readBandwidth: Double?

    public init(cpu: String, logicalCPUs: Int, memoryBytes: Int, threads: Int, openblasCoreType: String?, os: String) {
        self.cpu = cpu; self.logicalCPUs = logicalCPUs; self.memoryBytes = memoryBytes
        self.threads = threads; self.openblasCoreType = openblasCoreType; self.os = os
    }

    public static func current(threads: Int) -> BenchMachine {
        var cpu = "unknown CPU"
        if let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
           let line = text.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
           let colon = line.firstIndex(of: ":") {
            cpu = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var os = ProcessInfo.processInfo.operatingSystemVersionString
        if let text = try? String(contentsOfFile: "/etc/os-release", encoding: .utf8),
           let line = text.split(separator: "\n").first(where: { $0.hasPrefix("PRETTY_NAME=") }) {
            os = line.dropFirst("PRETTY_NAME=".count).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        }
        var machine = BenchMachine(cpu: cpu, logicalCPUs: ProcessInfo.processInfo.activeProcessorCount,
                                   memoryBytes: Int(ProcessInfo.processInfo.physicalMemory), threads: threads,
                                   openblasCoreType: ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"], os: os)
        machine.blasCore = "\(BLAS.core) (\(BLAS.coreReason)); layer products of many tokens: \(BLAS.gemmSummary)"
        machine.blasIdle = BLAS.idleReason
        machine.kernels = KernelInfo.isa
        return machine
    }

    /// "AMD EPYC 9B45, 2 threads" — for plot titles.
    public var label: String { "\(cpu), \(threads) thread\(threads == 1 ? "" : "s")" }
}

/// The 1-minute load average (/proc/loadavg): how busy the shared machine was.
public func loadAverage() -> Double? {
    guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return nil }
    return text.split(separator: " ").first.flatMap { Double($0) }
}

/// A stop request (Ctrl-C), checked by the sweep between measurements. Set from a signal handler,
/// so it is a plain word written once.
public enum BenchStop {
    nonisolated(unsafe) public static var requested: Int32 = 0
    public static var isRequested: Bool { requested != 0 }
}
