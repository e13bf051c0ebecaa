public import AgentryCore
public import Foundation
public import Logging
import PostgresNIO

/// Writes and reads `event_log`.
public struct EventLogStore: Sendable {
    public let database: Database
    let logger: Logger

    public init(database: Database, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    /// Inserts events in one statement; events already logged (same `event_id`) are left as they are.
    /// - Returns: how many rows were new.
    @discardableResult
    public func insert(_ events: [Event]) async throws -> Int {
        guard !events.isEmpty else { return 0 }
        let statement = EventLogInsertStatement(columns: EventColumns(events))
        do {
            try await database.execute(statement, logger: logger)
            return events.count
        } catch {
            throw StoreError(.query, "cannot insert \(events.count) events into event_log", cause: error)
        }
    }

    /// Marks events as unhandled (inserting them when the log has not seen them yet) and returns the ids of those
    /// whose unhandled state was not announced yet.
    public func markUnhandled(_ events: [Event]) async throws -> [EventID] {
        guard !events.isEmpty else { return [] }
        let columns = EventColumns(events)
        let query: PostgresQuery = """
            INSERT INTO event_log (event_id, event_type, payload, priority, "timestamp", source, correlation_id, causation_id, unhandled)
            SELECT id, type, payload::jsonb, priority, to_timestamp(ts), NULLIF(source, ''), NULLIF(correlation, ''), NULLIF(causation, ''), true
            FROM unnest(\(columns.ids)::text[], \(columns.types)::text[], \(columns.payloads)::text[], \(columns.priorities)::int4[],
                        \(columns.timestamps)::float8[], \(columns.sources)::text[], \(columns.correlations)::text[], \(columns.causations)::text[])
                 AS t(id, type, payload, priority, ts, source, correlation, causation)
            ON CONFLICT (event_id) DO UPDATE SET unhandled = true
            RETURNING event_id, unhandled_announced
            """
        do {
            var pending: [EventID] = []
            for try await (id, announced) in try await database.write(query, logger: logger).decode((String, Bool).self) where !announced {
                if let eventID = EventID(id) { pending.append(eventID) }
            }
            return pending
        } catch {
            throw StoreError(.query, "cannot mark \(events.count) events unhandled", cause: error)
        }
    }

    /// Records that `event.unhandled` was published for these events.
    public func markAnnounced(_ ids: [EventID]) async throws {
        guard !ids.isEmpty else { return }
        let raw = ids.map(\.rawValue)
        do {
            try await database.write("UPDATE event_log SET unhandled_announced = true WHERE event_id = ANY(\(raw)::text[])", logger: logger)
        } catch {
            throw StoreError(.query, "cannot record \(ids.count) unhandled announcements", cause: error)
        }
    }

    /// One logged event.
    public struct Entry: Sendable, Hashable {
        public var event: Event
        public var unhandled: Bool
        public var unhandledAnnounced: Bool
        public var loggedAt: Date
    }

    /// The logged event with this id, if any.
    public func entry(_ id: EventID) async throws -> Entry? {
        try await entries("\(unescaped: Self.select) WHERE event_id = \(id.rawValue)").first
    }

    /// How many rows the log holds for this event id (0 or 1: `event_id` is unique).
    public func count(eventID id: EventID) async throws -> Int {
        var count = 0
        for try await n in try await database.query("SELECT count(*)::int8 FROM event_log WHERE event_id = \(id.rawValue)", logger: logger).decode(
            Int64.self)
        {
            count = Int(n)
        }
        return count
    }

    /// How many events of one type the log holds.
    public func count(type: String) async throws -> Int {
        var count = 0
        for try await n in try await database.query("SELECT count(*)::int8 FROM event_log WHERE event_type = \(type)", logger: logger).decode(
            Int64.self)
        {
            count = Int(n)
        }
        return count
    }

    /// The most recent events, newest first (the order of ``search(_:limit:)``), optionally of one type.
    public func recent(limit: Int = 50, type: String? = nil) async throws -> [Entry] {
        try await search(EventSearch(type: type.map(TypeMatch.exact)), limit: limit).items
    }

    private static let select = """
        SELECT event_id, event_type, payload::text, priority, extract(epoch FROM "timestamp")::float8, source, correlation_id,
               causation_id, unhandled, unhandled_announced, extract(epoch FROM created_at)::float8
        FROM event_log
        """

    private func entries(_ query: PostgresQuery) async throws -> [Entry] {
        var result: [Entry] = []
        let rows = try await database.query(query, logger: logger)
        for try await (id, type, payload, priority, ts, source, correlation, causation, unhandled, announced, created)
            in rows.decode((String, String, String, Int, Double, String?, String?, String?, Bool, Bool, Double).self)
        {
            let event = Event(
                id: EventID(id)!, type: type, payload: try StoredJSON.object(payload, "the payload of event \(id) in event_log"),
                priority: Priority(rawValue: priority) ?? .low,
                timestamp: Date(timeIntervalSince1970: ts), source: source, correlationID: correlation, causationID: causation)
            result.append(Entry(event: event, unhandled: unhandled, unhandledAnnounced: announced, loggedAt: Date(timeIntervalSince1970: created)))
        }
        return result
    }
}

/// Events as columns for `unnest`: one round trip and a fixed number of binds whatever the batch size. `runIDs`, when
/// given, ties each event to the run that announces it (see ``RuntimeStore/claim(batch:announcing:maxParallel:workerExpiry:)``).
struct EventColumns {
    var ids: [String] = []
    var types: [String] = []
    var payloads: [String] = []
    var priorities: [Int32] = []
    var timestamps: [Double] = []
    var sources: [String] = []
    var correlations: [String] = []
    var causations: [String] = []
    var runIDs: [UUID] = []

    init(_ events: [Event]) {
        // One row per id: a batch may hold the same event twice (a redelivery next to the original).
        var seen = Set<EventID>()
        for event in events where seen.insert(event.id).inserted { append(event) }
    }

    /// The announcements of runs, each with its run's id.
    init(announcing announcements: [(runID: UUID, event: Event)]) {
        for (runID, event) in announcements {
            append(event)
            runIDs.append(runID)
        }
    }

    private mutating func append(_ event: Event) {
        ids.append(event.id.rawValue)
        types.append(event.type)
        payloads.append(JSONValue.object(event.payload).jsonText)
        priorities.append(Int32(event.priority.rawValue))
        timestamps.append(event.timestamp.timeIntervalSince1970)
        sources.append(event.source ?? "")
        correlations.append(event.correlationID ?? "")
        causations.append(event.causationID ?? "")
    }
}
