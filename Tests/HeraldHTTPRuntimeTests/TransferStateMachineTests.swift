import Testing

@testable import HeraldHTTPRuntime

@Suite("TransferStateMachine")
struct TransferStateMachineTests {
    typealias Machine = TransferStateMachine<String>

    /// Reserves an ID and submits `job`, returning the ID and the action.
    private func submit(_ machine: inout Machine, _ job: String) -> (TransferID, Machine.SubmitAction) {
        let id = machine.reserveID()
        return (id, machine.submit(id, job: job))
    }

    private func isWake(_ action: Machine.SubmitAction) -> Bool {
        if case .wakeLoop = action { return true }
        return false
    }

    private func isNone(_ action: Machine.SubmitAction) -> Bool {
        if case .none = action { return true }
        return false
    }

    @Test func submissionsBeforeStartWaitForTheLoop() {
        var machine = Machine(maxActive: 4)
        let (_, first) = self.submit(&machine, "a")
        let (_, second) = self.submit(&machine, "b")
        #expect(self.isNone(first))
        #expect(self.isNone(second))
        #expect(machine.pendingCount == 2)
        // No loop yet: nothing starts.
        #expect(machine.nextLoopWork().start.isEmpty)

        #expect(machine.start() == .startLoop)
        #expect(machine.start() == .alreadyStarted)
        let work = machine.nextLoopWork()
        #expect(work.start.map(\.1) == ["a", "b"])
        #expect(machine.activeCount == 2)
        #expect(machine.pendingCount == 0)
    }

    @Test func capacityBoundsActiveTransfersAndQueueIsFIFO() {
        var machine = Machine(maxActive: 2)
        _ = machine.start()
        _ = machine.nextLoopWork()
        var ids: [TransferID] = []
        for job in ["a", "b", "c", "d", "e"] {
            ids.append(self.submit(&machine, job).0)
        }
        var work = machine.nextLoopWork()
        #expect(work.start.map(\.1) == ["a", "b"])
        #expect(machine.activeCount == 2)
        #expect(machine.pendingCount == 3)

        // At capacity, nothing more starts until something finishes.
        #expect(machine.nextLoopWork().start.isEmpty)
        // A submission at capacity does not wake the loop (it will look after a completion).
        let (_, atCapacity) = self.submit(&machine, "f")
        #expect(self.isNone(atCapacity))

        machine.transferFinished(ids[0])
        work = machine.nextLoopWork()
        #expect(work.start.map(\.1) == ["c"])
        machine.transferFinished(ids[1])
        machine.transferFinished(ids[2])
        work = machine.nextLoopWork()
        #expect(work.start.map(\.1) == ["d", "e"])
        #expect(machine.activeCount == 2)
        #expect(machine.pendingCount == 1)
    }

    @Test func wakeUpsAreCoalescedUntilTheLoopTakesWork() {
        var machine = Machine(maxActive: 8)
        _ = machine.start()
        _ = machine.nextLoopWork()
        #expect(self.isWake(self.submit(&machine, "a").1))
        #expect(self.isNone(self.submit(&machine, "b").1))
        _ = machine.nextLoopWork()
        #expect(self.isWake(self.submit(&machine, "c").1))
    }

    @Test func completionFreesCapacity() {
        var machine = Machine(maxActive: 1)
        _ = machine.start()
        let (a, _) = self.submit(&machine, "a")
        _ = self.submit(&machine, "b")
        #expect(machine.nextLoopWork().start.map(\.1) == ["a"])
        machine.transferFinished(a)
        #expect(machine.activeCount == 0)
        #expect(machine.nextLoopWork().start.map(\.1) == ["b"])
        // Cancelling a finished transfer does nothing.
        if case .none = machine.cancel(a) {} else { Issue.record("cancel of a finished transfer must be a no-op") }
    }

    @Test func cancellingAPendingTransferHandsBackItsJob() {
        var machine = Machine(maxActive: 1)
        _ = machine.start()
        _ = self.submit(&machine, "a")
        let (b, _) = self.submit(&machine, "b")
        _ = self.submit(&machine, "c")
        _ = machine.nextLoopWork()  // "a" active

        guard case .failPending(let job) = machine.cancel(b) else {
            Issue.record("expected .failPending")
            return
        }
        #expect(job == "b")
        #expect(machine.pendingCount == 1)
        // Cancelling twice is harmless.
        if case .none = machine.cancel(b) {} else { Issue.record("second cancel must be a no-op") }
        // "b" never starts; "c" is next.
        let activeID = TransferID(rawValue: 1)
        machine.transferFinished(activeID)
        #expect(machine.nextLoopWork().start.map(\.1) == ["c"])
    }

    @Test func cancellingAnActiveTransferAsksTheLoopToRemoveIt() {
        var machine = Machine(maxActive: 1)
        _ = machine.start()
        let (a, _) = self.submit(&machine, "a")
        _ = self.submit(&machine, "b")
        _ = machine.nextLoopWork()

        guard case .wakeLoop = machine.cancel(a) else {
            Issue.record("expected .wakeLoop")
            return
        }
        // Repeated cancellation is delivered once.
        if case .none = machine.cancel(a) {} else { Issue.record("second cancel must be a no-op") }
        var work = machine.nextLoopWork()
        #expect(work.cancel == [a])
        #expect(work.start.isEmpty)  // still occupying its slot until the loop reports it finished
        machine.transferFinished(a)
        work = machine.nextLoopWork()
        #expect(work.cancel.isEmpty)
        #expect(work.start.map(\.1) == ["b"])
    }

    @Test func cancellationBeforeSubmitFailsTheSubmission() {
        var machine = Machine(maxActive: 1)
        _ = machine.start()
        let id = machine.reserveID()
        if case .none = machine.cancel(id) {} else { Issue.record("cancel before submit must be recorded only") }
        guard case .fail(let job, let failure) = machine.submit(id, job: "a") else {
            Issue.record("expected .fail")
            return
        }
        #expect(job == "a")
        #expect(failure == .cancelled)
        #expect(machine.pendingCount == 0)
        #expect(machine.nextLoopWork().start.isEmpty)
    }

    @Test func shutdownFailsPendingAbortsActiveAndRefusesNewWork() {
        var machine = Machine(maxActive: 2)
        _ = machine.start()
        for job in ["a", "b", "c", "d"] { _ = self.submit(&machine, job) }
        _ = machine.nextLoopWork()  // a, b active; c, d pending

        guard case .wakeLoop(let failed) = machine.shutdown() else {
            Issue.record("expected .wakeLoop")
            return
        }
        #expect(failed == ["c", "d"])
        #expect(machine.phase == .shuttingDown)
        let work = machine.nextLoopWork()
        #expect(work.shutdown)
        #expect(work.start.isEmpty)

        guard case .fail(let job, let failure) = self.submit(&machine, "e").1 else {
            Issue.record("expected .fail after shutdown")
            return
        }
        #expect(job == "e")
        #expect(failure == .shutdown)
        if case .none = machine.shutdown() {} else { Issue.record("second shutdown must be a no-op") }

        machine.loopStopped()
        #expect(machine.phase == .stopped)
        #expect(machine.activeCount == 0)
        guard case .fail(_, .shutdown) = self.submit(&machine, "f").1 else {
            Issue.record("expected .fail after stop")
            return
        }
        #expect(machine.start() == .alreadyStarted)
    }

    @Test func shutdownBeforeStartFailsQueuedWork() {
        var machine = Machine(maxActive: 2)
        _ = self.submit(&machine, "a")
        guard case .stopped(let failed) = machine.shutdown() else {
            Issue.record("expected .stopped")
            return
        }
        #expect(failed == ["a"])
        #expect(machine.phase == .stopped)
    }

    @Test func queueSurvivesManyCancellations() {
        var machine = Machine(maxActive: 1)
        _ = machine.start()
        var ids: [TransferID] = []
        for index in 0..<5000 {
            ids.append(self.submit(&machine, "job\(index)").0)
        }
        // Cancel every pending job except the last ten.
        for id in ids.dropFirst().dropLast(10) {
            guard case .failPending = machine.cancel(id) else {
                Issue.record("expected .failPending for \(id)")
                return
            }
        }
        #expect(machine.pendingCount == 11)
        var started: [String] = []
        var previous: TransferID? = nil
        while true {
            if let previous { machine.transferFinished(previous) }
            let work = machine.nextLoopWork()
            guard let (id, job) = work.start.first else { break }
            #expect(work.start.count == 1)
            started.append(job)
            previous = id
        }
        #expect(started == ["job0"] + (4990..<5000).map { "job\($0)" })
    }
}
