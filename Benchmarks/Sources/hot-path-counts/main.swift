import CCallgrind
import Foundation
import HotPathFixtures

// Runs each hot-path operation `iterations` times after a warm-up, bracketing the measured loop
// with callgrind client requests: under `valgrind --tool=callgrind --instr-atstart=no` every
// operation becomes one dump whose instruction total, divided by the iterations, is its cost.
// Benchmarks/callgrind runs it and makes the table. Outside valgrind it only runs the loops.
//
//   hot-path-counts [--iterations N] [--only NAME]...

var iterations = 500
var only: [String] = []
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--iterations": iterations = arguments.popFirst().flatMap(Int.init) ?? iterations
    case "--only": only.append(arguments.popFirst() ?? "")
    case "--list":
        for operation in try HotPaths(root: checkoutRoot()).operations { print("\(operation.name)\t\(operation.summary)") }
        exit(0)
    default:
        FileHandle.standardError.write(Data("usage: hot-path-counts [--iterations N] [--only NAME]... [--list]\n".utf8))
        exit(2)
    }
}

// The main thread stays synchronous and waits for one task that runs every loop: valgrind 3.19 dies
// inside libdispatch when `main` itself is async (top-level `await` parks the main thread in
// dispatch_main), but runs a task started from a synchronous main. Detached: top-level code is on
// the main actor, whose queue nobody drains while the main thread waits.
let paths = try HotPaths(root: checkoutRoot())
let selected = paths.operations.filter { only.isEmpty || only.contains($0.name) }
let rounds = iterations
let finished = DispatchSemaphore(value: 0)
nonisolated(unsafe) var failure: (any Error)?
Task.detached {
    do {
        var sink = 0
        for operation in selected {
            for _ in 0..<max(10, rounds / 10) { sink &+= try await operation.run() }
            herald_callgrind_begin()
            for _ in 0..<rounds { sink &+= try await operation.run() }
            operation.name.withCString { herald_callgrind_end($0) }
            print("\(operation.name)\t\(rounds)")
        }
        if sink == 42 { print("") }  // keeps the results alive
    } catch {
        failure = error
    }
    finished.signal()
}
finished.wait()
if let failure {
    FileHandle.standardError.write(Data("hot-path-counts: \(failure)\n".utf8))
    exit(1)
}
