import ArgumentParser
import Foundation
import Orochi

/// `orochi trace`: the next token's walk through the forward pass, step by step.
struct TraceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Print every step of the forward pass of the prompt's next token: layer, operation, shapes, multiply-adds, bytes read, time, cache or state.",
        discussion: """
            Prefills the prompt, then decodes its most likely next token with the forward pass's timers on (the \
            timers of `bench`'s component breakdown and `generate --profile`). Shapes, multiply-adds and bytes are \
            the step's own arithmetic; times are measured once, so they are noisy on a busy machine.
            """)

    enum Format: String, ExpressibleByArgument { case table, json }

    @OptionGroup var options: ModelOptions

    @Option(name: .long, help: "The prompt, encoded with the model's tokenizer.")
    var prompt: String?

    @Option(name: .long, help: "The prompt as token ids, e.g. \"1 2 3\".")
    var promptIds: String?

    @Option(name: .long, help: "Output format.")
    var format: Format = .table

    func validate() throws {
        guard (prompt == nil) != (promptIds == nil) else { throw ValidationError("give --prompt or --prompt-ids (one of them)") }
        if let promptIds { _ = try parseIdsOption(promptIds, flag: "--prompt-ids") }
    }

    func run() throws {
        let model = try options.load()
        let ids: [Int]
        if let prompt {
            ids = try loadTokenizer(modelDirectory: options.directory).encode(prompt, addSpecialTokens: true)
        } else {
            ids = try parseIdsOption(promptIds!, flag: "--prompt-ids")
        }
        let trace = try Trace.run(model: model, prompt: ids)
        if format == .json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            emit(String(decoding: try encoder.encode(trace), as: UTF8.self) + "\n")
            return
        }
        func col(_ s: String, _ n: Int) -> String { s.count >= n ? String(s.prefix(n - 1)) + " " : s.padding(toLength: n, withPad: " ", startingAt: 0) }
        print("\(trace.architecture): token \(trace.token) after \(trace.promptTokens) tokens of prompt")
        print(col("layer", 7) + col("step", 26) + col("operation", 72) + col("shapes", 44)
              + " mult-adds  weights B    other B  " + col("cache/state", 17) + "      µs")
        for s in trace.steps {
            let state = s.cacheBytesAdded > 0 ? "+\(s.cacheBytesAdded) grows" : s.stateBytesOverwritten > 0 ? "\(s.stateBytesOverwritten) rewritten" : ""
            print(col(s.layer.map(String.init) ?? "—", 7) + col(s.component, 26) + col(s.operation, 72) + col(s.shapes, 44)
                  + String(format: "%9d  %9d  %9d  ", s.multiplyAdds, s.weightBytes, s.otherBytes) + col(state, 17)
                  + String(format: "%8.1f", s.seconds * 1e6))
        }
        print(String(format: "total: %.3f ms, %d multiply-adds, %d bytes of weights + %d other bytes read; the cache grows by %d bytes, %d bytes of state are rewritten in place",
                     trace.seconds * 1000, trace.multiplyAdds, trace.weightBytes, trace.otherBytes, trace.cacheBytesAdded, trace.stateBytesOverwritten))
        print("by component (as bench's breakdown): " + trace.secondsByComponent.sorted { $0.value > $1.value }
            .map { String(format: "%@ %.1f µs", $0.key, $0.value * 1e6) }.joined(separator: ", "))
    }
}
