import AMQP
import AgentryBus
import AgentryCore
import AgentryRuntime
import ArgumentParser
import Foundation
import Logging

extension Agentry {
    struct Dead: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show and replay messages parked in agentry.dead.",
            subcommands: [List.self, Replay.self])

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List parked messages with the reason they were parked (they stay parked).")
            @OptionGroup var options: GlobalOptions

            @Option(help: "Show at most this many.")
            var limit: Int = 100

            @Flag(help: "Print as JSON.")
            var json = false

            func run() async throws {
                let limit = self.limit
                let parked = try await withConnection(options) { connection in try await DeadLetters.list(on: connection, limit: limit) }
                if json {
                    printJSON(
                        .array(
                            parked.map { p in
                                [
                                    "id": .string(p.id), "routing_key": .string(p.originalRoutingKey), "exchange": .string(p.originalExchange),
                                    "reason": .string(p.reason), "message": .string(p.message), "queue": .string(p.queue),
                                    "parked_at": .string(p.parkedAt), "size": .int(Int64(p.bodySize)), "preview": .string(p.preview),
                                ]
                            }))
                    return
                }
                guard !parked.isEmpty else {
                    print("agentry.dead is empty")
                    return
                }
                printTable(
                    header: ["ID", "ROUTING KEY", "REASON", "PARKED AT", "MESSAGE"],
                    rows: parked.map { [$0.id, $0.originalRoutingKey, $0.reason, $0.parkedAt, $0.message] })
            }
        }

        struct Replay: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Publish parked messages again to where they were first published, and remove them from agentry.dead.")
            @OptionGroup var options: GlobalOptions

            @Argument(help: "Ids of the messages to replay (see `agentry dead list`).")
            var ids: [String] = []

            @Flag(help: "Replay every parked message.")
            var all = false

            func validate() throws {
                if ids.isEmpty && !all { throw ValidationError("name the messages to replay, or pass --all") }
                if !ids.isEmpty && all { throw ValidationError("pass either ids or --all, not both") }
            }

            func run() async throws {
                let wanted: Set<String>? = all ? nil : Set(ids)
                let report = try await withConnection(options) { connection in
                    let dead = DeadLetters(channel: try await connection.openChannel(confirms: true))
                    return try await dead.replayReport(on: connection, ids: wanted)
                }
                let replayed = report.replayed
                for message in replayed {
                    print(
                        "replayed \(message.id) to \(message.originalExchange.isEmpty ? "queue" : message.originalExchange) [\(message.originalRoutingKey)] (was parked: \(message.reason))"
                    )
                }
                for (message, reason) in report.refused {
                    print("left parked \(message.id): \(reason)")
                }
                let missing = (wanted ?? []).subtracting(replayed.map(\.id)).subtracting(report.refused.map(\.message.id))
                if !missing.isEmpty {
                    throw Failure("not found in agentry.dead: \(missing.sorted().joined(separator: ", "))")
                }
                if !report.refused.isEmpty {
                    throw Failure("\(report.refused.count) message(s) cannot be replayed and stay parked (see above)")
                }
                if replayed.isEmpty { print("nothing to replay: agentry.dead is empty") }
            }
        }
    }
}

/// Runs `body` with a connection to the broker.
func withConnection<T: Sendable>(_ options: GlobalOptions, _ body: @Sendable (AMQPConnection) async throws -> T) async throws -> T {
    let configuration = try options.resolve()
    let logger = try options.logger("agentry.dead", default: .warning)
    let connection = AMQPConnection(configuration: configuration.amqp, logger: logger)
    do {
        try await connection.connect()
        let result = try await body(connection)
        await connection.close()
        return result
    } catch {
        await connection.close()
        throw fail(error)
    }
}
