public import AgentryCore
public import Foundation
public import Logging
import PostgresNIO

/// A schedule as kept, with what the schedulers wrote about it.
public struct ScheduleRecord: Sendable, Hashable {
    public var id: UUID
    public var schedule: Schedule
    /// The next tick not yet claimed; nil when the schedule has no more ticks or is disabled.
    public var nextRun: Date?
    /// The last tick published.
    public var lastRun: Date?
    public var ticksPublished: Int
    public var ticksMissed: Int
    public var createdAt: Date
    public var updatedAt: Date

    /// The next `count` ticks, from the next one not yet claimed.
    public func upcoming(_ count: Int) -> [Date] {
        guard let nextRun, count > 0 else { return [] }
        return [nextRun] + schedule.ticks(after: nextRun, count: count - 1)
    }
}

/// The scheduler's names in the database.
public enum SchedulerRole {
    /// The role the workers' schedulers take turns to lead (``Leadership``).
    public static let leadershipName = "agentry.scheduler"
}

/// Schedules (`scheduled_events`): made, changed, enabled, removed, listed; agents' declared schedules kept in step
/// with their published versions; and the schedulers' claims of due ticks.
public struct ScheduleStore: Sendable {
    let database: Database
    let logger: Logger

    public init(database: Database, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    static let columns = """
        id, name, event_type, cron_expression, payload::text, priority, time_zone, missed, jitter_seconds, grace_seconds,
        starts_at, ends_at, description, enabled, agent_id, next_run, last_run, ticks_published, ticks_missed, created_at, updated_at
        """

    /// What a new or changed schedule's row says, with its next tick computed from `now`.
    public enum SaveOutcome: Sendable, Equatable {
        case created
        case updated
    }

    /// Makes a schedule, or (`replacing`) replaces the one of that name; not one an agent declared (`.conflict`).
    /// Its next tick is computed afresh from `now`: ticks before the change are not caught up.
    @discardableResult
    public func save(_ schedule: Schedule, replacing: Bool, now: Date = Date()) async throws -> SaveOutcome {
        if let problem = schedule.problem() { throw StoreError(.query, problem) }
        if let existing = try await record(named: schedule.name) {
            guard replacing else { throw StoreError(.conflict, "a schedule named '\(schedule.name)' exists; change it with its own command") }
            if let agent = existing.schedule.agentID, agent != schedule.agentID {
                throw StoreError(.conflict, "schedule '\(schedule.name)' is declared by agent \(agent): change the agent's YAML and publish it")
            }
        }
        let next = schedule.enabled ? schedule.tick(after: now) : nil
        var created = false
        try await each(
            "save schedule \(schedule.name)", writes: true,
            """
            INSERT INTO scheduled_events (name, event_type, cron_expression, payload, priority, enabled, time_zone, missed,
                                          jitter_seconds, grace_seconds, starts_at, ends_at, description, agent_id, next_run)
            VALUES (\(schedule.name), \(schedule.eventType), \(schedule.cron.text), \(JSON.serialize(.object(schedule.payload)))::jsonb,
                    \(schedule.priority.rawValue), \(schedule.enabled), \(schedule.timeZone), \(schedule.missed.rawValue),
                    \(schedule.jitterSeconds), \(schedule.graceSeconds), \(schedule.startsAt),
                    \(schedule.endsAt), \(schedule.description), \(schedule.agentID),
                    \(next))
            ON CONFLICT (name) DO UPDATE SET event_type = excluded.event_type, cron_expression = excluded.cron_expression,
                payload = excluded.payload, priority = excluded.priority, enabled = excluded.enabled,
                time_zone = excluded.time_zone, missed = excluded.missed, jitter_seconds = excluded.jitter_seconds,
                grace_seconds = excluded.grace_seconds, starts_at = excluded.starts_at, ends_at = excluded.ends_at,
                description = excluded.description, agent_id = excluded.agent_id, next_run = excluded.next_run,
                updated_at = now()
            RETURNING (xmax = 0)
            """
        ) { row in created = try row.decode(Bool.self) }
        return created ? .created : .updated
    }

    /// Enables or disables a schedule. Enabling computes its next tick from `now` (ticks while it was disabled are not
    /// caught up); disabling cancels its ticks that wait for delivery. Returns false when no schedule has that name.
    public func setEnabled(_ name: String, _ enabled: Bool, now: Date = Date()) async throws -> Bool {
        guard let record = try await record(named: name) else { return false }
        let next = enabled ? record.schedule.tick(after: now) : nil
        var found = false
        try await each(
            "\(enabled ? "enable" : "disable") schedule \(name)", writes: true,
            """
            WITH changed AS (
                UPDATE scheduled_events SET enabled = \(enabled), next_run = \(next), updated_at = now()
                WHERE name = \(name) RETURNING id),
            cancelled AS (
                UPDATE delayed_events SET state = 'cancelled', finished_at = now(), cancelled_by = 'schedule disabled'
                WHERE NOT \(enabled) AND state = 'pending' AND schedule_id IN (SELECT id FROM changed)
                  AND (lease_until IS NULL OR lease_until < now()))
            SELECT count(*) > 0 FROM changed
            """
        ) { row in found = try row.decode(Bool.self) }
        return found
    }

    /// Removes a schedule made on its own (an agent's go with the agent); its ticks waiting for delivery are cancelled.
    /// Returns false when no schedule has that name.
    public func remove(_ name: String, allowAgentSchedules: Bool = false) async throws -> Bool {
        if !allowAgentSchedules, let agent = try await record(named: name)?.schedule.agentID {
            throw StoreError(
                .conflict, "schedule '\(name)' is declared by agent \(agent): remove the trigger from its YAML and publish it, or retire the agent")
        }
        var found = false
        try await each(
            "remove schedule \(name)", writes: true,
            """
            WITH removed AS (DELETE FROM scheduled_events WHERE name = \(name) RETURNING id),
            cancelled AS (
                UPDATE delayed_events SET state = 'cancelled', finished_at = now(), cancelled_by = 'schedule removed'
                WHERE state = 'pending' AND schedule_id IN (SELECT id FROM removed) AND (lease_until IS NULL OR lease_until < now()))
            SELECT count(*) > 0 FROM removed
            """
        ) { row in found = try row.decode(Bool.self) }
        return found
    }

    /// One schedule by name.
    public func record(named name: String) async throws -> ScheduleRecord? {
        try await records(where: "name = $1", binds: [name]).first
    }

    /// Every schedule, by name.
    public func records() async throws -> [ScheduleRecord] {
        try await records(where: "true ORDER BY name", binds: [])
    }

    /// Enabled schedules whose next tick is at or before `until`, oldest first.
    public func due(until: Date, limit: Int = 100) async throws -> [ScheduleRecord] {
        try await records(where: "enabled AND next_run <= $1 ORDER BY next_run LIMIT $2", binds: [until, limit])
    }

    /// When something is next due, in one read: the earliest next tick of an enabled schedule, and the earliest
    /// delivery time of a pending delayed event (a leased one counts from its lease's end).
    public func nextDue() async throws -> (tick: Date?, delivery: Date?) {
        var next: (Date?, Date?) = (nil, nil)
        try await each(
            "read what is due next",
            """
            SELECT (SELECT min(next_run) FROM scheduled_events WHERE enabled),
                   (SELECT min(greatest(deliver_at, coalesce(lease_until, deliver_at))) FROM delayed_events WHERE state = 'pending')
            """
        ) { row in next = try row.decode((Date?, Date?).self) }
        return next
    }

    /// Claims a due schedule's ticks per `plan`: moves `next_run` from `expected` to the plan's, and writes the events
    /// of the ticks to fire into `delayed_events` (delivered at each tick plus its jitter), in one statement. Returns
    /// false when another scheduler moved `next_run` first (or the schedule changed): then nothing is written.
    public func claim(_ record: ScheduleRecord, expected: Date, plan: TickPlan) async throws -> Bool {
        let schedule = record.schedule
        let events = plan.fire.map { schedule.event(tick: $0, scheduleID: record.id) }
        let columns = EventColumns(events)
        let deliverAt = plan.fire.map { schedule.deliveryTime(of: $0).timeIntervalSince1970 }
        let ticks = plan.fire.map(\.timeIntervalSince1970)
        let lastTick = plan.fire.max()
        var claimed = false
        try await each(
            "claim the ticks of schedule \(schedule.name)", writes: true,
            """
            WITH claimed AS (
                UPDATE scheduled_events SET next_run = \(plan.nextRun),
                    last_run = COALESCE(\(lastTick)::timestamptz, last_run), last_fired_slot = COALESCE(\(lastTick)::timestamptz, last_fired_slot),
                    ticks_published = ticks_published + \(plan.fire.count), ticks_missed = ticks_missed + \(plan.missed)
                WHERE id = \(record.id) AND enabled AND next_run = \(expected)
                RETURNING id),
            written AS (
                INSERT INTO delayed_events (event_id, event_type, payload, priority, "timestamp", source, deliver_at, schedule_id, tick_at)
                SELECT t.id, t.type, t.payload::jsonb, t.priority, to_timestamp(t.ts), t.source, to_timestamp(t.deliver), c.id, to_timestamp(t.tick)
                FROM claimed c, unnest(\(columns.ids)::text[], \(columns.types)::text[], \(columns.payloads)::text[], \(columns.priorities)::int4[],
                                       \(columns.timestamps)::float8[], \(columns.sources)::text[], \(deliverAt)::float8[], \(ticks)::float8[])
                     AS t(id, type, payload, priority, ts, source, deliver, tick)
                ON CONFLICT (event_id) DO NOTHING)
            SELECT count(*) > 0 FROM claimed
            """
        ) { row in claimed = try row.decode(Bool.self) }
        return claimed
    }

    /// Makes an agent's declared schedules those of `schedules` (its published version's `schedule` triggers): new ones
    /// made, changed ones updated (keeping whether they are enabled), others of the agent removed. An empty list
    /// removes them all (the agent is retired, or its new version declares none).
    public func syncAgentSchedules(agentID: String, _ schedules: [Schedule], now: Date = Date()) async throws {
        let existing = try await records(where: "agent_id = $1", binds: [agentID])
        for var schedule in schedules {
            schedule.agentID = agentID
            if let old = existing.first(where: { $0.schedule.name == schedule.name }) {
                schedule.enabled = old.schedule.enabled
                var unchanged = old.schedule
                unchanged.enabled = schedule.enabled
                if unchanged == schedule { continue }
            }
            try await save(schedule, replacing: true, now: now)
        }
        for old in existing where !schedules.contains(where: { $0.name == old.schedule.name }) {
            _ = try await remove(old.schedule.name, allowAgentSchedules: true)
        }
    }

    /// Who leads the scheduler now: the `application_name` of the session that holds its lock (a worker's is
    /// `agentry worker <host> pid <pid>`); nil when no worker leads.
    public func schedulerLeader() async throws -> String? {
        var leader: String?
        try await each(
            "read who leads the scheduler",
            """
            SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND l.objsubid = 2 AND l.objid = 0
              AND l.classid = ((hashtext(\(SchedulerRole.leadershipName))::int8 + 4294967296) % 4294967296)::text::oid
            """
        ) { row in leader = try row.decode(String.self) }
        return leader
    }

    // MARK: Reading

    func each(_ what: @autoclosure () -> String, writes: Bool = false, _ query: PostgresQuery, _ body: (PostgresRow) throws -> Void) async throws {
        try await database.each(what(), writes: writes, query, logger: logger, body)
    }

    func records(where condition: String, binds: [any PostgresEncodable & Sendable]) async throws -> [ScheduleRecord] {
        var bindings = PostgresBindings()
        for bind in binds { try bindings.append(bind) }
        var result: [ScheduleRecord] = []
        try await each("read schedules", PostgresQuery(unsafeSQL: "SELECT \(Self.columns) FROM scheduled_events WHERE \(condition)", binds: bindings))
        {
            row in result.append(try Self.decode(row))
        }
        return result
    }

    static func decode(_ row: PostgresRow) throws -> ScheduleRecord {
        let (
            id, name, type, cronText, payload, priority, zone, missed, jitter, grace, starts, ends, description, enabled, agent,
            next, last, published, missedCount, created, updated
        ) = try row.decode(
            (
                UUID, String, String, String, String, Int, String, String, Int, Int, Date?, Date?, String, Bool, String?,
                Date?, Date?, Int, Int, Date, Date
            ).self)
        let cron: CronExpression
        do {
            cron = try CronExpression(cronText)
        } catch {
            throw StoreError(.query, "schedule '\(name)' holds the cron expression '\(cronText)', which no longer reads: \(error)")
        }
        let schedule = Schedule(
            name: name, eventType: type, cron: cron, payload: try StoredJSON.object(payload, "the payload of schedule \(name)"),
            priority: Priority(rawValue: priority) ?? .normal, timeZone: zone, missed: MissedTicks(rawValue: missed) ?? .skip,
            jitterSeconds: jitter, graceSeconds: grace, startsAt: starts, endsAt: ends, description: description, enabled: enabled,
            agentID: agent)
        return ScheduleRecord(
            id: id, schedule: schedule, nextRun: next, lastRun: last, ticksPublished: published, ticksMissed: missedCount,
            createdAt: created, updatedAt: updated)
    }
}
