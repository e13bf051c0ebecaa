import AgentryBus
import AgentryCore
import AgentryStore
import Foundation
import Testing

/// Flow control per key with real `agentry worker` processes: concurrency and rate limits held across two workers
/// (sampled from the recorded runs), debounce, expiry of stale events.
@Suite("Flow control", .serialized)
struct FlowControlTests {
    func publish(_ h: WorkerHarness, _ type: String, device: String, n: Int) async throws -> Event {
        let event = Event(type: type, payload: ["device_id": .string(device), "n": .int(Int64(n))], priority: .normal, source: "test")
        try await h.bus.publish(event)
        return event
    }

    @Test("flow.concurrency 1 per key holds across two workers while different keys run side by side")
    func perKeyConcurrency() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("key-")
            _ = try await h.publishAgent(
                agentYAML(
                    id: id, trigger: "work.\(id)",
                    handler: """
                        exec:
                          command: [/bin/sleep, "0.3"]
                        """, config: "max_parallel_tasks: 4",
                    extra: "flow:\n  key: \"{{payload.device_id}}\"\n  concurrency: 1\n"))
            let workers = [try WorkerProcess(agents: [id]), try WorkerProcess(agents: [id])]
            for n in 0..<5 {
                _ = try await publish(h, "work.\(id)", device: "tv-1", n: n)
                _ = try await publish(h, "work.\(id)", device: "tv-2", n: n)
            }
            let runs = try await h.waitForRuns(id, timeout: .seconds(60)) { $0.filter { $0.state == .succeeded }.count == 10 }
            for worker in workers { await worker.stop() }
            let succeeded = runs.filter { $0.state == .succeeded }
            #expect(succeeded.count == 10)
            for key in ["tv-1", "tv-2"] {
                let ofKey = succeeded.filter { $0.flowKey == key }
                #expect(ofKey.count == 5, "runs of \(key): \(ofKey.count)")
                #expect(maxOverlap(ofKey) == 1, "runs of \(key) overlapped \(maxOverlap(ofKey)) at once; flow.concurrency is 1")
            }
            #expect(maxOverlap(succeeded) == 2, "the two keys should run side by side: overlap \(maxOverlap(succeeded))")
            #expect(Set(succeeded.compactMap(\.workerID)).count == 2, "both workers should have run tasks")
            await h.cleanup(id)
        }
    }

    @Test("flow.rate is a token bucket per key shared by two workers: 2 at once, then 2 per second")
    func rateAcrossWorkers() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("rate-")
            _ = try await h.publishAgent(
                agentYAML(
                    id: id, trigger: "work.\(id)", handler: "builtin: noop", config: "max_parallel_tasks: 4",
                    extra: "flow:\n  key: \"{{payload.device_id}}\"\n  rate: {limit: 2, per: second}\n"))
            let workers = [try WorkerProcess(agents: [id], eventLog: true), try WorkerProcess(agents: [id])]
            for n in 0..<8 { _ = try await publish(h, "work.\(id)", device: "tv-1", n: n) }
            for n in 0..<2 { _ = try await publish(h, "work.\(id)", device: "tv-2", n: n) }
            let runs = try await h.waitForRuns(id, timeout: .seconds(60)) { $0.filter { $0.state == .succeeded }.count == 10 }
            for worker in workers { await worker.stop() }
            let succeeded = runs.filter { $0.state == .succeeded }
            // The event's device, from the run's event id: the test published them in order.
            let tv1 = try await startsOf(h, succeeded, device: "tv-1")
            #expect(tv1.count == 8)
            // A bucket of 2 refilled at 2/s: any j + 1 consecutive starts span at least (j - 1) / 2 seconds.
            for i in tv1.indices {
                for j in stride(from: i + 2, to: tv1.count, by: 1) {
                    let span = tv1[j].timeIntervalSince(tv1[i])
                    let least = Double(j - i - 1) / 2
                    #expect(span >= least - 0.2, "starts \(i)...\(j) of tv-1 spanned \(span) s; the rate allows no less than \(least) s")
                }
            }
            #expect(try await startsOf(h, succeeded, device: "tv-2").count == 2)
            let deferred = runs.filter { $0.deferReason != nil || ($0.message ?? "").contains("rate") }
            #expect(deferred.isEmpty, "no run should be left deferred: \(deferred.map(\.state))")
            await h.cleanup(id)
        }
    }

    /// The start times of the runs whose event has `device_id` = `device`, in order.
    func startsOf(_ h: WorkerHarness, _ runs: [TaskRun], device: String) async throws -> [Date] {
        let log = EventLogStore(database: h.database, logger: TestEnvironment.logger)
        var result: [Date] = []
        for run in runs {
            let eventID = try #require(EventID(run.eventID))
            // Logged by the event log service in its next batch.
            _ = try await TestEnvironment.eventually(timeout: .seconds(10)) { try await log.entry(eventID) != nil }
            if let logged = try await log.entry(eventID), logged.event.payload["device_id"] == JSONValue.string(device) {
                result.append(run.startedAt)
            }
        }
        return result.sorted()
    }

    @Test("flow.debounce_seconds runs only the last event of a burst per key, the others recorded superseded")
    func debounce() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("debounce-")
            _ = try await h.publishAgent(
                agentYAML(
                    id: id, trigger: "work.\(id)", handler: "builtin: noop",
                    extra: "flow:\n  key: \"{{payload.device_id}}\"\n  debounce_seconds: 1.5\n"))
            let worker = try WorkerProcess(agents: [id])
            var burst: [Event] = []
            for n in 0..<5 { burst.append(try await publish(h, "work.\(id)", device: "tv-1", n: n)) }
            let other = try await publish(h, "work.\(id)", device: "tv-2", n: 0)
            let runs = try await h.waitForRuns(id, timeout: .seconds(30)) {
                $0.filter { $0.state == .succeeded }.count == 2 && $0.filter { $0.state == .skipped }.count == 4
            }
            await worker.stop()
            let succeeded = Set(runs.filter { $0.state == .succeeded }.map(\.eventID))
            #expect(succeeded == [burst[4].id.rawValue, other.id.rawValue], "only the last of tv-1's burst, and tv-2's one event, should run")
            let superseded = runs.filter { $0.state == .skipped }
            #expect(Set(superseded.map(\.eventID)) == Set(burst[0..<4].map(\.id.rawValue)))
            for run in superseded {
                #expect(run.message?.contains("superseded by event") == true, "\(run.message ?? "-")")
            }
            await h.cleanup(id)
        }
    }

    @Test("flow.expire_after_seconds skips an event that waited in the queue longer, saying so; a fresh one runs")
    func expireAfter() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("expire-")
            _ = try await h.publishAgent(
                agentYAML(
                    id: id, trigger: "work.\(id)", handler: "builtin: noop", extra: "flow:\n  expire_after_seconds: 1\n"))
            // The agent's queue exists once published; no worker takes its events yet.
            let stale = try await publish(h, "work.\(id)", device: "tv-1", n: 0)
            #expect(try await TestEnvironment.eventually(timeout: .seconds(10)) { Date().timeIntervalSince(stale.timestamp) > 1.2 })
            let worker = try WorkerProcess(agents: [id])
            let skipped = try await h.waitForRuns(id, timeout: .seconds(30)) { $0.contains { $0.eventID == stale.id.rawValue } }
                .first { $0.eventID == stale.id.rawValue }
            #expect(skipped?.state == .skipped)
            #expect(skipped?.message?.contains("expired") == true, "\(skipped?.message ?? "-")")
            let fresh = try await publish(h, "work.\(id)", device: "tv-1", n: 1)
            let ran = try await h.waitForRuns(id, timeout: .seconds(30)) { $0.contains { $0.eventID == fresh.id.rawValue && $0.state == .succeeded } }
            #expect(ran.contains { $0.eventID == fresh.id.rawValue && $0.state == .succeeded })
            await worker.stop()
            await h.cleanup(id)
        }
    }

    @Test("a cancel_on event cancels a run waiting in its debounce window, and only the one of its key")
    func cancelDeferred() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("defcancel-")
            _ = try await h.publishAgent(
                agentYAML(
                    id: id, trigger: "alert.blackscreen", handler: "builtin: noop",
                    extra: """
                        flow:
                          key: "{{payload.device_id}}"
                          debounce_seconds: 4
                        cancel_on:
                          - {type: alert.resolved, match: payload.device_id}

                        """))
            let worker = try WorkerProcess(agents: [id])
            let one = try await publish(h, "alert.blackscreen", device: "tv-1", n: 0)
            let two = try await publish(h, "alert.blackscreen", device: "tv-2", n: 0)
            _ = try await h.waitForRuns(id) { runs in runs.filter { $0.state == .deferred }.count == 2 }
            let resolved = try await publish(h, "alert.resolved", device: "tv-1", n: 1)
            let runs = try await h.waitForRuns(id, timeout: .seconds(30)) { runs in
                runs.contains { $0.eventID == one.id.rawValue && $0.state == .cancelled }
                    && runs.contains { $0.eventID == two.id.rawValue && $0.state == .succeeded }
            }
            await worker.stop()
            let cancelled = runs.first { $0.eventID == one.id.rawValue }
            #expect(cancelled?.state == .cancelled)
            #expect(cancelled?.cancelledBy == resolved.id.rawValue, "\(cancelled?.message ?? "-")")
            #expect(runs.first { $0.eventID == two.id.rawValue }?.state == .succeeded, "tv-2's run is not touched")
            #expect(!runs.contains { $0.eventID == one.id.rawValue && $0.state == .succeeded }, "tv-1's run never ran")
            await h.cleanup(id)
        }
    }
}
