/// Reads a cron expression: 5 or 6 fields, or a macro. Every refusal says where (a 1-based position into the text),
/// what was expected there and what was found.
struct CronParser {
    let text: String
    private let chars: [Character]

    init(_ text: String) {
        self.text = text
        self.chars = Array(text)
    }

    static let macros = ["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly", "@every"]

    private static let fieldCount = "5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first"
    private static let durationForms = "a duration such as 30s, 5m, 1h30m or 2d (units d, h, m, s)"
    /// The longest `@every` interval, 100 years: far beyond any schedule, and far from overflowing.
    static let longestInterval: Int64 = 36_500 * 86_400

    func parse() throws(CronError) -> CronExpression.Kind {
        guard let first = chars.first else {
            throw error(
                nil, at: 0,
                expected: "a cron expression: \(Self.fieldCount), or a macro such as @daily or @every 5m", found: "")
        }
        if first == "@" { return try macro() }
        let tokens = words(from: 0)
        guard tokens.count == 5 || tokens.count == 6 else {
            var problem = error(nil, at: tokens.count > 6 ? tokens[6].start : chars.count, expected: Self.fieldCount, found: String(tokens.count))
            problem.foundIsCount = true
            throw problem
        }
        return .calendar(try calendar(tokens))
    }

    // MARK: Fields

    private struct Word {
        var start: Int
        var end: Int
    }

    /// The whitespace-separated words from `start` on.
    private func words(from start: Int) -> [Word] {
        var result: [Word] = []
        var index = start
        while index < chars.count {
            while index < chars.count, chars[index].isWhitespace { index += 1 }
            guard index < chars.count else { break }
            let wordStart = index
            while index < chars.count, !chars[index].isWhitespace { index += 1 }
            result.append(Word(start: wordStart, end: index))
        }
        return result
    }

    private func calendar(_ tokens: [Word]) throws(CronError) -> CronCalendar {
        let fields: [CronField] = tokens.count == 6 ? CronField.allCases : Array(CronField.allCases.dropFirst())
        var bits: [CronField: CronBits] = [.second: CronBits.all(0...0)]
        var days = CronDays()
        var followsClock = false
        for (field, token) in zip(fields, tokens) {
            let parsed = try self.field(field, token, days: &days)
            bits[field] = parsed.bits
            let whole = String(chars[token.start..<token.end])
            if field == .hour { followsClock = parsed.oneItemOverAll }
            if field == .dayOfMonth { days.dayOfMonthRestricted = whole != "*" && whole != "?" }
            if field == .dayOfWeek { days.dayOfWeekRestricted = whole != "*" && whole != "?" }
        }
        days.daysOfMonth = bits[.dayOfMonth] ?? CronBits()
        days.daysOfWeek = bits[.dayOfWeek] ?? CronBits()
        return CronCalendar(
            seconds: bits[.second] ?? CronBits(), minutes: bits[.minute] ?? CronBits(), hours: bits[.hour] ?? CronBits(),
            months: bits[.month] ?? CronBits(), days: days, followsClock: followsClock)
    }

    /// One field: a comma-separated list of items. Returns its plain values, and whether it is a single item over the
    /// field's whole range (`*`, `*/2`, `0-23`).
    private func field(_ field: CronField, _ token: Word, days: inout CronDays) throws(CronError) -> (bits: CronBits, oneItemOverAll: Bool) {
        var bits = CronBits()
        var items: [Word] = []
        var itemStart = token.start
        for index in token.start...token.end where index == token.end || chars[index] == "," {
            items.append(Word(start: itemStart, end: index))
            itemStart = index + 1
        }
        var overAll = false
        for item in items {
            guard item.start < item.end else {
                throw error(field, at: item.start, expected: field.expected, found: "")
            }
            overAll = try self.item(field, item, into: &bits, days: &days)
        }
        return (bits, items.count == 1 && overAll)
    }

    /// One item: `*`, `?`, `a`, `a-b`, each with an optional `/n`, or a special day form. Returns whether it spans the
    /// field's whole range.
    private func item(_ field: CronField, _ item: Word, into bits: inout CronBits, days: inout CronDays) throws(CronError) -> Bool {
        let slash = chars[item.start..<item.end].firstIndex(of: "/")
        let base = Word(start: item.start, end: slash ?? item.end)
        let baseText = String(chars[base.start..<base.end]).uppercased()
        var step = 1
        if let slash {
            step = try self.step(field, Word(start: slash + 1, end: item.end))
        }
        if try special(field, base, baseText, into: &days) {
            if let slash {
                throw error(field, at: slash, expected: "no step after '\(baseText)'", found: String(chars[slash..<item.end]))
            }
            return false
        }
        // Day of week 7 is Sunday again: a whole-range item covers 0-6, and values are taken modulo 7.
        let full = field == .dayOfWeek ? 0...6 : field.range
        var low = full.lowerBound, high = full.upperBound
        if baseText == "*" || baseText == "?" {
            if baseText == "?" && field != .dayOfMonth && field != .dayOfWeek {
                throw error(field, at: base.start, expected: "'?' only in day of month or day of week; \(field.expected)", found: "?")
            }
        } else {
            // A dash after the first character: `-5` is no range but a bad value.
            let dash = base.end > base.start + 1 ? chars[base.start + 1..<base.end].firstIndex(of: "-") : nil
            low = try value(field, Word(start: base.start, end: dash ?? base.end))
            if let dash {
                high = try value(field, Word(start: dash + 1, end: base.end))
                if field == .dayOfWeek, high == 0, low > 0, String(chars[dash + 1..<base.end]).uppercased() == "SUN" {
                    high = 7  // MON-SUN
                }
                if low > high {
                    throw error(
                        field, at: base.start, expected: "a range a-b whose start is not after its end",
                        found: String(chars[base.start..<base.end]))
                }
            } else if slash == nil {
                high = low
            } else {
                high = field.range.upperBound  // a/n: from a to the end of the range
            }
        }
        for value in stride(from: low, through: high, by: step) { bits.insert(field == .dayOfWeek ? value % 7 : value) }
        return low == full.lowerBound && high >= full.upperBound
    }

    private func step(_ field: CronField, _ word: Word) throws(CronError) -> Int {
        let text = String(chars[word.start..<word.end])
        let limit = field.range.upperBound
        guard !text.isEmpty, text.count <= 6, text.allSatisfy(\.isASCIIDigit), let step = Int(text) else {
            throw error(field, at: word.start, expected: "a step: a number 1-\(limit) after '/'", found: text)
        }
        guard step >= 1 else { throw error(field, at: word.start, expected: "a step of at least 1", found: text) }
        guard step <= limit else { throw error(field, at: word.start, expected: "a step 1-\(limit)", found: text) }
        return step
    }

    /// A number in the field's range, or a name in fields that have names.
    private func value(_ field: CronField, _ word: Word) throws(CronError) -> Int {
        let text = String(chars[word.start..<word.end])
        if !text.isEmpty, text.allSatisfy(\.isASCIIDigit) {
            guard text.count <= 6, let number = Int(text), field.range.contains(number) else {
                throw error(field, at: word.start, expected: field.value, found: text)
            }
            return number
        }
        let upper = text.uppercased()
        if let index = field.names.firstIndex(of: upper) { return field.range.lowerBound + index }
        if !field.names.isEmpty, !upper.isEmpty, upper.allSatisfy(\.isLetter) {
            // A name written out (`JANUARY`, `Thursday`) begins with its abbreviation.
            let suggestion = field.names.first { upper.hasPrefix($0) }.map { "did you mean '\($0)'?" }
            throw error(
                field, at: word.start, expected: field.value, found: text,
                suggestion: suggestion ?? Suggest.didYouMean(upper, among: field.names))
        }
        throw error(field, at: word.start, expected: field.expected, found: text)
    }

    /// `L`, `L-n`, `LW`, `nW` in day of month; `nL`, `n#k` in day of week. Returns false for anything else.
    private func special(_ field: CronField, _ base: Word, _ text: String, into days: inout CronDays) throws(CronError) -> Bool {
        switch field {
        case .dayOfMonth:
            if text == "L" {
                days.fromLastDay.insert(0)
            } else if text == "LW" {
                days.lastWeekday = true
            } else if text.hasPrefix("L-") {
                let word = Word(start: base.start + 2, end: base.end)
                let digits = String(chars[word.start..<word.end])
                guard !digits.isEmpty, digits.count <= 2, digits.allSatisfy(\.isASCIIDigit), let n = Int(digits), n <= 30 else {
                    throw error(field, at: word.start, expected: "a number of days 0-30 after 'L-'", found: digits)
                }
                days.fromLastDay.insert(n)
            } else if text.count > 1, text.hasSuffix("W"), text.dropLast().allSatisfy(\.isASCIIDigit) {
                days.nearestWeekdays.insert(try value(field, Word(start: base.start, end: base.end - 1)))
            } else {
                return false
            }
            return true
        case .dayOfWeek:
            if text == "L" {
                throw error(field, at: base.start, expected: "a day before 'L', e.g. 5L for the last Friday; or 6 for Saturday", found: "L")
            }
            if text.count > 1, text.hasSuffix("L") {
                days.lastOfWeekday.insert(try value(field, Word(start: base.start, end: base.end - 1)) % 7)
                return true
            }
            guard let hash = chars[base.start..<base.end].firstIndex(of: "#") else { return false }
            let weekday = try value(field, Word(start: base.start, end: hash)) % 7
            let word = Word(start: hash + 1, end: base.end)
            let digits = String(chars[word.start..<word.end])
            guard digits.count == 1, let n = Int(digits), (1...5).contains(n) else {
                throw error(field, at: word.start, expected: "a week number 1-5 after '#', e.g. 5#3 for the third Friday", found: digits)
            }
            days.nthWeekdays.insert(weekday * 8 + n)
            return true
        default:
            return false
        }
    }

    // MARK: Macros

    private func macro() throws(CronError) -> CronExpression.Kind {
        let tokens = words(from: 0)
        let name = String(chars[tokens[0].start..<tokens[0].end])
        let expansion: String
        switch name.lowercased() {
        case "@yearly", "@annually": expansion = "0 0 1 1 *"
        case "@monthly": expansion = "0 0 1 * *"
        case "@weekly": expansion = "0 0 * * 0"
        case "@daily", "@midnight": expansion = "0 0 * * *"
        case "@hourly": expansion = "0 * * * *"
        case "@every":
            guard tokens.count == 2 else {
                let at = tokens.count > 2 ? tokens[2].start : chars.count
                let found = tokens.count > 2 ? String(chars[tokens[2].start...]) : ""
                throw error(nil, at: at, expected: tokens.count > 2 ? "one duration without spaces (1h30m)" : Self.durationForms, found: found)
            }
            return .every(try duration(tokens[1]))
        default:
            let expected = Self.macros.map { $0 == "@every" ? "@every <duration>" : $0 }.joined(separator: ", ")
            throw error(
                nil, at: 0, expected: "one of \(expected)", found: name, suggestion: Suggest.didYouMean(name.lowercased(), among: Self.macros))
        }
        if tokens.count > 1 {
            throw error(nil, at: tokens[1].start, expected: "nothing after \(name)", found: String(chars[tokens[1].start...]))
        }
        return try CronParser(expansion).parse()
    }

    /// `30s`, `5m`, `1h30m`, `2d`: numbers with units d, h, m, s, largest first, each once; at least 1 s in all.
    private func duration(_ word: Word) throws(CronError) -> Int64 {
        let text = String(chars[word.start..<word.end])
        let units: [(Character, Int64)] = [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)]
        var total: Int64 = 0
        var index = word.start
        var nextUnit = 0
        while index < word.end {
            let numberStart = index
            while index < word.end, chars[index].isASCIIDigit { index += 1 }
            guard index > numberStart, index - numberStart <= 9, index < word.end,
                let rank = units.firstIndex(where: { $0.0 == Character(chars[index].lowercased()) })
            else {
                throw error(nil, at: word.start, expected: Self.durationForms, found: text)
            }
            guard rank >= nextUnit else {
                throw error(nil, at: index, expected: "units in the order d, h, m, s, each at most once", found: text)
            }
            total += (Int64(String(chars[numberStart..<index])) ?? 0) * units[rank].1
            nextUnit = rank + 1
            index += 1
        }
        guard total >= 1 else { throw error(nil, at: word.start, expected: "a duration of at least 1s", found: text) }
        guard total <= Self.longestInterval else { throw error(nil, at: word.start, expected: "a duration of at most 36500d", found: text) }
        return total
    }

    // MARK: Errors

    /// `index` is 0-based; positions in errors are 1-based.
    private func error(_ field: CronField?, at index: Int, expected: String, found: String, suggestion: String? = nil) -> CronError {
        CronError(text: text, field: field?.name, position: index + 1, expected: expected, found: found, suggestion: suggestion)
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}
