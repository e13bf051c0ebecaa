import AgentryCore
import AgentryRuntime
import AgentryStore
import Foundation
import Logging
import PostgresNIO
import Testing

@Suite("Locks", .serialized)
struct LockTests {
    @Test("a held resource is granted to its waiters CRITICAL, then NORMAL, then LOW, whatever order they queued in")
    func priorityOrder() async throws {
        try await withLockManagers(2) { managers, _, events in
            let resource = device(TestEnvironment.uniqueName("prio-"))
            let holder = try await managers[0].acquire([resource], owner: .agent("holder"), hold: .seconds(30))
            #expect(try await managers[0].isAvailable(resource) == false)
            let order = Collector<String>()
            try await withThrowingTaskGroup(of: Void.self) { group in
                // Queued LOW first, CRITICAL last, from two managers (two hosts).
                for (index, priority) in [Priority.low, .normal, .critical].enumerated() {
                    group.addTask {
                        let manager = managers[index % 2]
                        let hold = try await manager.acquire(
                            [resource], owner: .agent("waiter-\(priority.name)"), priority: priority,
                            hold: .seconds(30), wait: .seconds(30))
                        await order.append(priority.name)
                        try await Task.sleep(for: .milliseconds(30))
                        await manager.release(hold)
                    }
                    _ = try await waitForWaiters(managers[0], resource, count: index + 1)
                }
                let status = try await managers[0].status(resource)
                #expect(status.holder?.owner == .agent("holder"))
                #expect(status.holder?.fencingToken == holder.fencingToken)
                #expect(status.waiters.map(\.owner.id) == ["waiter-CRITICAL", "waiter-NORMAL", "waiter-LOW"])
                #expect(status.waiters.map(\.position) == [1, 2, 3])
                await managers[0].release(holder)
                try await group.waitForAll()
            }
            #expect(await order.values == ["CRITICAL", "NORMAL", "LOW"])
            #expect(try await managers[0].isAvailable(resource))
            // Events: each waiter announced its position when it queued (each newcomer ranked first), and every grant
            // and release, with increasing fencing tokens.
            _ = try await TestEnvironment.eventually {
                await events.values.filter { $0.payload["resource_id"]?.stringValue == resource.id }.count == 11
            }
            let mine = await events.values.filter { $0.payload["resource_id"]?.stringValue == resource.id }
            let queued = mine.filter { $0.type == "resource.queued" }
            #expect(queued.map { $0.payload["owner_id"]?.stringValue ?? "" } == ["waiter-LOW", "waiter-NORMAL", "waiter-CRITICAL"])
            let positions: [JSONValue?] = queued.map { $0.payload["position"] }
            #expect(positions == [.int(1), .int(1), .int(1)])
            func token(_ event: Event) -> Int64 { event.payload["fencing_token"]?.intValue ?? 0 }
            let acquired = mine.filter { $0.type == "resource.acquired" }.sorted { token($0) < token($1) }
            let owners: [String] = acquired.map { $0.payload["owner_id"]?.stringValue ?? "" }
            #expect(owners == ["holder", "waiter-CRITICAL", "waiter-NORMAL", "waiter-LOW"])
            #expect(mine.filter { $0.type == "resource.released" }.count == 4)
            #expect(acquired.allSatisfy { $0.payload["resource_type"]?.stringValue == "device" && $0.source == "agentry.locks" })
        }
    }

    @Test("only the owner releases; a stranger is told who holds it; releasing a free resource is an error too")
    func releaseByOwnerOnly() async throws {
        try await withLockManagers { managers, _, _ in
            let manager = managers[0]
            let resource = device(TestEnvironment.uniqueName("own-"))
            _ = try await manager.acquire([resource], owner: .agent("alice"), hold: .seconds(30))
            let error = await #expect(throws: LockError.self) { try await manager.release(resource, owner: .user("bob")) }
            #expect(error?.code == .notOwner)
            #expect(error?.message == "cannot release \(resource): it is held by agent alice, not user bob")
            #expect(try await manager.isAvailable(resource) == false)
            try await manager.release(resource, owner: .agent("alice"))
            #expect(try await manager.isAvailable(resource))
            let again = await #expect(throws: LockError.self) { try await manager.release(resource, owner: .agent("alice")) }
            #expect(again?.code == .notHeld)
            let bad = await #expect(throws: LockError.self) {
                try await manager.acquire([ResourceKey(type: "printer", id: "p1")], owner: .agent("alice"), hold: .seconds(1))
            }
            #expect(bad?.message.contains("unknown resource type 'printer'") == true)
        }
    }

    @Test("a waiter gives up after its bounded wait with a clear outcome, and leaves the queue")
    func boundedWait() async throws {
        try await withLockManagers { managers, _, _ in
            let manager = managers[0]
            let resource = device(TestEnvironment.uniqueName("wait-"))
            let hold = try await manager.acquire([resource], owner: .agent("holder"), hold: .seconds(30))
            let error = await #expect(throws: LockError.self) {
                try await manager.acquire([resource], owner: .agent("patient"), hold: .seconds(5), wait: .milliseconds(700))
            }
            #expect(error?.code == .timedOut)
            #expect(error?.message.contains("gave up: \(resource) held by holder until") == true, "\(error?.message ?? "")")
            #expect(try await manager.status(resource).waiters.isEmpty)
            // Without a wait it only tries.
            let now = await #expect(throws: LockError.self) { try await manager.acquire([resource], owner: .agent("eager"), hold: .seconds(5)) }
            #expect(now?.code == .unavailable)
            await manager.release(hold)
        }
    }

    @Test("a request that may wait fails with the reason when the notification session cannot open, instead of hanging")
    func notificationSessionUnavailable() async throws {
        // Nothing listens on port 1: every connection the manager opens is refused.
        let database = Database(
            configuration: try DatabaseConfiguration(url: "postgres://agentry:agentry@127.0.0.1:1/agentry"),
            logger: TestEnvironment.logger)
        var options = LockManager.Options()
        options.listenTimeout = .seconds(1)
        let manager = LockManager(database: database, workerID: "lock-test-unreachable", options: options, logger: TestEnvironment.logger) { _ in }
        let running = Task { await manager.run() }
        let started = ContinuousClock.now
        let error = await #expect(throws: LockError.self) {
            try await manager.acquire([device("unreachable")], owner: .agent("patient"), hold: .seconds(5), wait: .seconds(60))
        }
        let waited = ContinuousClock.now - started
        manager.shutdown()
        await running.value
        #expect(error?.code == .database)
        #expect(
            error?.message.hasPrefix("cannot wait for resources: the lock notification session did not open within 1.0 s (") == true,
            "\(error?.message ?? "")")
        // The reason is the connection's own error, not a guess.
        #expect(error?.message.contains("no answer yet") == false, "\(error?.message ?? "")")
        #expect(waited < .seconds(10), "gave up after \(waited)")
    }

    @Test("a hold past its expiry is taken back, its task is told, and the next waiter gets the resource")
    func expiry() async throws {
        try await withLockManagers { managers, _, events in
            let manager = managers[0]
            let resource = device(TestEnvironment.uniqueName("exp-"))
            let losses = Collector<LockLoss>()
            let task = Task { try await Task.sleep(for: .seconds(30)) }
            let hold = try await manager.acquire([resource], owner: .agent("slow"), hold: .seconds(1)) { loss in
                task.cancel()
                Task { await losses.append(loss) }
            }
            let started = ContinuousClock.now
            let next = try await manager.acquire([resource], owner: .agent("next"), hold: .seconds(10), wait: .seconds(10))
            let waited = ContinuousClock.now - started
            #expect(waited < .seconds(3), "waited \(waited)")
            #expect(next.fencingToken > hold.fencingToken)
            await #expect(throws: CancellationError.self) { try await task.value }
            _ = try await TestEnvironment.eventually { await losses.count == 1 }
            #expect(await losses.values == [.expired(resource, at: hold.expiresAt)])
            #expect(hold.isHeld == false)
            await manager.release(hold)  // harmless after expiry
            #expect(try await manager.status(resource).holder?.owner == .agent("next"))
            await manager.release(next)
            _ = try await TestEnvironment.eventually {
                await events.values.contains { $0.type == "resource.expired" && $0.payload["resource_id"]?.stringValue == resource.id }
            }
        }
    }

    @Test("a holder that does not give back an expired lock (hung) has its session ended by a waiter")
    func takeBackFromHungHolder() async throws {
        var options = LockManager.Options()
        options.takebackGrace = .milliseconds(300)
        try await withLockManagers(options: options) { managers, database, events in
            let manager = managers[0]
            let resource = device(TestEnvironment.uniqueName("hung-"))
            // A holder that takes the lock through the SQL function and then never does anything again.
            let hung = try await PostgresConnection.connect(
                configuration: database.configuration.connectionConfiguration, id: 77, logger: TestEnvironment.logger)
            let rows = try await LockStore.acquire(
                .init(
                    requestID: UUID(), resources: [resource], owner: .agent("hung"), priority: .normal,
                    hold: .milliseconds(500), waitFor: nil, waiterPID: 0, workerID: nil, runID: nil,
                    takebackGrace: .seconds(5)), on: hung, logger: TestEnvironment.logger)
            #expect(rows.map(\.granted) == [true])
            let started = ContinuousClock.now
            let hold = try await manager.acquire([resource], owner: .agent("rescuer"), hold: .seconds(10), wait: .seconds(10))
            #expect(ContinuousClock.now - started < .seconds(4))
            #expect(hold.fencingToken > (rows[0].fencingToken ?? .max))
            _ = try await TestEnvironment.eventually { hung.isClosed }
            #expect(hung.isClosed)
            try? await hung.close()
            let expired = await events.values.first { $0.type == "resource.expired" && $0.payload["resource_id"]?.stringValue == resource.id }
            #expect(expired?.payload["owner_id"]?.stringValue == "hung")
            #expect(expired?.payload["taken_back_by"]?.stringValue == "rescuer")
            await manager.release(hold)
        }
    }

    @Test("a holder whose session is terminated learns it at once, and the waiter gets the resource")
    func sessionTerminated() async throws {
        try await withLockManagers(2) { managers, database, _ in
            let resource = device(TestEnvironment.uniqueName("term-"))
            let losses = Collector<LockLoss>()
            let hold = try await managers[0].acquire([resource], owner: .agent("victim"), hold: .seconds(60)) { loss in
                Task { await losses.append(loss) }
            }
            let pid = try #require(try await managers[0].status(resource).holder?.holderPID)
            let waiter = Task { try await managers[1].acquire([resource], owner: .agent("heir"), hold: .seconds(10), wait: .seconds(10)) }
            _ = try await waitForWaiters(managers[0], resource, count: 1)
            let started = ContinuousClock.now
            try await database.client.query("SELECT pg_terminate_backend(\(pid)::integer)", logger: TestEnvironment.logger)
            let next = try await waiter.value
            #expect(ContinuousClock.now - started < .seconds(2))
            _ = try await TestEnvironment.eventually(timeout: .seconds(3)) { await losses.count == 1 }
            guard case .connectionLost(let resources, _)? = await losses.values.first else {
                Issue.record("expected a lost connection, got \(await losses.values)")
                return
            }
            #expect(resources == [resource])
            #expect(hold.isHeld == false)
            #expect(next.fencingToken > hold.fencingToken)
            await managers[1].release(next)
        }
    }

    @Test("16 owners on two hosts contending for 4 resources never hold one at once; {A,B} and {B,A} never deadlock")
    func contention() async throws {
        try await withLockManagers(2) { managers, _, _ in
            let prefix = TestEnvironment.uniqueName("cont-")
            let resources = (0..<4).map { device("\(prefix)-\($0)") }
            let intervals = Collector<(resource: ResourceKey, token: Int64, start: ContinuousClock.Instant, end: ContinuousClock.Instant)>()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for owner in 0..<16 {
                    group.addTask {
                        let manager = managers[owner % 2]
                        for round in 0..<8 {
                            // Every fourth request needs two resources, in either order.
                            var wanted = [resources[(owner + round) % 4]]
                            if round % 4 == 3 { wanted = owner % 2 == 0 ? [resources[0], resources[1]] : [resources[1], resources[0]] }
                            let hold = try await manager.acquire(
                                wanted, owner: .agent("owner-\(owner)"),
                                priority: Priority.allCases[owner % 4], hold: .seconds(30), wait: .seconds(60))
                            let start = ContinuousClock.now
                            try await Task.sleep(for: .milliseconds(3))
                            let end = ContinuousClock.now
                            await manager.release(hold)
                            for resource in hold.resources {
                                await intervals.append((resource, hold.fencingTokens[resource] ?? 0, start, end))
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            let all = await intervals.values
            let expected = 16 * (6 + 2 * 2)  // six rounds with one resource, two with two
            #expect(all.count == expected)
            for resource in resources {
                let spans = all.filter { $0.resource == resource }.sorted { $0.start < $1.start }
                for (a, b) in zip(spans, spans.dropFirst()) {
                    #expect(a.end <= b.start, "\(resource): two holders at once")
                    #expect(a.token < b.token, "\(resource): fencing tokens must grow with every grant")
                }
            }
        }
    }
}
