import Foundation

/// A monotonic clock in seconds.
public enum Clock {
    public static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
}

/// The parts of a forward pass that the component breakdown separates.
public enum ProfileComponent: Int, CaseIterable, Sendable, CustomStringConvertible {
    case embedding, norm, projection, rope, attention, mlp, conv, scan, lmHead

    public var description: String {
        switch self {
        case .embedding: return "embedding"
        case .norm: return "norms"
        case .projection: return "projections"
        case .rope: return "rope"
        case .attention: return "attention scores+softmax"
        case .mlp: return "mlp"
        case .conv: return "conv"
        case .scan: return "scan"
        case .lmHead: return "lm_head"
        }
    }
}

/// Timers built into the forward passes, off by default: when off, `time` is one branch.
/// Single-threaded use only (the benchmark turns it on around one prefill or decode step).
public enum Profiler {
    nonisolated(unsafe) public static var enabled = false
    nonisolated(unsafe) private static var totals = [Double](repeating: 0, count: ProfileComponent.allCases.count)
    /// When set (and `enabled`), every timed step is also appended here, in order (`orochi trace`).
    nonisolated(unsafe) public static var log: [(ProfileComponent, Double)]?

    @inline(__always) @discardableResult
    public static func time<T>(_ component: ProfileComponent, _ body: () throws -> T) rethrows -> T {
        guard enabled else { return try body() }
        let start = Clock.now()
        defer {
            let seconds = Clock.now() - start
            totals[component.rawValue] += seconds
            log?.append((component, seconds))
        }
        return try body()
    }

    public static func reset() {
        for i in totals.indices { totals[i] = 0 }
    }

    /// Seconds spent in each component since the last reset (components never entered are left out).
    public static var seconds: [(ProfileComponent, Double)] {
        ProfileComponent.allCases.compactMap { totals[$0.rawValue] > 0 ? ($0, totals[$0.rawValue]) : nil }
    }
}
