public import Foundation

/// A schedule: an event published at the ticks of a cron expression, in a time zone. Kept in PostgreSQL
/// (`scheduled_events`), made on its own (`agentry schedules add`, the API) or declared by an agent's `schedule`
/// trigger; run by every worker's scheduler, each tick published once in the whole cluster (see docs/schedules.md).
public struct Schedule: Sendable, Hashable {
    /// Unique; an agent's schedules are named `agent:<agent-id>:<event type>`.
    public var name: String
    /// The type of the events it publishes: a concrete type, no pattern.
    public var eventType: String
    public var cron: CronExpression
    public var payload: JSONObject
    public var priority: Priority
    /// An IANA time zone name (`Europe/Berlin`); the cron expression's fields are wall-clock times there.
    public var timeZone: String
    /// What happens to ticks that were due more than `graceSeconds` ago when a scheduler gets to them.
    public var missed: MissedTicks
    /// Each tick's event is delivered up to this many seconds after the tick (the same delay for a tick on every host).
    public var jitterSeconds: Int
    /// How late a tick may still be published; an older one counts as missed.
    public var graceSeconds: Int
    /// No tick before this instant.
    public var startsAt: Date?
    /// No tick after this instant.
    public var endsAt: Date?
    public var description: String
    public var enabled: Bool
    /// The agent whose `schedule` trigger declared it; nil for a schedule made on its own.
    public var agentID: String?

    public init(
        name: String, eventType: String, cron: CronExpression, payload: JSONObject = [:], priority: Priority = .normal,
        timeZone: String = "UTC", missed: MissedTicks = .skip, jitterSeconds: Int = 0, graceSeconds: Int = Schedule.defaultGraceSeconds,
        startsAt: Date? = nil, endsAt: Date? = nil, description: String = "", enabled: Bool = true, agentID: String? = nil
    ) {
        self.name = name
        self.eventType = eventType
        self.cron = cron
        self.payload = payload
        self.priority = priority
        self.timeZone = timeZone
        self.missed = missed
        self.jitterSeconds = jitterSeconds
        self.graceSeconds = graceSeconds
        self.startsAt = startsAt
        self.endsAt = endsAt
        self.description = description
        self.enabled = enabled
        self.agentID = agentID
    }

    public static let defaultGraceSeconds = 10

    /// The schedules an agent definition's `schedule` triggers declare.
    public static func declared(by definition: AgentDefinition) -> [Schedule] {
        definition.triggers.compactMap { trigger in
            trigger.schedule.map { declared in
                Schedule(
                    name: agentScheduleName(agentID: definition.metadata.id, eventType: trigger.type), eventType: trigger.type,
                    cron: declared.cron, payload: declared.payload, priority: trigger.priority, timeZone: declared.timeZone,
                    missed: declared.missed, jitterSeconds: declared.jitterSeconds, description: declared.description,
                    agentID: definition.metadata.id)
            }
        }
    }

    /// The name of the schedule an agent's `schedule` trigger for `eventType` declares.
    public static func agentScheduleName(agentID: String, eventType: String) -> String { "agent:\(agentID):\(eventType)" }

    /// What is wrong with this schedule, in words a user can act on; nil when nothing is.
    public func problem() -> String? {
        if let problem = Self.nameProblem(name) { return problem }
        if eventType.contains("*") || eventType.contains("#") {
            return "type: '\(eventType)' is a pattern; a schedule publishes events of one concrete type"
        }
        if let problem = EventType.problem(with: eventType) { return "type: \(problem)" }
        if TimeZone(identifier: timeZone) == nil {
            return "time zone '\(timeZone)' is not an IANA time zone name (like UTC, Europe/Berlin, America/New_York)"
        }
        if !(0...3600).contains(jitterSeconds) { return "jitter must be 0…3600 seconds, not \(jitterSeconds)" }
        if !(0...86_400).contains(graceSeconds) { return "grace must be 0…86400 seconds, not \(graceSeconds)" }
        if let startsAt, let endsAt, endsAt <= startsAt {
            return "the end (\(Timestamp.format(endsAt))) is not after the start (\(Timestamp.format(startsAt)))"
        }
        if description.count > 1000 { return "the description is over 1000 characters" }
        return nil
    }

    /// What is wrong with a schedule name; nil when nothing is.
    public static func nameProblem(_ name: String) -> String? {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-")
        guard !name.isEmpty, name.utf8.count <= 255 else { return "a schedule name has 1…255 characters" }
        guard name.allSatisfy({ allowed.contains($0) }), name.first != "-" else {
            return "schedule name '\(name)': use letters, digits, '.', '_', ':' and '-' (not first)"
        }
        return nil
    }

    /// The zone of `timeZone` (UTC when the name is unknown: ``problem()`` refuses such a schedule before it is kept).
    public var zone: TimeZone { TimeZone(identifier: timeZone) ?? TimeZone(identifier: "UTC")! }

    /// The first tick strictly after `date`, within the schedule's window; nil when there is none.
    public func tick(after date: Date) -> Date? {
        var from = date
        if let startsAt, startsAt > from { from = startsAt.addingTimeInterval(-0.001) }
        guard let tick = cron.next(after: from, in: zone) else { return nil }
        if let endsAt, tick > endsAt { return nil }
        return tick
    }

    /// The next `count` ticks after `date`, within the schedule's window.
    public func ticks(after date: Date, count: Int) -> [Date] {
        var result: [Date] = []
        var from = date
        while result.count < count, let tick = tick(after: from) {
            result.append(tick)
            from = tick
        }
        return result
    }

    /// The instant a tick's event is delivered: the tick plus its jitter, a delay derived from the schedule's name and
    /// the tick, so every host computes the same one.
    public func deliveryTime(of tick: Date) -> Date {
        guard jitterSeconds > 0 else { return tick }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in Array(name.utf8) + withUnsafeBytes(of: Int64(tick.timeIntervalSince1970 * 1000).bigEndian, Array.init) {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        return tick.addingTimeInterval(Double(hash % UInt64(jitterSeconds * 1000 + 1)) / 1000)
    }
}
