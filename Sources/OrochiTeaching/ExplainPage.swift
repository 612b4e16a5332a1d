import Foundation
import Orochi
import OrochiBench

/// `orochi explain`: one self-contained HTML page (inline SVG drawn by gnuplot, no script, no
/// network) that sets models side by side on one prompt: what each layer reads from the past,
/// how far back it reaches, what one decoded token costs, and how the cache or state grows.
public enum ExplainPage {
    /// What the page shows of one model.
    public struct Subject {
        public var name: String
        public var info: ModelInfo
        public var labels: [String]
        public var layers: [LayerMap]
        public var trace: Trace
        /// Bytes of cache or state at each context length.
        public var memory: [(tokens: Int, bytes: Int)]
        public init(name: String, info: ModelInfo, labels: [String], layers: [LayerMap], trace: Trace, memory: [(tokens: Int, bytes: Int)]) {
            self.name = name; self.info = info; self.labels = labels; self.layers = layers; self.trace = trace; self.memory = memory
        }
    }

    public static let contexts = [0, 256, 512, 1024, 2048, 4096]

    /// Measures one model on `prompt`: maps, trace, memory by context.
    public static func subject(name: String, model: any LanguageModel, tokens: [Int], labels: [String]) throws -> Subject {
        let layers = try AttentionMaps.compute(model: model, tokens: tokens)
        let trace = try Trace.run(model: model, prompt: tokens)
        return Subject(name: name, info: model.info, labels: labels, layers: layers, trace: trace,
                       memory: contexts.map { ($0, model.stateBytes(forTokens: $0)) })
    }

    /// Writes the page; `work` holds the pictures' data and scripts while it is built.
    public static func write(_ subjects: [Subject], prompt: String, to page: URL, work: URL) throws {
        var html = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>Orochi: how the architectures differ on one prompt</title>
            <style>
            body { font-family: 'Noto Sans CJK JP', 'DejaVu Sans', sans-serif; margin: 2em auto; max-width: 1500px; color: #222; }
            .models { display: flex; gap: 1.5em; align-items: flex-start; }
            .model { flex: 1; min-width: 0; border-top: 4px solid #4393c3; padding-top: .5em; }
            .model.attention { border-color: #d6604d; } .model.hybrid { border-color: #8073ac; }
            figure { margin: .5em 0; } figure svg { width: 100%; height: auto; }
            table { border-collapse: collapse; font-size: 90%; } td, th { padding: 2px 8px; border-bottom: 1px solid #ddd; text-align: right; }
            td:first-child, th:first-child { text-align: left; }
            p.note { color: #555; font-size: 92%; }
            </style></head><body>
            <h1>How the architectures differ, on 「\(escape(prompt))」</h1>
            <p>Each column is one model reading the same prompt. The heatmaps show, for every token (row), how much each earlier
            token (column) contributes to it in one layer: for an attention layer the softmax weights of its heads (averaged over
            heads); for a Mamba layer its <em>hidden attention</em>, the matrix its selective scan applies to its inputs without
            ever forming it (channels averaged, each row scaled to sum to 1, the same colour scale). <em>Reach</em> is how far back
            a layer's weights stay above 1&nbsp;% of the current token's own. The trace is one decoded token's cost; the last table
            is what each model keeps of the context.</p>
            <div class="models">

            """
        for (i, s) in subjects.enumerated() {
            let kinds = Set(s.layers.map(\.kind))
            let kind = kinds.count > 1 && kinds.contains(.attention) ? "hybrid" : kinds.contains(.attention) ? "attention" : "ssm"
            let dir = work.appendingPathComponent("model\(i)")
            // One picture per layer: attention heads averaged.
            let perLayer = s.layers.map(\.headsAveraged)
            try AttentionPlot.write(perLayer, labels: s.labels, title: s.name, into: dir, heads: [0])
            html += "<section class=\"model \(kind)\" id=\"model-\(i)\"><h2>\(escape(s.name))</h2>\n"
            html += "<p>\(escape(s.info.architecture)), \(s.info.layerCount) layers, \(s.info.parameterCount) parameters; "
                + "layers: " + s.layers.map { $0.kind == .attention ? "attention" : $0.kind == .ssd ? "Mamba-2" : "Mamba" }.joined(separator: ", ") + ".</p>\n"
            for l in perLayer {
                let file = l.kind == .ssm ? "layer\(l.layer)_ssm.svg" : "layer\(l.layer)_head0.svg"
                html += "<figure class=\"map\" data-layer=\"\(l.layer)\" data-kind=\"\(l.kind.rawValue)\">"
                    + (try inlineSVG(dir.appendingPathComponent(file))) + "</figure>\n"
            }
            html += "<figure class=\"reach\">" + (try inlineSVG(dir.appendingPathComponent("reach.svg"))) + "</figure>\n"
            if let worst = s.layers.compactMap(\.identityError).max() {
                html += "<p class=\"note\">The Mamba layers' matrices rebuild their scans' outputs to \(String(format: "%.1e", worst)) (largest relative error).</p>\n"
            }
            let t = s.trace
            html += """
                <h3>One decoded token</h3>
                <table class="trace"><tr><th>after the prompt</th><td>\(t.promptTokens) tokens</td></tr>
                <tr><th>multiply-adds</th><td>\(group(t.multiplyAdds))</td></tr>
                <tr><th>weight bytes read</th><td>\(group(t.weightBytes))</td></tr>
                <tr><th>cache and state bytes read</th><td>\(group(t.otherBytes))</td></tr>
                <tr><th>the cache grows by</th><td>\(group(t.cacheBytesAdded)) B</td></tr>
                <tr><th>state rewritten in place</th><td>\(group(t.stateBytesOverwritten)) B</td></tr>
                <tr><th>time (one run, \(t.steps.count) steps)</th><td>\(String(format: "%.3f", t.seconds * 1000)) ms</td></tr></table>
                <h3>What it keeps of the context</h3>
                <table class="memory"><tr><th>tokens</th><th>bytes</th></tr>
                \(s.memory.map { "<tr><td>\(group($0.tokens))</td><td>\(group($0.bytes))</td></tr>" }.joined(separator: "\n"))
                </table>
                </section>

                """
        }
        html += """
            </div>
            <h2>Reading the pictures</h2>
            <p>An attention layer can put weight on any earlier token, however far, because it keeps all of them: its cache grows
            by the same number of bytes with every token, and each new token reads the whole cache. A Mamba layer keeps a
            fixed-size state; what it carries from a token decays by exp(Δ·A) at every later step, so its hidden attention fades
            with distance at a rate set by the input (Δ is selective: a large Δ forgets quickly, a small one holds on). A hybrid
            puts a few attention layers among Mamba layers: they can reach exactly as far as attention, at the cost of a cache
            for those layers only. Generated by <code>orochi explain</code>; see docs/architectures.md.</p>
            </body></html>

            """
        try FileOutput.write(html, to: page.path)
    }

    /// An SVG file's element, without its XML declaration and doctype, for inlining.
    static func inlineSVG(_ url: URL) throws -> String {
        let text = try String(contentsOf: url, encoding: .utf8)
        guard let start = text.range(of: "<svg") else { throw CocoaError(.fileReadCorruptFile) }
        return String(text[start.lowerBound...])
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    static func group(_ n: Int) -> String {
        let f = NumberFormatter()
        f.numberStyle = .decimal
        f.groupingSeparator = ","
        return f.string(from: NSNumber(value: n)) ?? "\(n)"
    }
}
