// swift-tools-version: 6.1
import Foundation
import PackageDescription

// Layers, each depending only on those below:
//   COpenBLAS → Orochi (Kernels → Loading → Tokenizer → Models → Runtime) → OrochiCLI (`orochi`)
// Release builds: hot loops index raw buffers, so bounds and overflow checks are off; on x86-64
// the vector code targets AVX2/FMA (Haswell, 2013, and later). OROCHI_TARGET_CPU=x86-64 builds
// for older processors, or names another LLVM CPU.
#if arch(x86_64)
let targetCPU = ["-target-cpu", ProcessInfo.processInfo.environment["OROCHI_TARGET_CPU"] ?? "haswell"]
#else
let targetCPU: [String] = []
#endif
let release: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked", "-wmo"] + targetCPU, .when(configuration: .release)),
]

let package = Package(
    name: "Orochi",
    products: [
        .library(name: "Orochi", targets: ["Orochi"]),
        .executable(name: "orochi", targets: ["OrochiCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .systemLibrary(
            name: "COpenBLAS",
            path: "Sources/COpenBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        .target(
            name: "Orochi",
            dependencies: ["COpenBLAS"],
            swiftSettings: release
        ),
        .executableTarget(
            name: "OrochiCLI",
            dependencies: [
                "Orochi",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: release
        ),
        .testTarget(
            name: "OrochiTests",
            dependencies: ["Orochi"],
            resources: [.copy("Fixtures")]
        ),
    ],
    swiftLanguageModes: [.v5]
)
