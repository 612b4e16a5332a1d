import Foundation
import Orochi
import OrochiBench

/// Draws `orochi attention`'s matrices as heatmaps with the prompt's tokens on both axes (PNG and
/// SVG through gnuplot, in a CJK font so that Japanese tokens read as text), writes each matrix
/// as .npy beside them, and the reach of every layer as a table and a bar chart. Data and
/// gnuplot scripts stay in `data/`, so that each picture can be redrawn by hand.
public enum AttentionPlot {
    /// Debian's fonts-noto-cjk (installed by `make deps`).
    public static let font = "Noto Sans CJK JP"

    /// What was written, relative to `directory`.
    @discardableResult
    public static func write(_ layers: [LayerMap], labels: [String], title: String, into directory: URL,
                             heads: Set<Int>?, gnuplot: String = "gnuplot") throws -> [String] {
        let data = directory.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        var written: [String] = [], scripts: [String] = []
        let t = labels.count
        let tics = labels.enumerated().map { "\"\(escape($1))\" \($0)" }.joined(separator: ", ")
        let side = max(420, 120 + 16 * t)
        for layer in layers {
            for (h, map) in layer.maps.enumerated() where layer.kind == .ssm || heads?.contains(h) ?? true {
                let name = layer.kind == .ssm ? "layer\(layer.layer)_ssm" : "layer\(layer.layer)_head\(h)"
                try FileOutput.write(map.withUnsafeBufferPointer { NPY.encode(float32: $0, shape: [t, t]) },
                                     to: directory.appendingPathComponent(name + ".npy").path)
                var text = ""
                for i in 0..<t { text += map[(i * t)..<(i * t + t)].map { String(format: "%.6g", $0) }.joined(separator: " ") + "\n" }
                try FileOutput.write(text, to: data.appendingPathComponent(name + ".dat").path)
                let what = switch layer.kind {
                case .ssm: "Mamba layer \(layer.layer): hidden attention, channels averaged (reach \(String(format: "%.1f", layer.meanReach)) tokens)"
                case .ssd: "Mamba-2 layer \(layer.layer), head \(h): SSD matrix L∘(C·Bᵀ)·Δ, |rows| to 1 (reach \(String(format: "%.1f", layer.reach[h])) tokens)"
                case .attention: "layer \(layer.layer), head \(h): attention (reach \(String(format: "%.1f", layer.reach[h])) tokens)"
                }
                scripts.append(name)
                try script(name: name, body: """
                    set title "\(escape(title))\\n\(escape(what))"
                    set size ratio -1
                    set xrange [-0.5:\(t) - 0.5]
                    set yrange [\(t) - 0.5:-0.5]
                    set xtics rotate by 90 right (\(tics)) font ',9'
                    set ytics (\(tics)) font ',9'
                    set xlabel 'earlier token s'
                    set ylabel 'token t'
                    set cbrange [0:1]
                    set cblabel 'share of row t'
                    set palette defined (0 '#ffffff', 0.05 '#c6dbef', 0.25 '#6baed6', 0.6 '#2171b5', 1 '#08306b')
                    plot 'data/\(name).dat' matrix with image notitle
                    """, width: side + 160, height: side + 60, into: directory)
                written += [name + ".npy", name + ".png", name + ".svg"]
            }
        }
        // Reach per layer.
        var table = "layer\tkind\treach\n"
        for l in layers { table += "\(l.layer)\t\(l.kind.rawValue)\t\(String(format: "%.3f", l.meanReach))\n" }
        try FileOutput.write(table, to: directory.appendingPathComponent("reach.tsv").path)
        try FileOutput.write(String(table.drop { $0 != "\n" }.dropFirst()), to: data.appendingPathComponent("reach.dat").path)
        try script(name: "reach", body: """
            set title "\(escape(title))\\nhow far back each layer reaches (mean distance with weight ≥ 1 % of the current token's)"
            set style fill solid 0.8
            set boxwidth 0.7
            set xlabel 'layer'
            set ylabel 'reach (tokens)'
            set yrange [0:*]
            set key below
            plot 'data/reach.dat' using 1:(strcol(2) eq 'attention' ? $3 : 1/0):xtic(1) with boxes lc rgb '#d6604d' title 'attention', \\
                 '' using 1:(strcol(2) eq 'ssm' ? $3 : 1/0) with boxes lc rgb '#4393c3' title 'Mamba (hidden attention)', \\
                 '' using 1:(strcol(2) eq 'ssd' ? $3 : 1/0) with boxes lc rgb '#5aae61' title 'Mamba-2 (SSD matrix)'
            """, width: 800, height: 480, into: directory)
        written += ["reach.tsv", "reach.png", "reach.svg"]
        return written
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }

    /// Writes data/NAME.gp (PNG and SVG) and runs it from `directory`.
    static func script(name: String, body: String, width: Int, height: Int, into directory: URL) throws {
        var full = "# Generated by `orochi attention`; run from the folder above data/.\nset encoding utf8\n"
        for (ext, term) in [("png", "pngcairo noenhanced size \(width),\(height) font '\(font),10'"),
                            ("svg", "svg noenhanced size \(width),\(height) dynamic font '\(font),10'")] {
            full += "set terminal \(term)\nset output '\(name).\(ext)'\n\(body)\nunset output\nreset\n"
        }
        let url = directory.appendingPathComponent("data/\(name).gp")
        try FileOutput.write(full, to: url.path)
        try BenchPlot.runGnuplot(script: "data/\(name).gp", in: directory)
    }
}
