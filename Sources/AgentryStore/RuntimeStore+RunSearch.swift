public import AgentryCore
public import Foundation
import PostgresNIO

/// What a search of the runs keeps. Every field narrows; nil keeps everything.
public struct RunSearch: Sendable, Hashable {
    public var agent: String?
    public var eventID: String?
    public var state: TaskRun.State?
    /// The type of the run's event.
    public var type: TypeMatch?
    public var priority: Priority?
    /// Runs started at or after this time.
    public var since: Date?
    /// Runs started before this time.
    public var until: Date?
    /// Text in the payload of the run's event (as the event log keeps it), any case.
    public var text: String?
    public var cursor: SearchCursor?

    public init(
        agent: String? = nil, eventID: String? = nil, state: TaskRun.State? = nil, type: TypeMatch? = nil, priority: Priority? = nil,
        since: Date? = nil, until: Date? = nil, text: String? = nil, cursor: SearchCursor? = nil
    ) {
        self.agent = agent
        self.eventID = eventID
        self.state = state
        self.type = type
        self.priority = priority
        self.since = since
        self.until = until
        self.text = text
        self.cursor = cursor
    }
}

extension RuntimeStore {
    /// A page of runs, newest first (by started_at, then run_id), and the cursor to the next page. Each filter
    /// reads an index in this order (migration 0030); text is searched in the event log's payloads through its
    /// trigram index, then joined to the runs by event id.
    public func search(_ search: RunSearch, limit: Int) async throws -> SearchPage<TaskRun> {
        let limit = max(1, min(limit, 10_000))
        var sql = SearchSQL()
        var types: [String]? = nil
        switch search.type {
        case .exact(let type)?: types = [type]
        case .pattern(let pattern)?:
            types = try await distinctRunTypes().filter { EventType.matches($0, pattern: pattern) }
            if types?.isEmpty == true { return SearchPage(items: [], next: nil) }
        case nil: break
        }
        if let agent = search.agent { sql.conditions.append("agent_id = \(sql.bind(agent))") }
        if let event = search.eventID { sql.conditions.append("event_id = \(sql.bind(event))") }
        if let state = search.state { sql.conditions.append("state = \(sql.bind(state.rawValue))") }
        if let priority = search.priority { sql.conditions.append("priority = \(sql.bind(priority.rawValue))") }
        if let since = search.since { sql.conditions.append("started_at >= \(sql.bind(since))") }
        if let until = search.until { sql.conditions.append("started_at < \(sql.bind(until))") }
        if let text = search.text {
            sql.conditions.append(
                "EXISTS (SELECT 1 FROM event_log e WHERE e.event_id = task_runs.event_id AND e.payload::text ILIKE \(sql.bind(SearchSQL.substring(text)))"
                    + (types == nil ? " AND e.\(SearchSQL.textIndexed))" : ")")
            )
        }
        sql.after(search.cursor, time: "started_at", id: "run_id")
        let from = sql.source("task_runs", types: types, order: "ORDER BY started_at DESC, run_id DESC LIMIT \(limit + 1)")
        let runs = try await runs(from: from, bindings: sql.bindings, limit: limit + 1)
        guard runs.count > limit else { return SearchPage(items: runs, next: nil) }
        let last = runs[limit - 1]
        return SearchPage(items: Array(runs.prefix(limit)), next: SearchCursor(kind: .runs, time: last.startedAt, id: last.runID))
    }

    /// The event types the runs were for, read through task_runs' (event_type, started_at, run_id) index.
    func distinctRunTypes() async throws -> [String] {
        var types: [String] = []
        try await query("read the event types of task_runs", SearchSQL.distinct("event_type", in: "task_runs")) { row in
            types.append(try row.decode(String.self))
        }
        return types
    }
}
