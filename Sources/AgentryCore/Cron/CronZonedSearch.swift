import Foundation

/// Finds the next tick of a calendar expression in a time zone, by the daylight-saving rules of ``CronExpression``.
///
/// Instants are whole seconds since the epoch; "local seconds" are the same count on the zone's wall clock (instant
/// plus offset). Between two offset changes the two are one-to-one, so the search walks from one stretch of constant
/// offset to the next: in each it asks the calendar for the first matching wall-clock time (field by field), and when
/// that time lies beyond the stretch's end it looks at what the change does there (a gap or a repeat) and goes on
/// from it. A schedule a few times a day costs a handful of offset look-ups per tick.
struct CronZonedSearch {
    let calendar: CronCalendar
    let zone: TimeZone

    /// The first tick strictly after the instant `after`.
    func next(after: Int64) -> Int64? {
        var start = after + 1
        let lastYear = CivilTime(localSeconds: start + offset(start)).year + CronExpression.searchYears
        let fixedHour = !calendar.followsClock
        // `start` may be the very instant the clock sprang forward: the skipped times just before it fire there.
        if fixedHour, case let before = offset(start - 1), case let now = offset(start), before < now,
            let skipped = calendar.firstMatch(atOrAfter: start + before, lastYear: lastYear), skipped < start + now
        {
            return start
        }
        for _ in 0..<1000 {
            let o = offset(start)
            guard let wall = calendar.firstMatch(atOrAfter: start + o, lastYear: lastYear) else { return nil }
            let candidate = wall - o
            let change: Int64
            if let transition = transition(after: start), transition <= candidate {
                change = transition
            } else if offset(candidate) != o {
                // The zone changed its offset without a reported transition: find where.
                change = firstChange(after: start, upTo: candidate, from: o)
            } else if fixedHour, let repeatEnd = endOfRepeat(wall: wall, at: candidate, offset: o) {
                // The clock was set back and this wall-clock time already happened: a fixed-hour job fired then.
                start = repeatEnd
                continue
            } else {
                return candidate
            }
            // The offset changes at `change`, at or before the candidate. Springing forward skips the wall-clock times
            // [change + o, change + after); a fixed-hour job due in them fires at `change`, the first instant after.
            let offsetAfter = offset(change)
            if fixedHour, offsetAfter > o, wall < change + offsetAfter { return change }
            start = change
        }
        return nil
    }

    /// When the wall-clock time `wall`, reached at `instant` with offset `o`, was reached before already (the clock
    /// was set back in between), the instant this pass over the repeated times ends; nil when this is its first time.
    func endOfRepeat(wall: Int64, at instant: Int64, offset o: Int64) -> Int64? {
        for probe in [instant - 10_800, instant - 86_400] {
            let earlierOffset = offset(probe)
            guard earlierOffset > o else { continue }
            let earlier = wall - earlierOffset
            guard earlier < instant, offset(earlier) == earlierOffset else { continue }
            let setBack = firstChange(after: earlier, upTo: instant, from: earlierOffset)
            // The repeated wall-clock times are [setBack + o, setBack + earlierOffset).
            return setBack + (earlierOffset - o)
        }
        return nil
    }

    /// The offset from UTC at an instant, in seconds.
    func offset(_ instant: Int64) -> Int64 {
        Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(instant))))
    }

    /// The next offset change strictly after `instant`, as Foundation reports it.
    func transition(after instant: Int64) -> Int64? {
        zone.nextDaylightSavingTimeTransition(after: Date(timeIntervalSince1970: TimeInterval(instant)))
            .map { Int64($0.timeIntervalSince1970.rounded(.up)) }
    }

    /// The first instant in (low, high] whose offset is no longer `o`, given offset(low) == o != offset(high).
    func firstChange(after low: Int64, upTo high: Int64, from o: Int64) -> Int64 {
        var low = low, high = high
        while high - low > 1 {
            let middle = low + (high - low) / 2
            if offset(middle) == o { low = middle } else { high = middle }
        }
        return high
    }
}
