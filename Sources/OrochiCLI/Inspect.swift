import ArgumentParser
import Foundation
import Orochi

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Describe a model: architecture, parameters, dtypes, shapes, context and cache or state size.")

    @OptionGroup var options: ModelOptions

    func run() throws {
        let model = try options.load()
        for (key, value) in describe(model) { print(key.padding(toLength: 34, withPad: " ", startingAt: 0) + value) }
    }
}
