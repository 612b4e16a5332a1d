import Foundation
import Orochi

/// Summary statistics of repeated measurements, and the log-log fits of the scaling analysis.
public enum BenchStatistics {
    /// The median (the mean of the two middle values for an even count); nil when empty.
    public static func median(_ values: [Double]) -> Double? {
        guard !values.isEmpty else { return nil }
        let s = values.sorted()
        let m = s.count / 2
        return s.count % 2 == 1 ? s[m] : (s[m - 1] + s[m]) / 2
    }
}

/// Median, minimum and maximum of some samples (seconds, or whatever unit they were taken in).
public struct BenchSummary: Sendable, Equatable, Codable {
    public var median: Double
    public var min: Double
    public var max: Double
    public var count: Int

    public init?(_ samples: [Double]) {
        guard let m = BenchStatistics.median(samples) else { return nil }
        median = m
        min = samples.min()!
        max = samples.max()!
        count = samples.count
    }

    public init(median: Double, min: Double, max: Double, count: Int) {
        self.median = median; self.min = min; self.max = max; self.count = count
    }
}

/// y ≈ c · xᵏ, fitted by least squares on (log x, log y): the exponent k is the slope of the curve
/// on log-log axes. A cost growing with the square of the context has k = 2, a linear one k = 1,
/// a constant one k = 0.
public struct PowerLawFit: Sendable, Equatable, Codable {
    public var exponent: Double
    public var coefficient: Double
    /// Coefficient of determination of the straight line in log-log space.
    public var rSquared: Double
    /// The x range the fit used (inclusive) and how many points fell in it.
    public var fromX: Double
    public var toX: Double
    public var points: Int

    /// Fits the points with positive x and y inside `range` (all when nil); nil with fewer than 2
    /// distinct x values.
    public static func fit(x: [Double], y: [Double], range: ClosedRange<Double>? = nil) -> PowerLawFit? {
        var lx: [Double] = [], ly: [Double] = [], used: [Double] = []
        for (a, b) in zip(x, y) where a > 0 && b > 0 && (range?.contains(a) ?? true) {
            lx.append(Foundation.log(a)); ly.append(Foundation.log(b)); used.append(a)
        }
        guard lx.count >= 2, Set(lx).count >= 2 else { return nil }
        let n = Double(lx.count)
        let mx = lx.reduce(0, +) / n, my = ly.reduce(0, +) / n
        var sxy = 0.0, sxx = 0.0, syy = 0.0
        for (a, b) in zip(lx, ly) {
            sxy += (a - mx) * (b - my); sxx += (a - mx) * (a - mx); syy += (b - my) * (b - my)
        }
        let k = sxy / sxx
        let intercept = my - k * mx
        var ssRes = 0.0
        for (a, b) in zip(lx, ly) { let r = b - (intercept + k * a); ssRes += r * r }
        let r2 = syy > 0 ? 1 - ssRes / syy : 1
        return PowerLawFit(exponent: k, coefficient: Foundation.exp(intercept), rSquared: r2,
                           fromX: used.min()!, toX: used.max()!, points: lx.count)
    }

    public func predict(_ x: Double) -> Double { coefficient * Foundation.pow(x, exponent) }
}

/// Where one curve (the challenger, e.g. the SSM) drops below another (the incumbent, e.g. attention).
public enum Crossover: Sendable, Equatable {
    /// The challenger is already cheaper at the smallest measured x.
    case fromStart(x: Double)
    /// The curves cross between two measured points; `x` is interpolated on log-log axes.
    case measured(x: Double)
    /// Not within the measured range; `x` extrapolates the two fitted power laws when they converge.
    case beyondRange(lastX: Double, extrapolated: Double?)
    /// Not enough common points.
    case unknown

    /// Two fits of nearly equal exponent meet absurdly far out (10^19 tokens on a noisy run of the
    /// tests' tiny models): a crossing beyond a billion tokens says nothing about real contexts.
    public static let farthestExtrapolation = 1e9

    /// Finds the first x at which `challenger` < `incumbent`, both sampled at the same x values
    /// (ascending). Extrapolation uses the given fits of the upper range.
    public static func find(x: [Double], challenger: [Double], incumbent: [Double],
                            challengerFit: PowerLawFit? = nil, incumbentFit: PowerLawFit? = nil) -> Crossover {
        let n = min(x.count, challenger.count, incumbent.count)
        guard n > 0 else { return .unknown }
        if challenger[0] < incumbent[0] { return .fromStart(x: x[0]) }
        for i in 1..<max(n, 1) where challenger[i] < incumbent[i] {
            // log(ratio) goes from ≥ 0 at i−1 to < 0 at i: interpolate its zero in log x.
            let r0 = Foundation.log(challenger[i - 1] / incumbent[i - 1]), r1 = Foundation.log(challenger[i] / incumbent[i])
            let l0 = Foundation.log(x[i - 1]), l1 = Foundation.log(x[i])
            let t = r0 == r1 ? 1 : r0 / (r0 - r1)
            return .measured(x: Foundation.exp(l0 + t * (l1 - l0)))
        }
        var extrapolated: Double? = nil
        if let c = challengerFit, let a = incumbentFit, a.exponent > c.exponent {
            // c_c·x^k_c = c_a·x^k_a  ⇒  x = (c_c / c_a)^(1 / (k_a − k_c))
            let v = Foundation.pow(c.coefficient / a.coefficient, 1 / (a.exponent - c.exponent))
            if v.isFinite && v > x[n - 1] && v <= Self.farthestExtrapolation { extrapolated = v }
        }
        return .beyondRange(lastX: x[n - 1], extrapolated: extrapolated)
    }

    public var description: String {
        func g(_ v: Double) -> String { BenchReport.grouped(v) }
        switch self {
        case .fromStart(let x): return "cheaper from the first point (n = \(g(x)))"
        case .measured(let x): return "n ≈ \(g(x))"
        case .beyondRange(let last, let e):
            if let e { return "not reached by n = \(g(last)) (the upper-range fits cross near n ≈ \(g(e)))" }
            return "not reached by n = \(g(last))"
        case .unknown: return "unknown (too few common points)"
        }
    }
}
