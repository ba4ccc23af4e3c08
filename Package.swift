// swift-tools-version: 6.1
import PackageDescription
import Foundation

/// The CPU that the SIMD kernels are compiled for. `native` suits a binary that runs where it was built;
/// a binary for another machine needs an explicit portable target, e.g. `KITE_TARGET_CPU=haswell`
/// (AVX2 + FMA) or `skylake-avx512`. Without FMA in the target, `addProduct` becomes a libm call per lane.
let targetCPU = ProcessInfo.processInfo.environment["KITE_TARGET_CPU"] ?? "native"

/// Kernel targets are optimised even in debug builds: an unoptimised SIMD loop is 100x slower,
/// which would make every test that runs a model crawl.
let kernelSettings: [SwiftSetting] = [.unsafeFlags(["-O", "-target-cpu", targetCPU])]
let cpuSettings: [SwiftSetting] = [.unsafeFlags(["-target-cpu", targetCPU])]

let package = Package(
    name: "Kite",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "kite", targets: ["kite"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // No traits: Hummingbird's default `FullFoundation` would link Foundation (and ICU) into the binary.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        .target(name: "KiteJSON", swiftSettings: kernelSettings),
        .target(name: "KiteTensor", swiftSettings: kernelSettings),
        .target(name: "KiteCUDA", dependencies: ["KiteTensor"], swiftSettings: cpuSettings),
        .target(name: "KiteGGUF", swiftSettings: kernelSettings),
        .target(name: "KiteTokenizers", dependencies: ["KiteGGUF", "KiteJSON"], swiftSettings: kernelSettings),
        .target(name: "KiteModels", dependencies: ["KiteTensor", "KiteGGUF", "KiteJSON"], swiftSettings: cpuSettings),
        .target(name: "KiteTrain", dependencies: ["KiteTensor", "KiteModels", "KiteJSON"], swiftSettings: cpuSettings),
        .target(name: "KiteEngine", dependencies: ["KiteModels", "KiteTensor", "KiteTokenizers", "KiteJSON"], swiftSettings: cpuSettings),
        .target(name: "KiteRL", dependencies: ["KiteJSON", "KiteTensor", "KiteModels", "KiteEngine", "KiteTrain", "KiteTokenizers"], swiftSettings: cpuSettings),
        .target(
            name: "KiteServer",
            dependencies: [
                "KiteEngine", "KiteModels", "KiteTensor", "KiteTokenizers", "KiteJSON", "KiteRL", "KiteTrain",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: cpuSettings
        ),
        .executableTarget(
            name: "kite",
            dependencies: [
                "KiteJSON", "KiteTensor", "KiteCUDA", "KiteGGUF", "KiteTokenizers", "KiteModels", "KiteEngine", "KiteTrain", "KiteRL", "KiteServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: cpuSettings
        ),
        .testTarget(name: "KiteJSONTests", dependencies: ["KiteJSON"]),
        .testTarget(name: "KiteTensorTests", dependencies: ["KiteTensor"]),
        .testTarget(name: "KiteCUDATests", dependencies: ["KiteCUDA", "KiteTensor", "KiteModels"]),
        .testTarget(name: "KiteGGUFTests", dependencies: ["KiteGGUF"]),
        .testTarget(name: "KiteTokenizersTests", dependencies: ["KiteTokenizers", "KiteGGUF", "KiteJSON"]),
        .testTarget(name: "KiteModelsTests", dependencies: ["KiteModels", "KiteTensor", "KiteTrain", "KiteJSON"]),
        .testTarget(name: "KiteTrainTests", dependencies: ["KiteTrain", "KiteModels", "KiteTensor", "KiteJSON"]),
        .testTarget(name: "KiteEngineTests", dependencies: ["KiteEngine", "KiteModels", "KiteTensor", "KiteJSON", "KiteTokenizers"]),
        .testTarget(name: "KiteRLTests", dependencies: ["KiteRL", "KiteJSON", "KiteEngine", "KiteModels", "KiteTensor", "KiteTrain"]),
        .testTarget(name: "KiteCLITests", dependencies: ["kite", "KiteJSON", "KiteModels", "KiteTensor"]),
        .testTarget(
            name: "KiteServerTests",
            dependencies: [
                "KiteServer", "KiteEngine", "KiteModels", "KiteTensor", "KiteJSON", "KiteRL", "kite",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ]
)
