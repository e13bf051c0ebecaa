public import AgentryCore
public import Foundation
public import Logging
import PostgresNIO

/// An event kept in PostgreSQL until its delivery time (`delayed_events`).
public struct DelayedEvent: Sendable, Hashable {
    public enum State: String, Sendable, Hashable {
        case pending, published, cancelled
    }

    public var event: Event
    public var deliverAt: Date
    public var state: State
    /// The schedule whose tick it is, while that schedule exists.
    public var scheduleName: String?
    /// How often a scheduler took it to publish.
    public var attempts: Int
    /// Why the last publish failed.
    public var lastError: String?
    public var createdAt: Date
    /// When it was published or cancelled.
    public var finishedAt: Date?
    /// Who cancelled it.
    public var cancelledBy: String?
}

/// Delayed events: kept until due, leased by a scheduler to publish, marked published or cancelled.
public struct DelayedEventStore: Sendable {
    let database: Database
    let logger: Logger

    public init(database: Database, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    static let columns = """
        d.event_id, d.event_type, d.payload::text, d.priority, d."timestamp", d.source, d.correlation_id, d.causation_id,
        d.deliver_at, d.state, s.name, d.attempts, d.last_error, d.created_at, d.finished_at, d.cancelled_by
        """

    /// Keeps `event` until `deliverAt`. Returns false when an event with its id is kept already (published, pending or
    /// cancelled): nothing changes, so a retried request is one event.
    public func add(_ event: Event, deliverAt: Date) async throws -> Bool {
        let columns = EventColumns([event])
        var added = false
        try await database.each(
            "keep event \(event.id) for \(Timestamp.format(deliverAt))", writes: true,
            """
            WITH added AS (
                INSERT INTO delayed_events (event_id, event_type, payload, priority, "timestamp", source, correlation_id, causation_id, deliver_at)
                SELECT t.id, t.type, t.payload::jsonb, t.priority, to_timestamp(t.ts), NULLIF(t.source, ''), NULLIF(t.correlation, ''),
                       NULLIF(t.causation, ''), \(deliverAt)
                FROM unnest(\(columns.ids)::text[], \(columns.types)::text[], \(columns.payloads)::text[], \(columns.priorities)::int4[],
                            \(columns.timestamps)::float8[], \(columns.sources)::text[], \(columns.correlations)::text[], \(columns.causations)::text[])
                     AS t(id, type, payload, priority, ts, source, correlation, causation)
                ON CONFLICT (event_id) DO NOTHING RETURNING 1)
            SELECT count(*) > 0 FROM added
            """, logger: logger
        ) { row in added = try row.decode(Bool.self) }
        return added
    }

    /// Takes up to `limit` due events to publish: each is leased to `worker` for `lease` (no other scheduler takes it
    /// meanwhile); one whose lease ran out (its scheduler died mid-publish) is due again.
    public func lease(limit: Int, by worker: String, for lease: Duration, now: Date = Date()) async throws -> [DelayedEvent] {
        var result: [DelayedEvent] = []
        try await database.each(
            "lease due delayed events", writes: true,
            """
            WITH due AS (
                SELECT event_id FROM delayed_events
                WHERE state = 'pending' AND deliver_at <= \(now) AND (lease_until IS NULL OR lease_until < \(now))
                ORDER BY deliver_at LIMIT \(limit) FOR UPDATE SKIP LOCKED),
            d AS (
                UPDATE delayed_events e SET lease_until = \(now) + make_interval(secs => \(lease.inSeconds)), leased_by = \(worker),
                    attempts = attempts + 1
                FROM due WHERE e.event_id = due.event_id RETURNING e.*)
            SELECT \(unescaped: Self.columns) FROM d LEFT JOIN scheduled_events s ON s.id = d.schedule_id ORDER BY d.deliver_at
            """, logger: logger
        ) { row in result.append(try Self.decode(row)) }
        return result
    }

    /// Marks leased events published (the broker confirmed them).
    public func markPublished(_ ids: [EventID]) async throws {
        guard !ids.isEmpty else { return }
        try await database.each(
            "mark \(ids.count) delayed events published", writes: true,
            """
            UPDATE delayed_events SET state = 'published', finished_at = now(), lease_until = NULL, last_error = NULL
            WHERE event_id = ANY(\(ids.map(\.rawValue))::text[]) AND state = 'pending'
            """, logger: logger
        ) { _ in }
    }

    /// Records why a leased event was not published; it is due again after `retryAfter`.
    public func markFailed(_ id: EventID, error: String, retryAfter: Duration) async throws {
        try await database.each(
            "record the failed publish of delayed event \(id)", writes: true,
            """
            UPDATE delayed_events SET last_error = \(String(error.prefix(1000))), lease_until = now() + make_interval(secs => \(retryAfter.inSeconds))
            WHERE event_id = \(id.rawValue) AND state = 'pending'
            """, logger: logger
        ) { _ in }
    }

    /// What cancelling a delayed event found.
    public enum CancelOutcome: Sendable, Equatable {
        case cancelled
        case notFound
        /// Published already, at that time.
        case published(Date?)
        case alreadyCancelled
        /// A scheduler is publishing it right now.
        case publishing
    }

    /// Cancels a pending event, unless a scheduler is publishing it at this moment.
    public func cancel(_ id: EventID, by who: String) async throws -> CancelOutcome {
        var outcome = CancelOutcome.notFound
        try await database.each(
            "cancel delayed event \(id)", writes: true,
            """
            WITH target AS (SELECT event_id, state, finished_at, lease_until > now() AS leased FROM delayed_events
                            WHERE event_id = \(id.rawValue) FOR UPDATE),
            changed AS (
                UPDATE delayed_events d SET state = 'cancelled', finished_at = now(), cancelled_by = \(who)
                FROM target t WHERE d.event_id = t.event_id AND t.state = 'pending' AND NOT coalesce(t.leased, false)
                RETURNING 1)
            SELECT t.state, t.finished_at, coalesce(t.leased, false), (SELECT count(*) FROM changed) > 0 FROM target t
            """, logger: logger
        ) { row in
            let (state, finished, leased, changed) = try row.decode((String, Date?, Bool, Bool).self)
            switch (state, changed, leased) {
            case (_, true, _): outcome = .cancelled
            case ("published", _, _): outcome = .published(finished)
            case ("cancelled", _, _): outcome = .alreadyCancelled
            default: outcome = .publishing
            }
        }
        return outcome
    }

    /// One delayed event by id, whatever its state.
    public func event(_ id: EventID) async throws -> DelayedEvent? {
        var result: DelayedEvent?
        try await database.each(
            "read delayed event \(id)",
            "SELECT \(unescaped: Self.columns) FROM delayed_events d LEFT JOIN scheduled_events s ON s.id = d.schedule_id WHERE d.event_id = \(id.rawValue)",
            logger: logger
        ) { row in result = try Self.decode(row) }
        return result
    }

    /// Pending events, the soonest first.
    public func pending(limit: Int = 100) async throws -> [DelayedEvent] {
        var result: [DelayedEvent] = []
        try await database.each(
            "read pending delayed events",
            """
            SELECT \(unescaped: Self.columns) FROM delayed_events d LEFT JOIN scheduled_events s ON s.id = d.schedule_id
            WHERE d.state = 'pending' ORDER BY d.deliver_at, d.event_id LIMIT \(max(1, min(limit, 10_000)))
            """, logger: logger
        ) { row in result.append(try Self.decode(row)) }
        return result
    }

    /// When the soonest pending event is due (a leased one counts from its lease's end).
    public func nextDelivery() async throws -> Date? {
        var next: Date?
        try await database.each(
            "read the next delivery time",
            "SELECT min(greatest(deliver_at, coalesce(lease_until, deliver_at))) FROM delayed_events WHERE state = 'pending'",
            logger: logger
        ) { row in next = try row.decode(Date?.self) }
        return next
    }

    /// Deletes published and cancelled events that ended more than `age` ago, up to `limit` of them; returns how many.
    public func prune(olderThan age: Duration, limit: Int = 5_000) async throws -> Int {
        var count = 0
        try await database.each(
            "prune delayed events", writes: true,
            """
            WITH old AS (SELECT event_id FROM delayed_events WHERE state <> 'pending'
                         AND finished_at < now() - make_interval(secs => \(age.inSeconds)) LIMIT \(limit)),
            deleted AS (DELETE FROM delayed_events d USING old WHERE d.event_id = old.event_id RETURNING 1)
            SELECT count(*)::int8 FROM deleted
            """, logger: logger
        ) { row in count = Int(try row.decode(Int64.self)) }
        return count
    }

    static func decode(_ row: PostgresRow) throws -> DelayedEvent {
        let (
            id, type, payload, priority, timestamp, source, correlation, causation, deliverAt, state, schedule, attempts, lastError,
            created, finished, cancelledBy
        ) = try row.decode(
            (String, String, String, Int, Date, String?, String?, String?, Date, String, String?, Int, String?, Date, Date?, String?).self)
        guard let eventID = EventID(id) else { throw StoreError(.query, "delayed_events holds an event id that is not one: '\(id)'") }
        let event = Event(
            id: eventID, type: type, payload: try StoredJSON.object(payload, "the payload of delayed event \(id)"),
            priority: Priority(rawValue: priority) ?? .normal, timestamp: timestamp, source: source, correlationID: correlation,
            causationID: causation)
        return DelayedEvent(
            event: event, deliverAt: deliverAt, state: DelayedEvent.State(rawValue: state) ?? .pending, scheduleName: schedule,
            attempts: attempts, lastError: lastError, createdAt: created, finishedAt: finished, cancelledBy: cancelledBy)
    }
}
