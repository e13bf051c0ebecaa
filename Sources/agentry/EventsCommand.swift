import AgentryAdmin
import AgentryCore
import AgentryRuntime
import AgentryStore
import ArgumentParser
import Foundation
import Logging

extension Agentry {
    struct Events: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "The event log (list, filter and page it), and delayed events (agentry publish --at/--delay, the API's deliver_at, schedules' ticks): list and cancel them.",
            subcommands: [List.self, Scheduled.self, Cancel.self])
    }
}

extension Agentry.Events {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Logged events, newest first, filtered and a page at a time (as GET /api/events).",
            discussion: "A full page ends with the --cursor that shows the next one.")
        @OptionGroup var options: GlobalOptions

        @Option(help: "Only events about this agent: their payload's agent_id, else their source.")
        var agent: String?

        @OptionGroup var search: SearchOptions

        @Flag(help: "Print JSON.")
        var json = false

        func run() async throws {
            let query = EventSearch(
                type: try search.typeMatch(), agent: agent, priority: try search.priorityLevel(), since: try search.sinceDate(),
                until: try search.untilDate(), text: search.text, cursor: try search.searchCursor(.events))
            let limit = search.limit
            let page = try await withEventLog(options) { log in try await log.search(query, limit: limit) }
            if json {
                printJSON(
                    .object([
                        "events": .array(page.items.map { Representation.event($0.event) }), "count": .int(Int64(page.items.count)),
                        "next_cursor": page.next.map { .string($0.token) } ?? .null,
                    ]))
                return
            }
            if page.items.isEmpty {
                print(query == EventSearch() ? "the event log is empty; `agentry publish TYPE` publishes an event" : "no events match")
                return
            }
            printTable(
                header: ["TIME", "TYPE", "PRIORITY", "SOURCE", "EVENT", "PAYLOAD"],
                rows: page.items.map { entry in
                    let event = entry.event
                    return [
                        Timestamp.format(event.timestamp), event.type, event.priority.name, event.source ?? "-", event.id.rawValue,
                        String(JSONValue.object(event.payload).jsonText.prefix(60)),
                    ]
                })
            printNextCursor(page.next)
        }
    }

    struct Scheduled: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Events waiting for their delivery time, the soonest first.")
        @OptionGroup var options: GlobalOptions
        @Option(help: "At most this many.") var limit: Int = 50
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let limit = self.limit
            let pending = try await withSchedules(options) { _, delayed in try await delayed.pending(limit: limit) }
            if json {
                printJSON(.object(["events": .array(pending.map(Representation.delayedEvent)), "count": .int(Int64(pending.count))]))
                return
            }
            if pending.isEmpty {
                print("no events wait for delivery; `agentry publish TYPE --delay 30s` keeps one until its time")
                return
            }
            printTable(
                header: ["EVENT", "TYPE", "PRIORITY", "DELIVER AT", "SCHEDULE", "TRIES", "LAST ERROR"],
                rows: pending.map { item in
                    [
                        item.event.id.rawValue, item.event.type, item.event.priority.name, Timestamp.format(item.deliverAt),
                        item.scheduleName ?? "-", String(item.attempts), String((item.lastError ?? "").prefix(50)),
                    ]
                })
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel an event waiting for its delivery time.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The event's id.") var id: String

        func validate() throws {
            guard EventID(id) != nil else { throw ValidationError("'\(id)' is not an event id (1…255 bytes, no NUL)") }
        }

        func run() async throws {
            guard let eventID = EventID(id) else { return }
            let who = "cli (\(ProcessInfo.processInfo.hostName))"
            let outcome = try await withSchedules(options) { _, delayed in try await delayed.cancel(eventID, by: who) }
            switch outcome {
            case .cancelled: print("event \(eventID) cancelled")
            case .notFound: throw fail(StoreError(.notFound, "no delayed event has the id \(eventID) (agentry events scheduled)"))
            case .published(let at):
                throw fail(StoreError(.conflict, "event \(eventID) was published already\(at.map { " at \(Timestamp.format($0))" } ?? "")"))
            case .alreadyCancelled: print("event \(eventID) was cancelled already")
            case .publishing: throw fail(StoreError(.conflict, "event \(eventID) is being published at this moment; it can no longer be cancelled"))
            }
        }
    }
}

/// Opens the database for a command that reads the event log.
func withEventLog<T: Sendable>(_ options: GlobalOptions, _ body: @Sendable (EventLogStore) async throws -> T) async throws -> T {
    let configuration = try options.resolve()
    let logger = try options.logger("agentry.events", default: .warning)
    do {
        return try await Database.with(configuration.database, logger: logger) { database in
            try await database.ping()
            return try await body(EventLogStore(database: database, logger: logger))
        }
    } catch {
        throw fail(error)
    }
}
