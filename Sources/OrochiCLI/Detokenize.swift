import ArgumentParser
import Foundation
import Orochi

struct Detokenize: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the text of a list of token ids.")

    @OptionGroup var source: TokenizerSource

    @Option(name: .long, help: "Token ids separated by spaces or commas, e.g. \"1 4 2817\".")
    var ids: String

    func run() throws {
        let tokenizer = try source.load()
        var parsed: [Int] = []
        for field in ids.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "\t" || $0 == "\n" }) {
            guard let id = Int(field) else { throw ValidationError("--ids: \"\(field)\" is not an integer") }
            parsed.append(id)
        }
        try tokenizer.validate(ids: parsed)
        print(tokenizer.decode(parsed))
    }
}
