import Foundation
import Orochi

/// The scaling analysis of a sweep: fitted exponents, crossovers, decode flatness, memory growth.
public struct BenchAnalysis: Sendable, Codable {
    public struct Fit: Sendable, Codable {
        public var model: String
        /// "prefill" (seconds for n tokens), "decode" (seconds per token at depth n), "state" (bytes).
        public var curve: String
        /// "all" measured contexts, or "upper" (n ≥ the largest measured context / 8).
        public var range: String
        public var fit: PowerLawFit
    }

    public struct CrossoverRow: Sendable, Codable {
        /// The challenger: an SSM or a hybrid.
        public var ssm: String
        public var attention: String
        public var phase: String
        public var description: String
        /// The crossing context when measured or extrapolated, nil otherwise.
        public var context: Double?
    }

    /// Per-token decode time at the largest depth relative to the smallest.
    public struct Flatness: Sendable, Codable {
        public var model: String
        public var fromContext: Int
        public var toContext: Int
        public var fromSeconds: Double
        public var toSeconds: Double
        /// The smallest context's decode measured again after the sweep (BenchResults.controls).
        public var controlSeconds: Double? = nil
        public var ratio: Double { toSeconds / fromSeconds }
        /// Deepest against the control: less affected by the machine's drift than `ratio`.
        public var controlRatio: Double? { controlSeconds.map { toSeconds / $0 } }
        /// The deepest and smallest contexts decoded step for step in turn (BenchPairedDepths): the
        /// comparison the machine's drift does not reach.
        public var paired: BenchPairedDepths? = nil
    }

    /// KV-cache or state bytes per token of context (0 for a constant state) and the fixed part.
    public struct Memory: Sendable, Codable {
        public var model: String
        public var constantState: Bool
        /// "attention", "ssm" or "hybrid" (see BenchResults.stateKind).
        public var kind: String
        public var bytesPerToken: Double
        public var fixedBytes: Int
        /// Every measured point reported exactly the bytes its model computes for n tokens.
        public var accountingMatches: Bool
    }

    public var fits: [Fit] = []
    public var crossovers: [CrossoverRow] = []
    public var flatness: [Flatness] = []
    public var memory: [Memory] = []

    public init(_ results: BenchResults) {
        for model in results.models {
            let pts = results.points(of: model)
            guard !pts.isEmpty else { continue }
            let x = pts.map { Double($0.context) }
            let upper = (x.max() ?? 0) / 8
            let curves: [(String, [Double])] = [
                ("prefill", pts.map { $0.prefill?.median ?? 0 }),
                ("decode", pts.map { $0.decode?.median ?? 0 }),
            ]
            for (curve, y) in curves {
                if let f = PowerLawFit.fit(x: x, y: y) { fits.append(Fit(model: model, curve: curve, range: "all", fit: f)) }
                if let f = PowerLawFit.fit(x: x, y: y, range: upper...Double.infinity), f.points >= 3, f.points < pts.count {
                    fits.append(Fit(model: model, curve: curve, range: "upper", fit: f))
                }
            }
            if let a = pts.first, let b = pts.last, a.context < b.context, let da = a.decode, let db = b.decode {
                let control = results.controls?.first { $0.model == model && $0.skipped == nil }?.decode?.median
                flatness.append(Flatness(model: model, fromContext: a.context, toContext: b.context,
                                         fromSeconds: da.median, toSeconds: db.median, controlSeconds: control,
                                         paired: b.paired))
            }
            let constant = results.constantState[model] ?? false
            let perToken: Double
            if constant {
                perToken = 0
            } else if let a = pts.first, let b = pts.last, b.context > a.context {
                perToken = Double(b.stateBytes - a.stateBytes) / Double(b.context - a.context)
            } else {
                perToken = pts.first.map { Double($0.stateBytes) / Double($0.context) } ?? 0
            }
            // In Double: a replayed file's sizes are bounded (BenchResults.validate) but their product need not fit an Int.
            let fixed = pts.first.map { Int(Swift.max(-1e15, Swift.min(1e15, (Double($0.stateBytes) - perToken * Double($0.context)).rounded()))) } ?? 0
            let kind = results.stateKind[model] ?? (constant ? "ssm" : "attention")
            memory.append(Memory(model: model, constantState: constant, kind: kind, bytesPerToken: perToken, fixedBytes: fixed,
                                 accountingMatches: pts.allSatisfy { $0.stateBytes == $0.expectedStateBytes }))
        }
        // Every (SSM or hybrid, attention) pair: where the challenger becomes cheaper.
        func kind(_ m: String) -> String { results.stateKind[m] ?? (results.constantState[m] == true ? "ssm" : "attention") }
        let ssms = results.models.filter { kind($0) != "attention" }
        let attns = results.models.filter { kind($0) == "attention" }
        // Pairs of comparable size only (parameters within 4×): a 6M SSM against a 130M transformer
        // says nothing about the architectures.
        let params = Dictionary(results.points.map { ($0.model, max($0.parameters, 1)) }, uniquingKeysWith: max)
        for s in ssms {
            for a in attns {
                let ps = Double(params[s] ?? 1), pa = Double(params[a] ?? 1)
                guard max(ps, pa) / min(ps, pa) <= 4 else { continue }
                let sp = results.points(of: s), ap = results.points(of: a)
                let common = Set(sp.map(\.context)).intersection(ap.map(\.context)).sorted()
                let sx = common.compactMap { n in sp.first { $0.context == n } }
                let ax = common.compactMap { n in ap.first { $0.context == n } }
                let x = common.map(Double.init)
                for phase in ["prefill", "decode"] {
                    let pick: (BenchPoint) -> Double = { phase == "prefill" ? $0.prefill?.median ?? 0 : $0.decode?.median ?? 0 }
                    let allFits = fits
                    let fitOf: (String) -> PowerLawFit? = { m in
                        (allFits.first { $0.model == m && $0.curve == phase && $0.range == "upper" }
                            ?? allFits.first { $0.model == m && $0.curve == phase })?.fit
                    }
                    let c = Crossover.find(x: x, challenger: sx.map(pick), incumbent: ax.map(pick),
                                           challengerFit: fitOf(s), incumbentFit: fitOf(a))
                    var at: Double? = nil
                    switch c {
                    case .fromStart(let v), .measured(let v): at = v
                    case .beyondRange(_, let e): at = e
                    case .unknown: break
                    }
                    crossovers.append(CrossoverRow(ssm: s, attention: a, phase: phase, description: c.description, context: at))
                }
            }
        }
    }

    public func fit(_ model: String, _ curve: String, _ range: String) -> PowerLawFit? {
        fits.first { $0.model == model && $0.curve == curve && $0.range == range }?.fit
    }
}

/// Output formats of `orochi bench`.
public enum BenchFormat: String, CaseIterable, Sendable {
    case table, csv, json
}

public enum BenchReport {
    public static let csvHeader = [
        "model", "architecture", "parameters", "threads", "n_ctx", "n_gen", "reps",
        "prefill_s_median", "prefill_s_min", "prefill_s_max", "prefill_tok_s",
        "decode_ms_median", "decode_ms_min", "decode_ms_max", "decode_tok_s",
        "state_bytes", "expected_state_bytes", "weight_bytes", "peak_rss_bytes", "load_avg", "skipped",
    ]

    public static func render(_ results: BenchResults, format: BenchFormat) throws -> String {
        switch format {
        case .table: return table(results)
        case .csv: return csv(results)
        case .json: return try json(results)
        }
    }

    static func number(_ v: Double?, _ digits: Int = 6) -> String {
        guard let v, v.isFinite else { return "" }
        return String(format: "%.\(digits)g", v)
    }

    static func csvField(_ s: String) -> String {
        s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }

    /// One row per (model, context), in the order measured; seconds for prefill, milliseconds for decode.
    public static func csv(_ results: BenchResults) -> String {
        var lines = [csvHeader.joined(separator: ",")]
        for p in results.points {
            let fields: [String] = [
                p.model, p.architecture, "\(p.parameters)", "\(results.settings.threads)", "\(p.context)",
                "\(p.decodeTokens)", "\(p.repetitions)",
                number(p.prefill?.median), number(p.prefill?.min), number(p.prefill?.max), number(p.prefillTokensPerSecond),
                number(p.decode.map { $0.median * 1e3 }), number(p.decode.map { $0.min * 1e3 }),
                number(p.decode.map { $0.max * 1e3 }), number(p.decodeTokensPerSecond),
                "\(p.stateBytes)", "\(p.expectedStateBytes)", "\(p.weightBytes)",
                p.peakResidentBytes.map(String.init) ?? "", p.loadAverage.map { String(format: "%.2f", $0) } ?? "",
                p.skipped ?? "",
            ]
            lines.append(fields.map(csvField).joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The results and their analysis as one JSON document.
    public static func json(_ results: BenchResults) throws -> String {
        struct Document: Encodable {
            let schema = "orochi-bench/1"
            let results: BenchResults
            let analysis: BenchAnalysis
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(Document(results: results, analysis: BenchAnalysis(results)))
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    /// The results of a document written by `json(_:)` (the analysis is recomputed), range-checked
    /// (`BenchResults.validate`): a replayed file is input like any other, and its numbers feed
    /// integer arithmetic and gnuplot.
    public static func decodeJSON(_ data: Data) throws -> BenchResults {
        struct Document: Decodable { let results: BenchResults }
        let results = try JSONDecoder().decode(Document.self, from: data).results
        try results.validate()
        return results
    }

    /// A human-readable table plus the analysis.
    public static func table(_ results: BenchResults) -> String {
        var out = "\(results.machine.label); decode over \(results.settings.decodeTokens) tokens; medians [min–max] over repetitions\n"
        out += "blas \(results.machine.blasCore ?? "?")\(results.machine.blasIdle.map { " (\($0))" } ?? ""); orochi kernels \(results.machine.kernels ?? "?"); read bandwidth (the decode roofline) \(results.machine.readBandwidth.map { String(format: "%.1f GB/s", $0 / 1e9) } ?? "not measured")\n\n"
        out += markdownTable(results) + "\n" + markdownAnalysis(results)
        return out
    }

    // MARK: Markdown pieces (also used to fill docs/scaling.md)

    static func ms(_ s: Double) -> String { String(format: s * 1e3 >= 100 ? "%.0f" : s * 1e3 >= 10 ? "%.1f" : "%.2f", s * 1e3) }
    static func secs(_ s: Double) -> String { s >= 10 ? String(format: "%.1f", s) : s >= 1 ? String(format: "%.2f", s) : String(format: "%.3f", s) }
    /// A measured count for the text, rounded: digits grouped as in `grouped(Int)` where an Int holds
    /// it, else in %g (a count from a replayed file, or a far extrapolation, must print, not trap).
    static func grouped(_ v: Double) -> String {
        guard v.isFinite, v.magnitude < 1e15 else { return String(format: "%g", v) }
        return grouped(Int(v.rounded()))
    }
    static func grouped(_ n: Int) -> String {
        let s = String(n)
        var out = ""
        for (i, c) in s.reversed().enumerated() { if i > 0 && i % 3 == 0 { out.append(",") }; out.append(c) }
        return String(out.reversed())
    }

    public static func markdownTable(_ results: BenchResults) -> String {
        var out = "| model | n | reps | prefill s | prefill tok/s | decode ms/token at depth n | decode tok/s | KV cache / state | peak RSS |\n"
        out += "|---|---:|---:|---|---:|---|---:|---:|---:|\n"
        for model in results.models {
            for p in results.points where p.model == model {
                if let s = p.skipped {
                    out += "| \(p.model) | \(grouped(p.context)) | – | skipped: \(s) | | | | | |\n"
                    continue
                }
                guard let pre = p.prefill, let dec = p.decode else { continue }
                out += "| \(p.model) | \(grouped(p.context)) | \(p.repetitions) | \(secs(pre.median)) [\(secs(pre.min))–\(secs(pre.max))]"
                out += " | \(String(format: "%.0f", p.prefillTokensPerSecond ?? 0))"
                out += " | \(ms(dec.median)) [\(ms(dec.min))–\(ms(dec.max))] | \(String(format: "%.1f", p.decodeTokensPerSecond ?? 0))"
                out += " | \(formatBytes(p.stateBytes)) | \(p.peakResidentBytes.map(formatBytes) ?? "?") |\n"
            }
        }
        return out
    }

    public static func markdownFits(_ analysis: BenchAnalysis) -> String {
        var out = "| model | curve | range of n | exponent k | R² |\n|---|---|---|---:|---:|\n"
        for f in analysis.fits {
            let what = f.curve == "prefill" ? "prefill time" : "decode time per token"
            out += "| \(f.model) | \(what) | \(grouped(f.fit.fromX))–\(grouped(f.fit.toX)) (\(f.fit.points) points) | "
            out += String(format: "%.2f | %.3f |\n", f.fit.exponent, f.fit.rSquared)
        }
        return out
    }

    public static func markdownCrossovers(_ analysis: BenchAnalysis) -> String {
        guard !analysis.crossovers.isEmpty else { return "(no SSM and attention model measured together)\n" }
        var out = "| SSM or hybrid | attention | phase | the SSM or hybrid becomes cheaper at |\n|---|---|---|---|\n"
        for c in analysis.crossovers { out += "| \(c.ssm) | \(c.attention) | \(c.phase) | \(c.description) |\n" }
        return out
    }

    public static func markdownFlatness(_ analysis: BenchAnalysis) -> String {
        let controls = analysis.flatness.contains { $0.controlSeconds != nil }
        let paired = analysis.flatness.contains { $0.paired != nil }
        var out = "| model | decode ms/token at n = first | at n = last | ratio last / first |"
        if controls { out += " n = first again, after the sweep | ratio last / that |" }
        if paired { out += " step for step in turn: last / first (steps) | per pair: median [min–max] |" }
        out += "\n|---|---:|---:|---:|" + (controls ? "---:|---:|" : "") + (paired ? "---:|---:|" : "") + "\n"
        for f in analysis.flatness {
            out += "| \(f.model) | \(ms(f.fromSeconds)) (n = \(grouped(f.fromContext))) | \(ms(f.toSeconds)) (n = \(grouped(f.toContext))) | "
            out += String(format: "%.2f× |", f.ratio)
            if controls {
                out += f.controlSeconds.map { " \(ms($0)) |" } ?? " – |"
                out += f.controlRatio.map { String(format: " %.2f× |", $0) } ?? " – |"
            }
            if paired {
                if let p = f.paired {
                    out += " \(ms(p.deepSeconds)) / \(ms(p.shallowSeconds)) = " + String(format: "%.2f×", p.ratio) + " (\(p.steps)) |"
                    out += String(format: " %.2f× [%.2f–%.2f] |", p.pairRatio.median, p.pairRatio.min, p.pairRatio.max)
                } else {
                    out += " – | – |"
                }
            }
            out += "\n"
        }
        return out
    }

    public static func markdownMemory(_ analysis: BenchAnalysis) -> String {
        var out = "| model | state | bytes per token of context | fixed bytes | reported = computed at every point |\n|---|---|---:|---:|---|\n"
        for m in analysis.memory {
            let state = m.kind == "ssm" ? "constant (SSM state)" : m.kind == "hybrid" ? "fixed SSM states + KV cache growing with n (hybrid)" : "KV cache, grows with n"
            out += "| \(m.model) | \(state) | "
            out += "\(grouped(m.bytesPerToken)) | \(grouped(m.fixedBytes)) | \(m.accountingMatches ? "yes" : "NO") |\n"
        }
        return out
    }

    public static func markdownBreakdown(_ results: BenchResults) -> String {
        guard !results.breakdowns.isEmpty else { return "(no component breakdown was taken)\n" }
        let names = ProfileComponent.allCases.map(\.description) + ["other (untimed glue)"]
        var out = "| model | pass | wall | " + names.joined(separator: " | ") + " |\n"
        out += "|---|---|---:|" + names.map { _ in "---:" }.joined(separator: "|") + "|\n"
        for b in results.breakdowns {
            let pass = b.phase == "prefill" ? "prefill \(grouped(b.context)) tokens" : "one decode step at depth \(grouped(b.context))"
            out += "| \(b.model) | \(pass) | \(b.phase == "prefill" ? secs(b.wallSeconds) + " s" : ms(b.wallSeconds) + " ms") | "
            let cells = names.map { name -> String in
                let s = name.hasPrefix("other") ? b.otherSeconds : b.components.first { $0.name == name }?.seconds ?? 0
                return s > 0 ? String(format: "%.0f %%", 100 * s / b.wallSeconds) : "–"
            }
            out += cells.joined(separator: " | ") + " |\n"
        }
        return out
    }

    public static func markdownAnalysis(_ results: BenchResults) -> String {
        let a = BenchAnalysis(results)
        return "Fitted exponents (time ∝ nᵏ, least squares on log-log axes):\n\n" + markdownFits(a)
            + "\nCrossovers:\n\n" + markdownCrossovers(a)
            + "\nDecode time per token, deepest vs shallowest context:\n\n" + markdownFlatness(a)
            + "\nMemory accounting:\n\n" + markdownMemory(a)
            + "\nComponent breakdown (share of the pass's wall time):\n\n" + markdownBreakdown(results)
    }

    /// Fills `{{name}}` placeholders of a template (docs/scaling.template.md) with the measured pieces.
    public static func fillTemplate(_ template: String, results: BenchResults, command: String, plots: [String: String]) -> String {
        let a = BenchAnalysis(results)
        var values: [String: String] = [
            "machine": "\(results.machine.cpu), \(results.machine.logicalCPUs) logical CPUs, \(formatBytes(results.machine.memoryBytes)) RAM, \(results.machine.os); OpenBLAS with \(results.machine.threads) thread\(results.machine.threads == 1 ? "" : "s")\(results.machine.blasCore.map { ", core \($0)" } ?? results.machine.openblasCoreType.map { ", OPENBLAS_CORETYPE=\($0)" } ?? ""); orochi kernels \(results.machine.kernels ?? "?"); read bandwidth \(results.machine.readBandwidth.map { String(format: "%.1f GB/s", $0 / 1e9) } ?? "not measured")",
            "date": results.startedAt,
            "command": command,
            "wall": String(format: "%.0f s", results.wallSeconds),
            "load": results.loadAverageStart.map { a in
                String(format: "load average %.1f at the start and %@ at the end, on %d logical CPUs", a,
                       results.loadAverageEnd.map { String(format: "%.1f", $0) } ?? "?", results.machine.logicalCPUs)
            } ?? "the load average was not recorded by this run",
            "models": results.models.joined(separator: ", "),
            "contexts": results.settings.contexts.map(grouped).joined(separator: ", "),
            "decode_tokens": "\(results.settings.decodeTokens)",
            "repetitions": "\(results.settings.repetitions)",
            "max_seconds_per_point": results.settings.maxSecondsPerPoint.map { String(format: "%.0f", $0) } ?? "no limit",
            "interrupted": results.interrupted ? "\n> **This run was interrupted: the tables are partial.**\n" : "",
            "table": markdownTable(results),
            "fits": markdownFits(a),
            "crossovers": markdownCrossovers(a),
            "flatness": markdownFlatness(a),
            "memory": markdownMemory(a),
            "breakdown": markdownBreakdown(results),
        ]
        for (k, v) in plots { values["plot_" + k] = v }
        // Single numbers for the prose: {{fit:MODEL:CURVE:RANGE}}, {{flat:MODEL}}, {{cross:SSM:ATTN:PHASE}},
        // {{prefill:MODEL:N}}, {{prefilltps:MODEL:N}}, {{decode:MODEL:N}}, {{state:MODEL:N}}, {{rss:MODEL:N}},
        // {{control:MODEL}} (the first context's decode again, after the sweep), {{flatcontrol:MODEL}} (deepest / control),
        // {{flatpaired:MODEL}} and {{flatpairedpct:MODEL}} (deepest / first, decoded step for step in turn).
        var out = template
        for (k, v) in values { out = out.replacingOccurrences(of: "{{\(k)}}", with: v) }
        for f in a.fits {
            out = out.replacingOccurrences(of: "{{fit:\(f.model):\(f.curve):\(f.range)}}", with: String(format: "%.2f", f.fit.exponent))
        }
        for f in a.flatness {
            out = out.replacingOccurrences(of: "{{flat:\(f.model)}}", with: String(format: "%.2f", f.ratio))
            out = out.replacingOccurrences(of: "{{flatpct:\(f.model)}}", with: String(format: "%+.1f %%", 100 * (f.ratio - 1)))
            out = out.replacingOccurrences(of: "{{flatcontrol:\(f.model)}}", with: f.controlRatio.map { String(format: "%.2f", $0) } ?? "–")
            out = out.replacingOccurrences(of: "{{control:\(f.model)}}", with: f.controlSeconds.map { ms($0) + " ms" } ?? "–")
            out = out.replacingOccurrences(of: "{{flatpaired:\(f.model)}}", with: f.paired.map { String(format: "%.2f", $0.ratio) } ?? "–")
            out = out.replacingOccurrences(of: "{{flatpairedpct:\(f.model)}}",
                                           with: f.paired.map { String(format: "%+.1f %%", 100 * ($0.ratio - 1)) } ?? "–")
        }
        for c in a.crossovers {
            out = out.replacingOccurrences(of: "{{cross:\(c.ssm):\(c.attention):\(c.phase)}}", with: c.description)
        }
        for p in results.points where p.skipped == nil {
            if let pre = p.prefill { out = out.replacingOccurrences(of: "{{prefill:\(p.model):\(p.context)}}", with: secs(pre.median) + " s") }
            if let tps = p.prefillTokensPerSecond {
                out = out.replacingOccurrences(of: "{{prefilltps:\(p.model):\(p.context)}}", with: grouped(tps))
            }
            if let dec = p.decode { out = out.replacingOccurrences(of: "{{decode:\(p.model):\(p.context)}}", with: ms(dec.median) + " ms") }
            out = out.replacingOccurrences(of: "{{state:\(p.model):\(p.context)}}", with: formatBytes(p.stateBytes))
            if let rss = p.peakResidentBytes { out = out.replacingOccurrences(of: "{{rss:\(p.model):\(p.context)}}", with: formatBytes(rss)) }
        }
        // {{share:MODEL:PHASE:N:COMPONENT}}: a component's share of a profiled pass, in percent.
        for b in results.breakdowns {
            for c in b.components {
                out = out.replacingOccurrences(of: "{{share:\(b.model):\(b.phase):\(b.context):\(c.name)}}",
                                               with: String(format: "%.0f %%", 100 * c.seconds / max(b.wallSeconds, 1e-12)))
            }
        }
        // Anything left unfilled (a model that was not measured) reads as such rather than as a brace.
        while let r = out.range(of: "\\{\\{[^}]*\\}\\}", options: .regularExpression) {
            out.replaceSubrange(r, with: "(not measured)")
        }
        return out
    }
}
