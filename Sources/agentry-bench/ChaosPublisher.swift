import AMQP
import AgentryBus
import AgentryCore
import Foundation
import Logging

/// The publisher of `Scripts/chaos`: a steady load of events, with a mix of priorities, through Agentry's own
/// ``EventBus`` (so it fails over across the brokers of AGENTRY_AMQP_URL as a worker does), recording each event the
/// broker confirmed. The chaos verdict compares these records with the database: an event confirmed here and never
/// logged or never run is lost.
///
///     agentry-bench chaos-publish --rate R --seconds S --record FILE [--devices N] [--duplicate-every N]
///                                 [--poison-every N] [--start-seq N]
///
/// Every event is `chaos.work` (run by the exec and builtin chaos agents) or, one in three, `chaos.lock` (run by the
/// agent that locks `device:<payload.device_id>`, one of N devices). Priorities go round low, normal, high, critical.
/// Every `--duplicate-every`th event is published a second time with the same id once the first was confirmed, and
/// every `--poison-every`th message is a body no consumer can read. A publish the broker does not confirm (its node
/// went away, a network cut) is tried again with the same id until it is confirmed or the run's grace ends.
///
/// The record (one line per fact, tab-separated, flushed at once so that a killed publisher leaves what it knew):
///
///     S <unix ms>                                        started
///     C <event id> <type> <priority> <unix ms> <tries>   confirmed
///     D <event id> <unix ms>                             its duplicate confirmed
///     P <message id> <unix ms>                           a poison message confirmed
///     U <event id> <error>                               never confirmed (given up at the end of the grace)
///     E <unix ms>                                        ended
struct ChaosPublisher {
    struct Settings {
        var rate = 20
        var seconds = 60
        var record = ""
        var devices = 4
        var duplicateEvery = 0
        var poisonEvery = 0
        var startSequence = 0
        /// How long, after the last event was due, unconfirmed publishes keep being tried.
        var grace: Duration = .seconds(90)

        init(arguments: [String]) throws {
            var rest = arguments[...]
            while let flag = rest.popFirst() {
                guard let value = rest.popFirst() else { throw BenchError("\(flag) needs a value") }
                func positive() throws -> Int {
                    guard let number = Int(value), number >= 0 else { throw BenchError("\(flag) needs a number ≥ 0, not '\(value)'") }
                    return number
                }
                switch flag {
                case "--rate": rate = try positive()
                case "--seconds": seconds = try positive()
                case "--record": record = value
                case "--devices": devices = max(1, try positive())
                case "--duplicate-every": duplicateEvery = try positive()
                case "--poison-every": poisonEvery = try positive()
                case "--start-seq": startSequence = try positive()
                case "--grace-seconds": grace = .seconds(try positive())
                default: throw BenchError("chaos-publish does not know \(flag)")
                }
            }
            guard !record.isEmpty else { throw BenchError("chaos-publish needs --record FILE") }
            guard rate > 0 else { throw BenchError("--rate must be positive") }
        }
    }

    /// Appends lines to the record, each written with one `write(2)` on an `O_APPEND` descriptor.
    final class Record: Sendable {
        let descriptor: Int32

        init(path: String) throws {
            descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            guard descriptor >= 0 else { throw BenchError("cannot open \(path): \(String(cString: strerror(errno)))") }
        }

        func line(_ fields: String...) {
            let bytes = Array((fields.joined(separator: "\t") + "\n").utf8)
            _ = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        }

        static var now: String { String(Int64(Date().timeIntervalSince1970 * 1000)) }
    }

    let settings: Settings
    let logger: Logger

    func run() async throws {
        let record = try Record(path: settings.record)
        var configuration = try amqpConfiguration()
        configuration.options.connectionName = "agentry-chaos-publisher"
        configuration.options.confirmTimeout = .seconds(10)
        let connection = AMQPConnection(configuration: configuration, logger: logger)
        try await connection.connect(keepTrying: true)
        var options = EventBus.Options()
        options.publishAttempts = 1
        let bus = try await EventBus(connection: connection, options: options, logger: logger)
        let poisonChannel = try await connection.openChannel(confirms: true)
        record.line("S", Record.now)
        let clock = ContinuousClock()
        let start = clock.now
        let giveUpAt = start + .seconds(settings.seconds) + settings.grace
        let total = settings.rate * settings.seconds
        let (confirmed, abandoned) = try await withThrowingTaskGroup(of: Bool?.self) { group in
            for index in 0..<total {
                try await clock.sleep(until: start + .seconds(Double(index) / Double(settings.rate)))
                let sequence = settings.startSequence + index
                if settings.poisonEvery > 0, index % settings.poisonEvery == settings.poisonEvery - 1 {
                    group.addTask {
                        await publishPoison(sequence, on: poisonChannel, record: record, until: giveUpAt)
                        return nil
                    }
                }
                let event = Self.event(sequence, devices: settings.devices)
                let duplicate = settings.duplicateEvery > 0 && index % settings.duplicateEvery == 0
                group.addTask { await publish(event, on: bus, record: record, until: giveUpAt, duplicate: duplicate) }
            }
            var counts = (0, 0)
            for try await outcome in group {
                if outcome == true { counts.0 += 1 } else if outcome == false { counts.1 += 1 }
            }
            return counts
        }
        record.line("E", Record.now)
        print(
            "chaos-publish: \(confirmed) confirmed, \(abandoned) never confirmed, \(connection.reconnectCount) reconnects"
        )
        await connection.close()
    }

    /// Event `sequence`: `chaos.lock` one in three, else `chaos.work`; priorities in turn.
    static func event(_ sequence: Int, devices: Int) -> Event {
        let priorities: [Priority] = [.low, .normal, .high, .critical]
        let type = sequence % 3 == 2 ? "chaos.lock" : "chaos.work"
        return Event(
            type: type,
            payload: ["seq": .int(Int64(sequence)), "device_id": .string("chaos-dev-\(sequence % devices)")],
            priority: priorities[sequence % priorities.count], source: "chaos")
    }

    /// Publishes until confirmed (true) or past `deadline` (false, recorded as `U`); then the duplicate, if asked.
    func publish(_ event: Event, on bus: EventBus, record: Record, until deadline: ContinuousClock.Instant, duplicate: Bool) async -> Bool {
        var tries = 0
        while true {
            tries += 1
            do {
                try await bus.publish(event)
                record.line("C", event.id.rawValue, event.type, event.priority.name, Record.now, String(tries))
                break
            } catch {
                guard ContinuousClock.now < deadline else {
                    record.line("U", event.id.rawValue, "\(error)".replacingOccurrences(of: "\n", with: " "))
                    return false
                }
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        if duplicate {
            while ContinuousClock.now < deadline {
                do {
                    try await bus.publish(event)
                    record.line("D", event.id.rawValue, Record.now)
                    break
                } catch {
                    try? await Task.sleep(for: .milliseconds(200))
                }
            }
        }
        return true
    }

    /// A message no consumer can read: a body that is not an event, routed as `chaos.work`.
    func publishPoison(_ sequence: Int, on channel: AMQPChannel, record: Record, until deadline: ContinuousClock.Instant) async {
        let id = "chaos-poison-\(sequence)"
        let bodies = [#"{"not": "an event""#, #"{"id": 7, "type": ["chaos.work"]}"#, "\u{1}\u{2}binary"]
        let message = AMQPMessage(
            exchange: Topology.eventsExchange, routingKey: "chaos.work", body: Array(bodies[sequence % bodies.count].utf8),
            properties: AMQPProperties(contentType: "application/json", deliveryMode: 2, priority: 2, messageID: id))
        while ContinuousClock.now < deadline {
            do {
                try await channel.publish(message)
                record.line("P", id, Record.now)
                return
            } catch {
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
    }
}
