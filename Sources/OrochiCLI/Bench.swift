import ArgumentParser
import Foundation
import Orochi
import OrochiBench

/// The weight types a preset can be built with.
enum PresetDType: String, ExpressibleByArgument, CaseIterable { case f32, f16 }

/// `orochi bench`: the scaling sweep. The measuring, the analysis and the plots live in the
/// OrochiBench target; this parses options, installs the Ctrl-C handler and writes files.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure how prefill, decode and memory scale with the context, for several models interleaved.",
        discussion: """
            For each model and context n: prefill n random token ids (timed), then decode at depth n \
            (each step timed; the median is the per-token latency). A warm-up comes first; medians and \
            min–max are over --repetitions. Progress goes to stderr. Ctrl-C stops after the current \
            measurement and writes the partial results (exit status 130).
            Presets: \(BenchPresets.all.map { "\($0.name) (\($0.summary))" }.joined(separator: "; ")).
            """)

    @Option(name: .long, help: "A model directory to measure (repeatable).")
    var model: [String] = []

    @Option(name: .long, help: "A random-weight preset to measure (repeatable): \(BenchPresets.names.joined(separator: ", ")).")
    var preset: [String] = []

    @Option(name: .long, help: "Context lengths, comma-separated (e.g. 128,256,512).")
    var contexts: String = "128,256,512,1024,2048,4096"

    @Option(name: .long, help: "Decode steps timed at each depth.")
    var decodeTokens: Int = 32

    @Option(name: .long, help: "Repetitions of each point after the warm-up.")
    var repetitions: Int = 3

    @Option(name: .long, help: "Stop repeating a point after this many seconds (at least one repetition runs).")
    var maxSecondsPerPoint: Double?

    @Option(name: .long, help: "Contexts at which to take the per-component breakdown, each with one extra prefill (default: the smallest; 'none' for none).")
    var breakdownContexts: String?

    @Option(name: .long, help: "Decode steps timed at the deepest context and at the smallest in turn, step for step, after the deepest point (0: none).")
    var pairedSteps: Int = 64

    @Option(name: .long, help: "Presets' random weight matrices: f32, or f16 (measured as NAME-f16).")
    var presetDtype: PresetDType = .f32

    @Option(name: .long, help: "Model directories' weight matrices: 'stored' (the checkpoint's type) or 'f32'.")
    var weightsDtype: WeightStorage = .asStored

    @Option(name: .long, help: "Element type of the attention KV cache: f32 or f16.")
    var kvDtype: KVCacheType = .f32

    @Option(name: .long, help: "Model directories' checkpoints held on 'huge-pages' (read at load) or 'mapped' from the file.")
    var weightsMemory: WeightMemory = .hugePages

    @Flag(name: .long, inversion: .prefixedNo, help: "Measure the machine's streaming read bandwidth first (the decode roofline, printed beside the figures).")
    var bandwidth = true

    @Option(name: .long, help: "Threads for matrix products, 1–\(maxThreads).")
    var threads: Int = 2

    @Option(name: .long, help: "Orochi's kernels: 'best' (the CPU's), or avx512, avx2 or portable to measure what a CPU with less would get (OpenBLAS gets the matching core unless OPENBLAS_CORETYPE is set).")
    var kernels: KernelFamily = .best

    @Option(name: .long, help: "Seed of the random token ids and preset weights.")
    var seed: UInt64 = 1

    @Option(name: .long, help: "Output format.")
    var format: BenchFormat = .table

    @Option(name: .long, help: "Write the output to this file instead of stdout.")
    var out: String?

    @Option(name: .long, help: "Draw the plots (PNG and SVG, with gnuplot) into this folder.")
    var plot: String?

    @Option(name: .long, help: "Also write every format next to this path prefix (PREFIX.csv, PREFIX.json, PREFIX.txt).")
    var saveAll: String?

    @Option(name: .long, help: "Fill this Markdown template's {{placeholders}} with the results …")
    var docTemplate: String?

    @Option(name: .long, help: "… and write the document here (e.g. docs/scaling.md).")
    var doc: String?

    @Option(name: .long, help: "Measure nothing: re-render the outputs, plots and document from a JSON file written by an earlier run.")
    var replay: String?

    @Option(name: .long, help: "Instead of the sweep: time a decode step of this many sequences at once, comma-separated (e.g. 1,2,4,8), at the depth of the first --contexts value, and the time to first token of a prompt that long computed and resumed from the serving engine's prompt cache.")
    var batchSizes: String?

    static let maxBatch = 256

    func parsedBatchSizes() throws -> [Int]? {
        guard let batchSizes else { return nil }
        let bs = try batchSizes.split(separator: ",").map { v -> Int in
            guard let b = Int(v.trimmingCharacters(in: .whitespaces)), b >= 1, b <= Self.maxBatch else {
                throw ValidationError("--batch-sizes: '\(v)' is not a batch size between 1 and \(Self.maxBatch)")
            }
            return b
        }
        guard !bs.isEmpty else { throw ValidationError("--batch-sizes is empty") }
        return Array(Set(bs)).sorted()
    }

    func parsedContexts() throws -> [Int] {
        let values = contexts.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let ns = try values.map { v -> Int in
            guard let n = Int(v), n > 0 else { throw ValidationError("--contexts: '\(v)' is not a positive integer") }
            guard n <= Self.maxContext else { throw ValidationError("--contexts: \(n) exceeds \(Self.maxContext)") }
            return n
        }
        guard !ns.isEmpty else { throw ValidationError("--contexts is empty") }
        return Array(Set(ns)).sorted()
    }

    /// Bounds that keep n + decode tokens and the id arrays far from overflow; memory is checked per point.
    static let maxContext = 1 << 40
    static let maxDecodeTokens = 1 << 20

    func parsedBreakdown() throws -> [Int]? {
        guard let b = breakdownContexts else { return nil }
        if b == "none" { return [] }
        return try b.split(separator: ",").map { v -> Int in
            guard let n = Int(v.trimmingCharacters(in: .whitespaces)), n > 0 else {
                throw ValidationError("--breakdown-contexts: '\(v)' is not a positive integer (or give 'none')")
            }
            return n
        }
    }

    func validate() throws {
        guard replay != nil || !model.isEmpty || !preset.isEmpty else { throw ValidationError("give at least one --model DIR or --preset NAME") }
        for p in preset where BenchPresets.named(p) == nil {
            throw ValidationError("unknown preset '\(p)' (known: \(BenchPresets.names.joined(separator: ", ")))")
        }
        _ = try parsedContexts()
        guard decodeTokens >= 1 && decodeTokens <= Self.maxDecodeTokens else {
            throw ValidationError("--decode-tokens must be between 1 and \(Self.maxDecodeTokens), got \(decodeTokens)")
        }
        guard repetitions >= 1 else { throw ValidationError("--repetitions must be ≥ 1") }
        guard pairedSteps >= 0 && pairedSteps <= Self.maxDecodeTokens else {
            throw ValidationError("--paired-steps must be between 0 and \(Self.maxDecodeTokens), got \(pairedSteps)")
        }
        try validateThreads(threads)
        try kernels.check(option: "--kernels")
        if let breakdown = try parsedBreakdown(), replay == nil {
            let contexts = Set(try parsedContexts())
            for n in breakdown where !contexts.contains(n) {
                throw ValidationError("--breakdown-contexts: \(n) is not one of --contexts, so no breakdown would be taken at it")
            }
        }
        if let s = maxSecondsPerPoint, !(s.isFinite && s > 0) {
            throw ValidationError("--max-seconds-per-point must be a positive number of seconds, got \(s)")
        }
        guard (docTemplate == nil) == (doc == nil) else { throw ValidationError("--doc-template and --doc go together") }
        if try parsedBatchSizes() != nil {
            guard replay == nil, plot == nil, doc == nil, saveAll == nil else {
                throw ValidationError("--batch-sizes prints a table only: without --replay, --plot, --doc or --save-all")
            }
            guard try parsedContexts()[0] <= 1 << 20 else { throw ValidationError("--batch-sizes: the depth (first --contexts value) must be at most 1,048,576") }
        }
    }

    func run() throws {
        kernels.apply()
        let ns = try parsedContexts()
        let breakdown = try parsedBreakdown()
        var settings = BenchSettings(contexts: ns, decodeTokens: decodeTokens, repetitions: repetitions, threads: threads,
                                     seed: seed, maxSecondsPerPoint: maxSecondsPerPoint, breakdownContexts: breakdown,
                                     pairedSteps: pairedSteps)
        settings.measureBandwidth = bandwidth
        // Presets first, then model directories, each in the order given.
        let subjects = preset.compactMap { BenchPresets.named($0)?.subject(seed: seed, halfWeights: presetDtype == .f16, kvCache: kvDtype.type) }
            + model.map { BenchSubject.directory($0, options: LoadOptions(weights: weightsDtype, kvCache: kvDtype.type, weightMemory: weightsMemory)) }

        if let batches = try parsedBatchSizes() {
            let (rows, reuse) = try BatchBench.run(subjects: subjects, batchSizes: batches, depth: ns[0], steps: decodeTokens,
                                                   repetitions: repetitions, threads: threads, seed: seed, progress: { printError($0) })
            let text = BatchBench.table(rows, reuse)
            if let out { try FileOutput.write(text, to: out) } else { emit(text) }
            return
        }
        // Ctrl-C sets a flag the sweep checks between measurements; a second Ctrl-C kills at once.
        signal(SIGINT) { _ in
            BenchStop.requested = 1
            signal(SIGINT, SIG_DFL)
        }
        var results: BenchResults
        if let replay {
            guard let data = FileManager.default.contents(atPath: replay) else {
                throw RuntimeError("\(replay): cannot read the file (--replay)")
            }
            do { results = try BenchReport.decodeJSON(data) } catch {
                throw RuntimeError("\(replay) (--replay): \(error)")
            }
        } else {
            results = BenchRunner(subjects: subjects, settings: settings, progress: { printError($0) }).run()
            results.command = (["orochi"] + CommandLine.arguments.dropFirst()).joined(separator: " ")
        }
        if results.interrupted { printError("interrupted: writing the partial results") }

        let text = try BenchReport.render(results, format: format)
        if let out {
            try FileOutput.write(text, to: out)
            printError("wrote \(out)")
        } else {
            emit(text)
        }
        if let prefix = saveAll {
            try FileOutput.write(BenchReport.csv(results), to: prefix + ".csv")
            try FileOutput.write(BenchReport.json(results), to: prefix + ".json")
            try FileOutput.write(BenchReport.table(results), to: prefix + ".txt")
            printError("wrote \(prefix).csv, .json, .txt")
        }
        var images: [String: String] = [:]
        if let plot {
            let dir = URL(fileURLWithPath: plot)
            do {
                let files = try BenchPlot.draw(results, into: dir)
                printError("drew \(files.count) plots into \(plot)")
                for f in files where f.hasSuffix(".png") { images[String(f.dropLast(4))] = f }
            } catch {
                printError("plots: \(error)")
            }
        }
        if let docTemplate, let doc {
            let template = try String(contentsOfFile: docTemplate, encoding: .utf8)
            let command = results.command ?? (["orochi"] + CommandLine.arguments.dropFirst()).joined(separator: " ")
            try FileOutput.write(BenchReport.fillTemplate(template, results: results, command: command, plots: images), to: doc)
            printError("wrote \(doc)")
        }
        if results.interrupted { throw ExitCode(130) }
    }
}

extension BenchFormat: ExpressibleByArgument {}
