import AgentryCore
import AgentryStore
import Foundation

/// Filtering and paging the event log and the runs (`GET /api/events`, `GET /api/runs`): the query parameters both
/// share, read the same way as `agentry events list` and `agentry runs list` read their options.
extension AdminAPI {
    func listEvents(_ input: Operations.ListEvents.Input) async throws -> Operations.ListEvents.Output {
        let query = input.query
        let search = EventSearch(
            type: try typeMatch(query._type), agent: try nonEmpty(query.agent, "agent"), priority: try priorityFilter(query.priority),
            since: try time(query.since, "since"), until: try time(query.until, "until"), text: try searchText(query.q),
            cursor: try cursor(query.cursor, .events))
        try checkRange(search.since, search.until)
        let page = try await dependencies.eventLog.search(search, limit: try limit(query.limit, default: 50))
        return .ok(
            .init(
                body: .json(
                    .init(
                        events: page.items.map { Representation.event($0.event) }, count: page.items.count,
                        nextCursor: page.next.map { .string($0.token) } ?? .null))))
    }

    /// A `type` parameter: an event type, or a topic pattern with `*` or `#` words.
    func typeMatch(_ text: String?) throws -> TypeMatch? {
        guard let text else { return nil }
        switch TypeMatch.parse(text) {
        case .success(let match): return match
        case .failure(let problem): throw AdminError.badRequest("type: \(problem)")
        }
    }

    func priorityFilter(_ name: String?) throws -> Priority? {
        guard let name else { return nil }
        guard let level = Priority(name: name) else {
            throw AdminError.badRequest("priority must be one of critical, high, normal, low, not \(JSON.serialize(.string(name)))")
        }
        return level
    }

    /// An RFC 3339 time (`2026-12-06T21:00:00Z`, `2026-12-06T22:00:00.5+01:00`), read as the CLI reads its times.
    func time(_ text: String?, _ name: String) throws -> Date? {
        guard let text else { return nil }
        guard let date = Timestamp.parse(text) else {
            throw AdminError.badRequest("\(name) \(JSON.serialize(.string(text))) is not an RFC 3339 time such as 2026-12-06T21:00:00Z")
        }
        return date
    }

    func checkRange(_ since: Date?, _ until: Date?) throws {
        if let since, let until, until <= since {
            throw AdminError.badRequest("until (\(Timestamp.format(until))) must be after since (\(Timestamp.format(since)))")
        }
    }

    func searchText(_ text: String?) throws -> String? {
        guard let text else { return nil }
        guard !text.isEmpty, text.count <= 200 else { throw AdminError.badRequest("q must be 1 to 200 characters, not \(text.count)") }
        guard !text.unicodeScalars.contains("\0") else { throw AdminError.badRequest("q must not contain NUL") }
        return text
    }

    func nonEmpty(_ text: String?, _ name: String) throws -> String? {
        guard let text else { return nil }
        guard !text.isEmpty, text.utf8.count <= 255, !text.unicodeScalars.contains("\0") else {
            throw AdminError.badRequest("\(name) must be 1 to 255 bytes with no NUL")
        }
        return text
    }

    func cursor(_ token: String?, _ kind: SearchCursor.Kind) throws -> SearchCursor? {
        guard let token else { return nil }
        do {
            return try SearchCursor(token: token, kind: kind)
        } catch {
            throw AdminError.badRequest(error.description)
        }
    }
}
