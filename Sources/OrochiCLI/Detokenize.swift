import ArgumentParser
import Foundation
import Orochi

struct Detokenize: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the text of a list of token ids.")

    @OptionGroup var source: TokenizerSource

    @Option(name: .long, help: "Token ids separated by spaces or commas, e.g. \"1 4 2817\".")
    var ids: String

    func validate() throws { _ = try parseIdsOption(ids, flag: "--ids") }

    func run() throws {
        let tokenizer = try source.load()
        let parsed = try parseIdsOption(ids, flag: "--ids")
        try tokenizer.validate(ids: parsed)
        print(tokenizer.decode(parsed))
    }
}
