import Foundation
import Orochi

/// How a sweep runs.
public struct BenchSettings: Sendable, Codable, Equatable {
    /// Context lengths n, ascending: prefill n tokens, then decode at depth n.
    public var contexts: [Int]
    /// Decode steps timed after each prefill; their median is the per-token latency at depth n.
    public var decodeTokens: Int
    /// Repetitions of each point (prefill + decode), after a warm-up.
    public var repetitions: Int
    public var threads: Int
    /// Seeds the random token ids (and the preset weights).
    public var seed: UInt64
    /// Stop repeating a point once its repetitions have taken this long (at least one is always
    /// run): the large contexts of a quadratic prefill then get fewer repetitions. nil: no limit.
    public var maxSecondsPerPoint: Double?
    /// Contexts at which one extra prefill and the decode steps are run with the component timers on.
    public var breakdownContexts: [Int]
    /// Warm-up before each point: a prefill of min(n, this) tokens and a few decode steps. 512
    /// covers every model's prefill chunk (Llama 512, Mamba and Jamba 256), so that no timed prefill
    /// is the first to touch pages of its scratch (a warm-up of 128 left most of a chunk's scratch
    /// untouched), as llama-bench warms up with a prefill of the timed length.
    public var warmupTokens: Int
    /// Measure the streaming read bandwidth before the sweep (the decode roofline printed beside the figures).
    public var measureBandwidth: Bool?
    /// Decode steps timed at each of two depths in turn after the deepest point (BenchPairedDepths):
    /// the deepest context against the smallest on one model, step for step. 0 or nil: none.
    public var pairedSteps: Int?

    public init(contexts: [Int], decodeTokens: Int = 32, repetitions: Int = 3, threads: Int = 2, seed: UInt64 = 1,
                maxSecondsPerPoint: Double? = nil, breakdownContexts: [Int]? = nil, warmupTokens: Int = 512,
                pairedSteps: Int = 64) {
        self.contexts = contexts.sorted()
        self.decodeTokens = decodeTokens
        self.repetitions = repetitions
        self.threads = threads
        self.seed = seed
        self.maxSecondsPerPoint = maxSecondsPerPoint
        // Default: the smallest context only (each breakdown costs one extra prefill, which is
        // expensive at the large contexts); `make bench` asks for 128 and 4,096.
        self.breakdownContexts = breakdownContexts ?? self.contexts.first.map { [$0] } ?? []
        self.warmupTokens = warmupTokens
        self.pairedSteps = pairedSteps
    }
}

/// The measurements of one model at one context length.
public struct BenchPoint: Sendable, Codable, Equatable {
    public var model: String
    public var architecture: String
    public var parameters: Int
    /// The context n: prefill length, and the depth at which decode is timed.
    public var context: Int
    public var decodeTokens: Int
    /// Repetitions actually run.
    public var repetitions: Int
    /// Seconds to prefill n tokens: median, min, max over repetitions.
    public var prefill: BenchSummary?
    public var prefillSamples: [Double]
    /// Seconds per decode step at depth n: the median of all steps of all repetitions; min and max
    /// are those of the per-repetition medians.
    public var decode: BenchSummary?
    public var decodeRepetitionMedians: [Double]
    /// KV-cache or state bytes the model reports after prefilling n tokens.
    public var stateBytes: Int
    /// What the model computes it needs for n tokens (`stateBytes(forTokens:)`).
    public var expectedStateBytes: Int
    /// Weights in memory (parameters × 4 bytes as f32).
    public var weightBytes: Int
    /// Peak resident memory of the process during this point (building the model, warm-up, runs).
    public var peakResidentBytes: Int?
    /// Why the point has no measurements (e.g. beyond the model's context limit).
    public var skipped: String?
    /// n / median prefill seconds.
    public var prefillTokensPerSecond: Double?
    /// 1 / median decode seconds per token.
    public var decodeTokensPerSecond: Double?
    /// The machine's 1-minute load average when the point ended: how busy the shared machine was.
    public var loadAverage: Double? = nil
    /// At the deepest context only: its decode and the smallest context's, step for step in turn.
    public var paired: BenchPairedDepths? = nil
}

/// Decode at the deepest context and at the smallest, timed step for step in turn on one model
/// (two sequences on the same weights: the deepest point's, carried on, and a fresh one prefilled
/// with the smallest context's ids), the order swapped at every pair. The points themselves are
/// measured minutes apart, and a shared machine's speed drifts by a third in that time; here
/// both depths meet the same drift, so their ratio shows what depth alone costs: nothing for an
/// SSM's constant state, the growing KV cache's reads for attention.
public struct BenchPairedDepths: Sendable, Codable, Equatable {
    public var deepContext: Int
    public var shallowContext: Int
    /// Steps timed at each depth (the deep sequence's run from depth deepContext + decodeTokens).
    public var steps: Int
    /// Medians of the steps' seconds.
    public var deepSeconds: Double
    public var shallowSeconds: Double
    /// Deep over shallow, pair by pair: median, lowest and highest.
    public var pairRatio: BenchSummary
    public var ratio: Double { deepSeconds / shallowSeconds }
}

/// Seconds per component of one forward pass, from the profiler's timers.
public struct BenchBreakdown: Sendable, Codable, Equatable {
    public var model: String
    public var context: Int
    /// "prefill" (n tokens at once) or "decode" (one step at depth n, averaged over the decode steps).
    public var phase: String
    /// Wall time of the profiled pass (per step for decode).
    public var wallSeconds: Double
    public var components: [Component]

    public struct Component: Sendable, Codable, Equatable {
        public var name: String
        public var seconds: Double
    }

    /// Wall time outside every timer (loops, copies, checks).
    public var otherSeconds: Double { max(0, wallSeconds - components.reduce(0) { $0 + $1.seconds }) }
}

/// Everything a sweep produced; partial when interrupted.
public struct BenchResults: Sendable, Codable {
    public var machine: BenchMachine
    public var settings: BenchSettings
    public var models: [String]
    /// Whether each model's state is constant (an SSM's), by name.
    public var constantState: [String: Bool]
    /// What each model keeps of the context, by name: "attention" (bytes per token only), "ssm"
    /// (fixed bytes only) or "hybrid" (fixed bytes plus bytes per token).
    public var stateKind: [String: String] = [:]
    public var startedAt: String
    public var wallSeconds: Double
    public var interrupted: Bool
    public var peakIsPerPoint: Bool
    public var points: [BenchPoint]
    public var breakdowns: [BenchBreakdown]
    /// The command line that produced the results (set by the CLI).
    public var command: String? = nil
    /// The machine's 1-minute load average when the sweep started and ended (other work on a shared machine).
    public var loadAverageStart: Double? = nil
    public var loadAverageEnd: Double? = nil
    /// Each model's smallest context measured again after the sweep. The sweep takes minutes and a
    /// shared machine drifts meanwhile (its memory bandwidth moved by a third within a run here): the
    /// deepest decode is compared with this control, measured minutes nearer to it, as well as with
    /// the first point. Not among `points` (not fitted, not plotted).
    public var controls: [BenchPoint]? = nil

    public func points(of model: String) -> [BenchPoint] {
        points.filter { $0.model == model && $0.skipped == nil }.sorted { $0.context < $1.context }
    }

    /// A replayed sweep's numbers, range-checked before the analysis uses them: contexts, counts and
    /// byte sizes small enough that sums and differences of them cannot overflow, times and rates
    /// finite and not negative. The error names the field and what was expected.
    public func validate() throws {
        func count(_ v: Int, _ field: String, _ range: ClosedRange<Int>) throws {
            guard range.contains(v) else { throw BenchFileError(field: field, value: String(v), expected: "an integer in \(range.lowerBound)...\(range.upperBound)") }
        }
        func time(_ v: Double?, _ field: String) throws {
            guard let v else { return }
            guard v.isFinite, v >= 0 else { throw BenchFileError(field: field, value: String(v), expected: "a finite number ≥ 0") }
        }
        func summary(_ s: BenchSummary?, _ field: String) throws {
            guard let s else { return }
            try time(s.median, field + ".median"); try time(s.min, field + ".min"); try time(s.max, field + ".max")
            try count(s.count, field + ".count", 0...Self.maxCount)
        }
        func point(_ p: BenchPoint, _ field: String) throws {
            try count(p.context, field + ".context", 1...Self.maxContext)
            try count(p.decodeTokens, field + ".decodeTokens", 0...Self.maxCount)
            try count(p.repetitions, field + ".repetitions", 0...Self.maxCount)
            try count(p.parameters, field + ".parameters", 0...Self.maxBytes)
            try count(p.stateBytes, field + ".stateBytes", 0...Self.maxBytes)
            try count(p.expectedStateBytes, field + ".expectedStateBytes", 0...Self.maxBytes)
            try count(p.weightBytes, field + ".weightBytes", 0...Self.maxBytes)
            if let b = p.peakResidentBytes { try count(b, field + ".peakResidentBytes", 0...Self.maxBytes) }
            try summary(p.prefill, field + ".prefill"); try summary(p.decode, field + ".decode")
            try count(p.prefillSamples.count, field + ".prefillSamples (length)", 0...Self.maxCount)
            try count(p.decodeRepetitionMedians.count, field + ".decodeRepetitionMedians (length)", 0...Self.maxCount)
            for (i, v) in p.prefillSamples.enumerated() { try time(v, field + ".prefillSamples[\(i)]") }
            for (i, v) in p.decodeRepetitionMedians.enumerated() { try time(v, field + ".decodeRepetitionMedians[\(i)]") }
            try time(p.prefillTokensPerSecond, field + ".prefillTokensPerSecond")
            try time(p.decodeTokensPerSecond, field + ".decodeTokensPerSecond")
            if let q = p.paired {
                try count(q.deepContext, field + ".paired.deepContext", 1...Self.maxContext)
                try count(q.shallowContext, field + ".paired.shallowContext", 1...Self.maxContext)
                try count(q.steps, field + ".paired.steps", 1...Self.maxCount)
                try time(q.deepSeconds, field + ".paired.deepSeconds"); try time(q.shallowSeconds, field + ".paired.shallowSeconds")
                guard q.shallowSeconds > 0 else {
                    throw BenchFileError(field: field + ".paired.shallowSeconds", value: "0", expected: "a number > 0")
                }
                try summary(q.pairRatio, field + ".paired.pairRatio")
            }
        }
        try count(settings.contexts.count, "settings.contexts (length)", 0...Self.maxCount)
        for (i, n) in settings.contexts.enumerated() { try count(n, "settings.contexts[\(i)]", 1...Self.maxContext) }
        try count(settings.decodeTokens, "settings.decodeTokens", 0...Self.maxCount)
        try count(settings.repetitions, "settings.repetitions", 0...Self.maxCount)
        try count(settings.threads, "settings.threads", 0...Self.maxCount)
        if let n = settings.pairedSteps { try count(n, "settings.pairedSteps", 0...Self.maxCount) }
        try time(settings.maxSecondsPerPoint, "settings.maxSecondsPerPoint")
        for (i, n) in settings.breakdownContexts.enumerated() { try count(n, "settings.breakdownContexts[\(i)]", 1...Self.maxContext) }
        try count(machine.logicalCPUs, "machine.logicalCPUs", 0...Self.maxCount)
        try count(machine.memoryBytes, "machine.memoryBytes", 0...Self.maxBytes)
        try time(machine.readBandwidth, "machine.readBandwidth")
        try time(wallSeconds, "wallSeconds")
        try time(loadAverageStart, "loadAverageStart"); try time(loadAverageEnd, "loadAverageEnd")
        try count(points.count, "points (length)", 0...Self.maxCount)
        for (i, p) in points.enumerated() { try point(p, "points[\(i)]") }
        for (i, p) in (controls ?? []).enumerated() { try point(p, "controls[\(i)]") }
        for (i, b) in breakdowns.enumerated() {
            try count(b.context, "breakdowns[\(i)].context", 1...Self.maxContext)
            try time(b.wallSeconds, "breakdowns[\(i)].wallSeconds")
            for (j, c) in b.components.enumerated() { try time(c.seconds, "breakdowns[\(i)].components[\(j)].seconds") }
        }
    }

    /// Bounds for `validate`: far above any real sweep, far below where Int arithmetic overflows.
    static let maxContext = 1 << 30, maxCount = 1 << 24, maxBytes = 1 << 50
}

/// A replayed sweep file whose numbers are out of range.
public struct BenchFileError: Error, CustomStringConvertible {
    public var field: String, value: String, expected: String
    public var description: String { "\(field) is \(value); expected \(expected)" }
}

/// Runs the sweep: for each context n (ascending), each model in turn — interleaved, so that the
/// models' ratios come from the same conditions — is built fresh, warmed up, then timed
/// `repetitions` times: reset, prefill n random ids (timed), then `decodeTokens` decode steps
/// (each timed). Only the phases are timed: building the model, the warm-up and the checks are not.
public final class BenchRunner {
    public let subjects: [BenchSubject]
    public let settings: BenchSettings
    /// Progress lines (for stderr).
    public var progress: (String) -> Void

    public init(subjects: [BenchSubject], settings: BenchSettings, progress: @escaping (String) -> Void = { _ in }) {
        self.subjects = subjects
        self.settings = settings
        self.progress = progress
    }

    public func run() -> BenchResults {
        BLAS.threads = settings.threads
        let start = Clock.now()
        let peakPerPoint = ProcessMemory.resetPeak()
        var results = BenchResults(
            machine: .current(threads: settings.threads), settings: settings, models: subjects.map(\.name),
            constantState: [:], startedAt: ISO8601DateFormatter().string(from: Date()), wallSeconds: 0,
            interrupted: false, peakIsPerPoint: peakPerPoint, points: [], breakdowns: [])
        results.loadAverageStart = loadAverage()
        if settings.measureBandwidth == true {
            // The roofline every decode figure is read against: a streaming read of 512 MiB, more than any last-level cache.
            results.machine.readBandwidth = KernelInfo.readBandwidth(megabytes: 512, repetitions: 5)
            progress(String(format: "read bandwidth: %.1f GB/s (%@ kernels, %d threads); blas: %@", (results.machine.readBandwidth ?? 0) / 1e9,
                            KernelInfo.isa, settings.threads, results.machine.blasCore ?? "?"))
        }
        let total = settings.contexts.count * subjects.count
        var done = 0
        sweep: for n in settings.contexts {
            for subject in subjects {
                if BenchStop.isRequested { results.interrupted = true; break sweep }
                done += 1
                let label = "[\(done)/\(total)] \(subject.name) n=\(n)"
                let (point, breakdowns, kind) = measure(subject, context: n, label: label)
                results.points.append(point)
                results.breakdowns += breakdowns
                if let kind {
                    results.constantState[subject.name] = kind == "ssm"
                    results.stateKind[subject.name] = kind
                }
                progress(summaryLine(label, point, elapsed: Clock.now() - start))
            }
        }
        if let first = settings.contexts.first, settings.contexts.count > 1, !results.interrupted {
            var controls: [BenchPoint] = []
            for subject in subjects where !BenchStop.isRequested {
                let label = "[control] \(subject.name) n=\(first)"
                let (point, _, _) = measure(subject, context: first, label: label, breakdown: false)
                controls.append(point)
                progress(summaryLine(label, point, elapsed: Clock.now() - start))
            }
            results.controls = controls
        }
        if BenchStop.isRequested { results.interrupted = true }
        results.wallSeconds = Clock.now() - start
        results.loadAverageEnd = loadAverage()
        return results
    }

    private func summaryLine(_ label: String, _ p: BenchPoint, elapsed: Double) -> String {
        guard let pre = p.prefill, let dec = p.decode else {
            return "\(label): skipped (\(p.skipped ?? "no measurement"))"
        }
        return String(format: "%@: prefill %.3f s (%.0f tok/s), decode %.2f ms/token (%.1f tok/s), state %@, peak RSS %@, %d reps  [%.0f s]",
                      label, pre.median, p.prefillTokensPerSecond ?? 0, dec.median * 1e3, p.decodeTokensPerSecond ?? 0,
                      formatBytes(p.stateBytes), p.peakResidentBytes.map(formatBytes) ?? "?", p.repetitions, elapsed)
    }

    /// Seeded random token ids in [0, vocab).
    static func randomIds(count: Int, vocab: Int, seed: UInt64) -> [Int] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { _ in Int(rng.next() % UInt64(vocab)) }
    }

    /// The prompt of context n: the same ids wherever n is prefilled (its point, the paired depths).
    static func contextIds(_ n: Int, vocab: Int, seed: UInt64) -> [Int] {
        randomIds(count: n, vocab: vocab, seed: seed &+ UInt64(n))
    }

    private func measure(_ subject: BenchSubject, context n: Int, label: String, breakdown: Bool = true)
        -> (BenchPoint, [BenchBreakdown], String?) {
        let steps = settings.decodeTokens
        var point = BenchPoint(model: subject.name, architecture: "?", parameters: 0, context: n, decodeTokens: steps,
                               repetitions: 0, prefill: nil, prefillSamples: [], decode: nil, decodeRepetitionMedians: [],
                               stateBytes: 0, expectedStateBytes: 0, weightBytes: 0, peakResidentBytes: nil, skipped: nil,
                               prefillTokensPerSecond: nil, decodeTokensPerSecond: nil)
        var breakdowns: [BenchBreakdown] = []
        var kind: String? = nil
        ProcessMemory.resetPeak()
        do {
            progress("\(label): building")
            // The deepest point also times decode against the smallest context, step for step
            // (BenchPairedDepths): its sequence goes on for those steps, so it needs room for them.
            var paired = 0
            if let first = settings.contexts.first, let last = settings.contexts.last, first < last, n == last {
                paired = settings.pairedSteps ?? 0
            }
            let model: any LanguageModel
            if paired > 0, let m = try? subject.make(n + steps + paired),
               n + steps + paired <= min(m.contextCapacity, m.info.maxContext) {
                model = m
            } else {
                paired = 0                                            // beyond the model's context: the point alone
                model = try subject.make(n + steps)
            }
            point.architecture = model.info.architecture
            point.parameters = model.info.parameterCount
            point.weightBytes = model.info.parameterCount * 4
            let perToken = model.stateBytes(forTokens: 2) - model.stateBytes(forTokens: 1), fixed = model.stateBytes(forTokens: 0)
            kind = perToken == 0 ? "ssm" : fixed == 0 ? "attention" : "hybrid"
            guard n + steps <= min(model.contextCapacity, model.info.maxContext) else {
                point.skipped = "n + decode tokens exceeds the model's context (\(min(model.contextCapacity, model.info.maxContext)))"
                return (point, [], kind)
            }
            let vocab = model.info.vocabSize
            // An unbounded (recurrent) context takes any n: the token ids must still fit in memory.
            try Sizes.checkFits(try Sizes.product([n, steps > 0 ? 2 : 1, MemoryLayout<Int>.stride], "token ids"),
                                "\(n) random token ids for context \(n)")
            let ids = Self.contextIds(n, vocab: vocab, seed: settings.seed)
            let next = Self.randomIds(count: steps, vocab: vocab, seed: settings.seed &+ 0x5eed &+ UInt64(n))

            // Warm-up: touches the weights, starts the BLAS threads; not recorded.
            try model.prefill(Array(ids.prefix(max(1, min(n, settings.warmupTokens)))))
            for t in next.prefix(4) { try model.decode(t) }
            model.reset()

            if breakdown && settings.breakdownContexts.contains(n) {
                progress("\(label): component breakdown")
                Profiler.reset()
                Profiler.enabled = true
                defer { Profiler.enabled = false }
                var t0 = Clock.now()
                try model.prefill(ids)
                let prefillWall = Clock.now() - t0
                // A model without timers (none entered) gives no breakdown.
                if !Profiler.seconds.isEmpty { breakdowns.append(Self.breakdown(subject.name, n, "prefill", wall: prefillWall, divisor: 1)) }
                Profiler.reset()
                t0 = Clock.now()
                for t in next { try model.decode(t) }
                let decodeWall = (Clock.now() - t0) / Double(max(steps, 1))
                if steps > 0 && !Profiler.seconds.isEmpty { breakdowns.append(Self.breakdown(subject.name, n, "decode", wall: decodeWall, divisor: Double(steps))) }
                Profiler.enabled = false
                Profiler.reset()
                model.reset()
            }

            var allSteps: [Double] = []
            var stepTimes = [Double](repeating: 0, count: steps)
            let pointStart = Clock.now()
            for r in 0..<settings.repetitions {
                if BenchStop.isRequested { break }
                if r > 0, let limit = settings.maxSecondsPerPoint {
                    let perRep = (Clock.now() - pointStart) / Double(r)
                    if Clock.now() - pointStart + perRep > limit { break }
                }
                progress("\(label): repetition \(r + 1)/\(settings.repetitions)")
                model.reset()
                let t0 = Clock.now()
                try model.prefill(ids)
                point.prefillSamples.append(Clock.now() - t0)
                point.stateBytes = model.stateBytes
                point.expectedStateBytes = model.stateBytes(forTokens: n)
                for (i, t) in next.enumerated() {
                    let s0 = Clock.now()
                    try model.decode(t)
                    stepTimes[i] = Clock.now() - s0
                }
                allSteps += stepTimes
                if let m = BenchStatistics.median(stepTimes) { point.decodeRepetitionMedians.append(m) }
                point.repetitions += 1
            }
            point.prefill = BenchSummary(point.prefillSamples)
            if let m = BenchStatistics.median(allSteps), let lo = point.decodeRepetitionMedians.min(),
               let hi = point.decodeRepetitionMedians.max() {
                point.decode = BenchSummary(median: m, min: lo, max: hi, count: allSteps.count)
            }
            point.prefillTokensPerSecond = point.prefill.map { Double(n) / $0.median }
            point.decodeTokensPerSecond = point.decode.map { 1 / $0.median }
            if point.repetitions == 0 { point.skipped = "interrupted" }
            point.peakResidentBytes = ProcessMemory.peakBytes          // the point's own, before a second sequence
            if paired > 0 && point.repetitions > 0 && steps > 0 && !BenchStop.isRequested, let first = settings.contexts.first {
                progress("\(label): decode against depth \(first), step for step")
                point.paired = try Self.pairedDepths(model, deepContext: n, shallowContext: first, steps: paired,
                                                     vocab: vocab, seed: settings.seed)
            }
        } catch {
            point.skipped = "\(error)"
        }
        if point.peakResidentBytes == nil { point.peakResidentBytes = ProcessMemory.peakBytes }
        point.loadAverage = loadAverage()
        return (point, breakdowns, kind)
    }

    /// BenchPairedDepths: `model`'s current sequence (at depth deepContext + the point's decode steps)
    /// and a new one prefilled with the smallest context's ids (the same ids as its point) decode
    /// `steps` tokens each, in turn, the order swapped at every pair. Allocates nothing while timing.
    static func pairedDepths(_ model: any LanguageModel, deepContext: Int, shallowContext: Int, steps: Int,
                             vocab: Int, seed: UInt64) throws -> BenchPairedDepths? {
        let deep = model.sequence
        let shallow = model.makeSequence()
        model.sequence = shallow
        try model.prefill(contextIds(shallowContext, vocab: vocab, seed: seed))
        let tokens = randomIds(count: steps, vocab: vocab, seed: seed &+ 0x9a1d &+ UInt64(deepContext))
        var deepTimes = [Double](repeating: 0, count: steps), shallowTimes = [Double](repeating: 0, count: steps)
        for i in 0..<steps {
            for turn in 0..<2 {
                let isDeep = (turn == 0) == (i % 2 == 0)
                model.sequence = isDeep ? deep : shallow
                let t0 = Clock.now()
                try model.decode(tokens[i])
                let t = Clock.now() - t0
                if isDeep { deepTimes[i] = t } else { shallowTimes[i] = t }
            }
        }
        model.sequence = deep
        guard let d = BenchStatistics.median(deepTimes), let s = BenchStatistics.median(shallowTimes), s > 0,
              let ratios = BenchSummary(zip(deepTimes, shallowTimes).map { $0 / max($1, 1e-12) }) else { return nil }
        return BenchPairedDepths(deepContext: deepContext, shallowContext: shallowContext, steps: steps,
                                 deepSeconds: d, shallowSeconds: s, pairRatio: ratios)
    }

    static func breakdown(_ model: String, _ n: Int, _ phase: String, wall: Double, divisor: Double) -> BenchBreakdown {
        BenchBreakdown(model: model, context: n, phase: phase, wallSeconds: wall,
                       components: Profiler.seconds.map { .init(name: $0.0.description, seconds: $0.1 / divisor) })
    }
}
