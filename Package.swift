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
        .executableTarget(
            name: "kite",
            dependencies: [
                "KiteJSON", "KiteTensor", "KiteCUDA", "KiteGGUF", "KiteTokenizers", "KiteModels", "KiteEngine", "KiteTrain", "KiteRL",
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
    ]
)
