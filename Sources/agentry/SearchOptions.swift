import AgentryCore
import AgentryStore
import ArgumentParser
import Foundation

/// The filters and paging `agentry events list` and `agentry runs list` share, named and read as the admin API's
/// `GET /api/events` and `GET /api/runs` parameters are.
struct SearchOptions: ParsableArguments {
    @Option(help: "Only this event type, or a topic pattern (`*` one word, `#` zero or more): alert.*, agent.task.#.")
    var type: String?

    @Option(help: "Only this priority: critical, high, normal, low.")
    var priority: String?

    @Option(help: "Only from this time on (ISO 8601, e.g. 2026-12-06T21:00:00Z).")
    var since: String?

    @Option(help: "Only before this time (ISO 8601).")
    var until: String?

    @Option(name: [.customLong("q"), .customLong("text")], help: "Only where the (event's) payload holds this text, any case.")
    var text: String?

    @Option(help: "At most this many (1 to 10000).")
    var limit: Int = 20

    @Option(help: "Go on after this page: the cursor the page before printed (next_cursor).")
    var cursor: String?

    func validate() throws {
        _ = try typeMatch()
        _ = try priorityLevel()
        let (since, until) = (try self.since.map { try timeOption($0, flag: "--since") }, try self.until.map { try timeOption($0, flag: "--until") })
        if let since, let until, until <= since { throw ValidationError("--until must be after --since") }
        if let text, text.isEmpty || text.count > 200 { throw ValidationError("--q must be 1 to 200 characters") }
        guard (1...10_000).contains(limit) else { throw ValidationError("--limit must be from 1 to 10000, got \(limit)") }
    }

    func typeMatch() throws -> TypeMatch? {
        guard let type else { return nil }
        switch TypeMatch.parse(type) {
        case .success(let match): return match
        case .failure(let problem): throw ValidationError("--type: \(problem)")
        }
    }

    func priorityLevel() throws -> Priority? { try priority.map { try priorityOption($0) } }
    func sinceDate() throws -> Date? { try since.map { try timeOption($0, flag: "--since") } }
    func untilDate() throws -> Date? { try until.map { try timeOption($0, flag: "--until") } }

    func searchCursor(_ kind: SearchCursor.Kind) throws -> SearchCursor? {
        guard let cursor else { return nil }
        do {
            return try SearchCursor(token: cursor, kind: kind)
        } catch {
            throw ValidationError("--cursor: \(error)")
        }
    }
}

/// After a page's table: how to ask for the next one.
func printNextCursor(_ next: SearchCursor?) {
    guard let next else { return }
    print("more: the same with --cursor \(next.token)")
}
