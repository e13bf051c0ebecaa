public import Foundation

/// What a scheduler does with a schedule whose next tick is due: which ticks it publishes, how many it counts as
/// missed, and where the schedule's next tick moves. Pure, so that every host that looks at the same schedule at the
/// same moment decides the same; the database's compare-and-set on `next_run` lets only one of them act on it.
public struct TickPlan: Sendable, Hashable {
    /// Ticks to publish, oldest first (with `fire_once`, the latest missed tick comes first).
    public var fire: [Date]
    /// Ticks dropped (`skip`) or folded into one (`fire_once`) because they were later than the grace.
    public var missed: Int
    /// The first tick not handled by this plan; nil when the schedule has no more ticks (its end has passed).
    public var nextRun: Date?

    public init(fire: [Date], missed: Int, nextRun: Date?) {
        self.fire = fire
        self.missed = missed
        self.nextRun = nextRun
    }
}

extension Schedule {
    /// How many ticks one plan handles at most (an every-second schedule after a day down has 86,400 missed ticks:
    /// past this many, the plan jumps to the present and counts the rest as missed without computing each).
    public static let planLimit = 10_000

    /// The plan for a schedule whose next tick is `nextRun`, at `now`: every tick up to `now + lookahead` is handled
    /// (a tick is claimed shortly before its time and delivered at it). A tick older than `now - grace` is missed.
    public func plan(nextRun: Date, now: Date, lookahead: Duration = .seconds(2)) -> TickPlan {
        let horizon = now.addingTimeInterval(lookahead.inSeconds)
        let oldest = now.addingTimeInterval(-Double(graceSeconds))
        var fire: [Date] = []
        var missed = 0
        var latestMissed: Date?
        var tick: Date? = nextRun
        if let endsAt, nextRun > endsAt { tick = nil }
        while let current = tick, current <= horizon {
            if current < oldest {
                missed += 1
                latestMissed = current
                if missed >= Self.planLimit {
                    // Far behind: jump to the first tick within the grace; the ones between are missed, uncounted.
                    let last = lastTick(before: oldest, from: current)
                    latestMissed = last
                    tick = self.tick(after: last)
                    continue
                }
            } else {
                fire.append(current)
                if fire.count >= Self.planLimit {
                    tick = self.tick(after: current)
                    break
                }
            }
            tick = self.tick(after: current)
        }
        if missed > 0, self.missed == .fireOnce, let latestMissed {
            fire.insert(latestMissed, at: 0)
        }
        return TickPlan(fire: fire, missed: missed, nextRun: tick)
    }

    /// The last tick before `date` (at or after `floor`, a tick known to be before it): found by looking back from
    /// `date` in doubling steps, then forward.
    func lastTick(before date: Date, from floor: Date) -> Date {
        var step = 1.0
        var start = floor
        while step < date.timeIntervalSince(floor) {
            if let probe = tick(after: date.addingTimeInterval(-step)), probe < date {
                start = probe
                break
            }
            step *= 2
        }
        var last = start
        while let next = tick(after: last), next < date { last = next }
        return last
    }

    /// The event of one tick: its id derived from the schedule's id and the tick, so a tick claimed twice (it cannot
    /// be, by the compare-and-set; but a retried publish can) is one event; its timestamp is the tick.
    public func event(tick: Date, scheduleID: UUID) -> Event {
        let millis = Int64((tick.timeIntervalSince1970 * 1000).rounded(.down))
        let id = EventID.derived(from: [Array("agentry.schedule".utf8), Array(scheduleID.uuidString.lowercased().utf8), Array(String(millis).utf8)])
        return Event(id: id, type: eventType, payload: payload, priority: priority, timestamp: tick, source: "schedule:\(name)")
    }
}
