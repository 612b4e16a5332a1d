import ArgumentParser
import Foundation
import Orochi
import OrochiTeaching

/// `orochi attention`: what each layer reads from the past, for one prompt, as pictures.
struct AttentionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attention",
        abstract: "Draw what each layer reads from earlier tokens: attention weights per head, Mamba's hidden attention per layer, Mamba-2's SSD matrix per head.",
        discussion: """
            Writes into --out, per selected layer: for an attention layer one heatmap per head (softmax of QKᵀ/√d \
            over the prompt), for a Mamba layer one heatmap of its hidden attention (the matrix its selective scan \
            applies to its inputs, channels averaged; see docs/architectures.md), for a Mamba-2 layer one heatmap per \
            head of its SSD matrix L∘(C·Bᵀ)·Δ (see docs/mamba2.md), as PNG, SVG and .npy (float32 [T, T]); \
            and reach.tsv / reach.png, how far back each layer reaches. Prints the reach per layer and, for Mamba \
            and Mamba-2 layers, how closely the matrix reproduces the scan's output.
            """)

    @OptionGroup var options: ModelOptions

    @Option(name: .long, help: "The prompt, encoded with the model's tokenizer (BOS added as its configuration asks).")
    var prompt: String

    @Option(name: .long, help: "Folder for the pictures and matrices (created if missing).")
    var out: String

    @Option(name: .long, help: "Layers to draw, comma-separated (default: all).")
    var layers: String?

    @Option(name: .long, help: "Attention heads to draw, comma-separated (default: all).")
    var heads: String?

    static func indices(_ text: String?, flag: String) throws -> Set<Int>? {
        guard let text else { return nil }
        let values = try text.split(separator: ",").map { v -> Int in
            guard let i = Int(v.trimmingCharacters(in: .whitespaces)), i >= 0, i < 1 << 20 else {
                throw ValidationError("\(flag): '\(v)' is not an index ≥ 0")
            }
            return i
        }
        guard !values.isEmpty else { throw ValidationError("\(flag) is empty") }
        return Set(values)
    }

    func validate() throws {
        _ = try Self.indices(layers, flag: "--layers")
        _ = try Self.indices(heads, flag: "--heads")
        guard !prompt.isEmpty else { throw ValidationError("--prompt is empty") }
    }

    func run() throws {
        let model = try options.load()
        let tokenizer = try loadTokenizer(modelDirectory: options.directory)
        let tokens = tokenizer.encode(prompt, addSpecialTokens: true)
        guard tokens.count <= AttentionMaps.maxTokens else {
            throw RuntimeError("the prompt has \(tokens.count) tokens; the matrices are drawn for at most \(AttentionMaps.maxTokens)")
        }
        let wantedLayers = try Self.indices(layers, flag: "--layers")
        if let bad = wantedLayers?.first(where: { $0 >= model.info.layerCount }) {
            throw RuntimeError("--layers: the model has \(model.info.layerCount) layers (0–\(model.info.layerCount - 1)), not \(bad)")
        }
        let all = try AttentionMaps.compute(model: model, tokens: tokens)
        let chosen = all.filter { wantedLayers?.contains($0.layer) ?? true }
        let labels = tokens.map { tokenizer.piece(for: $0) ?? "\($0)" }
        let name = options.directory.standardizedFileURL.lastPathComponent
        let dir = URL(fileURLWithPath: out)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let shown = prompt.count > 24 ? prompt.prefix(24) + "…" : prompt            // the title fits the picture
        let files = try AttentionPlot.write(chosen, labels: labels, title: "\(name) · 「\(shown)」 (\(tokens.count) tokens)",
                                            into: dir, heads: try Self.indices(heads, flag: "--heads"))
        print("layer  kind       maps  reach (tokens)  scan rebuilt from the matrix (max relative error)")
        for l in chosen {
            print(String(format: "%5d  ", l.layer) + l.kind.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0)
                  + String(format: "  %4d  %14.2f  ", l.maps.count, l.meanReach) + (l.identityError.map { String(format: "%.1e", $0) } ?? "—"))
        }
        printError("wrote \(files.count) files into \(out)")
    }
}
