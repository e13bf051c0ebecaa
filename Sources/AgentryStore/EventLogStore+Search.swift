public import AgentryCore
public import Foundation
import PostgresNIO

/// What a search of the event log keeps. Every field narrows; nil keeps everything.
public struct EventSearch: Sendable, Hashable {
    public var type: TypeMatch?
    /// The agent an event concerns: its payload's `agent_id` (the worker's `agent.task.*` events), else its source
    /// (the events an agent published carry its id there).
    public var agent: String?
    public var priority: Priority?
    /// Events at or after this time (their `timestamp`).
    public var since: Date?
    /// Events before this time.
    public var until: Date?
    /// Text in the payload's JSON, any case.
    public var text: String?
    public var cursor: SearchCursor?

    public init(
        type: TypeMatch? = nil, agent: String? = nil, priority: Priority? = nil, since: Date? = nil, until: Date? = nil, text: String? = nil,
        cursor: SearchCursor? = nil
    ) {
        self.type = type
        self.agent = agent
        self.priority = priority
        self.since = since
        self.until = until
        self.text = text
        self.cursor = cursor
    }
}

extension EventLogStore {
    /// A page of logged events, newest first (by their `timestamp`, then the log's row id), and the cursor to the
    /// next page. Each filter reads an index in this order (migration 0030), so a page costs about the same at any
    /// depth and size of the log.
    public func search(_ search: EventSearch, limit: Int) async throws -> SearchPage<Entry> {
        let limit = max(1, min(limit, 10_000))
        var sql = SearchSQL()
        var types: [String]? = nil
        switch search.type {
        case .exact(let type)?: types = [type]
        case .pattern(let pattern)?:
            types = try await distinctTypes().filter { EventType.matches($0, pattern: pattern) }
            if types?.isEmpty == true { return SearchPage(items: [], next: nil) }
        case nil: break
        }
        if let agent = search.agent { sql.conditions.append("COALESCE(payload ->> 'agent_id', source) = \(sql.bind(agent))") }
        if let priority = search.priority { sql.conditions.append("priority = \(sql.bind(priority.rawValue))") }
        if let since = search.since { sql.conditions.append("\"timestamp\" >= \(sql.bind(since))") }
        if let until = search.until { sql.conditions.append("\"timestamp\" < \(sql.bind(until))") }
        if let text = search.text {
            sql.conditions.append("payload::text ILIKE \(sql.bind(SearchSQL.substring(text)))")
            // Without a type, the text is searched through the trigram index, which leaves out agent.* events.
            if types == nil { sql.conditions.append(SearchSQL.textIndexed) }
        }
        sql.after(search.cursor, time: "\"timestamp\"", id: "id")
        let order = "ORDER BY \"timestamp\" DESC, id DESC LIMIT \(limit + 1)"
        let from = sql.source("event_log", types: types, order: order)
        let query = PostgresQuery(
            unsafeSQL: """
                SELECT event_id, event_type, payload::text, priority, "timestamp", source, correlation_id, causation_id, unhandled,
                       unhandled_announced, created_at, id
                FROM \(from) \(order)
                """, binds: sql.bindings)
        var entries: [(Entry, UUID)] = []
        do {
            let rows = try await database.query(query, logger: logger)
            for try await (id, type, payload, priority, timestamp, source, correlation, causation, unhandled, announced, created, rowID)
                in rows.decode((String, String, String, Int, Date, String?, String?, String?, Bool, Bool, Date, UUID).self)
            {
                let event = Event(
                    id: EventID(id)!, type: type, payload: try StoredJSON.object(payload, "the payload of event \(id) in event_log"),
                    priority: Priority(rawValue: priority) ?? .low, timestamp: timestamp, source: source, correlationID: correlation,
                    causationID: causation)
                entries.append((Entry(event: event, unhandled: unhandled, unhandledAnnounced: announced, loggedAt: created), rowID))
            }
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(.query, "cannot search event_log", cause: error)
        }
        guard entries.count > limit else { return SearchPage(items: entries.map(\.0), next: nil) }
        let last = entries[limit - 1]
        return SearchPage(
            items: entries.prefix(limit).map(\.0), next: SearchCursor(kind: .events, time: last.0.event.timestamp, id: last.1))
    }

    /// The event types the log holds, read through its (event_type, "timestamp", id) index.
    func distinctTypes() async throws -> [String] {
        var types: [String] = []
        do {
            for try await type in try await database.query(SearchSQL.distinct("event_type", in: "event_log"), logger: logger).decode(String.self) {
                types.append(type)
            }
        } catch {
            throw StoreError(.query, "cannot read the event types in event_log", cause: error)
        }
        return types
    }
}
