import Benchmark
import HotPathFixtures

// ordo-one/benchmark over the same operations as the callgrind counter (Sources/HotPathFixtures):
//   swift package --package-path Benchmarks benchmark
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .instructions],
        maxDuration: .seconds(2), maxIterations: 100_000)
    let paths: HotPaths
    do {
        paths = try HotPaths(root: checkoutRoot())
    } catch {
        fatalError("\(error)")
    }
    for operation in paths.operations {
        Benchmark(operation.name) { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(try await operation.run())
            }
        }
    }
}
