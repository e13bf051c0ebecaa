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
            abstract: "Show, replay and delete messages parked in agentry.dead.",
            subcommands: [List.self, Counts.self, Show.self, Replay.self, Delete.self])

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List parked messages with the reason they were parked (they stay parked).")
            @OptionGroup var options: GlobalOptions

            @Option(help: "Show at most this many, the newest first.")
            var limit: Int = 100

            @Option(help: "Only messages parked for this reason (see `agentry dead counts`).")
            var reason: String?

            @Flag(help: "Print as JSON.")
            var json = false

            func run() async throws {
                let (limit, reason) = (self.limit, self.reason)
                let survey = try await withConnection(options) { connection in
                    try await DeadLetters.survey(on: connection, reason: reason, limit: limit)
                }
                let parked = survey.messages
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
                    print(survey.total == 0 ? "agentry.dead is empty" : "no message parked for '\(reason ?? "")' (\(survey.total) parked in all)")
                    return
                }
                printTable(
                    header: ["ID", "ROUTING KEY", "REASON", "PARKED AT", "MESSAGE"],
                    rows: parked.map { [$0.id, $0.originalRoutingKey, $0.reason, $0.parkedAt, $0.message] })
                let matching = reason.map { survey.reasons[$0] ?? 0 } ?? survey.total
                if matching > parked.count { print("(\(parked.count) of \(matching) shown; --limit shows more)") }
            }
        }

        struct Counts: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "How many messages are parked for each reason.")
            @OptionGroup var options: GlobalOptions

            @Flag(help: "Print as JSON.")
            var json = false

            func run() async throws {
                let survey = try await withConnection(options) { connection in try await DeadLetters.survey(on: connection, limit: 0) }
                if json {
                    printJSON(
                        .object([
                            "total": .int(Int64(survey.total)),
                            "reasons": .array(survey.reasonsByCount.map { ["reason": .string($0.reason), "count": .int(Int64($0.count))] }),
                        ]))
                    return
                }
                guard survey.total > 0 else {
                    print("agentry.dead is empty")
                    return
                }
                printTable(
                    header: ["REASON", "COUNT"],
                    rows: survey.reasonsByCount.map { [$0.reason.isEmpty ? "(none)" : $0.reason, String($0.count)] } + [
                        ["total", String(survey.total)]
                    ])
            }
        }

        struct Show: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Print a parked message whole: its headers, then its body.")
            @OptionGroup var options: GlobalOptions

            @Argument(help: "The message's id (see `agentry dead list`).")
            var id: String

            func run() async throws {
                let id = self.id
                guard let found = try await withConnection(options, { connection in try await DeadLetters.find(on: connection, id: id) }) else {
                    throw Failure("not found in agentry.dead: \(id)")
                }
                let message = found.message
                print("id:          \(message.id)")
                print("reason:      \(message.reason) (\(message.message))")
                print("queue:       \(message.queue)")
                print("parked at:   \(message.parkedAt)")
                print("replays to:  \(message.originalExchange.isEmpty ? "queue" : message.originalExchange) [\(message.originalRoutingKey)]")
                if let refusal = DeadLetters.replayRefusal(message) { print("not replayable: \(refusal)") }
                print("size:        \(message.bodySize) bytes\(message.truncated ? " (only the first \(found.body.count) kept)" : "")")
                print("")
                print(String(decoding: found.body, as: UTF8.self))
            }
        }

        struct Replay: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Publish parked messages again to where they were first published, and remove them from agentry.dead.",
                discussion: """
                    A message leaves agentry.dead only once the broker confirmed its copy; one whose copy reaches no queue \
                    (its agent's queue is gone) stays parked and is named.
                    """)
            @OptionGroup var options: GlobalOptions
            @OptionGroup var chosen: ParkedChoice

            func validate() throws { _ = try chosen.selection("replay") }

            func run() async throws {
                let selection = try chosen.selection("replay")
                let report = try await withConnection(options) { connection in
                    let dead = DeadLetters(channel: try await connection.openChannel(confirms: true))
                    return try await dead.replayReport(on: connection, selection: selection)
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
                print("replayed \(replayed.count), left parked \(report.refused.count)")
                let missing = selection.missing(from: replayed + report.refused.map(\.message))
                if !missing.isEmpty {
                    throw Failure("not found in agentry.dead: \(missing.sorted().joined(separator: ", "))")
                }
                if !report.refused.isEmpty {
                    throw Failure("\(report.refused.count) message(s) cannot be replayed and stay parked (see above)")
                }
            }
        }

        struct Delete: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Delete parked messages from agentry.dead for good.")
            @OptionGroup var options: GlobalOptions
            @OptionGroup var chosen: ParkedChoice

            func validate() throws { _ = try chosen.selection("delete") }

            func run() async throws {
                let selection = try chosen.selection("delete")
                let deleted = try await withConnection(options) { connection in try await DeadLetters.delete(on: connection, selection: selection) }
                for message in deleted { print("deleted \(message.id) (was parked: \(message.reason))") }
                print("deleted \(deleted.count)")
                let missing = selection.missing(from: deleted)
                if !missing.isEmpty {
                    throw Failure("not found in agentry.dead: \(missing.sorted().joined(separator: ", "))")
                }
            }
        }

        /// Which parked messages a replay or a delete concerns: ids, `--reason`, or `--all`.
        struct ParkedChoice: ParsableArguments {
            @Argument(help: "Ids of the messages (see `agentry dead list`).")
            var ids: [String] = []

            @Option(help: "Every message parked for this reason (see `agentry dead counts`).")
            var reason: String?

            @Flag(help: "Every parked message.")
            var all = false

            func selection(_ action: String) throws -> DeadLetters.Selection {
                let given = [!ids.isEmpty, reason != nil, all].filter { $0 }.count
                guard given == 1 else {
                    throw ValidationError(
                        given == 0 ? "name the messages to \(action), or pass --reason REASON or --all" : "pass one of ids, --reason or --all")
                }
                if let reason { return .reason(reason) }
                return all ? .all : .ids(Set(ids))
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
