import Foundation
import Orochi

/// Draws the sweep's plots with gnuplot (Debian's gnuplot-nox), as PNG and SVG: prefill time vs
/// context (log-log), decode ms/token vs depth, memory vs context, and the component breakdown.
/// Writes the data and the gnuplot scripts next to the images (in `data/`), so each plot can be
/// redrawn or restyled by hand.
public enum BenchPlot {
    public static let plots = ["prefill", "decode", "memory", "breakdown"]

    /// One distinct colour per component of the breakdown, in `ProfileComponent` order, then "other".
    static let palette = ["#8c564b", "#7f7f7f", "#1f77b4", "#bcbd22", "#ff7f0e", "#2ca02c",
                          "#e377c2", "#17becf", "#9467bd", "#d9d9d9"]

    public enum PlotError: Error, CustomStringConvertible {
        case gnuplotMissing
        case gnuplotFailed(script: String, status: Int32, stderr: String)
        public var description: String {
            switch self {
            case .gnuplotMissing: return "gnuplot not found on PATH (install gnuplot-nox: `make deps`); the data and scripts were written"
            case .gnuplotFailed(let s, let status, let err): return "gnuplot failed on \(s) (status \(status)): \(err)"
            }
        }
    }

    /// A file-name-safe form of a model name.
    static func slug(_ s: String) -> String {
        String(s.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." ? $0 : "_" })
    }

    static func quoted(_ s: String) -> String {
        "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n") + "\""
    }

    /// Writes data, scripts and images into `directory`; returns the image paths (relative to it).
    @discardableResult
    public static func draw(_ results: BenchResults, into directory: URL, gnuplot: String = "gnuplot") throws -> [String] {
        let dataDir = directory.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: dataDir, withIntermediateDirectories: true)
        let models = results.models.filter { !results.points(of: $0).isEmpty }

        // One whitespace-separated table per model.
        for model in models {
            var text = "# n prefill_s prefill_min prefill_max decode_ms decode_min_ms decode_max_ms state_bytes peak_rss_bytes\n"
            for p in results.points(of: model) {
                guard let pre = p.prefill, let dec = p.decode else { continue }
                text += "\(p.context) \(pre.median) \(pre.min) \(pre.max) \(dec.median * 1e3) \(dec.min * 1e3) \(dec.max * 1e3) \(p.stateBytes) \(p.peakResidentBytes ?? 0)\n"
            }
            try FileOutput.write(text, to: dataDir.appendingPathComponent(slug(model) + ".dat").path)
        }
        // Component shares (%), one row per profiled pass.
        let names = ProfileComponent.allCases.map(\.description) + ["other"]
        var bd = "label " + names.map(quoted).joined(separator: " ") + "\n"
        for b in results.breakdowns {
            let label = "\(b.model) \(b.phase) n=\(b.context)"
            let cells = names.map { name -> String in
                let s = name == "other" ? b.otherSeconds : b.components.first { $0.name == name }?.seconds ?? 0
                return String(format: "%.3f", 100 * s / max(b.wallSeconds, 1e-12))
            }
            bd += quoted(label) + " " + cells.joined(separator: " ") + "\n"
        }
        try FileOutput.write(bd, to: dataDir.appendingPathComponent("breakdown.dat").path)

        let who = models.joined(separator: ", ")
        let machine = results.machine.label
        func title(_ what: String) -> String { quoted("\(what) — \(who)\n\(machine)") }
        func series(_ using: String, _ style: String, suffix: String = "") -> String {
            models.map { "'data/\(slug($0)).dat' using \(using) with \(style) title \(quoted($0 + suffix))" }.joined(separator: ", \\\n  ")
        }

        var scripts: [String: String] = [:]
        // Guide lines through the first model's first point: slope 1 and slope 2 on log-log axes.
        var guides = ""
        if let first = models.first, let p = results.points(of: first).first, let pre = p.prefill {
            let n0 = Double(p.context), t0 = pre.median
            guides = ", \\\n  \(t0)*(x/\(n0)) with lines dt 2 lc rgb 'gray50' title 'slope 1 (∝ n)', \\\n  \(t0)*(x/\(n0))**2 with lines dt 3 lc rgb 'gray30' title 'slope 2 (∝ n²)'"
        }
        scripts["prefill"] = """
            set title \(title("Prefill time vs context (log-log)"))
            set logscale x 2
            set logscale y 10
            set format y '%g'
            set xlabel 'context n (tokens prefilled)'
            set ylabel 'prefill time (s), median, bars min–max'
            set key top left
            set grid
            plot \(series("1:2:3:4", "yerrorlines")) \(guides)
            """
        scripts["decode"] = """
            set title \(title("Decode time per token vs depth"))
            set logscale x 2
            set xlabel 'depth n (tokens already in the context)'
            set ylabel 'ms per token, median, bars min–max over repetitions'
            set yrange [0:*]
            set key top left
            set grid
            plot \(series("1:5:6:7", "yerrorlines"))
            """
        scripts["memory"] = """
            set title \(title("Memory vs context"))
            set logscale x 2
            set logscale y 10
            set format y '%.0s %cB'
            set xlabel 'context n (tokens)'
            set ylabel 'bytes (k, M, G = 10³, 10⁶, 10⁹)'
            set key top left
            set grid
            plot \(series("1:8", "linespoints lw 2", suffix: ": KV cache / state")), \\
              \(series("1:9", "linespoints dt 2", suffix: ": peak RSS of the point"))
            """
        scripts["breakdown"] = """
            set title \(title("Where the time goes: one prefill and one decode step"))
            set style data histograms
            set style histogram rowstacked
            set style fill solid 0.85 border -1
            set boxwidth 0.7
            set ylabel 'share of the pass (%)'
            set yrange [0:100]
            set key outside right
            set xtics rotate by -30 font ',9'
            palette = "\(palette.prefix(names.count).joined(separator: " "))"
            plot for [i=2:\(names.count + 1)] 'data/breakdown.dat' using i:xtic(1) title columnheader(i) lc rgb word(palette, i - 1)
            """

        var images: [String] = []
        guard let exe = findExecutable(gnuplot) else {
            for (name, body) in scripts {
                try FileOutput.write(body, to: dataDir.appendingPathComponent(name + ".gp").path)
            }
            throw PlotError.gnuplotMissing
        }
        for name in plots {
            guard let body = scripts[name] else { continue }
            if name == "breakdown" && results.breakdowns.isEmpty { continue }
            let terminals = [
                ("png", "set terminal pngcairo noenhanced size 1100,700 font 'DejaVu Sans,11'"),
                ("svg", "set terminal svg noenhanced size 1100,700 dynamic font 'DejaVu Sans,11'"),
            ]
            var full = "# Generated by `orochi bench --plot`; run from the folder above data/.\n"
            for (ext, term) in terminals {
                full += "\(term)\nset output '\(name).\(ext)'\n\(body)\nunset output\nreset\n"
            }
            let scriptURL = dataDir.appendingPathComponent(name + ".gp")
            try FileOutput.write(full, to: scriptURL.path)
            try runGnuplot(script: "data/\(name).gp", in: directory, gnuplot: exe.path)
            images += ["\(name).png", "\(name).svg"]
        }
        return images
    }

    /// Runs a gnuplot script (a path relative to `directory`) from `directory`.
    public static func runGnuplot(script: String, in directory: URL, gnuplot: String = "gnuplot") throws {
        guard let exe = findExecutable(gnuplot) else { throw PlotError.gnuplotMissing }
        let process = Process()
        process.executableURL = exe
        process.arguments = [script]
        process.currentDirectoryURL = directory
        let err = Pipe()
        process.standardError = err
        try process.run()
        let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw PlotError.gnuplotFailed(script: directory.appendingPathComponent(script).path, status: process.terminationStatus, stderr: errText)
        }
    }

    static func findExecutable(_ name: String) -> URL? {
        if name.contains("/") { return FileManager.default.isExecutableFile(atPath: name) ? URL(fileURLWithPath: name) : nil }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return URL(fileURLWithPath: candidate) }
        }
        return nil
    }
}
