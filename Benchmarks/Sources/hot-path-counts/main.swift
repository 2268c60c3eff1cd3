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

let paths = try HotPaths(root: checkoutRoot())
var sink = 0
for operation in paths.operations where only.isEmpty || only.contains(operation.name) {
    for _ in 0..<max(10, iterations / 10) { sink &+= try await operation.run() }
    herald_callgrind_begin()
    for _ in 0..<iterations { sink &+= try await operation.run() }
    operation.name.withCString { herald_callgrind_end($0) }
    print("\(operation.name)\t\(iterations)")
}
if sink == 42 { print("") }  // keeps the results alive
