// swift-tools-version: 6.1
import PackageDescription

// Layers, each depending only on those below:
//   COpenBLAS → Orochi (Kernels → Loading → Tokenizer → Models → Runtime) → OrochiCLI (`orochi`)
let release: [SwiftSetting] = [
    // Hot loops index raw buffers; bounds and overflow checks are off in release builds only.
    .unsafeFlags(["-Ounchecked", "-wmo"], .when(configuration: .release)),
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
