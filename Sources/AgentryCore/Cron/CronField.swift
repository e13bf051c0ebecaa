/// The fields of a calendar cron expression, in the order of a 6-field expression, with their ranges, names and what
/// a user may write in them.
enum CronField: Int, CaseIterable, Sendable {
    case second, minute, hour, dayOfMonth, month, dayOfWeek

    /// As in error messages: `day of month`.
    var name: String {
        switch self {
        case .second: return "second"
        case .minute: return "minute"
        case .hour: return "hour"
        case .dayOfMonth: return "day of month"
        case .month: return "month"
        case .dayOfWeek: return "day of week"
        }
    }

    /// The values a number may take (day of week: 0-7, 7 being Sunday again).
    var range: ClosedRange<Int> {
        switch self {
        case .second, .minute: return 0...59
        case .hour: return 0...23
        case .dayOfMonth: return 1...31
        case .month: return 1...12
        case .dayOfWeek: return 0...7
        }
    }

    /// Names accepted in place of numbers (case-insensitive), each for `range.lowerBound + index` (months from 1,
    /// days from 0 = Sunday).
    var names: [String] {
        switch self {
        case .month: return ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
        case .dayOfWeek: return ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
        default: return []
        }
    }

    /// `a number 0-59` or `a number 1-12 or a name JAN-DEC`.
    var value: String {
        let number = "a number \(range.lowerBound)-\(range.upperBound)"
        guard let first = names.first, let last = names.last else { return number }
        return "\(number) or a name \(first)-\(last)"
    }

    /// Everything the field accepts, for a value that is none of it.
    var expected: String {
        switch self {
        case .second, .minute, .hour, .month:
            return "\(value), '*', a range a-b, a step /n, or a list"
        case .dayOfMonth:
            return "\(value), '*', '?', a range a-b, a step /n, L, L-n, nW, LW, or a list"
        case .dayOfWeek:
            return "\(value), '*', '?', a range a-b, a step /n, nL, n#k, or a list"
        }
    }
}

/// A set of small numbers (0...63): the allowed values of one field.
struct CronBits: Sendable, Hashable {
    private(set) var raw: UInt64 = 0

    static func all(_ range: ClosedRange<Int>) -> CronBits {
        var bits = CronBits()
        for value in range { bits.insert(value) }
        return bits
    }

    mutating func insert(_ value: Int) { raw |= 1 << UInt64(value) }

    func contains(_ value: Int) -> Bool { value >= 0 && value < 64 && raw & (1 << UInt64(value)) != 0 }

    var isEmpty: Bool { raw == 0 }

    /// The smallest member at least `value`, or nil.
    func first(atOrAfter value: Int) -> Int? {
        guard value < 64 else { return nil }
        let rest = raw >> UInt64(max(value, 0))
        guard rest != 0 else { return nil }
        return max(value, 0) + rest.trailingZeroBitCount
    }
}

/// Which days a calendar expression runs on: the day-of-month and day-of-week fields with their special forms.
///
/// When both fields are restricted (neither is `*` nor `?`), a day matches when either does (as Vixie cron and
/// POSIX cron have it: `0 0 1 * MON` runs on the 1st and on every Monday); otherwise the restricted one decides.
struct CronDays: Sendable, Hashable {
    /// Days 1...31.
    var daysOfMonth = CronBits()
    /// `L` (0) and `L-n` (n): the last day of the month minus n.
    var fromLastDay: Set<Int> = []
    /// `nW`: the weekday nearest to day n, within the month.
    var nearestWeekdays: Set<Int> = []
    /// `LW`: the last weekday (Monday to Friday) of the month.
    var lastWeekday = false
    /// Weekdays 0...6 (0 = Sunday).
    var daysOfWeek = CronBits()
    /// `nL`: the last weekday n of the month.
    var lastOfWeekday = CronBits()
    /// `n#k`: the k-th weekday n of the month, as `n * 8 + k`.
    var nthWeekdays: Set<Int> = []
    /// Whether each field is restricted (not `*` or `?`).
    var dayOfMonthRestricted = false
    var dayOfWeekRestricted = false

    /// Whether the day matches; `weekday` is 0 for Sunday, `length` the number of days of the month.
    func matches(day: Int, weekday: Int, length: Int) -> Bool {
        switch (dayOfMonthRestricted, dayOfWeekRestricted) {
        case (true, true): return matchesDayOfMonth(day, weekday: weekday, length: length) || matchesDayOfWeek(day, weekday: weekday, length: length)
        case (true, false): return matchesDayOfMonth(day, weekday: weekday, length: length)
        case (false, true): return matchesDayOfWeek(day, weekday: weekday, length: length)
        case (false, false): return true
        }
    }

    private func matchesDayOfMonth(_ day: Int, weekday: Int, length: Int) -> Bool {
        if daysOfMonth.contains(day) || fromLastDay.contains(length - day) { return true }
        let isWeekday = weekday >= 1 && weekday <= 5
        if lastWeekday, isWeekday, Self.lastWeekday(length: length, weekdayOfLast: (weekday + length - day) % 7) == day { return true }
        if !nearestWeekdays.isEmpty, isWeekday {
            let weekdayOfFirst = ((weekday - (day - 1)) % 7 + 7) % 7
            for target in nearestWeekdays where Self.nearestWeekday(to: target, length: length, weekdayOfFirst: weekdayOfFirst) == day {
                return true
            }
        }
        return false
    }

    private func matchesDayOfWeek(_ day: Int, weekday: Int, length: Int) -> Bool {
        daysOfWeek.contains(weekday) || (lastOfWeekday.contains(weekday) && day + 7 > length)
            || nthWeekdays.contains(weekday * 8 + (day - 1) / 7 + 1)
    }

    /// The last Monday-to-Friday of a month whose last day falls on `weekdayOfLast`.
    static func lastWeekday(length: Int, weekdayOfLast: Int) -> Int {
        switch weekdayOfLast {
        case 0: return length - 2  // Sunday: Friday
        case 6: return length - 1  // Saturday: Friday
        default: return length
        }
    }

    /// `nW`: day n when it is Monday to Friday; a Saturday moves to the Friday before (or the Monday after, when n is
    /// the 1st), a Sunday to the Monday after (or the Friday before, when n is the last day). Never leaves the
    /// month; nil when the month has no day n (`31W` in April).
    static func nearestWeekday(to target: Int, length: Int, weekdayOfFirst: Int) -> Int? {
        guard target <= length else { return nil }
        switch (weekdayOfFirst + target - 1) % 7 {
        case 6: return target == 1 ? target + 2 : target - 1
        case 0: return target == length ? target - 2 : target + 1
        default: return target
        }
    }
}
