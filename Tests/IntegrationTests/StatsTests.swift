import AMQP
import AgentryBus
import AgentryCore
import AgentryRuntime
import AgentryStore
import Foundation
import NIOHTTP1
import PostgresNIO
import Testing

/// One series of a `GET /api/stats` answer (`events.CRITICAL`, `runs.failed`, `lock_waits.waits`, …), by step start.
func statsSeries(_ answer: JSONValue?, _ path: String) -> [String: Double] {
    guard let steps = answer?[path: "steps"]?.arrayValue, let values = answer?[path: path]?.arrayValue else { return [:] }
    var result: [String: Double] = [:]
    for (step, value) in zip(steps, values) {
        if let start = step.stringValue { result[start] = value.numberValue ?? 0 }
    }
    return result
}

/// What grew from `before` to `after` in the steps both answers hold, by step start (steps that did not grow left out).
/// With `newSteps`, steps that began after `before`'s newest count from zero: for series that only the test itself
/// feeds (lock waits: tests run one at a time), whose counts may land in a step `before` had not seen yet.
func statsGrowth(_ before: JSONValue?, _ after: JSONValue?, _ path: String, newSteps: Bool = false) -> [String: Double] {
    let old = statsSeries(before, path)
    let newest = old.keys.max() ?? ""
    var growth: [String: Double] = [:]
    for (start, value) in statsSeries(after, path) {
        if let previous = old[start] {
            if value != previous { growth[start] = value - previous }
        } else if newSteps, start > newest, value != 0 {
            growth[start] = value
        }
    }
    return growth
}

/// An agent started by `stats.<id>` events that succeeds, or fails (without retries) when the payload says `fail`.
func outcomeAgentYAML(_ id: String) -> String {
    agentYAML(
        id: id, trigger: "stats.\(id)",
        handler: """
            exec:
              command: [/bin/sh, -c, 'case "$(cat)" in *fail*) exit 1 ;; *) printf ''{}'' ;; esac']
            """,
        config: "auto_retry: false")
}

@Suite("Stats API and live stats", .serialized)
struct StatsTests {
    @Test("GET /api/stats counts published events by priority and finished runs by outcome, in the steps they happened in")
    func countsEventsAndRuns() async throws {
        try await withAdminServer { a in
            let id = TestEnvironment.uniqueName("stats-")
            _ = try await a.worker.publishAgent(outcomeAgentYAML(id))
            let worker = try WorkerProcess(agents: [id], eventLog: true)
            let path = "/api/stats?window=5m&step=10s"
            // Wait for the worker to be up (its agent.started is logged), so that what it logs on start is counted before.
            #expect(
                try await TestEnvironment.eventually(timeout: .seconds(20)) { try await a.worker.store.instances().contains { $0.agentID == id } })
            // Events earlier tests published on the shared vhost while no event log service ran wait in agentry.event-log;
            // this worker logs them now, with their own (recent) times: let it finish before the first reading (none
            // ready and none held unacked: the service acks a batch once it is written).
            #expect(try await TestEnvironment.waitUntilSettled("agentry.event-log", timeout: .seconds(30)))
            let before = try await a.request(.GET, path).json
            #expect(before?[path: "step_seconds"]?.intValue == 10 && before?[path: "points"]?.intValue == 30, "\(String(describing: before))")
            let started = Date()
            for _ in 0..<3 {
                try await a.worker.bus.publish(Event(type: "stats.\(id)", payload: ["outcome": "ok"], priority: .critical, source: "test"))
            }
            for _ in 0..<2 {
                try await a.worker.bus.publish(Event(type: "stats.\(id)", payload: ["outcome": "fail"], priority: .high, source: "test"))
            }
            for _ in 0..<4 { try await a.worker.bus.publish(Event(type: "stats.\(id)", payload: ["outcome": "ok"], priority: .low, source: "test")) }

            _ = try await a.worker.waitForRuns(id) { $0.filter { $0.finishedAt != nil }.count == 9 }
            let counted = try await TestEnvironment.eventually(timeout: .seconds(20)) {
                let now = try await a.request(.GET, path).json
                let runs =
                    statsGrowth(before, now, "runs.succeeded").values.reduce(0, +) + statsGrowth(before, now, "runs.failed").values.reduce(0, +)
                return statsGrowth(before, now, "events.LOW").values.reduce(0, +) == 4 && runs == 9
            }
            let after = try await a.request(.GET, path).json
            #expect(counted, "the events and runs are counted: \(String(describing: after))")
            let finished = Date()
            #expect(statsGrowth(before, after, "events.CRITICAL").values.reduce(0, +) == 3)
            #expect(statsGrowth(before, after, "events.LOW").values.reduce(0, +) == 4)
            // HIGH: the two published, and agent.task.failed (HIGH) for each failed run.
            #expect(statsGrowth(before, after, "events.HIGH").values.reduce(0, +) == 4)
            // NORMAL: each run's agent.task.started, and agent.task.completed of those that succeeded, at least.
            #expect(statsGrowth(before, after, "events.NORMAL").values.reduce(0, +) >= 16)
            #expect(statsGrowth(before, after, "runs.succeeded").values.reduce(0, +) == 7)
            #expect(statsGrowth(before, after, "runs.failed").values.reduce(0, +) == 2)
            #expect(statsGrowth(before, after, "runs.timed_out").isEmpty && statsGrowth(before, after, "runs.skipped").isEmpty)
            // In the steps of the time they happened in, aligned to 10 s.
            var grown: [String] = []
            for series in ["events.CRITICAL", "events.HIGH", "events.LOW", "runs.succeeded", "runs.failed"] {
                grown += Array(statsGrowth(before, after, series).keys)
            }
            let dates = grown.compactMap { Timestamp.parse($0) }
            #expect(dates.count == grown.count && !dates.isEmpty)
            let aligned = dates.allSatisfy { Int($0.timeIntervalSince1970) % 10 == 0 }
            let inTime = dates.allSatisfy { $0 > started.addingTimeInterval(-11) && $0 <= finished }
            #expect(aligned && inTime, "the steps that grew, \(grown), are aligned and between \(started) and \(finished)")
            let steps = (after?[path: "steps"]?.arrayValue ?? []).compactMap { $0.stringValue }.compactMap { Timestamp.parse($0) }
            #expect(steps.count == 30)
            let until = after?[path: "until"]?.stringValue.flatMap { Timestamp.parse($0) } ?? .distantPast
            let last = steps.last ?? .distantFuture
            #expect(last <= until && until < last.addingTimeInterval(10), "the last step holds the present")
            await worker.stop()
            await a.worker.cleanup(id)
        }
    }

    @Test("GET /api/stats gives each agent's median and 95th percentile run duration over the window (skipped runs left out)")
    func durations() async throws {
        try await withAdminServer { a in
            let id = TestEnvironment.uniqueName("dur-")
            // Five runs that took 1, 2, 3, 4 and 10 s and finished a minute ago, one skipped (left out), one an hour ago
            // (outside a 5-minute window).
            for (seconds, state, ago) in [
                (1, "succeeded", 60), (2, "failed", 60), (3, "succeeded", 60), (4, "timed_out", 60), (10, "succeeded", 60), (100, "skipped", 60),
                (50, "succeeded", 3600),
            ] {
                try await a.worker.database.client.query(
                    """
                    INSERT INTO task_runs (run_id, agent_id, agent_version, event_id, event_type, priority, state, started_at, finished_at)
                    VALUES (gen_random_uuid(), \(id), '1.0.0', gen_random_uuid()::text, 'stats.durations', 3, \(state),
                            now() - make_interval(secs => \(Double(ago + seconds))), now() - make_interval(secs => \(Double(ago))))
                    """, logger: TestEnvironment.logger)
            }
            let answer = try await a.request(.GET, "/api/stats?window=5m")
            #expect(answer.status == 200, "\(answer.text)")
            let entry = try #require(answer.json?[path: "durations"]?.arrayValue?.first { $0[path: "agent_id"]?.stringValue == id }, "\(answer.text)")
            #expect(entry[path: "runs"]?.intValue == 5)
            #expect(entry[path: "p50_seconds"]?.numberValue == 3)
            // percentile_cont(0.95) of 1, 2, 3, 4, 10: 4 + 0.8 × (10 − 4).
            #expect(abs((entry[path: "p95_seconds"]?.numberValue ?? 0) - 8.8) < 0.001, "\(entry)")
            let day = try await a.request(.GET, "/api/stats?window=1d").json
            let whole = day?[path: "durations"]?.arrayValue?.first { $0[path: "agent_id"]?.stringValue == id }
            #expect(whole?[path: "runs"]?.intValue == 6, "the run an hour ago is in a day's window")
            #expect(day?[path: "step_seconds"]?.intValue == 300 && day?[path: "points"]?.intValue == 288)
            _ = try await a.worker.database.client.query("DELETE FROM task_runs WHERE agent_id = \(id)", logger: TestEnvironment.logger)
        }
    }

    @Test("GET /api/stats refuses a window or step that is not a duration, too many points or too long a window (400, saying why)")
    func badParameters() async throws {
        try await withAdminServer { a in
            let defaults = try await a.request(.GET, "/api/stats").json
            #expect(defaults?[path: "window_seconds"]?.intValue == 3600 && defaults?[path: "step_seconds"]?.intValue == 10)
            let five = try await a.request(.GET, "/api/stats?window=300s").json
            #expect(five?[path: "step_seconds"]?.intValue == 1 && five?[path: "points"]?.intValue == 300)
            let cases: [(String, String)] = [
                ("window=abc", "window 'abc' is not a duration"), ("window=1h&step=0s", "step '0s' is not a duration"),
                ("window=-5m", "is not a duration"), ("window=1d&step=1s", "makes 86400 points; at most 1000: take a step of 87 s or more"),
                ("window=40d&step=1d", "longer than 31 days"), ("window=5m&step=10m", "is longer than the window"),
                ("window=1.5h", "is not a duration"),
            ]
            for (query, message) in cases {
                let answer = try await a.request(.GET, "/api/stats?\(query)")
                #expect(answer.status == 400 && answer.errorCode == "bad_request", "\(query): \(answer.status) \(answer.text)")
                #expect(answer.errorMessage.contains(message), "\(query): \(answer.errorMessage)")
            }
        }
    }

    @Test("lock requests that waited are recorded with how long and how they ended, and counted per step")
    func lockWaits() async throws {
        try await withAdminServer { a in
            let path = "/api/stats?window=5m&step=10s"
            let before = try await a.request(.GET, path).json
            let resource = device(TestEnvironment.uniqueName("stats-tv-"))
            try await withLockManagers(2) { managers, _, _ in
                let held = try await managers[0].acquire([resource], owner: .agent("holder"), hold: .seconds(30))
                // Served at once: no wait recorded. Then one that gives up after 0.3 s, and one served when the holder
                // releases about a second later.
                var code: LockError.Code?
                do {
                    _ = try await managers[1].acquire([resource], owner: .agent("impatient"), hold: .seconds(30), wait: .milliseconds(300))
                } catch let error as LockError {
                    code = error.code
                }
                #expect(code == .timedOut)
                let second = managers[1]
                async let waited = second.acquire([resource], owner: .agent("patient"), hold: .seconds(30), wait: .seconds(20))
                _ = try await waitForWaiters(managers[0], resource, count: 1)
                try await Task.sleep(for: .seconds(1))
                await managers[0].release(held)
                await second.release(try await waited)
            }
            let counted = try await TestEnvironment.eventually {
                statsGrowth(before, try await a.request(.GET, path).json, "lock_waits.waits", newSteps: true).values.reduce(0, +) == 2
            }
            let after = try await a.request(.GET, path).json
            #expect(counted, "two waits are counted: \(String(describing: after?[path: "lock_waits"]))")
            #expect(statsGrowth(before, after, "lock_waits.gave_up", newSteps: true).values.reduce(0, +) == 1)
            let waited = statsGrowth(before, after, "lock_waits.wait_seconds", newSteps: true).values.reduce(0, +)
            #expect(waited >= 1.2 && waited < 5, "0.3 s and about 1 s: \(waited)")
            let longest = (after?[path: "lock_waits.wait_seconds_max"]?.arrayValue ?? []).compactMap(\.numberValue).max() ?? 0
            #expect(longest >= 0.9, "\(longest)")
            let query: PostgresQuery =
                "SELECT owner_id, outcome, waited_seconds FROM lock_waits WHERE \(resource.description) = ANY(resources) ORDER BY ended_at"
            let result = try await a.worker.database.client.query(query, logger: TestEnvironment.logger)
            var rows: [(String, String, Double)] = []
            for try await row in result.decode((String, String, Double).self) { rows.append(row) }
            #expect(rows.map(\.0) == ["impatient", "patient"] && rows.map(\.1) == ["timed_out", "acquired"], "\(rows)")
        }
    }

    @Test("the status stream sends a stats message every second with the last seconds' counts and the queue depths, which the API's history keeps")
    func liveStats() async throws {
        try await withAdminServer { a in
            let id = TestEnvironment.uniqueName("live-")
            _ = try await a.worker.publishAgent(outcomeAgentYAML(id))
            let queue = "agentry.agent.\(id)"
            let listener = StatusListener(port: a.port)
            defer { listener.stop() }
            let first = await listener.first(within: .seconds(10)) { $0[path: "type"] == "stats" }
            #expect(first?[path: "seconds"]?.arrayValue?.count == 3, "\(String(describing: first))")
            #expect(first?[path: "events.CRITICAL"]?.intValue != nil && first?[path: "runs.succeeded"]?.intValue != nil)
            // No worker yet: the events wait in the agent's queue, whose depth the messages carry.
            for _ in 0..<5 {
                try await a.worker.bus.publish(Event(type: "stats.\(id)", payload: ["outcome": "ok"], priority: .critical, source: "test"))
            }
            let deep = await listener.first(within: .seconds(15)) {
                $0[path: "type"] == "stats" && $0[path: "queues"]?.objectValue?[queue]?.intValue == 5
            }
            #expect(deep != nil, "a stats message shows the queue's 5 messages")
            let history = try await a.request(.GET, "/api/stats?window=5m&step=1s").json
            let depths = history?[path: "queues.series"]?.objectValue?[queue]?.arrayValue?.compactMap(\.intValue) ?? []
            #expect(depths.max() == 5, "the API's queue history has the samples: \(String(describing: history?[path: "queues"]))")
            #expect(history?[path: "queues.resolution_seconds"]?.intValue == 1)

            let worker = try WorkerProcess(agents: [id], eventLog: true)
            _ = try await a.worker.waitForRuns(id) { $0.filter { $0.state == .succeeded }.count == 5 }
            // Each second's latest counts (a second may be sent again as rows commit): the five CRITICAL events, logged
            // by the worker's event log, and the five runs.
            let counted = try await TestEnvironment.eventually(timeout: .seconds(15)) {
                var critical: [String: Int64] = [:]
                var succeeded: [String: Int64] = [:]
                for message in await listener.messages.values where message[path: "type"] == "stats" {
                    for second in message[path: "seconds"]?.arrayValue ?? [] {
                        guard let at = second[path: "at"]?.stringValue else { continue }
                        critical[at] = second[path: "events.CRITICAL"]?.intValue ?? 0
                        succeeded[at] = second[path: "runs.succeeded"]?.intValue ?? 0
                    }
                }
                return critical.values.reduce(0, +) >= 5 && succeeded.values.reduce(0, +) >= 5
            }
            #expect(counted, "the live seconds count the events and the runs")
            await worker.stop()
            await a.worker.cleanup(id)
        }
    }
}
