public import Foundation

/// A trigger that fires on a schedule: at each tick of ``cron`` the scheduler publishes one event of the trigger's
/// `type` (with the trigger's priority and ``payload``), which the agent then receives as any other event.
///
/// ```yaml
/// triggers:
///   - schedule: "*/5 * * * *"      # a CronExpression
///     type: device.poll            # the event type published: a concrete type, no `*` or `#`
///     priority: normal             # optional for a schedule trigger; default normal
///     payload: {pool: lab-1}       # optional; default {}
///     time_zone: Europe/Berlin     # optional IANA name; default UTC
///     missed: skip                 # optional: skip | fire_once; default skip
///     jitter_seconds: 0            # optional, 0...3600; default 0
///     description: "poll the lab"  # optional
/// ```
///
/// The expression's ticks, daylight-saving changes included, are those of ``CronExpression/next(after:in:)`` in
/// ``timeZone``.
public struct TriggerSchedule: Sendable, Hashable {
    /// When to fire.
    public var cron: CronExpression
    /// The IANA time zone the expression's wall-clock times are in (YAML `time_zone`); default `UTC`. Checked when
    /// the definition is read: ``zone`` is never nil for a definition that was read.
    public var timeZone: String
    /// The payload of each published event; default `{}`.
    public var payload: JSONObject
    /// What happens to ticks missed while no worker ran; default ``MissedTicks/skip``.
    public var missed: MissedTicks
    /// At most this many seconds of delay after a tick, to spread the load of many schedules on the same tick
    /// (YAML `jitter_seconds`); default 0, at most ``maxJitterSeconds``.
    public var jitterSeconds: Int
    /// Free text for people; default `""`.
    public var description: String

    /// The largest `jitter_seconds`: an hour.
    public static let maxJitterSeconds = 3600
    /// The zone of a schedule without `time_zone`.
    public static let defaultTimeZone = "UTC"

    public init(
        cron: CronExpression, timeZone: String = TriggerSchedule.defaultTimeZone, payload: JSONObject = [:],
        missed: MissedTicks = .skip, jitterSeconds: Int = 0, description: String = ""
    ) {
        self.cron = cron
        self.timeZone = timeZone
        self.payload = payload
        self.missed = missed
        self.jitterSeconds = jitterSeconds
        self.description = description
    }

    /// ``timeZone`` as a Foundation time zone; nil for a name Foundation does not know.
    public var zone: TimeZone? { TimeZone(identifier: timeZone) }

    /// The first tick strictly after `date` in ``timeZone``; nil when there is none (see ``CronExpression/next(after:in:)``)
    /// or the zone is unknown.
    public func next(after date: Date) -> Date? {
        guard let zone else { return nil }
        return cron.next(after: date, in: zone)
    }

    /// The keys a schedule adds to a trigger, in the order they are written.
    enum CodingKeys: String, CodingKey, CaseIterable {
        case schedule
        case timeZone = "time_zone"
        case payload, missed
        case jitterSeconds = "jitter_seconds"
        case description
    }
}

/// What happens to a schedule's ticks that passed while no worker ran (all workers down, or the agent not published).
public enum MissedTicks: String, Sendable, Hashable, CaseIterable {
    /// Missed ticks are dropped; the schedule goes on with the next tick to come.
    case skip
    /// If any ticks were missed, one event is published for them, as soon as a worker runs again.
    case fireOnce = "fire_once"
}
