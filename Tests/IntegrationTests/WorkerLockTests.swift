import AgentryBus
import AgentryCore
import AgentryRuntime
import AgentryStore
import Foundation
import Logging
import PostgresNIO
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A handler that reports when it held its resources (nanoseconds), its fencing token and what it held, after
/// sleeping `payload.sleep` seconds (default 0.03).
private let reportingHandler = #"""
    exec:
      command: [/bin/sh, -c, 'start=$(date +%s%N); sleep "${SLEEP:-0.03}"; end=$(date +%s%N); printf "{\"start\": %s, \"end\": %s, \"token\": %s, \"resources\": \"%s\"}" "$start" "$end" "$AGENTRY_FENCING_TOKEN" "$AGENTRY_RESOURCES"']
      env: {SLEEP: "{{payload.sleep}}"}
    """#

private let controlsDevices = "permissions:\n  devices: [read, take_control]\n"

/// What a run of `reportingHandler` says about its hold.
struct HeldSpan: Sendable {
    var run: TaskRun
    var start: Int64
    var end: Int64
    var token: Int64
    var resources: String

    init?(_ run: TaskRun) {
        guard let text = run.result, let json = try? JSON.parse(Array(text.utf8)),
            let start = json[path: "start"]?.intValue, let end = json[path: "end"]?.intValue,
            let token = json[path: "token"]?.intValue, let resources = json[path: "resources"]?.stringValue
        else { return nil }
        self.run = run
        self.start = start
        self.end = end
        self.token = token
        self.resources = resources
    }
}

/// Spans of runs that held `resource`, in start order.
func spans(_ runs: [TaskRun], holding resource: String) -> [HeldSpan] {
    runs.compactMap(HeldSpan.init).filter { $0.resources.split(separator: ",").contains { $0.hasPrefix(resource + "=") } }
        .sorted { $0.start < $1.start }
}

@Suite("Workers with resources", .serialized)
struct WorkerLockTests {
    @Test("two workers never run two tasks on one device at once (from the run records); fencing tokens grow with every grant")
    func contentionAcrossWorkers() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("devlock-")
            _ = try await h.publishAgent(
                agentYAML(
                    id: id, trigger: "check.\(id)", handler: reportingHandler,
                    config: "max_parallel_tasks: 8",
                    extra: controlsDevices + "resources: [\"device:{{payload.device}}\"]\n"))
            let workers = [try WorkerProcess(agents: [id]), try WorkerProcess(agents: [id])]
            let devices = ["\(id)-a", "\(id)-b"]
            for n in 0..<32 {
                try await h.bus.publish(Event(type: "check.\(id)", payload: ["device": .string(devices[n % 2])], priority: .normal, source: "test"))
            }
            let runs = try await h.waitForRuns(id, timeout: .seconds(60)) { $0.filter { $0.state == .succeeded }.count == 32 }
            for worker in workers { await worker.stop() }
            #expect(runs.filter { $0.state == .succeeded }.count == 32, "\(runs.map { "\($0.state) \($0.message ?? "")" })")
            for device in devices {
                let held = spans(runs, holding: "device:\(device)")
                #expect(held.count == 16)
                for (a, b) in zip(held, held.dropFirst()) {
                    #expect(a.end <= b.start, "device:\(device) held by runs \(a.run.runID) and \(b.run.runID) at once")
                    #expect(a.token < b.token, "fencing tokens must grow: \(a.token) then \(b.token)")
                }
            }
            // The two devices were worked on in parallel, by both workers.
            #expect(maxOverlap(runs) >= 2)
            #expect(Set(runs.compactMap(\.workerID)).count == 2)
            await h.cleanup(id)
        }
    }

    @Test("agents needing devices {A, B} and {B, A} all finish: one global order, all or nothing")
    func noDeadlock() async throws {
        try await withWorkerHarness { h in
            let prefix = TestEnvironment.uniqueName("dl-")
            let forward = "\(prefix)-ab", backward = "\(prefix)-ba"
            _ = try await h.publishAgent(
                agentYAML(
                    id: forward, trigger: "pair.\(prefix)", handler: reportingHandler, config: "max_parallel_tasks: 4",
                    extra: controlsDevices + "resources: [\"device:\(prefix)-A\", \"device:\(prefix)-B\"]\n"))
            _ = try await h.publishAgent(
                agentYAML(
                    id: backward, trigger: "pair.\(prefix)", handler: reportingHandler, config: "max_parallel_tasks: 4",
                    extra: controlsDevices + "resources: [\"device:\(prefix)-B\", \"device:\(prefix)-A\"]\n"))
            let workers = [try WorkerProcess(agents: [forward, backward]), try WorkerProcess(agents: [forward, backward])]
            for _ in 0..<12 {
                try await h.bus.publish(Event(type: "pair.\(prefix)", payload: ["sleep": "0.01"], priority: .normal, source: "test"))
            }
            let done = try await TestEnvironment.eventually(timeout: .seconds(60)) {
                let all = try await h.runs(forward) + h.runs(backward)
                return all.filter { $0.state == .succeeded }.count == 24
            }
            for worker in workers { await worker.stop() }
            #expect(done, "all 24 runs should succeed")
            let all = try await h.runs(forward) + h.runs(backward)
            let held = spans(all, holding: "device:\(prefix)-A")
            #expect(held.count == 24)
            #expect(held.allSatisfy { $0.resources.contains("device:\(prefix)-B=") })
            for (a, b) in zip(held, held.dropFirst()) { #expect(a.end <= b.start) }
            await h.cleanup(forward)
            await h.cleanup(backward)
        }
    }

    @Test("runs waiting for a held device start CRITICAL, then NORMAL, then LOW, though they arrived LOW first")
    func waitingRunsByPriority() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("lockprio-")
            let resource = ResourceKey(type: "device", id: id)
            _ = try await h.publishAgent(
                agentYAML(
                    id: id, trigger: "use.\(id)", handler: reportingHandler, config: "max_parallel_tasks: 4",
                    extra: controlsDevices + "resources: [\"device:\(id)\"]\n"))
            let locks = LockStore(database: h.database, logger: TestEnvironment.logger)
            let worker = try WorkerProcess(agents: [id])
            try await h.bus.publish(Event(type: "use.\(id)", payload: ["sleep": "1.5", "order": "first"], priority: .normal, source: "test"))
            #expect(try await TestEnvironment.eventually(timeout: .seconds(15)) { try await locks.status(resource).holder != nil })
            for (index, priority) in [Priority.low, .normal, .critical].enumerated() {
                try await h.bus.publish(Event(type: "use.\(id)", payload: ["order": .string(priority.name)], priority: priority, source: "test"))
                #expect(try await TestEnvironment.eventually { try await locks.status(resource).waiters.count == index + 1 })
            }
            let status = try await locks.status(resource)
            #expect(status.waiters.map(\.priority) == [.critical, .normal, .low])
            let runs = try await h.waitForRuns(id, timeout: .seconds(20)) { $0.filter { $0.state == .succeeded }.count == 4 }
            await worker.stop()
            let order = spans(runs, holding: "device:\(id)").map(\.run.priority)
            #expect(order == [.normal, .critical, .normal, .low])
            await h.cleanup(id)
        }
    }

    @Test("SIGKILL of the holding worker frees the device within seconds and the waiting run on another worker gets it")
    func holderKilled() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("lockkill-")
            let resource = ResourceKey(type: "device", id: id)
            _ = try await h.publishAgent(
                agentYAML(
                    id: id, trigger: "use.\(id)", handler: reportingHandler, config: "max_parallel_tasks: 2",
                    extra: controlsDevices + "resources: [\"device:\(id)\"]\n"))
            let locks = LockStore(database: h.database, logger: TestEnvironment.logger)
            let first = try WorkerProcess(agents: [id])
            let long = Event(type: "use.\(id)", payload: ["sleep": "6"], priority: .normal, source: "test")
            try await h.bus.publish(long)
            #expect(try await TestEnvironment.eventually(timeout: .seconds(15)) { try await locks.status(resource).holder != nil })
            let second = try WorkerProcess(agents: [id])
            let quick = Event(type: "use.\(id)", payload: ["sleep": "0"], priority: .high, source: "test")
            try await h.bus.publish(quick)
            #expect(try await TestEnvironment.eventually(timeout: .seconds(15)) { try await locks.status(resource).waiters.count == 1 })
            let killedAt = Date()
            first.signal(SIGKILL)
            await first.wait()
            let runs = try await h.waitForRuns(id, timeout: .seconds(20)) { runs in
                runs.contains { $0.eventID == quick.id.rawValue && $0.state == .succeeded }
            }
            await second.stop()
            let span = try #require(runs.compactMap(HeldSpan.init).first { $0.run.eventID == quick.id.rawValue })
            let startedAfter = Double(span.start) / 1e9 - killedAt.timeIntervalSince1970
            #expect(startedAfter < 10, "the waiting run got the device \(startedAfter) s after the holder was killed")
            #expect(startedAfter > 0)
            await h.cleanup(id)
        }
    }

    @Test("a run whose lock session is terminated stops at once and records why, instead of running on unguarded")
    func sessionTerminatedStopsRun() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("fence-")
            let resource = ResourceKey(type: "device", id: id)
            _ = try await h.publishAgent(
                agentYAML(
                    id: id, trigger: "use.\(id)", handler: reportingHandler, config: "auto_retry: false",
                    extra: controlsDevices + "resources: [\"device:{{payload.device}}\"]\n"))
            let locks = LockStore(database: h.database, logger: TestEnvironment.logger)
            let worker = try WorkerProcess(agents: [id])
            try await h.bus.publish(Event(type: "use.\(id)", payload: ["sleep": "20", "device": .string(id)], priority: .normal, source: "test"))
            #expect(try await TestEnvironment.eventually(timeout: .seconds(15)) { try await locks.status(resource).holder != nil })
            let holder = try #require(try await locks.status(resource).holder)
            #expect(holder.owner == .agent(id))
            let pid = try #require(holder.holderPID)
            try await h.database.client.query("SELECT pg_terminate_backend(\(pid)::integer)", logger: TestEnvironment.logger)
            let runs = try await h.waitForRuns(id, timeout: .seconds(10)) { $0.contains { $0.state == .failed } }
            await worker.stop()
            let run = try #require(runs.first)
            #expect(run.state == .failed)
            #expect(run.message?.contains("stopped because it lost its lock on device:\(id)") == true, "\(run.message ?? "")")
            #expect(run.message?.contains("fencing token \(holder.fencingToken ?? -1)") == true, "\(run.message ?? "")")
            let finished = try #require(run.finishedAt)
            #expect(finished.timeIntervalSince(run.startedAt) < 10, "the handler should have been stopped, not left to sleep 20 s")
            #expect(try await locks.isAvailable(resource))
            await h.cleanup(id)
        }
    }

    @Test("agentry locks: list and show a holder and its waiters; release refuses without --force and takes the device back with it")
    func locksCommand() async throws {
        try await withLockManagers(2) { managers, _, _ in
            let resource = ResourceKey(type: "device", id: TestEnvironment.uniqueName("cli-"))
            let losses = Collector<LockLoss>()
            _ = try await managers[0].acquire([resource], owner: .agent("holder"), priority: .low, hold: .seconds(60)) { loss in
                Task { await losses.append(loss) }
            }
            let waiter = Task {
                try await managers[1].acquire([resource], owner: .user("ops"), priority: .critical, hold: .seconds(10), wait: .seconds(20))
            }
            _ = try await waitForWaiters(managers[0], resource, count: 1)
            let agentry = TestEnvironment.agentryExecutable
            let show = try TestEnvironment.run(agentry, ["locks", "show", resource.description, "--json"])
            #expect(show.status == 0, "\(show.output)")
            let json = try JSON.parse(Array(show.output.utf8))
            #expect(json[path: "status"]?.stringValue == "locked")
            #expect(json[path: "owner"]?.stringValue == "holder")
            #expect(json[path: "queue_length"]?.intValue == 1)
            #expect(json[path: "waiters"]?.arrayValue?.first?[path: "owner"]?.stringValue == "ops")
            #expect(json[path: "waiters"]?.arrayValue?.first?[path: "priority"]?.stringValue == "CRITICAL")
            let list = try TestEnvironment.run(agentry, ["locks", "list"])
            #expect(list.output.contains(resource.description) && list.output.contains("agent holder"), "\(list.output)")
            let refused = try TestEnvironment.run(agentry, ["locks", "release", resource.description])
            #expect(refused.status != 0)
            #expect(refused.output.contains("add --force"), "\(refused.output)")
            let forced = try TestEnvironment.run(agentry, ["locks", "release", resource.description, "--force"])
            #expect(forced.status == 0, "\(forced.output)")
            #expect(forced.output.contains("released \(resource): took it from agent holder"), "\(forced.output)")
            let heir = try await waiter.value
            #expect(heir.owner == .user("ops"))
            _ = try await TestEnvironment.eventually(timeout: .seconds(3)) { await losses.count == 1 }
            #expect(await losses.count == 1)
            let bad = try TestEnvironment.run(agentry, ["locks", "show", "tv-1"])
            #expect(bad.status != 0)
            #expect(bad.output.contains("'tv-1' is not a resource; write <type>:<id>"), "\(bad.output)")
            await managers[1].release(heir)
        }
    }
}
