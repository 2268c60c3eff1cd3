// swift-tools-version: 6.1
import PackageDescription

// Herald's micro-benchmarks, in their own package so that building Herald never builds them.
//
//   swift package --package-path Benchmarks benchmark          ordo-one/benchmark: time, mallocs
//   Benchmarks/callgrind [--out FILE]                          instructions per operation (valgrind)
//
// Both run the same operations (Sources/HotPathFixtures): the gateway's request decode + validate,
// routing, template rendering, job encode/decode, the provider request build and signing, and the
// outcome classification. See bench/results/README.md.
let package = Package(
    name: "HeraldBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Herald", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.0", traits: ["MallocInterposer"]),
    ],
    targets: [
        .target(name: "CCallgrind"),
        .target(
            name: "HotPathFixtures",
            dependencies: [.product(name: "HeraldHotPaths", package: "Herald")]
        ),
        .executableTarget(
            name: "hot-path-counts",
            dependencies: ["HotPathFixtures", "CCallgrind"]
        ),
        .executableTarget(
            name: "HotPaths",
            dependencies: ["HotPathFixtures", .product(name: "Benchmark", package: "benchmark")],
            path: "Benchmarks/HotPaths",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
