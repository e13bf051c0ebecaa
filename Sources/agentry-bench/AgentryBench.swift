import AMQP
import AgentryBus
import AgentryCore
import AgentryRuntime
import AgentryStore
import Foundation
import Logging
import Synchronization

/// Throughput benchmarks of Agentry's AMQP client and event log, to compare with `Scripts/peers/amqpbench.c`
/// (see `Scripts/bench`, which runs both and tabulates the results).
///
///     agentry-bench amqp-publish N WINDOW     publish N persistent 256-byte messages, priorities 1…4, confirms, ≤ WINDOW unconfirmed
///     agentry-bench amqp-consume N PREFETCH   consume N messages with prefetch PREFETCH, one ack per message
///     agentry-bench eventlog N                how fast the event log service writes N waiting events to event_log
///     agentry-bench e2e N WORKERS             a noop agent run end to end by WORKERS `agentry worker` processes:
///                                             N waiting events drained, then N events published while they run
///     agentry-bench latency RATE SECONDS [WORKERS]  publish-to-start latency at a steady RATE events/s (default 1 worker)
///     agentry-bench drain N WORKERS [--no-memory] | exec N | priority N | recovery SECONDS | soak N ROUNDS [exec]
///                                             see `ScenarioBench`
///     agentry-bench locks SECONDS             lock acquire/release pairs per second, uncontended and 16 owners on 4
///                                             resources, and the hand-off latency (see `LockBench`)
///     agentry-bench chaos-publish …          the steady load of Scripts/chaos, recording what the broker confirmed
///                                             (see `ChaosPublisher`)
///     agentry-bench cleanup                   delete the rows of retired bench agents (AGENTRY_BENCH_HISTORY=1 keeps
///                                             them until then; see `WorkerBench.cleanup`)
///
/// The AMQP benchmarks use the vhost `bench` (queue `bench.swift.prio`); the event log benchmark uses the vhost and
/// database of AGENTRY_AMQP_URL / AGENTRY_DATABASE_URL, with the built-in migrations and topology;
/// `e2e` and `latency` use the vhost `bench-e2e` and that database (see `WorkerBench`).
@main
struct AgentryBench {
    static let usage = """
        usage: agentry-bench amqp-publish N WINDOW
               agentry-bench amqp-consume N PREFETCH
               agentry-bench eventlog N
               agentry-bench e2e N WORKERS
               agentry-bench latency RATE SECONDS [WORKERS]
               agentry-bench locks SECONDS
               agentry-bench drain N WORKERS [--no-memory] | exec N | priority N | recovery SECONDS
               agentry-bench soak N ROUNDS [exec]
               agentry-bench cleanup
               agentry-bench chaos-publish --rate R --seconds S --record FILE [--devices N] [--duplicate-every N] [--poison-every N]
        """

    /// The handler of `exec` and `soak … exec`: a process that does nothing, so that what is measured is the spawn.
    static let trueHandler = "exec: {command: [/bin/true]}"

    static func main() async {
        var logger = Logger(label: "agentry-bench")
        logger.logLevel = .warning
        let arguments = Array(CommandLine.arguments.dropFirst())
        do {
            switch (arguments.first, arguments.count) {
            case ("amqp-publish", 3):
                try await AMQPBench(logger: logger).publish(count: try number(arguments[1], "N"), window: try number(arguments[2], "WINDOW"))
            case ("amqp-consume", 3):
                let prefetch = try number(arguments[2], "PREFETCH")
                guard prefetch <= Int(UInt16.max) else { throw BenchError("PREFETCH must be at most \(UInt16.max)") }
                try await AMQPBench(logger: logger).consume(count: try number(arguments[1], "N"), prefetch: UInt16(prefetch))
            case ("eventlog", 2):
                try await EventLogBench(logger: logger).run(count: try number(arguments[1], "N"))
            case ("e2e", 3):
                ChildProcesses.installSignalHandlers()
                try await WorkerBench(logger: logger).e2e(count: try number(arguments[1], "N"), workers: try number(arguments[2], "WORKERS"))
            case ("latency", 3), ("latency", 4):
                ChildProcesses.installSignalHandlers()
                try await WorkerBench(logger: logger).latency(
                    rate: try number(arguments[1], "RATE"), seconds: try number(arguments[2], "SECONDS"),
                    workers: arguments.count == 4 ? try number(arguments[3], "WORKERS") : 1)
            case ("drain", 3), ("drain", 4):
                guard arguments.count == 3 || arguments[3] == "--no-memory" else {
                    throw BenchError("drain takes N WORKERS [--no-memory], not '\(arguments[3])'")
                }
                ChildProcesses.installSignalHandlers()
                try await WorkerBench(logger: logger).drain(
                    count: try number(arguments[1], "N"), workers: try number(arguments[2], "WORKERS"),
                    measuringMemory: arguments.count == 3)
            case ("exec", 2):
                ChildProcesses.installSignalHandlers()
                try await WorkerBench(logger: logger).drain(
                    count: try number(arguments[1], "N"), workers: 1,
                    handler: trueHandler, label: "exec")
            case ("soak", 3), ("soak", 4):
                guard arguments.count == 3 || arguments[3] == "exec" else { throw BenchError("soak takes N ROUNDS [exec], not '\(arguments[3])'") }
                ChildProcesses.installSignalHandlers()
                try await WorkerBench(logger: logger).soak(
                    count: try number(arguments[1], "N"), rounds: try number(arguments[2], "ROUNDS"),
                    handler: arguments.count == 4 ? trueHandler : "builtin: noop")
            case ("priority", 2):
                ChildProcesses.installSignalHandlers()
                try await WorkerBench(logger: logger).priority(backlog: try number(arguments[1], "N"))
            case ("recovery", 2):
                ChildProcesses.installSignalHandlers()
                try await WorkerBench(logger: logger).recovery(seconds: try number(arguments[1], "SECONDS"))
            case ("cleanup", 1):
                try await WorkerBench.cleanup(logger: logger)
            case ("chaos-publish", _):
                try await ChaosPublisher(settings: try ChaosPublisher.Settings(arguments: Array(arguments.dropFirst())), logger: logger).run()
            case ("locks", 2):
                try await LockBench(logger: logger).run(seconds: try number(arguments[1], "SECONDS"))
            default:
                fail(usage, status: 2)
            }
        } catch {
            fail("agentry-bench: \(error)", status: 1)
        }
    }

    static func number(_ text: String, _ name: String) throws -> Int {
        guard let value = Int(text), value > 0 else { throw BenchError("\(name) must be a positive integer, not '\(text)'") }
        return value
    }

    static func fail(_ message: String, status: Int32) -> Never {
        FileHandle.standardError.write(Data((message + "\n").utf8))
        exit(status)
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Formats "VERB N msgs in S s: R UNIT" the way Scripts/bench parses it.
func report(_ verb: String, _ count: Int, _ what: String, _ elapsed: Duration, _ unit: String) {
    let seconds = elapsed.inSeconds
    let rate = seconds > 0 ? Double(count) / seconds : 0
    print("\(verb) \(count) \(what) in \(String(format: "%.3f", seconds)) s: \(String(format: "%.0f", rate)) \(unit)")
}

/// Runs `body(0..<count)` with at most `window` calls in flight, starting a new one whenever one finishes.
func windowed(_ count: Int, window: Int, _ body: @escaping @Sendable (Int) async throws -> Void) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        for index in 0..<count {
            if index >= window { try await group.next() }
            group.addTask { try await body(index) }
        }
        try await group.waitForAll()
    }
}

/// An AMQP configuration from AGENTRY_AMQP_URL (default guest@localhost), optionally on another vhost.
func amqpConfiguration(virtualHost: String? = nil) throws -> AMQPConfiguration {
    var configuration = try AMQPConfiguration(url: ProcessInfo.processInfo.environment["AGENTRY_AMQP_URL"] ?? "amqp://guest:guest@localhost:5672/%2f")
    if let virtualHost { configuration.virtualHost = virtualHost }
    configuration.options.connectionName = "agentry-bench"
    return configuration
}

// MARK: - AMQP client

/// Publish and consume rates of the AMQP client, with the same messages and queue settings as amqpbench.c:
/// persistent 256-byte bodies, priorities 1…4 round-robin, through the topic exchange `bench.events` into a durable
/// classic queue with `x-max-priority` 4.
struct AMQPBench {
    static let virtualHost = "bench"
    static let exchange = "bench.events"
    static let queue = "bench.swift.prio"
    static let routingKey = "swift.prio.event"
    static let bodySize = 256

    let logger: Logger

    func withConnection<T>(_ body: (AMQPConnection) async throws -> T) async throws -> T {
        let connection = AMQPConnection(configuration: try amqpConfiguration(virtualHost: Self.virtualHost), logger: logger)
        do {
            try await connection.connect()
        } catch {
            throw BenchError(
                "cannot connect to vhost '\(Self.virtualHost)' (create it: rabbitmqctl add_vhost bench; rabbitmqctl set_permissions -p bench guest \".*\" \".*\" \".*\"): \(error)"
            )
        }
        do {
            let result = try await body(connection)
            await connection.close()
            return result
        } catch {
            await connection.close()
            throw error
        }
    }

    func publish(count: Int, window: Int) async throws {
        try await withConnection { connection in
            // Same exchange as amqpbench.c (declared identically: topic, durable), a queue of our own.
            try await connection.declare(ExchangeDeclaration(name: Self.exchange, kind: .topic, durable: true))
            try await connection.deleteQueue(Self.queue)
            try await connection.declare(
                QueueDeclaration(
                    name: Self.queue, durable: true,
                    arguments: ["x-queue-type": "classic", "x-max-priority": 4]))
            try await connection.bind(BindingDeclaration(source: Self.exchange, destination: .queue(Self.queue), routingKey: "swift.prio.#"))
            let channel = try await connection.openChannel(confirms: true)
            let body = [UInt8](repeating: UInt8(ascii: "x"), count: Self.bodySize)
            let messages = (1...4).map { priority in
                AMQPMessage(
                    exchange: Self.exchange, routingKey: Self.routingKey, body: body,
                    properties: AMQPProperties(contentType: "application/octet-stream", deliveryMode: 2, priority: UInt8(priority)))
            }
            let clock = ContinuousClock()
            let start = clock.now
            try await windowed(count, window: window) { index in
                try await channel.publish(messages[index % 4])
            }
            let elapsed = clock.now - start
            channel.close()
            report("publish", count, "msgs", elapsed, "msg/s")
        }
    }

    func consume(count: Int, prefetch: UInt16) async throws {
        try await withConnection { connection in
            let ready = try await connection.queueStatus(Self.queue).messageCount
            if ready < count {
                FileHandle.standardError.write(Data("warning: \(Self.queue) holds \(ready) messages, fewer than \(count)\n".utf8))
            }
            let consumer = try await connection.consume(queue: Self.queue, prefetch: prefetch)
            let progress = Progress()
            let clock = ContinuousClock()
            let start = clock.now
            // The consuming loop, beside a watchdog that gives up after 30 s without a delivery (like amqpbench.c).
            let received = try await withThrowingTaskGroup(of: Int?.self) { group in
                group.addTask {
                    var received = 0
                    for try await delivery in consumer {
                        delivery.ack()
                        received += 1
                        progress.count.store(received, ordering: .relaxed)
                        if received == count { break }
                    }
                    return received
                }
                group.addTask {
                    var last = -1
                    var idle = 0
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(1))
                        let now = progress.count.load(ordering: .relaxed)
                        idle = now == last ? idle + 1 : 0
                        last = now
                        if idle >= 30 { return nil }
                    }
                    return nil
                }
                let first = try await group.next()!
                group.cancelAll()
                if let received = first { return received }
                // The watchdog ended first: the consuming loop ends on cancellation.
                while let next = try await group.next() {
                    if let received = next { return received }
                }
                return progress.count.load(ordering: .relaxed)
            }
            let elapsed = clock.now - start
            await consumer.close()
            guard received == count else {
                throw BenchError("timeout: received \(received) of \(count) messages, none for 30 s")
            }
            report("consume", count, "msgs", elapsed, "msg/s")
        }
    }
}

final class Progress: Sendable {
    let count = Atomic<Int>(0)
}

// MARK: - Event log

/// How fast the event log service drains a backlog into `event_log`: N events are published first, with no service
/// running, to an agent queue bound to `bench.#` (so they count as handled), then the service starts and the time
/// until the N rows are in `event_log` is measured.
struct EventLogBench {
    static let eventType = "bench.tick"
    static let sinkAgent = "bench-sink"

    let logger: Logger

    func run(count: Int) async throws {
        let environment = ProcessInfo.processInfo.environment
        let database = try DatabaseConfiguration(url: environment["AGENTRY_DATABASE_URL"] ?? "postgres://agentry:agentry@localhost:5432/agentry")
        let amqp = try amqpConfiguration()
        let logger = self.logger
        let runTag = "agentry-bench-\(UUID().uuidString.lowercased())"

        _ = try await Migrator(configuration: database, logger: logger).migrate(Migration.builtIn)
        let topology = Topology.builtIn

        // Publish the backlog on a connection of its own, closed before the service starts.
        let publisher = AMQPConnection(configuration: amqp, logger: logger)
        try await publisher.connect()
        do {
            _ = try await topology.apply(on: publisher)
            let logQueue = try await publisher.queueStatus(Topology.eventLogQueue)
            if logQueue.consumerCount > 0 {
                throw BenchError(
                    "\(Topology.eventLogQueue) has \(logQueue.consumerCount) consumer(s): stop the running event log service (agentry run) first")
            }
            let bus = try await EventBus(connection: publisher, logger: logger)
            try await bus.declareAgentQueue(Self.sinkAgent, patterns: ["bench.#"])
            try await publisher.purgeQueue(Topology.agentQueue(Self.sinkAgent).name)
            try await publisher.purgeQueue(Topology.eventLogQueue)

            let clock = ContinuousClock()
            let start = clock.now
            try await windowed(count, window: 1000) { index in
                try await bus.publish(
                    Event(
                        type: Self.eventType, payload: ["seq": .int(Int64(index)), "run": .string(runTag)],
                        priority: Priority.allCases[index % 4], source: runTag))
            }
            report("eventlog pre-published", count, "events", clock.now - start, "events/s")
            let queued = try await publisher.queueStatus(Topology.eventLogQueue).messageCount
            if queued != UInt32(count) {
                FileHandle.standardError.write(Data("warning: \(Topology.eventLogQueue) holds \(queued) messages, expected \(count)\n".utf8))
            }
        } catch {
            await publisher.close()
            throw error
        }
        await publisher.close()

        try await Database.with(database, logger: logger) { db in
            let connection = AMQPConnection(configuration: amqp, logger: logger)
            try await connection.connect()
            let outcome: Result<Duration, any Error>
            do {
                let bus = try await EventBus(connection: connection, logger: logger)
                let store = EventLogStore(database: db, logger: logger)
                let service = EventLogService(connection: connection, bus: bus, store: store, logger: logger)
                let clock = ContinuousClock()
                let start = clock.now
                let status = ServiceStatus()
                let task = Task {
                    do {
                        try await service.run()
                    } catch {
                        status.failure.withLock { $0 = "\(error)" }
                        throw error
                    }
                }
                do {
                    let deadline = start + .seconds(60 + count / 500)
                    var logged = 0
                    while logged < count {
                        try await Task.sleep(for: .milliseconds(100))
                        logged = try await Self.loggedCount(db, runTag: runTag, logger: logger)
                        if let failure = status.failure.withLock({ $0 }) { throw BenchError("the event log service stopped: \(failure)") }
                        if clock.now > deadline {
                            throw BenchError(
                                "timeout: \(logged) of \(count) events in event_log after \(String(format: "%.1f", (clock.now - start).inSeconds)) s")
                        }
                    }
                    outcome = .success(clock.now - start)
                } catch {
                    outcome = .failure(error)
                }
                task.cancel()
                do {
                    try await task.value
                } catch is CancellationError {
                } catch {
                    logger.warning("event log service ended with an error", metadata: ["error": "\(error)"])
                }
            } catch {
                outcome = .failure(error)
            }
            // Leave nothing behind: the sink queue, this run's rows (and those of any run that died before cleaning up).
            do {
                try await connection.deleteQueue(Topology.agentQueue(Self.sinkAgent).name)
            } catch {
                logger.warning("cannot delete the bench sink queue", metadata: ["error": "\(error)"])
            }
            await connection.close()
            try await BenchmarkStore(database: db, logger: logger).deleteEvents(type: Self.eventType)
            report("eventlog drained", count, "events", try outcome.get(), "rows/s")
        }
    }

    static func loggedCount(_ db: Database, runTag: String, logger: Logger) async throws -> Int {
        try await BenchmarkStore(database: db, logger: logger).loggedCount(type: eventType, source: runTag)
    }
}

final class ServiceStatus: Sendable {
    let failure = Mutex<String?>(nil)
}
