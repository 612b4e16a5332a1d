// swift-tools-version: 6.1
import Foundation
import PackageDescription

// Layers, each depending only on those below:
//   COrochiKernels (C: CPU dispatch, OpenBLAS loader, thread pool, one-token kernels)
//   → OrochiKernels (Swift kernels) → Orochi (Loading → Tokenizer → Models → Runtime)
//   → OrochiBench (the benchmark harness), OrochiTeaching (pictures) → OrochiCLI (`orochi`)
//   The OpenAI-compatible HTTP server (`orochi-server`, on Hummingbird) is a package of its own in
//   Server/, like Benchmarks/ and Fuzz/: `orochi serve` execs it, so neither `make run` nor the
//   sanitizer runs build Hummingbird and SwiftNIO.
//
// Release builds: only the kernels run without bounds and overflow checks (-Ounchecked): their
// buffers are sized from a configuration checked before they are called. Everything that parses
// input — loaders, tokenizers, snapshots, the runtime and the CLI — keeps its checks (-O).
// On x86-64 the Swift vector code targets AVX2/FMA (Haswell, 2013, and later); OROCHI_TARGET_CPU
// names another LLVM CPU (x86-64 for older processors). The C kernels pick AVX-512, AVX2 or
// portable code at run time, whatever the build.
#if arch(x86_64)
let targetCPU = ["-target-cpu", ProcessInfo.processInfo.environment["OROCHI_TARGET_CPU"] ?? "haswell"]
#else
let targetCPU: [String] = []
#endif
let kernels: [SwiftSetting] = [.unsafeFlags(["-Ounchecked", "-wmo"] + targetCPU, .when(configuration: .release))]
// OROCHI_UNCHECKED=1 builds everything -Ounchecked: only to measure what the checks cost.
let checkedMode = ProcessInfo.processInfo.environment["OROCHI_UNCHECKED"] == "1" ? ["-Ounchecked"] : []
let checked: [SwiftSetting] = [.unsafeFlags(checkedMode + ["-wmo"] + targetCPU, .when(configuration: .release))]

let package = Package(
    name: "Orochi",
    products: [
        .library(name: "Orochi", targets: ["Orochi"]),
        .library(name: "OrochiBench", targets: ["OrochiBench"]),
        .executable(name: "orochi", targets: ["OrochiCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // OpenBLAS is loaded at run time (dlopen), not linked: see Sources/COrochiKernels/blas.c.
        .target(
            name: "COrochiKernels",
            cSettings: [.unsafeFlags(["-O3", "-fno-math-errno"], .when(configuration: .release))],
            linkerSettings: [.linkedLibrary("dl"), .linkedLibrary("pthread"), .linkedLibrary("m")]
        ),
        .target(name: "OrochiKernels", dependencies: ["COrochiKernels"], swiftSettings: kernels),
        .target(name: "Orochi", dependencies: ["OrochiKernels"], swiftSettings: checked),
        .target(name: "OrochiBench", dependencies: ["Orochi"], swiftSettings: checked),
        // The teaching tools' pictures (attention maps, hidden attention, reach).
        .target(name: "OrochiTeaching", dependencies: ["Orochi", "OrochiBench"], swiftSettings: checked),
        .executableTarget(
            name: "OrochiCLI",
            dependencies: [
                "Orochi", "OrochiBench", "OrochiTeaching",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: checked
        ),
        .testTarget(
            name: "OrochiTests",
            dependencies: ["Orochi", "OrochiBench", "OrochiTeaching"],
            resources: [.copy("Fixtures")]
        ),
    ],
    swiftLanguageModes: [.v5]
)
