import AMQP
import AgentryBus
import AgentryCore
import AgentryRuntime
import AgentryStore
import Foundation
import Logging
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Schedules run by real `agentry worker` processes: each tick published once across workers, a killed leader,
/// disabled schedules, missed ticks after downtime, and delayed events across a broker restart.
@Suite("Scheduler", .serialized)
struct SchedulerTests {
    /// The stores the tests read and write, on the test database.
    struct Stores: Sendable {
        let schedules: ScheduleStore
        let delayed: DelayedEventStore
        let log: EventLogStore
    }

    func withStores(_ body: @Sendable (Stores) async throws -> Void) async throws {
        try await TestEnvironment.migrate()
        try await Database.with(TestEnvironment.configuration.database, logger: TestEnvironment.logger) { database in
            let logger = TestEnvironment.logger
            try await body(
                Stores(
                    schedules: ScheduleStore(database: database, logger: logger), delayed: DelayedEventStore(database: database, logger: logger),
                    log: EventLogStore(database: database, logger: logger)))
        }
    }

    /// The logged events of one type, oldest timestamp first.
    func logged(_ stores: Stores, _ type: String) async throws -> [EventLogStore.Entry] {
        try await stores.log.recent(limit: 10_000, type: type).sorted { $0.event.timestamp < $1.event.timestamp }
    }

    /// A schedule that ticks every second.
    func everySecond(
        _ name: String, type: String, missed: MissedTicks = .skip, grace: Int = Schedule.defaultGraceSeconds, enabled: Bool = true
    )
        throws -> Schedule
    {
        Schedule(
            name: name, eventType: type, cron: try CronExpression("@every 1s"), payload: ["test": .string(name)], missed: missed,
            graceSeconds: grace, enabled: enabled)
    }

    /// The pid of the worker that leads the scheduler, from its session's application name (`agentry worker <host> pid <pid>`).
    func leaderPID(_ stores: Stores) async throws -> Int32? {
        guard let name = try await stores.schedules.schedulerLeader(), let last = name.split(separator: " ").last else { return nil }
        return Int32(last)
    }

    @Test("three workers publish an every-second schedule once per tick for 60 s; SIGKILL of the leader loses and doubles no tick")
    func oncePerTickAcrossWorkers() async throws {
        try await withStores { stores in
            let name = TestEnvironment.uniqueName("tick-")
            let type = "test.tick.\(name)"
            // Each runs the event log too, so that killing any of them leaves the log going.
            let workers = try (0..<3).map { _ in try WorkerProcess(agents: ["none-\(name)"], eventLog: true) }
            let pids = Set(workers.map(\.pid))
            #expect(try await TestEnvironment.eventually(timeout: .seconds(30)) { try await leaderPID(stores).map(pids.contains) == true })
            // Every delivery of the ticks through the broker, to see none come twice.
            let connection = try await TestEnvironment.connect()
            let bus = try await EventBus(connection: connection, logger: TestEnvironment.logger)
            let subscription = try await bus.subscribe(to: type)
            let delivered = Collector<EventID>()
            let reading = Task {
                for try await received in subscription {
                    await delivered.append(received.event.id)
                    received.ack()
                }
            }
            try await stores.schedules.save(try everySecond(name, type: type), replacing: false)
            let started = Date()
            // Half-way, the leader dies without a word.
            #expect(try await TestEnvironment.eventually(timeout: .seconds(60)) { try await stores.log.count(type: type) >= 30 })
            let leader = try await leaderPID(stores)
            let victim = try #require(workers.first { $0.pid == leader }, "a worker of this test leads the scheduler")
            victim.signal(SIGKILL)
            await victim.wait()
            let killed = Date()
            let newLeader = try await TestEnvironment.eventually(timeout: .seconds(10)) {
                try await leaderPID(stores).map { $0 != victim.pid && pids.contains($0) } ?? false
            }
            #expect(newLeader, "another worker leads within seconds")
            // Sixty seconds of ticks in all.
            _ = try await TestEnvironment.eventually(timeout: .seconds(90)) { Date().timeIntervalSince(started) >= 60 }
            #expect(try await stores.schedules.remove(name))
            // Every claimed tick is in the log once its delivery settles (the last ones were claimed up to 2 s ahead and
            // cancelled with the schedule, or delivered).
            _ = try await TestEnvironment.eventually(timeout: .seconds(15)) {
                try await stores.delayed.pending(limit: 10_000).allSatisfy { $0.event.type != type }
            }
            for worker in workers where worker.pid != victim.pid { await worker.stop() }
            let ticks = try await logged(stores, type)
            let times = ticks.map { $0.event.timestamp.timeIntervalSince1970 }
            #expect(ticks.count >= 55, "about sixty ticks in sixty seconds, not \(ticks.count)")
            #expect(Set(ticks.map(\.event.id)).count == ticks.count)
            let gaps = zip(times, times.dropFirst()).filter { abs($1 - $0 - 1) > 0.001 }
            #expect(
                gaps.isEmpty,
                "one tick per second, none lost, none twice: \(gaps.map { "\(Timestamp.format(Date(timeIntervalSince1970: $0.0))) → \(Timestamp.format(Date(timeIntervalSince1970: $0.1)))" })"
            )
            #expect(times.first.map { $0 >= started.timeIntervalSince1970 - 1 } == true)
            _ = try await TestEnvironment.eventually { await delivered.count >= ticks.count }
            subscription.cancel()
            reading.cancel()
            await connection.close()
            let deliveries = await delivered.values
            #expect(Set(deliveries) == Set(ticks.map(\.event.id)), "the broker delivered the ticks the log holds")
            // The one tick a killed leader may have published without marking it is published again (after its lease)
            // under the same id, which the log and the runs take once; no other tick reaches the broker twice.
            #expect(deliveries.count - Set(deliveries).count <= 1, "\(deliveries.count - Set(deliveries).count) ticks delivered twice")
            // Within seconds of the kill the ticks flow again: none logged more than 5 s after its time.
            let late = ticks.filter { $0.event.timestamp > killed.addingTimeInterval(-3) }.map { $0.loggedAt.timeIntervalSince($0.event.timestamp) }
            #expect(late.allSatisfy { $0 < 5 }, "lateness after the kill: \(late.max() ?? 0) s")
        }
    }

    @Test("a disabled schedule publishes nothing while an enabled one ticks")
    func disabledPublishesNothing() async throws {
        try await withStores { stores in
            let name = TestEnvironment.uniqueName("off-")
            try await stores.schedules.save(try everySecond("\(name)-off", type: "test.off.\(name)", enabled: false), replacing: false)
            try await stores.schedules.save(try everySecond("\(name)-on", type: "test.on.\(name)"), replacing: false)
            let worker = try WorkerProcess(agents: ["none-\(name)"], eventLog: true)
            #expect(try await TestEnvironment.eventually(timeout: .seconds(30)) { try await stores.log.count(type: "test.on.\(name)") >= 4 })
            await worker.stop()
            #expect(try await stores.log.count(type: "test.off.\(name)") == 0)
            let record = try #require(try await stores.schedules.record(named: "\(name)-off"))
            #expect(record.nextRun == nil && record.ticksPublished == 0)
            #expect(try await stores.delayed.pending(limit: 10_000).allSatisfy { $0.event.type != "test.off.\(name)" })
            _ = try await stores.schedules.remove("\(name)-off")
            _ = try await stores.schedules.remove("\(name)-on")
        }
    }

    @Test("after every worker was down for over three ticks, fire_once publishes one event for them and skip none")
    func missedTicksAfterDowntime() async throws {
        try await withStores { stores in
            let name = TestEnvironment.uniqueName("miss-")
            let (onceType, skipType) = ("test.once.\(name)", "test.skip.\(name)")
            try await stores.schedules.save(try everySecond("\(name)-once", type: onceType, missed: .fireOnce, grace: 1), replacing: false)
            try await stores.schedules.save(try everySecond("\(name)-skip", type: skipType, missed: .skip, grace: 1), replacing: false)
            var worker = try WorkerProcess(agents: ["none-\(name)"], eventLog: true)
            #expect(try await TestEnvironment.eventually(timeout: .seconds(30)) { try await stores.log.count(type: skipType) >= 2 })
            await worker.stop()
            let down = Date()
            // Every worker is down for eight ticks; the last worker had claimed the next two ahead of time (they are
            // delivered late, when a worker is back), so more than three are missed.
            _ = try await TestEnvironment.eventually(timeout: .seconds(15)) { Date().timeIntervalSince(down) >= 8 }
            worker = try WorkerProcess(agents: ["none-\(name)"], eventLog: true)
            let up = Date()
            #expect(
                try await TestEnvironment.eventually(timeout: .seconds(30)) {
                    try await logged(stores, skipType).contains { $0.event.timestamp > up.addingTimeInterval(2) }
                })
            _ = try await stores.schedules.setEnabled("\(name)-once", false)
            _ = try await stores.schedules.setEnabled("\(name)-skip", false)
            _ = try await TestEnvironment.eventually(timeout: .seconds(10)) {
                try await stores.delayed.pending(limit: 10_000).allSatisfy { ![onceType, skipType].contains($0.event.type) }
            }
            await worker.stop()
            let once = try await logged(stores, onceType).map(\.event.timestamp)
            let skip = try await logged(stores, skipType).map(\.event.timestamp)
            let skipRecord = try #require(try await stores.schedules.record(named: "\(name)-skip"))
            let onceRecord = try #require(try await stores.schedules.record(named: "\(name)-once"))
            #expect(skipRecord.ticksMissed >= 3, "the skip schedule counted the ticks of the downtime as missed")
            #expect(onceRecord.ticksMissed == skipRecord.ticksMissed)
            // The skip schedule's log has a hole of at least three ticks; the fire_once schedule's has the same ticks
            // plus one, inside that hole: the latest missed tick.
            let holes = zip(skip, skip.dropFirst()).filter { $1.timeIntervalSince($0) >= 4 }
            #expect(holes.count == 1, "one hole in the skip schedule's ticks: \(skip.map(Timestamp.format))")
            let extra = once.filter { !skip.contains($0) }
            let onceBeforeStop = once.filter { $0 < down }.count
            let skipBeforeStop = skip.filter { $0 < down }.count
            #expect(
                extra.count == 1 + max(0, onceBeforeStop - skipBeforeStop),
                "fire_once adds one event for the missed ticks: \(extra.map(Timestamp.format))")
            if let hole = holes.first {
                #expect(extra.filter { $0 > hole.0 && $0 < hole.1 }.count == 1, "the one event stands in the hole")
            }
            _ = try await stores.schedules.remove("\(name)-once")
            _ = try await stores.schedules.remove("\(name)-skip")
        }
    }

    @Test("a delayed event survives a broker restart and is delivered within a second of its time, once")
    func delayedEventSurvivesBrokerRestart() async throws {
        try await withStores { stores in
            let name = TestEnvironment.uniqueName("later-")
            let worker = try WorkerProcess(agents: ["none-\(name)"], eventLog: true)
            #expect(try await TestEnvironment.eventually(timeout: .seconds(30)) { try await leaderPID(stores) == worker.pid })
            let deliverAt = Date().addingTimeInterval(20)
            let event = Event(type: "test.later.\(name)", payload: ["n": 1], timestamp: deliverAt, source: "test")
            #expect(try await stores.delayed.add(event, deliverAt: deliverAt))
            #expect(try await stores.delayed.add(event, deliverAt: deliverAt) == false, "the same id again is the same event")
            try TestEnvironment.rabbitmqctl("stop_app")
            try TestEnvironment.rabbitmqctl("start_app")
            try TestEnvironment.rabbitmqctl("await_startup")
            #expect(Date() < deliverAt, "the broker restarted before the event's time")
            let entry = try await TestEnvironment.eventually(timeout: .seconds(60)) { try await stores.log.entry(event.id) != nil }
            #expect(entry)
            let logged = try #require(try await stores.log.entry(event.id))
            await worker.stop()
            #expect(logged.loggedAt.timeIntervalSince(deliverAt) < 1, "delivered \(logged.loggedAt.timeIntervalSince(deliverAt)) s after its time")
            #expect(logged.loggedAt >= deliverAt.addingTimeInterval(-0.01), "not before its time")
            #expect(try await stores.log.count(type: event.type) == 1)
            #expect(try await stores.delayed.event(event.id)?.state == .published)
        }
    }

    @Test("a cancelled delayed event is never published; cancelling it again, or a published one, says so")
    func cancelDelayedEvent() async throws {
        try await withStores { stores in
            let name = TestEnvironment.uniqueName("cancel-")
            let worker = try WorkerProcess(agents: ["none-\(name)"], eventLog: true)
            let soon = Event(type: "test.cancel.\(name)", timestamp: Date().addingTimeInterval(1), source: "test")
            let later = Event(type: "test.cancel.\(name)", timestamp: Date().addingTimeInterval(3), source: "test")
            #expect(try await stores.delayed.add(soon, deliverAt: soon.timestamp))
            #expect(try await stores.delayed.add(later, deliverAt: later.timestamp))
            #expect(try await stores.delayed.cancel(later.id, by: "test") == .cancelled)
            #expect(try await stores.delayed.cancel(later.id, by: "test") == .alreadyCancelled)
            #expect(try await TestEnvironment.eventually(timeout: .seconds(30)) { try await stores.log.entry(soon.id) != nil })
            guard case .published = try await stores.delayed.cancel(soon.id, by: "test") else {
                Issue.record("cancelling a published event should say it was published")
                return
            }
            // Past the cancelled event's time, and a second event delivered after it: the cancelled one never came.
            let marker = Event(type: "test.cancel.\(name)", timestamp: Date().addingTimeInterval(4), source: "test")
            #expect(try await stores.delayed.add(marker, deliverAt: marker.timestamp))
            #expect(try await TestEnvironment.eventually(timeout: .seconds(30)) { try await stores.log.entry(marker.id) != nil })
            await worker.stop()
            #expect(try await stores.log.entry(later.id) == nil)
            #expect(try await stores.delayed.event(later.id)?.state == .cancelled)
            #expect(try await stores.delayed.cancel(EventID("no-such-\(name)")!, by: "test") == .notFound)
        }
    }

    @Test(
        "an agent's schedule trigger becomes a schedule when it is published, runs the agent at each tick, follows new versions, and goes with retire"
    )
    func agentDeclaredSchedule() async throws {
        try await withWorkerHarness { h in
            try await withStores { stores in
                let id = TestEnvironment.uniqueName("sched-agent-")
                let yaml = { (version: String, cron: String) in
                    """
                    metadata: {id: \(id), name: Scheduled \(id), version: \(version), author: tests, description: Runs at each tick.}
                    goal: {type: continuous, description: Exercise schedule triggers.}
                    triggers:
                      - schedule: "\(cron)"
                        type: tick.\(id)
                        payload: {pool: lab-1}
                    handler:
                      builtin: noop
                    """
                }
                _ = try await h.publishAgent(yaml("1.0.0", "* * * * * *"))
                let name = Schedule.agentScheduleName(agentID: id, eventType: "tick.\(id)")
                let record = try #require(try await stores.schedules.record(named: name), "publishing made the schedule")
                #expect(record.schedule.agentID == id && record.schedule.cron.text == "* * * * * *" && record.schedule.payload["pool"] == "lab-1")
                await #expect(throws: StoreError.self, "an agent's schedule changes with its YAML, not on its own") {
                    _ = try await stores.schedules.remove(name)
                }
                let worker = try WorkerProcess(agents: [id], eventLog: true)
                let runs = try await h.waitForRuns(id, timeout: .seconds(30)) { $0.filter { $0.state == .succeeded }.count >= 3 }
                #expect(Set(runs.map(\.eventID)).count == runs.count, "one run per tick")
                #expect(runs.allSatisfy { $0.eventType == "tick.\(id)" })
                // A new version with another expression changes the schedule.
                let next = try AgentDefinition.parse(yaml: yaml("1.1.0", "@every 2s"))
                _ = try await h.registry.register(next)
                _ = try await h.registry.publish(agentID: id)
                #expect(try await stores.schedules.record(named: name)?.schedule.cron.text == "@every 2s")
                // Retired: the schedule and its ticks waiting for delivery go.
                _ = try await h.registry.retire(agentID: id)
                #expect(try await stores.schedules.record(named: name) == nil)
                #expect(try await stores.delayed.pending(limit: 10_000).allSatisfy { $0.event.type != "tick.\(id)" })
                await worker.stop()
                await h.cleanup(id)
            }
        }
    }

    @Test("a run's follow-up with delay_seconds (emit handler, exec result) is kept until its time, then delivered once")
    func delayedFollowUps() async throws {
        try await withWorkerHarness { h in
            try await withStores { stores in
                let id = TestEnvironment.uniqueName("later-agent-")
                _ = try await h.publishAgent(
                    agentYAML(
                        id: id, trigger: "start.\(id)",
                        handler: """
                            emit:
                              type: later.\(id)
                              payload: {device_id: "{{payload.device_id}}"}
                              delay_seconds: 3
                            """))
                let exec = TestEnvironment.uniqueName("later-exec-")
                let script = #"printf '{"events": [{"type": "later.%s", "delay_seconds": 2.5}]}' "$AGENTRY_AGENT_ID""#
                _ = try await h.publishAgent(
                    agentYAML(
                        id: exec, trigger: "start.\(id)",
                        handler: """
                            exec:
                              command: [/bin/sh, -c, '\(script.replacingOccurrences(of: "'", with: "''"))']
                            """))
                let worker = try WorkerProcess(agents: [id, exec], eventLog: true)
                let cause = Event(type: "start.\(id)", payload: ["device_id": "tv-9"], source: "test")
                try await h.bus.publish(cause)
                _ = try await h.waitForRuns(id) { $0.contains { $0.state == .succeeded } }
                _ = try await h.waitForRuns(exec) { $0.contains { $0.state == .succeeded } }
                let succeeded = Date()
                let kept = try await stores.delayed.pending(limit: 10_000).filter {
                    [id, exec].contains(String($0.event.type.dropFirst("later.".count)))
                }
                #expect(kept.count == 2, "both follow-ups wait in PostgreSQL: \(kept.map(\.event.type))")
                #expect(kept.first { $0.event.type == "later.\(id)" }?.event.payload["device_id"] == "tv-9")
                #expect(kept.allSatisfy { $0.event.causationID == cause.id.rawValue })
                #expect(try await TestEnvironment.eventually(timeout: .seconds(30)) { try await stores.log.count(type: "later.\(id)") == 1 })
                #expect(try await TestEnvironment.eventually(timeout: .seconds(30)) { try await stores.log.count(type: "later.\(exec)") == 1 })
                await worker.stop()
                let emitted = try #require(try await stores.log.recent(limit: 1, type: "later.\(id)").first)
                #expect(emitted.loggedAt.timeIntervalSince(succeeded) > 1.5, "not before its delay")
                #expect(emitted.loggedAt.timeIntervalSince(emitted.event.timestamp) < 1, "within a second of its time")
                await h.cleanup(id)
                await h.cleanup(exec)
            }
        }
    }
}
