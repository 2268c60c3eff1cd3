import Logging
import Synchronization
import Testing

@testable import HeraldHTTPRuntime

let testLogger = Logger(label: "herald.http-runtime.tests", factory: { _ in SwiftLogNoOpLogHandler() })

/// Runs `body` with a started runtime, then cancels `run()` and waits for it to return.
func withRuntime<T>(
    _ configuration: CurlRuntime.Configuration = .init(),
    _ body: (CurlRuntime) async throws -> T
) async throws -> T {
    let runtime = CurlRuntime(configuration: configuration, logger: testLogger)
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await runtime.run() }
        do {
            let result = try await body(runtime)
            group.cancelAll()
            try await group.waitForAll()
            return result
        } catch {
            group.cancelAll()
            try? await group.waitForAll()
            throw error
        }
    }
}

func withServer<T>(_ body: (TestHTTPServer) async throws -> T) async throws -> T {
    let server = try await TestHTTPServer.start()
    do {
        let result = try await body(server)
        try await server.stop()
        return result
    } catch {
        try? await server.stop()
        throw error
    }
}

/// A local request: the SSRF guard must be off to reach 127.0.0.1.
func local(
    _ url: String,
    method: String = "GET",
    headers: [HTTPHeaderField] = [],
    body: [UInt8] = [],
    timeout: Duration = .seconds(10)
) -> HTTPRequest {
    HTTPRequest(
        method: method,
        url: url,
        headers: headers,
        body: body,
        timeout: timeout,
        restrictToPublicAddresses: false
    )
}

struct WaitTimedOut: Error {}

/// Polls `condition` until it holds; throws after `timeout` instead of hanging.
func waitUntil(
    timeout: Duration = .seconds(20),
    sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: () -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        guard ContinuousClock.now < deadline else {
            Issue.record("condition not met within \(timeout)", sourceLocation: sourceLocation)
            throw WaitTimedOut()
        }
        try await Task.sleep(for: .milliseconds(2))
    }
}

func expectTransferError(
    _ code: TransferError.Code,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ operation: () async throws -> Void
) async -> TransferError? {
    do {
        try await operation()
        Issue.record("expected TransferError \(code), got success", sourceLocation: sourceLocation)
        return nil
    } catch let error as TransferError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected TransferError \(code), got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

@Suite("CurlRuntime over real sockets", .timeLimit(.minutes(2)))
struct CurlRuntimeTests {
    @Test func postEchoesBodyAndHeaders() async throws {
        try await withServer { server in
            try await withRuntime { runtime in
                let payload = Array("{\"hello\":\"world\"}".utf8)
                let response = try await runtime.execute(
                    local(
                        server.url("/echo"),
                        method: "POST",
                        headers: [HTTPHeaderField("Content-Type", "application/json"), HTTPHeaderField("X-Token", "abc 123")],
                        body: payload
                    )
                )
                #expect(response.status == 200)
                #expect(response.body == payload)
                #expect(response.header("x-echo-method") == "POST")
                #expect(response.header("X-ECHO-CONTENT-TYPE") == "application/json")
                #expect(response.header("x-echo-x-token") == "abc 123")
                #expect(response.header("x-echo-user-agent") == "Herald/0.1")
                #expect(response.header("x-echo-content-length") == "\(payload.count)")
                // libcurl's defaults we suppress:
                #expect(response.header("x-echo-expect") == nil)
                #expect(response.totalTime > .zero)
                #expect(!response.bodyTruncated)
            }
        }
    }

    @Test func otherMethodsAndBinaryBodies() async throws {
        try await withServer { server in
            try await withRuntime { runtime in
                let binary: [UInt8] = (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 31) }
                let put = try await runtime.execute(local(server.url("/echo"), method: "PUT", body: binary))
                #expect(put.header("X-Echo-Method") == "PUT")
                #expect(put.body == binary)
                // No invented form content type for raw bodies.
                #expect(put.header("X-Echo-Content-Type") == nil)

                let delete = try await runtime.execute(local(server.url("/echo"), method: "DELETE"))
                #expect(delete.header("X-Echo-Method") == "DELETE")

                let get = try await runtime.execute(local(server.url("/echo?x=1")))
                #expect(get.header("X-Echo-Method") == "GET")
                #expect(get.body.isEmpty)

                let head = try await runtime.execute(local(server.url("/bytes?n=10"), method: "HEAD"))
                #expect(head.status == 200)
                #expect(head.body.isEmpty)
            }
        }
    }

    @Test func serverErrorIsAResponseNotAnError() async throws {
        try await withServer { server in
            try await withRuntime { runtime in
                let response = try await runtime.execute(local(server.url("/status/500")))
                #expect(response.status == 500)
                #expect(response.body == Array("status 500".utf8))
                let tooMany = try await runtime.execute(local(server.url("/status/429")))
                #expect(tooMany.status == 429)
            }
        }
    }

    @Test func redirectsAreNotFollowed() async throws {
        try await withServer { server in
            try await withRuntime { runtime in
                let response = try await runtime.execute(local(server.url("/redirect")))
                #expect(response.status == 302)
                #expect(response.header("location") == "/echo")
                #expect(response.body == Array("moved".utf8))
            }
        }
    }

    @Test func responseHeadersKeepOrderAndDuplicates() async throws {
        try await withServer { server in
            try await withRuntime { runtime in
                let response = try await runtime.execute(local(server.url("/headers")))
                #expect(response.headers(named: "set-cookie") == ["a=1", "b=2"])
                #expect(response.header("x-mixed-case") == "padded value")
                #expect(response.headers.contains(HTTPHeaderField("X-MiXeD-Case", "padded value")))
            }
        }
    }

    @Test func responseBodyIsCapped() async throws {
        try await withServer { server in
            var configuration = CurlRuntime.Configuration()
            configuration.maxResponseBodyBytes = 100_000
            try await withRuntime(configuration) { runtime in
                let small = try await runtime.execute(local(server.url("/bytes?n=100000")))
                #expect(small.body.count == 100_000)
                #expect(!small.bodyTruncated)

                let big = try await runtime.execute(local(server.url("/bytes?n=2000000")))
                #expect(big.status == 200)
                #expect(big.bodyTruncated)
                #expect(big.body.count == 100_000)
                #expect(big.body.allSatisfy { $0 == UInt8(ascii: "a") })

                // The runtime is fine afterwards.
                let after = try await runtime.execute(local(server.url("/status/204")))
                #expect(after.status == 204)
            }
        }
    }

    @Test func timeoutIsReportedAsMayHaveBeenSent() async throws {
        try await withServer { server in
            try await withRuntime { runtime in
                let clock = ContinuousClock()
                let started = clock.now
                let error = await expectTransferError(.timeout) {
                    _ = try await runtime.execute(local(server.url("/slow?ms=3000"), timeout: .milliseconds(300)))
                }
                #expect(error?.requestMayHaveBeenSent == true)
                #expect(error?.curlCode == 28)
                #expect(clock.now - started < .seconds(2))
            }
        }
    }

    @Test func connectionRefusedIsConnectFailed() async throws {
        // Bind a port, then close it so nothing listens there.
        let server = try await TestHTTPServer.start()
        let url = server.url("/echo")
        try await server.stop()
        try await withRuntime { runtime in
            let error = await expectTransferError(.connectFailed) {
                _ = try await runtime.execute(local(url))
            }
            #expect(error?.requestMayHaveBeenSent == false)
        }
    }

    @Test func closedWithoutResponseIsReceiveFailed() async throws {
        try await withServer { server in
            try await withRuntime { runtime in
                let error = await expectTransferError(.receiveFailed) {
                    _ = try await runtime.execute(local(server.url("/close"), method: "POST", body: [1, 2, 3]))
                }
                #expect(error?.requestMayHaveBeenSent == true)
            }
        }
    }

    @Test func ssrfGuardBlocksLoopbackUnlessAllowed() async throws {
        try await withServer { server in
            try await withRuntime { runtime in
                // Default: restricted.
                for url in [server.url("/echo"), "http://localhost:\(server.port)/echo", "http://[::1]:\(server.port)/echo"] {
                    let error = await expectTransferError(.blockedAddress) {
                        _ = try await runtime.execute(HTTPRequest(url: url))
                    }
                    #expect(error?.requestMayHaveBeenSent == false)
                }
                #expect(server.stats.requests == 0)
                #expect(server.stats.connections == 0)

                let allowed = try await runtime.execute(local(server.url("/echo")))
                #expect(allowed.status == 200)
            }
        }
    }

    @Test func ssrfGuardAlsoChecksReusedConnections() async throws {
        try await withServer { server in
            try await withRuntime { runtime in
                // An unrestricted transfer leaves a keep-alive connection to 127.0.0.1 in the cache…
                let allowed = try await runtime.execute(local(server.url("/echo")))
                #expect(allowed.status == 200)
                #expect(server.stats.connections == 1)
                // …which a restricted transfer to the same origin must not reuse.
                _ = await expectTransferError(.blockedAddress) {
                    _ = try await runtime.execute(HTTPRequest(method: "POST", url: server.url("/echo"), body: [1]))
                }
                #expect(server.stats.connections == 1)
                // Only the first request reached the server.
                try await Task.sleep(for: .milliseconds(50))
                #expect(server.stats.requests == 1)
                // The unrestricted path keeps working (libcurl closed the refused
                // connection, so this one may open a new connection).
                let echoed = try await runtime.execute(local(server.url("/status/200")))
                #expect(echoed.status == 200)
                #expect(server.stats.requests == 2)
            }
        }
    }

    @Test func connectionsAreReused() async throws {
        try await withServer { server in
            try await withRuntime { runtime in
                for _ in 0..<50 {
                    let response = try await runtime.execute(local(server.url("/echo"), method: "POST", body: [1, 2, 3]))
                    #expect(response.status == 200)
                }
                #expect(server.stats.connections == 1)
            }
        }
    }

    @Test func manyConcurrentTransfersAreBoundedAndAllComplete() async throws {
        try await withServer { server in
            var configuration = CurlRuntime.Configuration()
            configuration.maxConcurrentTransfers = 32
            try await withRuntime(configuration) { runtime in
                let total = 2000
                let clock = ContinuousClock()
                let started = clock.now
                let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                    for _ in 0..<total {
                        group.addTask {
                            try await runtime.execute(local(server.url("/slow?ms=5"), timeout: .seconds(60))).status
                        }
                    }
                    var statuses: [Int] = []
                    for try await status in group { statuses.append(status) }
                    return statuses
                }
                let elapsed = clock.now - started
                #expect(statuses.count == total)
                #expect(statuses.allSatisfy { $0 == 200 })
                #expect(server.stats.requests == total)
                // Never more than maxConcurrentTransfers at the server, but real parallelism.
                #expect(server.stats.maxInProgress <= 32)
                #expect(server.stats.maxInProgress > 8)
                #expect(server.stats.connections <= 32)
                #expect(runtime.inFlight == (0, 0))
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                print("throughput: \(total) transfers (5 ms server delay, 32 concurrent) in \(elapsed) = \(Int(Double(total) / seconds)) transfers/s")
            }
        }
    }

    @Test func throughputWithoutServerDelay() async throws {
        try await withServer { server in
            var configuration = CurlRuntime.Configuration()
            configuration.maxConcurrentTransfers = 64
            try await withRuntime(configuration) { runtime in
                let total = 5000
                let clock = ContinuousClock()
                let started = clock.now
                let ok = try await withThrowingTaskGroup(of: Bool.self) { group in
                    for _ in 0..<total {
                        group.addTask {
                            try await runtime.execute(local(server.url("/echo"), method: "POST", body: Array("ping".utf8))).status == 200
                        }
                    }
                    var ok = 0
                    for try await success in group where success { ok += 1 }
                    return ok
                }
                let elapsed = clock.now - started
                #expect(ok == total)
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                print("throughput: \(total) POST /echo (64 concurrent) in \(elapsed) = \(Int(Double(total) / seconds)) transfers/s")
            }
        }
    }

    @Test func cancelledActiveTransferThrowsCancellationErrorAndRuntimeStaysHealthy() async throws {
        try await withServer { server in
            try await withRuntime { runtime in
                let clock = ContinuousClock()
                let started = clock.now
                let task = Task {
                    try await runtime.execute(local(server.url("/slow?ms=5000")))
                }
                // Wait until the server has the request, so the transfer is really active.
                try await waitUntil { server.stats.inProgress > 0 }
                task.cancel()
                let result = await task.result
                #expect(throws: CancellationError.self) { try result.get() }
                #expect(clock.now - started < .seconds(3))
                #expect(runtime.inFlight == (0, 0))

                let after = try await runtime.execute(local(server.url("/echo"), method: "POST", body: [42]))
                #expect(after.status == 200)
                #expect(after.body == [42])
            }
        }
    }

    @Test func cancelledPendingTransferNeverReachesTheServer() async throws {
        try await withServer { server in
            var configuration = CurlRuntime.Configuration()
            configuration.maxConcurrentTransfers = 1
            try await withRuntime(configuration) { runtime in
                let blocker = Task { try await runtime.execute(local(server.url("/slow?ms=20000"))) }
                try await waitUntil { server.stats.inProgress > 0 }
                let queued = Task { try await runtime.execute(local(server.url("/echo"))) }
                try await waitUntil { runtime.inFlight.pending > 0 }
                #expect(runtime.inFlight == (1, 1))
                queued.cancel()
                let result = await queued.result
                #expect(throws: CancellationError.self) { try result.get() }
                #expect(runtime.inFlight == (0, 1))

                blocker.cancel()
                await #expect(throws: CancellationError.self) { try await blocker.value }
                #expect(runtime.inFlight == (0, 0))
                // Only the blocker's request ever reached the server.
                #expect(server.stats.requests == 1)
            }
        }
    }

    @Test func alreadyCancelledTaskFailsImmediately() async throws {
        try await withServer { server in
            try await withRuntime { runtime in
                let task = Task {
                    withUnsafeCurrentTask { $0?.cancel() }
                    return try await runtime.execute(local(server.url("/echo")))
                }
                let result = await task.result
                #expect(throws: CancellationError.self) { try result.get() }
                #expect(server.stats.requests == 0)
            }
        }
    }

    @Test func executeBeforeRunWaitsForTheLoop() async throws {
        try await withServer { server in
            let runtime = CurlRuntime(logger: testLogger)
            let early = Task { try await runtime.execute(local(server.url("/echo"), method: "POST", body: [7])) }
            try await waitUntil { runtime.inFlight.pending == 1 }
            try await Task.sleep(for: .milliseconds(100))
            #expect(runtime.inFlight == (1, 0))
            #expect(server.stats.requests == 0)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await runtime.run() }
                let response = try await early.value
                #expect(response.body == [7])
                group.cancelAll()
                try await group.waitForAll()
            }
        }
    }

    @Test func shutdownFailsInFlightAndLaterTransfers() async throws {
        try await withServer { server in
            var configuration = CurlRuntime.Configuration()
            configuration.maxConcurrentTransfers = 1
            let runtime = CurlRuntime(configuration: configuration, logger: testLogger)
            let runTask = Task { try await runtime.run() }
            let active = Task { try await runtime.execute(local(server.url("/slow?ms=5000"))) }
            try await waitUntil { server.stats.inProgress > 0 }
            let pending = Task { try await runtime.execute(local(server.url("/echo"))) }
            try await waitUntil { runtime.inFlight.pending > 0 }

            let clock = ContinuousClock()
            let started = clock.now
            runTask.cancel()
            try await runTask.value  // returns once the loop thread has exited
            #expect(clock.now - started < .seconds(2))

            let activeError = await expectTransferError(.shutdown) { _ = try await active.value }
            #expect(activeError?.requestMayHaveBeenSent == true)
            let pendingError = await expectTransferError(.shutdown) { _ = try await pending.value }
            #expect(pendingError?.requestMayHaveBeenSent == false)
            _ = await expectTransferError(.shutdown) {
                _ = try await runtime.execute(local(server.url("/echo")))
            }
            // run() can only be called once.
            _ = await expectTransferError(.invalidRequest) { try await runtime.run() }
        }
    }

    @Test func invalidRequestsAreRejectedUpFront() async throws {
        try await withRuntime { runtime in
            let bad: [HTTPRequest] = [
                HTTPRequest(url: "file:///etc/passwd"),
                HTTPRequest(url: "ftp://example.com/"),
                HTTPRequest(url: "not a url"),
                HTTPRequest(url: "example.com/path"),
                HTTPRequest(method: "GE T", url: "http://example.com/"),
                HTTPRequest(url: "http://example.com/", headers: [HTTPHeaderField("X-Evil", "a\r\nInjected: 1")]),
                HTTPRequest(url: "http://example.com/", headers: [HTTPHeaderField("Bad Name", "v")]),
                HTTPRequest(url: "http://example.com/", timeout: .zero),
            ]
            for request in bad {
                _ = await expectTransferError(.invalidRequest) { _ = try await runtime.execute(request) }
            }
        }
    }
}

@Suite("CurlRuntime loop")
struct CurlRuntimeLoopTests {
    @Test func idleLoopSleepsInsteadOfSpinning() async throws {
        try await withRuntime { runtime in
            try await Task.sleep(for: .milliseconds(100))
            let before = runtime.loopIterations.load(ordering: .relaxed)
            try await Task.sleep(for: .milliseconds(1500))
            let after = runtime.loopIterations.load(ordering: .relaxed)
            // curl_multi_poll waits up to 1 s when there is nothing to do.
            #expect(after - before <= 3, "loop ran \(after - before) iterations while idle")
        }
    }

    @Test func wakeFdInterruptsThePoll() async throws {
        try await withServer { server in
            var configuration = CurlRuntime.Configuration()
            configuration.loopPollTimeout = .seconds(30)
            try await withRuntime(configuration) { runtime in
                for _ in 0..<3 {
                    // Let the loop fall asleep in curl_multi_poll (30 s), then submit.
                    try await Task.sleep(for: .milliseconds(200))
                    let clock = ContinuousClock()
                    let started = clock.now
                    let response = try await runtime.execute(local(server.url("/echo")))
                    #expect(response.status == 200)
                    #expect(clock.now - started < .seconds(5), "submission waited for the poll timeout")
                }
                // Cancellation and shutdown must interrupt the long poll as well.
                let task = Task { try await runtime.execute(local(server.url("/slow?ms=20000"))) }
                try await waitUntil { server.stats.inProgress > 0 }
                let clock = ContinuousClock()
                let started = clock.now
                task.cancel()
                await #expect(throws: CancellationError.self) { try await task.value }
                #expect(clock.now - started < .seconds(5))
            }
        }
    }
}
