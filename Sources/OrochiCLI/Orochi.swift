import ArgumentParser
import Orochi

/// The `orochi` command: a thin shell over the Orochi library. Each subcommand parses its
/// options, calls the library, and prints; errors reach stderr with a non-zero exit status.
@main
struct OrochiCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "orochi",
        abstract: "Run and measure small language models (a transformer and a state-space model) on the CPU.",
        version: Orochi.version,
        subcommands: [
            Generate.self,
            Chat.self,
            Forward.self,
            Inspect.self,
            Quantize.self,
            Tokenize.self,
            Detokenize.self,
            PerplexityCommand.self,
            Bench.self,
            AttentionCommand.self,
            TraceCommand.self,
            ExplainCommand.self,
            Serve.self,
        ]
    )

    /// `orochi serve …` passes every argument, --help included, to orochi-server untouched.
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "serve" {
            do { try Serve.exec(Array(arguments.dropFirst())) } catch { exit(withError: error) }
        }
        main(arguments)
    }
}
