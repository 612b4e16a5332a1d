import ArgumentParser
import Foundation
import Orochi

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Describe a model: architecture, parameters, dtypes, shapes, context and cache or state size.")

    @OptionGroup var options: ModelOptions

    func run() throws {
        let model = try options.load()
        var lines = describe(model)
        // Every weight is scanned: NaN or infinity in a checkpoint makes every output garbage.
        let nonFinite = try nonFiniteWeights(model)
        lines.append(("non-finite weights", nonFinite.isEmpty ? "none"
            : "\(nonFinite.reduce(0) { $0 + $1.count }) values in \(nonFinite.count) tensors"))
        for (tensor, count) in nonFinite { lines.append(("", "\(tensor): \(count) NaN or infinite values")) }
        for (key, value) in lines { print(key.padding(toLength: 34, withPad: " ", startingAt: 0) + value) }
        if !nonFinite.isEmpty { printError("warning: \(nonFinite.count) weight tensors hold NaN or infinite values") }
    }
}
