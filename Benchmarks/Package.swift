// swift-tools-version: 6.1
import PackageDescription
import Foundation

// The root package is a path dependency, whose identity is its folder's name (whatever the
// clone is called), so it is computed here rather than spelled.
let root = URL(fileURLWithPath: Context.packageDirectory).deletingLastPathComponent()
let rootIdentity = root.lastPathComponent.lowercased()

// Micro-benchmarks of Orochi's kernels (ordo-one/benchmark). A separate package, so that the
// root package's `make test` / `make run` never build the benchmark dependency.
// Run with `make microbench` (or `swift package --disable-sandbox benchmark` in this folder).
let package = Package(
    name: "OrochiBenchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "OrochiMicro",
            dependencies: [
                .product(name: "Orochi", package: rootIdentity),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/OrochiMicro",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
