import AgentryCore
import AgentryRuntime
import AgentryStore
import Foundation
import Logging
import Testing

/// Agents' lock managers and a hold keeper in this process, on the test database: the keeper (or another process's,
/// whichever leads) keeps the holds the desk asks for.
func withHoldKeeper(
    managers count: Int = 2, _ body: @Sendable ([LockManager], HoldDesk, Database) async throws -> Void
) async throws {
    try await withLockManagers(count) { managers, database, _ in
        let keeper = HoldKeeper(database: database, keeperID: TestEnvironment.uniqueName("hold-keeper-"), logger: TestEnvironment.logger) { _ in }
        let running = Task { await keeper.run() }
        do {
            try await waitForHoldKeeper(database)
            try await body(managers, HoldDesk(database: database, logger: TestEnvironment.logger), database)
        } catch {
            running.cancel()
            await running.value
            throw error
        }
        running.cancel()
        await running.value
    }
}

/// Waits until a hold keeper (this process's or another's) leads: a request finds none otherwise.
func waitForHoldKeeper(_ database: Database) async throws {
    let store = LockHoldStore(database: database, logger: TestEnvironment.logger)
    let found = try await TestEnvironment.eventually(timeout: .seconds(30)) { try await store.keeper() != nil }
    #expect(found, "no hold keeper started leading within 30 s")
}

/// A request of `owner` (a person) for `resource`.
func personRequest(
    _ resource: ResourceKey, _ owner: String, for hold: Duration = .seconds(300), wait: Duration = .zero, priority: Priority = .normal
) -> LockHoldRequest {
    LockHoldRequest(resource: resource, owner: .user(owner), priority: priority, holdFor: hold, wait: wait, requestedBy: "tests")
}

@Suite("People's holds", .serialized)
struct LockHoldTests {
    let agentry = TestEnvironment.agentryExecutable

    @Test("agentry locks acquire holds a device for a person after the command exits; someone else's release is refused; the owner gives it back")
    func acquireAndRelease() async throws {
        try await withHoldKeeper { managers, desk, _ in
            let resource = device(TestEnvironment.uniqueName("hold-cli-"))
            let taken = try TestEnvironment.run(agentry, ["locks", "acquire", resource.description, "--owner", "alice", "--for", "10m"])
            #expect(taken.status == 0, "\(taken.output)")
            #expect(taken.output.contains("\(resource) held by user alice until"), "\(taken.output)")
            // The command has exited; the hold is a lock like an agent's, held by the keeper.
            let status = try await managers[0].status(resource)
            #expect(status.holder?.owner == .user("alice"))
            let until = try #require(status.holder?.expiresAt)
            #expect(abs(until.timeIntervalSinceNow - 600) < 30, "held until \(until)")
            let shown = try TestEnvironment.run(agentry, ["locks", "show", resource.description, "--json"])
            let json = try JSON.parse(Array(shown.output.utf8))
            #expect(json[path: "owner"]?.stringValue == "alice")
            #expect(json[path: "owner_type"]?.stringValue == "user")
            #expect(json[path: "expires_at"]?.stringValue == Timestamp.format(until))

            let again = try TestEnvironment.run(agentry, ["locks", "acquire", resource.description, "--owner", "alice"])
            #expect(again.status != 0)
            #expect(again.output.contains("user alice already asked for or holds \(resource)"), "\(again.output)")

            let refused = try TestEnvironment.run(agentry, ["locks", "release", resource.description, "--owner", "bob"])
            #expect(refused.status != 0)
            #expect(refused.output.contains("cannot release \(resource): it is held by user alice until"), "\(refused.output)")
            #expect(refused.output.contains("not by user bob"), "\(refused.output)")
            #expect(try await managers[0].status(resource).holder?.owner == .user("alice"))

            let listed = try TestEnvironment.run(agentry, ["locks", "holds"])
            #expect(listed.output.contains(resource.description) && listed.output.contains("held"), "\(listed.output)")

            let given = try TestEnvironment.run(agentry, ["locks", "release", resource.description, "--owner", "alice"])
            #expect(given.status == 0, "\(given.output)")
            #expect(given.output.contains("user alice gave back \(resource)"), "\(given.output)")
            #expect(try await TestEnvironment.eventually { try await managers[0].isAvailable(resource) })
            let record = try #require(try await desk.store.list(resource: resource).first)
            #expect(record.state == .released)
            #expect(record.freedAt != nil)

            let nothing = try TestEnvironment.run(agentry, ["locks", "release", resource.description, "--owner", "alice"])
            #expect(nothing.status != 0)
            #expect(nothing.output.contains("nobody"), "\(nothing.output)")
        }
    }

    @Test("--wait gives up after its time, naming the holder and until when; the request is withdrawn")
    func waitTimesOut() async throws {
        try await withHoldKeeper { managers, desk, _ in
            let resource = device(TestEnvironment.uniqueName("hold-wait-"))
            let agentHold = try await managers[0].acquire([resource], owner: .agent("screen-triage"), priority: .low, hold: .seconds(60))
            let started = ContinuousClock.now
            let refused = try TestEnvironment.run(agentry, ["locks", "acquire", resource.description, "--owner", "carol", "--wait", "2s"])
            let waited = ContinuousClock.now - started
            #expect(refused.status != 0)
            #expect(
                refused.output.contains("\(resource) is held by agent screen-triage until \(Timestamp.format(agentHold.expiresAt))"),
                "\(refused.output)")
            #expect(waited >= .seconds(2), "gave up after \(waited)")
            #expect(waited < .seconds(15), "gave up after \(waited)")
            #expect(try await desk.store.list(resource: resource).first?.state == .timedOut)
            // Withdrawn: nobody waits any more, the agent still holds it.
            let status = try await managers[0].status(resource)
            #expect(status.waiters.isEmpty)
            #expect(status.holder?.owner == .agent("screen-triage"))

            // Without --wait: granted only if free now.
            let busy = try TestEnvironment.run(agentry, ["locks", "acquire", resource.description, "--owner", "carol"])
            #expect(busy.status != 0)
            #expect(busy.output.contains("held by agent screen-triage"), "\(busy.output)")
            await managers[0].release(agentHold)
        }
    }

    @Test("a hold expires at the end of its time: the waiting agent gets the device")
    func expiryFreesIt() async throws {
        try await withHoldKeeper { managers, desk, _ in
            let resource = device(TestEnvironment.uniqueName("hold-expiry-"))
            let held = try await desk.take(personRequest(resource, "dave", for: .seconds(2)))
            #expect(held.state == .held)
            let heir = Task {
                try await managers[0].acquire([resource], owner: .agent("lab-rebooter"), priority: .normal, hold: .seconds(30), wait: .seconds(20))
            }
            let waiting = try await waitForWaiters(managers[0], resource, count: 1)
            #expect(waiting.holder?.owner == .user("dave"))
            let agentHold = try await heir.value
            #expect(agentHold.acquiredAt >= held.holdUntil!.addingTimeInterval(-0.5), "the agent got it before the hold ran out")
            #expect(agentHold.fencingToken > held.fencingToken!)
            #expect(try await TestEnvironment.eventually { try await desk.store.hold(held.id)?.state == .expired })
            await managers[0].release(agentHold)
        }
    }

    @Test("a person's request queues by priority among agents' requests: HIGH before the agents' NORMAL and LOW, and they follow in order")
    func priorityOrdering() async throws {
        try await withHoldKeeper(managers: 3) { managers, desk, _ in
            let resource = device(TestEnvironment.uniqueName("hold-prio-"))
            let first = try await managers[0].acquire([resource], owner: .agent("first"), priority: .normal, hold: .seconds(60))
            let low = Task {
                try await managers[1].acquire([resource], owner: .agent("low"), priority: .low, hold: .seconds(60), wait: .seconds(40))
            }
            _ = try await waitForWaiters(managers[0], resource, count: 1)
            let person = Task { try await desk.take(personRequest(resource, "erin", wait: .seconds(40), priority: .high)) }
            _ = try await waitForWaiters(managers[0], resource, count: 2)
            let normal = Task {
                try await managers[2].acquire([resource], owner: .agent("normal"), priority: .normal, hold: .seconds(60), wait: .seconds(40))
            }
            let queue = try await waitForWaiters(managers[0], resource, count: 3)
            #expect(queue.waiters.map(\.owner) == [.user("erin"), .agent("normal"), .agent("low")], "\(queue.waiters)")

            await managers[0].release(first)
            let erin = try await person.value
            #expect(erin.state == .held)
            #expect(try await managers[0].status(resource).holder?.owner == .user("erin"))

            _ = try await desk.giveBack(resource, owner: .user("erin"), by: "tests")
            let second = try await normal.value
            #expect(second.owner == .agent("normal"))
            #expect(try await managers[0].status(resource).waiters.map(\.owner) == [.agent("low")])
            await managers[2].release(second)
            let third = try await low.value
            #expect(third.owner == .agent("low"))
            #expect(first.fencingToken < erin.fencingToken! && erin.fencingToken! < second.fencingToken && second.fencingToken < third.fencingToken)
            await managers[1].release(third)
        }
    }

    @Test("when the keeper that holds a person's hold stops, the next keeper takes it again for the time it has left")
    func failover() async throws {
        try await withLockManagers(1) { managers, database, _ in
            let desk = HoldDesk(database: database, logger: TestEnvironment.logger)
            let firstID = TestEnvironment.uniqueName("keeper-a-")
            let secondID = TestEnvironment.uniqueName("keeper-b-")
            let first = HoldKeeper(database: database, keeperID: firstID, logger: TestEnvironment.logger) { _ in }
            let firstRun = Task { await first.run() }
            try await waitForHoldKeeper(database)
            let resource = device(TestEnvironment.uniqueName("hold-failover-"))
            let held = try await desk.take(personRequest(resource, "hana"))
            #expect(held.keeperID == firstID, "this test's first keeper leads (no other keeper may run on the test database)")
            let second = HoldKeeper(database: database, keeperID: secondID, logger: TestEnvironment.logger) { _ in }
            let secondRun = Task { await second.run() }
            firstRun.cancel()
            await firstRun.value
            #expect(
                try await TestEnvironment.eventually(timeout: .seconds(15)) {
                    let record = try await desk.store.hold(held.id)
                    return record?.keeperID == secondID && record?.state == .held && record?.fencingToken != held.fencingToken
                })
            let status = try await managers[0].status(resource)
            #expect(status.holder?.owner == .user("hana"))
            #expect(status.holder?.workerID == secondID)
            // The same end as before: only the time it had left.
            let again = try #require(try await desk.store.hold(held.id))
            #expect(abs(again.holdUntil!.timeIntervalSince(held.holdUntil!)) < 1, "\(again.holdUntil!) vs \(held.holdUntil!)")
            _ = try await desk.giveBack(resource, owner: .user("hana"), by: "tests")
            #expect(try await TestEnvironment.eventually { try await managers[0].isAvailable(resource) })
            secondRun.cancel()
            await secondRun.value
        }
    }

    @Test("a forced release ends a person's hold for good: the keeper does not take it again")
    func forcedRelease() async throws {
        try await withHoldKeeper { managers, desk, _ in
            let resource = device(TestEnvironment.uniqueName("hold-force-"))
            let held = try await desk.take(personRequest(resource, "frank"))
            let forced = try TestEnvironment.run(agentry, ["locks", "release", resource.description, "--force"])
            #expect(forced.status == 0, "\(forced.output)")
            #expect(forced.output.contains("took it from user frank"), "\(forced.output)")
            #expect(try await desk.store.hold(held.id)?.state == .released)
            // The keeper sweeps every second: over three of them, nobody takes it again.
            let retaken = try await TestEnvironment.eventually(timeout: .seconds(3)) { try await !managers[0].isAvailable(resource) }
            #expect(!retaken)
        }
    }
}
