// swift-tools-version: 6.1
import PackageDescription
import Foundation

// libFuzzer targets for Orochi's untrusted inputs (issue 11). A separate package, like
// Benchmarks/, so that `make test` / `make run` never build them. Build and run with
// `make fuzz-smoke` / `make fuzz` (mk/fuzz.mk), which pass `--sanitize=fuzzer --sanitize=address`;
// built without them the targets do not link (libFuzzer provides `main`).
//
// The root package is a path dependency, whose identity is its folder's name.
let root = URL(fileURLWithPath: Context.packageDirectory).deletingLastPathComponent()
let rootIdentity = root.lastPathComponent.lowercased()
let orochi = Target.Dependency.product(name: "Orochi", package: rootIdentity)

// One executable per input family; the name after "Fuzz" (lower-cased, dashed) is the corpus folder.
let fuzzers = ["FuzzSafetensors", "FuzzConfigLlama", "FuzzConfigMamba", "FuzzConfigJamba", "FuzzSentencePiece",
               "FuzzHFTokenizer", "FuzzSnapshot", "FuzzCLIParsers", "FuzzChatTemplate", "FuzzGGUF",
               "FuzzQuantBlocks"]

let package = Package(
    name: "OrochiFuzz",
    dependencies: [.package(path: "..")],
    targets: [
        .target(name: "FuzzCommon", dependencies: [orochi], path: "Sources/FuzzCommon"),
    ] + fuzzers.map {
        .executableTarget(name: $0, dependencies: [orochi, "FuzzCommon"], path: "Sources/\($0)",
                          swiftSettings: [.unsafeFlags(["-parse-as-library"])])
    },
    swiftLanguageModes: [.v5]
)
