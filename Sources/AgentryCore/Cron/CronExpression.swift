public import Foundation

/// A cron schedule: 5 fields (`minute hour day-of-month month day-of-week`), 6 with a leading seconds field, or a
/// macro; it computes its ticks in an IANA time zone.
///
/// Syntax, per field: `*`; numbers; ranges `a-b`; steps `*/n`, `a-b/n` and `a/n` (from a to the end of the range);
/// lists `a,b-c,d/e`. Months may be named `JAN`-`DEC` and days `SUN`-`SAT` (any case); day of week is 0-7, 0 and 7
/// being Sunday. `?` is `*` in the two day fields. Day of month also takes `L` (the last day), `L-n` (n days before
/// it), `nW` (the Monday-to-Friday nearest to day n, within the month; none in a month without day n) and `LW` (the
/// last Monday-to-Friday); day of week takes `nL` (the last weekday n of the month: `5L`, the last Friday) and
/// `n#k` (the k-th weekday n: `5#3`, the third Friday). When both day fields are restricted (neither is `*` nor
/// `?`), a day matches when either matches (Vixie cron: `0 0 1,15 * MON` runs on the 1st, the 15th and Mondays).
/// Macros: `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily` (`@midnight`), `@hourly`, and `@every D` with D
/// in units `d`, `h`, `m`, `s` (`30s`, `1h30m`, `2d`; at least 1 s).
///
/// `@every D` ticks at the instants that are whole multiples of D since the Unix epoch (tick k = 1970-01-01T00:00Z
/// + k·D), whatever the time zone: every host computes the same ticks.
///
/// Calendar expressions match wall-clock times in the time zone. Daylight-saving changes:
/// - A *fixed-hour* expression (the hour field is anything but one item over all hours: `2`, `2,14`, `1-5`) fires
///   once for each matching wall-clock time, even when the clock skips or repeats it. A time the clock skips
///   (02:30 on the last Sunday of March in Europe/Berlin) fires at the first instant after the gap (03:00 CEST);
///   several skipped times fire once there together, and when that instant is itself a matching time it is still one
///   tick. A time the clock repeats (02:30 on the last Sunday of October in Berlin) fires at its first occurrence
///   (02:30 CEST, 00:30Z), not again at the second.
/// - An expression whose hour field is one item over all hours (`*`, `*/2`, `0-23/3`) follows the clock: a skipped
///   hour has no ticks, and a repeated hour has its ticks twice (`*/15 * * * *` fires at 02:00, 02:15, … CEST and
///   again at 02:00, 02:15, … CET: the clock really passes those minutes twice).
///
/// Ticks are whole seconds and strictly increasing; ``next(after:in:)`` works from any instant, one inside a gap or
/// in either pass of a repeated hour included. Offsets come from `TimeZone.secondsFromGMT(for:)` and transitions
/// from `TimeZone.nextDaylightSavingTimeTransition(after:)` (checked against the offsets); wall-clock arithmetic is
/// this type's own, so nothing depends on how `Calendar` resolves a nonexistent time.
public struct CronExpression: Sendable, Hashable, CustomStringConvertible {
    /// The expression as written, without surrounding whitespace.
    public let text: String
    let kind: Kind

    enum Kind: Sendable, Hashable {
        case calendar(CronCalendar)
        /// `@every`, in seconds.
        case every(Int64)
    }

    /// How far ahead ``next(after:in:)`` looks for a calendar expression: 8 years, enough for 29 February across a
    /// century year that is not a leap year (2096 → 2104).
    static let searchYears = 8

    /// Parses a cron expression.
    ///
    /// - Parameter text: 5 or 6 fields, or a macro; surrounding whitespace is ignored.
    /// - Throws: ``CronError`` with the field, the position, what was expected there and what was found.
    public init(_ text: String) throws(CronError) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        self.text = trimmed
        self.kind = try CronParser(trimmed).parse()
    }

    public var description: String { text }

    /// `@every` only: the interval; nil for calendar expressions.
    public var interval: Duration? {
        if case .every(let seconds) = kind { return .seconds(seconds) }
        return nil
    }

    /// The first tick strictly after `date`, in `timeZone`; nil when none comes within 8 years (`0 0 30 2 *`).
    ///
    /// - Parameters:
    ///   - date: Any instant; the tick returned is later.
    ///   - timeZone: The zone whose wall clock the fields are read on (ignored by `@every`).
    public func next(after date: Date, in timeZone: TimeZone) -> Date? {
        let seconds = date.timeIntervalSince1970
        guard seconds.isFinite, abs(seconds) < 1e15 else { return nil }
        let after = Int64(seconds.rounded(.down))
        switch kind {
        case .every(let interval):
            let tick = (CivilTime.floorDivide(after, interval) + 1) * interval
            return Date(timeIntervalSince1970: TimeInterval(tick))
        case .calendar(let calendar):
            return CronZonedSearch(calendar: calendar, zone: timeZone).next(after: after).map { Date(timeIntervalSince1970: TimeInterval($0)) }
        }
    }

    /// The next `count` ticks after `date`, in order; fewer when the expression has no more (see ``next(after:in:)``).
    public func ticks(after date: Date, in timeZone: TimeZone, count: Int) -> [Date] {
        var result: [Date] = []
        var last = date
        while result.count < count, let tick = next(after: last, in: timeZone) {
            result.append(tick)
            last = tick
        }
        return result
    }

    /// Equal when written alike (`@daily` and `0 0 * * *` tick alike but are different expressions).
    public static func == (lhs: CronExpression, rhs: CronExpression) -> Bool { lhs.text == rhs.text }

    public func hash(into hasher: inout Hasher) { hasher.combine(text) }
}
