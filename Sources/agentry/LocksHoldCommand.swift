import AgentryAdmin
import AgentryCore
import AgentryRuntime
import AgentryStore
import ArgumentParser
import Foundation
import Logging

/// Who runs this command, for `lock_holds.requested_by`: `alice@lab-3 (agentry locks acquire)`.
func commandCaller(_ command: String) -> String {
    "\(ProcessInfo.processInfo.environment["USER"] ?? "someone")@\(ProcessInfo.processInfo.hostName) (agentry locks \(command))"
}

/// Runs `body` with the desk where people ask for holds (no broker: the keeper announces what it does).
func withHoldDesk<T: Sendable>(_ options: GlobalOptions, _ body: @Sendable (HoldDesk) async throws -> T) async throws -> T {
    let configuration = try options.resolve()
    let logger = try options.logger("agentry.locks", default: .warning)
    do {
        return try await Database.with(configuration.database, logger: logger) { database in
            try await database.ping()
            return try await body(HoldDesk(database: database, logger: logger))
        }
    } catch {
        throw fail(error)
    }
}

/// `--owner`, or the user running the command.
func ownerOption(_ owner: String?) -> LockOwner {
    .user(owner ?? ProcessInfo.processInfo.environment["USER"] ?? "operator")
}

/// A duration flag: seconds, or `30s`, `10m`, `2h`, `1d`.
func durationOption(_ text: String, flag: String) throws -> Duration {
    guard let seconds = parseDelay(text) else { throw ValidationError("\(flag) '\(text)' is not a duration like 90s, 10m, 2h or 1d") }
    return .milliseconds(Int64((seconds * 1000).rounded()))
}

extension Agentry.Locks {
    struct Acquire: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Take a resource for a person: a hold like an agent's, kept by the workers until it is given back or its time runs out.",
            discussion: """
                The hold waits behind the requests that rank before it (priority, then arrival) and agents that need \
                the resource wait behind it. The hold outlives this command: the hold keeper of the workers (or of \
                `agentry admin`) holds it. Give it back with `agentry locks release RESOURCE --owner NAME`.
                """)
        @OptionGroup var options: GlobalOptions

        @Argument(help: "The resource, <type>:<id> (device:tv-1).")
        var resource: String

        @Option(help: "Who holds it (default: $USER).")
        var owner: String?

        @Option(name: .customLong("for"), help: "How long the hold lasts once granted: 90s, 30m, 2h, 1d (default 1h, at most 7d).")
        var holdFor = "1h"

        @Option(help: "How long to wait for the resource when someone holds it (default: not at all).")
        var wait: String?

        @Option(help: "critical, high, normal or low: the hold's place among the waiters (default normal).")
        var priority = "normal"

        @Flag(help: "Print JSON.")
        var json = false

        func validate() throws {
            _ = try parseResource(resource)
            _ = try durationOption(holdFor, flag: "--for")
            if let wait { _ = try durationOption(wait, flag: "--wait") }
            _ = try priorityOption(priority)
        }

        func run() async throws {
            let request = LockHoldRequest(
                resource: try parseResource(resource), owner: ownerOption(owner), priority: try priorityOption(priority),
                holdFor: try durationOption(holdFor, flag: "--for"), wait: try wait.map { try durationOption($0, flag: "--wait") } ?? .zero,
                requestedBy: commandCaller("acquire"))
            let held = try await withHoldDesk(options) { desk in try await desk.take(request) }
            if json {
                printJSON(Representation.hold(held))
                return
            }
            print(
                "\(held.resource) held by \(held.owner) until \(held.holdUntil.map { Timestamp.format($0) } ?? "-") (fencing token \(held.fencingToken.map(String.init) ?? "-"), hold \(held.id.uuidString.lowercased()))"
            )
            print("give it back with: agentry locks release \(held.resource) --owner \(held.owner.id)")
        }
    }

    struct Holds: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "People's holds: asked for, held, and (with --all) ended.")
        @OptionGroup var options: GlobalOptions

        @Flag(help: "Include the holds that ended (the latest 100).")
        var all = false

        @Flag(help: "Print JSON.")
        var json = false

        func run() async throws {
            let all = self.all
            let holds = try await withHoldDesk(options) { desk in try await desk.store.list(liveOnly: !all) }
            if json {
                printJSON(.object(["holds": .array(holds.map(Representation.hold)), "count": .int(Int64(holds.count))]))
                return
            }
            if holds.isEmpty {
                print(all ? "nobody took a resource yet" : "no person holds or waits for a resource")
                return
            }
            printTable(
                header: ["RESOURCE", "OWNER", "STATE", "PRIORITY", "UNTIL", "TOKEN", "MESSAGE"],
                rows: holds.map { hold in
                    [
                        hold.resource.description, hold.owner.description, hold.state.rawValue, hold.priority.name,
                        hold.holdUntil.map { Timestamp.format($0) } ?? "-", hold.fencingToken.map(String.init) ?? "-", hold.message ?? "",
                    ]
                })
        }
    }
}
