// swift-tools-version: 6.1
import Foundation
import PackageDescription

// Orochi's OpenAI-compatible HTTP server (`orochi-server`, run by `orochi serve`; docs/server.md),
// on Hummingbird 2. A package of its own, like Benchmarks/ and Fuzz/, so that `make run` and the
// sanitizer runs of the root package never build Hummingbird and SwiftNIO; `make server` builds
// it, `make test` runs its tests after the root package's.
//
// The root package is a path dependency, whose identity is its folder's name.
let root = URL(fileURLWithPath: Context.packageDirectory).deletingLastPathComponent()
let rootIdentity = root.lastPathComponent.lowercased()
let orochi = Target.Dependency.product(name: "Orochi", package: rootIdentity)

#if arch(x86_64)
let targetCPU = ["-target-cpu", ProcessInfo.processInfo.environment["OROCHI_TARGET_CPU"] ?? "haswell"]
#else
let targetCPU: [String] = []
#endif
// As the root package's parsing code: optimised, every check kept.
let checked: [SwiftSetting] = [.unsafeFlags(["-wmo"] + targetCPU, .when(configuration: .release))]

let package = Package(
    name: "OrochiServer",
    products: [
        .executable(name: "orochi-server", targets: ["OrochiServerCommand"]),
    ],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // No traits: Hummingbird's swift-configuration support is not used.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
    ],
    targets: [
        .target(
            name: "OrochiServer",
            dependencies: [
                orochi,
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: checked
        ),
        .executableTarget(
            name: "OrochiServerCommand",
            dependencies: [
                "OrochiServer",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: checked
        ),
        .testTarget(
            name: "OrochiServerTests",
            dependencies: [
                "OrochiServer", orochi,
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["Fixtures"]
        ),
    ],
    swiftLanguageModes: [.v5]
)
