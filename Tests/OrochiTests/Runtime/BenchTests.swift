import Foundation
import Testing
@testable import Orochi
@testable import OrochiBench

/// The parts of the benchmark that can be checked without timing: statistics and the log-log fit
/// on synthetic data, crossovers, the CSV/JSON schema, memory accounting, the template, the stop.
struct BenchStatisticsTests {
    @Test func medianOddEvenEmpty() {
        #expect(BenchStatistics.median([3, 1, 2]) == 2)
        #expect(BenchStatistics.median([4, 1, 3, 2]) == 2.5)
        #expect(BenchStatistics.median([]) == nil)
        let s = BenchSummary([5, 1, 9, 3])!
        #expect(s.median == 4 && s.min == 1 && s.max == 9 && s.count == 4)
    }

    @Test(arguments: [0.0, 1.0, 2.0, 0.5])
    func exactPowerLawIsRecovered(_ k: Double) throws {
        let x = [128.0, 256, 512, 1024, 2048, 4096, 8192, 16384]
        let y = x.map { 3e-6 * pow($0, k) }
        let f = try #require(PowerLawFit.fit(x: x, y: y))
        #expect(abs(f.exponent - k) < 1e-9)
        #expect(abs(f.coefficient - 3e-6) / 3e-6 < 1e-9)
        #expect(abs(f.rSquared - 1) < 1e-9 || k == 0)
        #expect(f.points == 8 && f.fromX == 128 && f.toX == 16384)
        #expect(abs(f.predict(1000) - 3e-6 * pow(1000, k)) / (3e-6 * pow(1000, k)) < 1e-9)
    }

    /// Linear work plus quadratic work: the slope rises from ≈1 at short contexts towards 2, and
    /// the range restriction selects the points.
    @Test func affinePlusQuadraticSlopeRisesWithRange() throws {
        let x = (7...14).map { pow(2.0, Double($0)) }          // 128 … 16384
        let y = x.map { 1e-3 * $0 + 1e-7 * $0 * $0 }          // equal at n = 10,000
        let all = try #require(PowerLawFit.fit(x: x, y: y))
        let upper = try #require(PowerLawFit.fit(x: x, y: y, range: 2048...Double.infinity))
        let lower = try #require(PowerLawFit.fit(x: x, y: y, range: 0...512))
        #expect(upper.points == 4 && lower.points == 3)
        #expect(lower.exponent > 1 && lower.exponent < 1.1)
        #expect(upper.exponent > all.exponent && upper.exponent < 2)
        #expect(all.exponent > lower.exponent)
    }

    @Test func multiplicativeNoiseAveragesOut() throws {
        var rng = SplitMix64(seed: 7)
        let x = (0..<64).map { 100.0 * pow(1.1, Double($0)) }
        let y = x.map { 2 * pow($0, 1.5) * (1 + 0.05 * (Double(rng.nextUnitFloat()) - 0.5)) }
        let f = try #require(PowerLawFit.fit(x: x, y: y))
        #expect(abs(f.exponent - 1.5) < 0.01)
        #expect(f.rSquared > 0.999)
    }

    @Test func degenerateInputsGiveNoFit() {
        #expect(PowerLawFit.fit(x: [100], y: [1]) == nil)
        #expect(PowerLawFit.fit(x: [100, 100], y: [1, 2]) == nil)
        #expect(PowerLawFit.fit(x: [0, -1, 5], y: [1, 2, 3]) == nil)   // one usable point
    }

    @Test func crossoverInterpolatesOnLogAxes() {
        let x = [128.0, 256, 512, 1024]
        // ratio challenger/incumbent: 4, 2, 1/2, 1/4 → log ratio crosses zero halfway between 256 and 512.
        let c = Crossover.find(x: x, challenger: [4, 4, 4, 4], incumbent: [1, 2, 8, 16])
        guard case .measured(let at) = c else { Issue.record("expected a measured crossover, got \(c)"); return }
        #expect(abs(at - sqrt(256.0 * 512)) < 1e-6)
        #expect(Crossover.find(x: x, challenger: [1, 1, 1, 1], incumbent: [2, 2, 2, 2]) == .fromStart(x: 128))
    }

    @Test func crossoverBeyondRangeExtrapolatesConvergingFits() {
        let x = [128.0, 256, 512, 1024]
        let ssm = x.map { 0.01 * $0 }                   // k = 1
        let attn = x.map { 1e-6 * $0 * $0 }             // k = 2, cheaper until n = 10,000
        let c = Crossover.find(x: x, challenger: ssm, incumbent: attn,
                               challengerFit: PowerLawFit.fit(x: x, y: ssm), incumbentFit: PowerLawFit.fit(x: x, y: attn))
        guard case .beyondRange(let last, let e?) = c else { Issue.record("expected an extrapolation, got \(c)"); return }
        #expect(last == 1024)
        #expect(abs(e - 10_000) < 1e-3)
        // Parallel fits never meet.
        let same = Crossover.find(x: x, challenger: x.map { 2 * $0 }, incumbent: x,
                                  challengerFit: PowerLawFit.fit(x: x, y: x.map { 2 * $0 }), incumbentFit: PowerLawFit.fit(x: x, y: x))
        #expect(same == .beyondRange(lastX: 1024, extrapolated: nil))
    }

    /// Nearly parallel fits (a noisy run of tiny models) meet absurdly far out: 10^20 tokens here.
    /// That is no crossing to report, and printing it once trapped converting to Int.
    @Test func crossoverFarBeyondAnyContextIsNotReported() {
        let x = [128.0, 256, 512, 1024]
        let ssm = PowerLawFit(exponent: 1.0, coefficient: 100, rSquared: 1, fromX: 128, toX: 1024, points: 4)
        let attn = PowerLawFit(exponent: 1.1, coefficient: 1, rSquared: 1, fromX: 128, toX: 1024, points: 4)
        let c = Crossover.find(x: x, challenger: x.map(ssm.predict), incumbent: x.map(attn.predict),
                               challengerFit: ssm, incumbentFit: attn)
        #expect(c == .beyondRange(lastX: 1024, extrapolated: nil))
        #expect(c.description == "not reached by n = 1,024")
        #expect(Crossover.beyondRange(lastX: 1024, extrapolated: 1e20).description.hasSuffix("n ≈ 1e+20)"))
        #expect(BenchReport.grouped(1234567.4) == "1,234,567" && BenchReport.grouped(-9.5e18) == "-9.5e+18")
        #expect(BenchReport.grouped(Double.nan) == "nan" && BenchReport.grouped(Double.infinity) == "inf")
    }
}

/// A stand-in state-space model: constant state, no arithmetic. Lets the analysis see an SSM
/// beside a real (tiny) Llama without timing anything meaningful.
final class ConstantStateModel: LanguageModel {
    let info = ModelInfo(architecture: "FakeSSM", modelType: "fake", vocabSize: 50, hiddenSize: 4, layerCount: 1,
                         parameterCount: 60_000, maxContext: Int.max, fileDTypes: [:], details: [], fingerprint: 0)
    private(set) var position = 0
    let contextCapacity = Int.max
    private var logits = [Float](repeating: 0, count: 50)
    func prefill(_ tokens: [Int], allLogits: UnsafeMutablePointer<Float>?) throws { position += tokens.count }
    func decode(_ token: Int) throws { position += 1 }
    var lastLogits: UnsafeBufferPointer<Float> { logits.withUnsafeBufferPointer { $0 } }
    func reset() { position = 0 }
    var stateBytes: Int { 4096 }
    func stateBytes(forTokens tokens: Int) -> Int { 4096 }
    func saveState() -> [UInt8] { [] }
    func loadState(_ bytes: [UInt8]) throws {}
    func makeSequence() -> SequenceState { SequenceState(caches: [], states: [], vocab: 50) }
    lazy var sequence = makeSequence()
    func decode(batch tokens: [Int], sequences: [SequenceState]) throws { for s in sequences { s.position += 1 } }
}

/// Runs real sweeps (tiny models), so it is serialized: the stop flag and the profiler are global.
@Suite(.serialized)
struct BenchSweepTests {
    static let fixture = Fixtures.directory("llama", "gqa_linear_f32")   // 2 layers, 2 KV heads, d 8, 64 positions

    static func sweep(contexts: [Int] = [8, 16, 32, 64], breakdown: [Int]? = nil, pairedSteps: Int = 64) -> BenchResults {
        let subjects = [
            BenchSubject.directory(fixture.path),
            BenchSubject(name: "fake-ssm") { _ in ConstantStateModel() },
        ]
        let settings = BenchSettings(contexts: contexts, decodeTokens: 3, repetitions: 2, threads: 1, seed: 5,
                                     breakdownContexts: breakdown, warmupTokens: 4, pairedSteps: pairedSteps)
        return BenchRunner(subjects: subjects, settings: settings).run()
    }

    /// A hybrid keeps fixed bytes (its Mamba layers) plus bytes per token (its attention layers):
    /// classed as neither an SSM nor attention, and compared with the attention model.
    @Test func hybridStateIsFixedPlusPerToken() throws {
        let jamba = Fixtures.directory("jamba", "attn4_moe4top2_untied_f32")
        let subjects = [BenchSubject.directory(Self.fixture.path), BenchSubject.directory(jamba.path),
                        BenchSubject(name: "fake-ssm") { _ in ConstantStateModel() }]
        let settings = BenchSettings(contexts: [8, 16, 32], decodeTokens: 2, repetitions: 1, threads: 1, seed: 5,
                                     breakdownContexts: [], warmupTokens: 2)
        let r = BenchRunner(subjects: subjects, settings: settings).run()
        #expect(r.stateKind == ["gqa_linear_f32": "attention", "attn4_moe4top2_untied_f32": "hybrid", "fake-ssm": "ssm"])
        let a = BenchAnalysis(r)
        let hybrid = try #require(a.memory.first { $0.model == "attn4_moe4top2_untied_f32" })
        // One attention layer (2 KV heads × 8) per token; four Mamba layers' conv [3, 64] and SSM [64, 16] states.
        #expect(hybrid.bytesPerToken == 2 * 2 * 8 * 4 && hybrid.fixedBytes == 4 * (3 * 64 + 64 * 16) * 4)
        #expect(hybrid.kind == "hybrid" && !hybrid.constantState && hybrid.accountingMatches)
        #expect(BenchReport.markdownMemory(a).contains("(hybrid)"))
        #expect(Set(a.crossovers.map(\.ssm)) == ["attn4_moe4top2_untied_f32", "fake-ssm"])
        #expect(a.crossovers.allSatisfy { $0.attention == "gqa_linear_f32" })
    }

    @Test func memoryAccountingEqualsComputedSizes() throws {
        let r = Self.sweep()
        #expect(!r.interrupted)
        #expect(r.models == ["gqa_linear_f32", "fake-ssm"])
        // Interleaved: for each n, each model in turn.
        #expect(r.points.map(\.model) == ["gqa_linear_f32", "fake-ssm", "gqa_linear_f32", "fake-ssm",
                                          "gqa_linear_f32", "fake-ssm", "gqa_linear_f32", "fake-ssm"])
        let llama = r.points.filter { $0.model == "gqa_linear_f32" }
        for p in llama.prefix(3) {
            #expect(p.skipped == nil)
            // K and V × 2 layers × 2 KV heads × head_dim 8 × 4 bytes per token.
            #expect(p.stateBytes == 2 * 2 * 2 * 8 * 4 * p.context)
            #expect(p.stateBytes == p.expectedStateBytes)
            #expect(p.repetitions == 2 && p.prefillSamples.count == 2 && p.decodeRepetitionMedians.count == 2)
            #expect(p.decode?.count == 6)
            #expect(p.weightBytes == p.parameters * 4 && p.parameters > 0)
            #expect((p.peakResidentBytes ?? 0) > 0)
        }
        // 64 + 3 decode tokens do not fit the fixture's 64 positions.
        #expect(llama[3].skipped != nil && llama[3].prefill == nil)
        #expect(r.points.filter { $0.model == "fake-ssm" }.allSatisfy { $0.stateBytes == 4096 && $0.skipped == nil })
        #expect(r.constantState == ["gqa_linear_f32": false, "fake-ssm": true])

        let a = BenchAnalysis(r)
        let mem = try #require(a.memory.first { $0.model == "gqa_linear_f32" })
        #expect(mem.bytesPerToken == 256 && mem.fixedBytes == 0 && mem.accountingMatches && !mem.constantState)
        let ssm = try #require(a.memory.first { $0.model == "fake-ssm" })
        #expect(ssm.bytesPerToken == 0 && ssm.fixedBytes == 4096 && ssm.constantState)
        #expect(a.crossovers.map(\.phase) == ["prefill", "decode"])
        #expect(a.crossovers.allSatisfy { $0.ssm == "fake-ssm" && $0.attention == "gqa_linear_f32" })
        // Models of very different sizes are not paired.
        var far = r
        far.points = far.points.map { var p = $0; if p.model == "fake-ssm" { p.parameters = 10 }; return p }
        #expect(BenchAnalysis(far).crossovers.isEmpty)
    }

    /// After the sweep each model's first context is measured again (a control against the
    /// machine's drift): not among the points, and the deepest decode is compared with it too.
    @Test func controlsFollowTheSweep() throws {
        let r = Self.sweep(contexts: [8, 16, 32])
        let controls = try #require(r.controls)
        #expect(controls.map(\.model) == ["gqa_linear_f32", "fake-ssm"])
        #expect(controls.allSatisfy { $0.context == 8 && $0.skipped == nil && $0.decode != nil && $0.repetitions == 2 })
        #expect(r.points.count == 6 && r.breakdowns.map(\.phase) == ["prefill", "decode"])   // the sweep's own, not the control's
        let a = BenchAnalysis(r)
        for f in a.flatness {
            let control = try #require(controls.first { $0.model == f.model }?.decode?.median)
            #expect(f.controlSeconds == control && f.fromContext == 8 && f.toContext == 32)
            #expect(f.controlRatio == f.toSeconds / control)
        }
        let table = BenchReport.markdownFlatness(a)
        #expect(table.contains("n = first again, after the sweep"), "\(table)")
        let out = BenchReport.fillTemplate("{{flatcontrol:fake-ssm}} {{control:fake-ssm}}", results: r, command: "orochi bench", plots: [:])
        #expect(out.range(of: "^[0-9]+\\.[0-9]{2} [0-9.]+ ms$", options: .regularExpression) != nil, "\(out)")
        // One context: nothing to compare, no control.
        #expect(Self.sweep(contexts: [8]).controls == nil)
        let back = try BenchReport.decodeJSON(Data(try BenchReport.json(r).utf8))
        #expect(back.controls == r.controls)
    }

    /// The deepest point also decodes against the smallest context step for step, on two sequences
    /// of its model: only there, only where the model's context has room for the extra steps (the
    /// fixture Llama holds 64 positions), and carried through the analysis, the table, the
    /// template and a JSON round trip; a replayed file's paired numbers are range-checked.
    @Test func pairedDepthsAtTheDeepestPoint() throws {
        let r = Self.sweep(contexts: [8, 16, 32], pairedSteps: 40)       // Llama: 32 + 3 + 40 > 64, no room
        let llama = r.points(of: "gqa_linear_f32"), ssm = r.points(of: "fake-ssm")
        #expect(llama.count == 3 && ssm.count == 3)
        #expect(llama.allSatisfy { $0.paired == nil })
        #expect(ssm.dropLast().allSatisfy { $0.paired == nil })
        let p = try #require(ssm.last?.paired)
        #expect(p.deepContext == 32 && p.shallowContext == 8 && p.steps == 40 && p.pairRatio.count == 40)
        #expect(p.ratio == p.deepSeconds / p.shallowSeconds && p.pairRatio.min <= p.pairRatio.median && p.pairRatio.median <= p.pairRatio.max)

        let roomy = Self.sweep(contexts: [8, 32], pairedSteps: 20)       // 32 + 3 + 20 ≤ 64
        let q = try #require(roomy.points(of: "gqa_linear_f32").last?.paired)
        #expect(q.deepContext == 32 && q.shallowContext == 8 && q.steps == 20 && q.deepSeconds > 0 && q.shallowSeconds > 0)
        #expect(Self.sweep(contexts: [8, 32], pairedSteps: 0).points.allSatisfy { $0.paired == nil })

        let a = BenchAnalysis(r)
        #expect(a.flatness.first { $0.model == "fake-ssm" }?.paired == p)
        #expect(a.flatness.first { $0.model == "gqa_linear_f32" }?.paired == nil)
        let table = BenchReport.markdownFlatness(a)
        #expect(table.contains("step for step in turn") && table.contains("(40) |") && table.contains("| – | – |"), "\(table)")
        let out = BenchReport.fillTemplate("{{flatpaired:fake-ssm}} {{flatpairedpct:fake-ssm}} {{flatpaired:gqa_linear_f32}}",
                                           results: r, command: "orochi bench", plots: [:])
        #expect(out.range(of: "^[0-9]+\\.[0-9]{2} [+-][0-9]+\\.[0-9] % –$", options: .regularExpression) != nil, "\(out)")
        let text = try BenchReport.json(r)
        #expect(try BenchReport.decodeJSON(Data(text.utf8)).points == r.points)

        var doc = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        var results = try #require(doc["results"] as? [String: Any])
        var points = try #require(results["points"] as? [[String: Any]])
        let deepest = try #require(points.lastIndex { $0["model"] as? String == "fake-ssm" })
        var paired = try #require(points[deepest]["paired"] as? [String: Any])
        paired["shallowSeconds"] = 0
        points[deepest]["paired"] = paired
        results["points"] = points
        doc["results"] = results
        #expect(throws: BenchFileError.self) { try BenchReport.decodeJSON(try JSONSerialization.data(withJSONObject: doc)) }
    }

    @Test func breakdownNamesComponentsOfBothPasses() throws {
        let r = Self.sweep(contexts: [16], breakdown: [16])
        #expect(r.breakdowns.map(\.phase) == ["prefill", "decode"])   // the fake model has no timers
        let pre = try #require(r.breakdowns.first { $0.phase == "prefill" })
        #expect(pre.model == "gqa_linear_f32" && pre.context == 16)
        let names = Set(pre.components.map(\.name))
        #expect(names.isSuperset(of: ["projections", "attention scores+softmax", "mlp", "norms", "lm_head"]))
        #expect(pre.components.reduce(0) { $0 + $1.seconds } <= pre.wallSeconds * 1.0001)
        #expect(!Profiler.enabled)
    }

    @Test func stopRequestEndsCleanlyWithPartialResults() {
        BenchStop.requested = 1
        defer { BenchStop.requested = 0 }
        let r = Self.sweep()
        #expect(r.interrupted)
        #expect(r.points.isEmpty && r.controls == nil)
        #expect(BenchReport.csv(r).split(separator: "\n").count == 1)   // the header alone
    }

    @Test func csvSchema() throws {
        let r = Self.sweep(contexts: [8, 16])
        let lines = BenchReport.csv(r).split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        #expect(lines.first == Substring(BenchReport.csvHeader.joined(separator: ",")))
        #expect(BenchReport.csvHeader == [
            "model", "architecture", "parameters", "threads", "n_ctx", "n_gen", "reps",
            "prefill_s_median", "prefill_s_min", "prefill_s_max", "prefill_tok_s",
            "decode_ms_median", "decode_ms_min", "decode_ms_max", "decode_tok_s",
            "state_bytes", "expected_state_bytes", "weight_bytes", "peak_rss_bytes", "load_avg", "skipped",
        ])
        #expect(lines.count == 1 + 4)
        for line in lines.dropFirst() {
            let f = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            #expect(f.count == BenchReport.csvHeader.count)
            let col = { (name: String) in f[BenchReport.csvHeader.firstIndex(of: name)!] }
            #expect(["8", "16"].contains(col("n_ctx")))
            #expect(col("n_gen") == "3" && col("reps") == "2" && col("threads") == "1")
            let pre = try #require(Double(col("prefill_s_median")))
            #expect(Double(col("prefill_s_min"))! <= pre && pre <= Double(col("prefill_s_max"))!)
            let tps = try #require(Double(col("prefill_tok_s")))
            #expect(abs(tps * pre - Double(col("n_ctx"))!) / Double(col("n_ctx"))! < 1e-4)
            #expect(Int(col("state_bytes")) == Int(col("expected_state_bytes")))
            #expect(col("skipped").isEmpty)
        }
    }

    @Test func jsonSchema() throws {
        let r = Self.sweep(contexts: [8, 16, 32], breakdown: [8])
        let text = try BenchReport.json(r)
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(doc["schema"] as? String == "orochi-bench/1")
        let results = try #require(doc["results"] as? [String: Any])
        for key in ["machine", "settings", "models", "constantState", "startedAt", "wallSeconds", "interrupted",
                    "peakIsPerPoint", "points", "breakdowns"] {
            #expect(results[key] != nil, "results.\(key)")
        }
        let machine = try #require(results["machine"] as? [String: Any])
        #expect(machine["threads"] as? Int == 1 && machine["cpu"] is String)
        let points = try #require(results["points"] as? [[String: Any]])
        #expect(points.count == 6)
        let p = points[0]
        for key in ["model", "architecture", "parameters", "context", "decodeTokens", "repetitions", "prefill",
                    "prefillSamples", "decode", "decodeRepetitionMedians", "stateBytes", "expectedStateBytes",
                    "weightBytes", "peakResidentBytes", "prefillTokensPerSecond", "decodeTokensPerSecond"] {
            #expect(p[key] != nil, "point.\(key)")
        }
        let prefill = try #require(p["prefill"] as? [String: Any])
        #expect(Set(prefill.keys) == ["median", "min", "max", "count"])
        let analysis = try #require(doc["analysis"] as? [String: Any])
        let fits = try #require(analysis["fits"] as? [[String: Any]])
        #expect(fits.contains { $0["model"] as? String == "gqa_linear_f32" && $0["curve"] as? String == "prefill" && $0["range"] as? String == "all" })
        #expect((analysis["memory"] as? [Any])?.count == 2)
        // The document decodes back into the results it came from (`--replay`).
        let back = try BenchReport.decodeJSON(Data(text.utf8))
        #expect(back.points == r.points && back.breakdowns == r.breakdowns && back.settings == r.settings)
    }

    /// `--replay` reads a file like any other input: numbers out of range are refused, naming the
    /// field, before the analysis does arithmetic with them.
    @Test func replayRefusesOutOfRangeNumbers() throws {
        let text = try BenchReport.json(Self.sweep(contexts: [8, 16]))
        #expect(throws: Never.self) { try BenchReport.decodeJSON(Data(text.utf8)) }
        func mutated(_ change: (inout [String: Any]) -> Void) throws -> Data {
            var doc = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
            var results = try #require(doc["results"] as? [String: Any])
            change(&results)
            doc["results"] = results
            return try JSONSerialization.data(withJSONObject: doc)
        }
        func point(_ i: Int, _ key: String, _ value: Any) -> (inout [String: Any]) -> Void {
            { results in
                var points = results["points"] as! [[String: Any]]
                points[i][key] = value
                results["points"] = points
            }
        }
        let cases: [(String, (inout [String: Any]) -> Void)] = [
            ("points[1].stateBytes is -5", point(1, "stateBytes", -5)),
            ("points[0].context is 0", point(0, "context", 0)),
            ("points[2].context is 9223372036854775807", point(2, "context", Int.max)),
            ("points[3].weightBytes is 4611686018427387904", point(3, "weightBytes", 1 << 62)),
            ("points[0].prefillTokensPerSecond is -1.0", point(0, "prefillTokensPerSecond", -1.0)),
            ("points[1].prefill.median is -0.5", point(1, "prefill", ["median": -0.5, "min": 0, "max": 1, "count": 2])),
            ("settings.contexts[0] is -8", { r in var s = r["settings"] as! [String: Any]; s["contexts"] = [-8, 16]; r["settings"] = s }),
            ("machine.readBandwidth is -1.0", { r in var m = r["machine"] as! [String: Any]; m["readBandwidth"] = -1.0; r["machine"] = m }),
        ]
        for (message, change) in cases {
            let data = try mutated(change)
            do {
                _ = try BenchReport.decodeJSON(data)
                Issue.record("accepted: \(message)")
            } catch let error as BenchFileError {
                #expect("\(error)".hasPrefix(message), "\(error)")
            }
        }
    }

    @Test func templateIsFilledAndUnknownPlaceholdersAreMarked() {
        let r = Self.sweep(contexts: [8, 16, 32])
        let template = "# T\n{{machine}}\n{{table}}\nk = {{fit:gqa_linear_f32:prefill:all}}; flat {{flat:fake-ssm}}; {{state:gqa_linear_f32:8}}; {{fit:mamba-130m:prefill:all}}"
        let out = BenchReport.fillTemplate(template, results: r, command: "orochi bench", plots: [:])
        #expect(!out.contains("{{"))
        #expect(out.contains("| gqa_linear_f32 | 8 | 2 |"))
        #expect(out.range(of: "flat [0-9]+\\.[0-9]{2};", options: .regularExpression) != nil)
        #expect(out.contains("2.0 KiB"))             // 256 bytes × 8 tokens
        #expect(out.contains("(not measured)"))      // the model that was not in this run
    }

    @Test func presetsHaveThePublishedShapes() throws {
        #expect(BenchPresets.names.contains("llama-130m"))
        let config = try JSONDecoder().decode(LlamaConfig.self, from: Data(BenchPresets.llama130m.utf8))
        #expect(config.hidden_size == 768 && config.num_hidden_layers == 12 && config.num_attention_heads == 12)
        #expect(config.kvHeads == 12 && config.intermediate_size == 2048 && config.vocab_size == 32000 && config.tiedEmbeddings)
        #expect((config.max_position_embeddings ?? 0) >= 16384 + 64)
        #expect(BenchPresets.names.contains("mamba-130m"))
    }

    /// The state of the SSM preset is a fixed size; the KV cache of the attention preset grows by
    /// exactly 2 × layers × hidden × 4 bytes per token (shapes only: nothing is run).
    @Test func presetMemoryAccounting() throws {
        let mamba = try #require(BenchPresets.named("mamba-6m")).build(64, 1, false, .f32)
        #expect(mamba.stateBytes(forTokens: 1) == mamba.stateBytes(forTokens: 16384))
        #expect(mamba.stateBytes(forTokens: 1) > 0)
        // Mamba-2: 10 layers × (conv 3 × (512 + 2 × 64) + state 16 heads × 32 × 64) floats, at any length.
        let mamba2 = try #require(BenchPresets.named("mamba2-6m")).build(64, 1, false, .f32)
        #expect(mamba2.stateBytes(forTokens: 1) == 10 * (3 * 640 + 512 * 64) * 4)
        #expect(mamba2.stateBytes(forTokens: 16384) == mamba2.stateBytes(forTokens: 1))
        // The Granite-style hybrid: 10 Mamba-2 layers' fixed state, 2 attention layers' cache per token.
        let granite = try #require(BenchPresets.named("granite-h-130m")).build(64, 1, false, .f32)
        let graniteFixed = 10 * (3 * (1536 + 2 * 128) + 1536 * 128) * 4
        #expect(granite.stateBytes(forTokens: 0) == graniteFixed)
        #expect(granite.stateBytes(forTokens: 100) == graniteFixed + 100 * 2 * 2 * 4 * 64 * 4)
        let llama = try #require(BenchPresets.named("llama-6m")).build(64, 1, false, .f32)
        // 6 layers × 4 KV heads × 32 per head (256 / 8) × K and V × 4 bytes.
        #expect(llama.stateBytes(forTokens: 1000) == 1000 * 2 * 6 * 4 * 32 * 4)
        // An f16 cache: half of it. Half-precision preset weights keep the same shapes and count.
        let half = try #require(BenchPresets.named("llama-6m")).build(64, 1, true, .f16)
        #expect(half.stateBytes(forTokens: 1000) == 1000 * 2 * 6 * 4 * 32 * 2)
        #expect(half.info.parameterCount == llama.info.parameterCount)
        // Bytes a decoded token reads: every layer matrix, the (tied) lm_head whole, one embedding row.
        let layer = 256 * 256 * 2 + 128 * 256 * 2 + 688 * 256 * 3
        let read = { (m: any LanguageModel) in m.info.details.first { $0.0 == "bytes read per decoded token" }?.1 ?? "" }
        #expect(read(llama).hasPrefix("\((6 * layer + 8000 * 256 + 256) * 4) of weights"), "\(read(llama))")
        #expect(read(half).hasPrefix("\((6 * layer + 8000 * 256 + 256) * 2) of weights"), "\(read(half))")
    }
}
