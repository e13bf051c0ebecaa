/// A calendar cron expression, parsed: the allowed seconds, minutes, hours, months and days. It finds matching
/// wall-clock times field by field (a month, a day, an hour at a time), never minute by minute.
struct CronCalendar: Sendable, Hashable {
    var seconds: CronBits
    var minutes: CronBits
    var hours: CronBits
    var months: CronBits
    var days: CronDays
    /// Whether the hour field is one item over all hours (`*`, `*/2`, `0-23/3`): such a job follows the clock through
    /// daylight-saving changes (no tick in a skipped hour, ticks in both passes of a repeated hour); any other is a
    /// fixed-hour job (fires once in each case). See ``CronExpression``.
    var followsClock: Bool

    /// The first matching wall-clock time at or after `start` (local seconds, see ``CivilTime``), searching no further
    /// than the end of `lastYear`.
    func firstMatch(atOrAfter start: Int64, lastYear: Int) -> Int64? {
        var t = CivilTime(localSeconds: start)
        while t.year <= lastYear {
            guard let month = months.first(atOrAfter: t.month) else {
                t = CivilTime(year: t.year + 1, month: 1, day: 1)
                continue
            }
            if month != t.month { t = CivilTime(year: t.year, month: month, day: 1) }
            let length = CivilTime.daysIn(month: t.month, year: t.year)
            var day = t.day
            var weekday = CivilTime.weekday(year: t.year, month: t.month, day: day)
            while day <= length && !days.matches(day: day, weekday: weekday, length: length) {
                day += 1
                weekday = (weekday + 1) % 7
            }
            if day > length {
                t.advanceMonth()
                continue
            }
            if day != t.day { t = CivilTime(year: t.year, month: t.month, day: day) }
            guard let hour = hours.first(atOrAfter: t.hour) else {
                t.advanceDay()
                continue
            }
            if hour != t.hour { (t.hour, t.minute, t.second) = (hour, 0, 0) }
            guard let minute = minutes.first(atOrAfter: t.minute) else {
                t.advanceHour()
                continue
            }
            if minute != t.minute { (t.minute, t.second) = (minute, 0) }
            guard let second = seconds.first(atOrAfter: t.second) else {
                t.advanceMinute()
                continue
            }
            t.second = second
            return t.localSeconds
        }
        return nil
    }

    /// Whether a wall-clock time matches.
    func matches(localSeconds: Int64) -> Bool {
        let t = CivilTime(localSeconds: localSeconds)
        return seconds.contains(t.second) && minutes.contains(t.minute) && hours.contains(t.hour) && months.contains(t.month)
            && days.matches(
                day: t.day, weekday: CivilTime.weekday(year: t.year, month: t.month, day: t.day),
                length: CivilTime.daysIn(month: t.month, year: t.year))
    }
}

/// A wall-clock date and time in the proleptic Gregorian calendar, and its "local seconds": seconds since
/// 1970-01-01 00:00:00 on the same wall clock (the instant is local seconds minus the zone's offset).
struct CivilTime: Sendable, Hashable {
    var year: Int
    var month: Int
    var day: Int
    var hour = 0
    var minute = 0
    var second = 0

    init(year: Int, month: Int, day: Int, hour: Int = 0, minute: Int = 0, second: Int = 0) {
        (self.year, self.month, self.day, self.hour, self.minute, self.second) = (year, month, day, hour, minute, second)
    }

    init(localSeconds: Int64) {
        let days = Self.floorDivide(localSeconds, 86_400)
        let rest = Int(localSeconds - days * 86_400)
        (year, month, day) = Self.civil(fromDays: days)
        (hour, minute, second) = (rest / 3600, rest / 60 % 60, rest % 60)
    }

    var localSeconds: Int64 {
        Self.days(year: year, month: month, day: day) * 86_400 + Int64(hour * 3600 + minute * 60 + second)
    }

    mutating func advanceMonth() {
        self = month == 12 ? CivilTime(year: year + 1, month: 1, day: 1) : CivilTime(year: year, month: month + 1, day: 1)
    }

    mutating func advanceDay() {
        if day >= Self.daysIn(month: month, year: year) {
            advanceMonth()
        } else {
            self = CivilTime(year: year, month: month, day: day + 1)
        }
    }

    mutating func advanceHour() {
        if hour == 23 {
            advanceDay()
        } else {
            (hour, minute, second) = (hour + 1, 0, 0)
        }
    }

    mutating func advanceMinute() {
        if minute == 59 {
            advanceHour()
        } else {
            (minute, second) = (minute + 1, 0)
        }
    }

    static func isLeap(_ year: Int) -> Bool { year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// 0 for Sunday … 6 for Saturday.
    static func weekday(year: Int, month: Int, day: Int) -> Int {
        // 1970-01-01 was a Thursday.
        Int(((days(year: year, month: month, day: day) + 4) % 7 + 7) % 7)
    }

    /// Days since 1970-01-01 (H. Hinnant's `days_from_civil`).
    static func days(year: Int, month: Int, day: Int) -> Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = floorDivide(y, 400)
        let yearOfEra = y - era * 400
        let m = Int64(month)
        let dayOfYear = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(day) - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The date `days` after 1970-01-01 (H. Hinnant's `civil_from_days`).
    static func civil(fromDays days: Int64) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = floorDivide(z, 146_097)
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (Int(year), Int(month), Int(day))
    }

    static func floorDivide(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }
}
