import Foundation
import Testing

@testable import AgentryCore

/// A valid expression and the first ticks it gives after 2026-01-01T00:00:00Z in UTC.
struct CronParseCase: Sendable, CustomStringConvertible {
    var expression: String
    var ticks: [String]
    var description: String { expression }
}

/// An expression refused, with the field, position, expected and found the error must carry.
struct CronRefusalCase: Sendable, CustomStringConvertible {
    var expression: String
    var field: String?
    var position: Int
    var expected: String
    var found: String
    var suggestion: String? = nil
    var description: String { expression }
}

func utcInstant(_ text: String) -> Date {
    let formatter = ISO8601DateFormatter()
    guard let date = formatter.date(from: text) else { fatalError("not an ISO 8601 instant: \(text)") }
    return date
}

func utcText(_ date: Date) -> String {
    ISO8601DateFormatter().string(from: date)
}

@Suite("CronExpression: syntax")
struct CronExpressionTests {
    static let valid: [CronParseCase] = [
        .init(expression: "* * * * *", ticks: ["2026-01-01T00:01:00Z", "2026-01-01T00:02:00Z"]),
        .init(expression: "  15 * * * *  ", ticks: ["2026-01-01T00:15:00Z", "2026-01-01T01:15:00Z"]),
        .init(expression: "*/20 * * * *", ticks: ["2026-01-01T00:20:00Z", "2026-01-01T00:40:00Z", "2026-01-01T01:00:00Z"]),
        .init(
            expression: "10-30/10 6 * * *", ticks: ["2026-01-01T06:10:00Z", "2026-01-01T06:20:00Z", "2026-01-01T06:30:00Z", "2026-01-02T06:10:00Z"]),
        .init(expression: "50/5 * * * *", ticks: ["2026-01-01T00:50:00Z", "2026-01-01T00:55:00Z", "2026-01-01T01:50:00Z"]),
        .init(expression: "0 0,12-13 * * *", ticks: ["2026-01-01T12:00:00Z", "2026-01-01T13:00:00Z", "2026-01-02T00:00:00Z"]),
        .init(
            expression: "0 9 * feb,Mar MON-wed",
            ticks: ["2026-02-02T09:00:00Z", "2026-02-03T09:00:00Z", "2026-02-04T09:00:00Z", "2026-02-09T09:00:00Z"]),
        .init(expression: "0 0 * * 7", ticks: ["2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z"]),
        .init(expression: "0 0 * * 5-7", ticks: ["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z", "2026-01-09T00:00:00Z"]),
        .init(expression: "0 0 * * SAT-SUN", ticks: ["2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z", "2026-01-10T00:00:00Z"]),
        .init(expression: "0 0 ? * MON", ticks: ["2026-01-05T00:00:00Z", "2026-01-12T00:00:00Z"]),
        .init(expression: "0 0 1 * ?", ticks: ["2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"]),
        // Seconds first.
        .init(expression: "*/20 * * * * *", ticks: ["2026-01-01T00:00:20Z", "2026-01-01T00:00:40Z", "2026-01-01T00:01:00Z"]),
        .init(expression: "30 0 12 * * *", ticks: ["2026-01-01T12:00:30Z", "2026-01-02T12:00:30Z"]),
        // Day of month OR day of week when both are restricted (1 January 2026 is a Thursday).
        .init(expression: "0 0 13 * FRI", ticks: ["2026-01-02T00:00:00Z", "2026-01-09T00:00:00Z", "2026-01-13T00:00:00Z", "2026-01-16T00:00:00Z"]),
        .init(expression: "0 0 */10 * MON", ticks: ["2026-01-05T00:00:00Z", "2026-01-11T00:00:00Z", "2026-01-12T00:00:00Z", "2026-01-19T00:00:00Z"]),
        // L, L-n, nW, LW, nL, n#k.
        .init(expression: "0 0 L * *", ticks: ["2026-01-31T00:00:00Z", "2026-02-28T00:00:00Z", "2026-03-31T00:00:00Z", "2026-04-30T00:00:00Z"]),
        .init(expression: "0 0 L-2 * *", ticks: ["2026-01-29T00:00:00Z", "2026-02-26T00:00:00Z", "2026-03-29T00:00:00Z"]),
        // 15 Feb 2026 is a Sunday (→ Monday 16), 15 Aug a Saturday (→ Friday 14).
        .init(expression: "0 0 15W 2,8 *", ticks: ["2026-02-16T00:00:00Z", "2026-08-14T00:00:00Z"]),
        // 1 Aug 2026 is a Saturday: 1W is Monday the 3rd, not July. 31 May 2026 is a Sunday: Friday the 29th.
        .init(expression: "0 0 1W 8 *", ticks: ["2026-08-03T00:00:00Z", "2027-08-02T00:00:00Z"]),
        .init(expression: "0 0 31W 5 *", ticks: ["2026-05-29T00:00:00Z", "2027-05-31T00:00:00Z"]),
        .init(expression: "0 0 LW * *", ticks: ["2026-01-30T00:00:00Z", "2026-02-27T00:00:00Z", "2026-03-31T00:00:00Z", "2026-04-30T00:00:00Z"]),
        .init(expression: "0 0 * * 5L", ticks: ["2026-01-30T00:00:00Z", "2026-02-27T00:00:00Z", "2026-03-27T00:00:00Z"]),
        .init(expression: "0 0 * * FRI#3", ticks: ["2026-01-16T00:00:00Z", "2026-02-20T00:00:00Z", "2026-03-20T00:00:00Z"]),
        .init(expression: "0 0 * * 1#5", ticks: ["2026-03-30T00:00:00Z", "2026-06-29T00:00:00Z"]),
        // Macros.
        .init(expression: "@yearly", ticks: ["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"]),
        .init(expression: "@ANNUALLY", ticks: ["2027-01-01T00:00:00Z"]),
        .init(expression: "@monthly", ticks: ["2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"]),
        .init(expression: "@weekly", ticks: ["2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z"]),
        .init(expression: "@daily", ticks: ["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"]),
        .init(expression: "@midnight", ticks: ["2026-01-02T00:00:00Z"]),
        .init(expression: "@hourly", ticks: ["2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z"]),
        .init(expression: "@every 30s", ticks: ["2026-01-01T00:00:30Z", "2026-01-01T00:01:00Z"]),
        .init(expression: "@every 5m", ticks: ["2026-01-01T00:05:00Z", "2026-01-01T00:10:00Z"]),
        .init(expression: "@every 1h30m", ticks: ["2026-01-01T01:30:00Z", "2026-01-01T03:00:00Z"]),
        // 2026-01-01 is day 20454 since the epoch, an even day: a tick of @every 2d.
        .init(expression: "@every 2d", ticks: ["2026-01-03T00:00:00Z", "2026-01-05T00:00:00Z"]),
    ]

    @Test("valid expressions parse, keep their text (trimmed) and tick as written", arguments: valid)
    func parses(_ c: CronParseCase) throws {
        let cron = try CronExpression(c.expression)
        #expect(cron.text == c.expression.trimmingCharacters(in: .whitespaces))
        #expect(cron.description == cron.text)
        let ticks = cron.ticks(after: utcInstant("2026-01-01T00:00:00Z"), in: TimeZone(identifier: "UTC")!, count: c.ticks.count)
        #expect(ticks.map(utcText) == c.ticks)
    }

    static let fieldCount = "5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first"
    static let durations = "a duration such as 30s, 5m, 1h30m or 2d (units d, h, m, s)"
    static let macros = "one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly, @every <duration>"

    static let refused: [CronRefusalCase] = [
        .init(expression: "* * * *", field: nil, position: 8, expected: fieldCount, found: "4"),
        .init(expression: "0 * * * * * *", field: nil, position: 13, expected: fieldCount, found: "7"),
        .init(expression: "61 * * * *", field: "minute", position: 1, expected: "a number 0-59", found: "61"),
        .init(expression: "0 24 * * *", field: "hour", position: 3, expected: "a number 0-23", found: "24"),
        .init(expression: "0 0 0 * *", field: "day of month", position: 5, expected: "a number 1-31", found: "0"),
        .init(expression: "0 0 * 13 *", field: "month", position: 7, expected: "a number 1-12 or a name JAN-DEC", found: "13"),
        .init(expression: "0 0 * * 8", field: "day of week", position: 9, expected: "a number 0-7 or a name SUN-SAT", found: "8"),
        .init(expression: "60 * * * * *", field: "second", position: 1, expected: "a number 0-59", found: "60"),
        .init(expression: "30-10 * * * *", field: "minute", position: 1, expected: "a range a-b whose start is not after its end", found: "30-10"),
        .init(
            expression: "0 0 * * FRI-MON", field: "day of week", position: 9, expected: "a range a-b whose start is not after its end",
            found: "FRI-MON"),
        .init(expression: "*/0 * * * *", field: "minute", position: 3, expected: "a step of at least 1", found: "0"),
        .init(expression: "0 */24 * * *", field: "hour", position: 5, expected: "a step 1-23", found: "24"),
        .init(expression: "*/ * * * *", field: "minute", position: 3, expected: "a step: a number 1-59 after '/'", found: ""),
        .init(
            expression: "0 0 * JANUARY *", field: "month", position: 7, expected: "a number 1-12 or a name JAN-DEC", found: "JANUARY",
            suggestion: "did you mean 'JAN'?"),
        .init(
            expression: "0 0 * * FRY", field: "day of week", position: 9, expected: "a number 0-7 or a name SUN-SAT", found: "FRY",
            suggestion: "did you mean 'FRI'?"),
        .init(expression: "x * * * *", field: "minute", position: 1, expected: "a number 0-59, '*', a range a-b, a step /n, or a list", found: "x"),
        .init(expression: "5% * * * *", field: "minute", position: 1, expected: "a number 0-59, '*', a range a-b, a step /n, or a list", found: "5%"),
        .init(expression: "1,,2 * * * *", field: "minute", position: 3, expected: "a number 0-59, '*', a range a-b, a step /n, or a list", found: ""),
        .init(
            expression: "0 0 1, * *", field: "day of month", position: 7,
            expected: "a number 1-31, '*', '?', a range a-b, a step /n, L, L-n, nW, LW, or a list", found: ""),
        .init(
            expression: "? * * * *", field: "minute", position: 1,
            expected: "'?' only in day of month or day of week; a number 0-59, '*', a range a-b, a step /n, or a list", found: "?"),
        .init(expression: "0 0 L-31 * *", field: "day of month", position: 7, expected: "a number of days 0-30 after 'L-'", found: "31"),
        .init(expression: "0 0 32W * *", field: "day of month", position: 5, expected: "a number 1-31", found: "32"),
        .init(expression: "0 0 L/2 * *", field: "day of month", position: 6, expected: "no step after 'L'", found: "/2"),
        .init(
            expression: "0 0 * * 5#6", field: "day of week", position: 11, expected: "a week number 1-5 after '#', e.g. 5#3 for the third Friday",
            found: "6"),
        .init(
            expression: "0 0 * * L", field: "day of week", position: 9, expected: "a day before 'L', e.g. 5L for the last Friday; or 6 for Saturday",
            found: "L"),
        .init(
            expression: "", field: nil, position: 1, expected: "a cron expression: \(fieldCount), or a macro such as @daily or @every 5m", found: ""),
        .init(expression: "@every 0s", field: nil, position: 8, expected: "a duration of at least 1s", found: "0s"),
        .init(expression: "@every 0h0m", field: nil, position: 8, expected: "a duration of at least 1s", found: "0h0m"),
        .init(expression: "@every", field: nil, position: 7, expected: durations, found: ""),
        .init(expression: "@every 30", field: nil, position: 8, expected: durations, found: "30"),
        .init(expression: "@every 5x", field: nil, position: 8, expected: durations, found: "5x"),
        .init(expression: "@every 30m1h", field: nil, position: 12, expected: "units in the order d, h, m, s, each at most once", found: "30m1h"),
        .init(expression: "@every 1h 30m", field: nil, position: 11, expected: "one duration without spaces (1h30m)", found: "30m"),
        .init(expression: "@dayly", field: nil, position: 1, expected: macros, found: "@dayly", suggestion: "did you mean '@daily'?"),
        .init(expression: "@reboot", field: nil, position: 1, expected: macros, found: "@reboot"),
        .init(expression: "@daily 5", field: nil, position: 8, expected: "nothing after @daily", found: "5"),
    ]

    @Test("refusals say which field, where, what was expected and what was found", arguments: refused)
    func refuses(_ c: CronRefusalCase) {
        do {
            let cron = try CronExpression(c.expression)
            Issue.record("accepted '\(cron)'")
        } catch {
            #expect(error.text == c.expression)
            #expect(error.field == c.field)
            #expect(error.position == c.position)
            #expect(error.expected == c.expected)
            #expect(error.found == c.found)
            #expect(error.suggestion == c.suggestion)
        }
    }

    @Test("messages read: field, position, expected, found, suggestion")
    func messages() {
        func message(_ text: String) -> String {
            do {
                _ = try CronExpression(text)
                return "accepted"
            } catch {
                return error.description
            }
        }
        #expect(message("0 61 * * *") == "field hour at position 3: expected a number 0-23; found '61'")
        #expect(message("61 * * * *") == "field minute at position 1: expected a number 0-59; found '61'")
        #expect(
            message("* * * *") == "expected 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first; found 4")
        #expect(
            message("1,,2 * * * *")
                == "field minute at position 3: expected a number 0-59, '*', a range a-b, a step /n, or a list; found nothing")
        #expect(
            message("@dayly")
                == "at position 1: expected \(Self.macros); found '@dayly'; did you mean '@daily'?")
        #expect(
            message("0 0 * * MOM") == "field day of week at position 9: expected a number 0-7 or a name SUN-SAT; found 'MOM'; did you mean 'MON'?")
    }

    @Test("interval: the @every duration, nil for calendar expressions")
    func interval() throws {
        #expect(try CronExpression("@every 30s").interval == .seconds(30))
        #expect(try CronExpression("@every 1h30m").interval == .seconds(5400))
        #expect(try CronExpression("@every 2d").interval == .seconds(172_800))
        #expect(try CronExpression("@every 1d2h3m4s").interval == .seconds(93_784))
        #expect(try CronExpression("*/5 * * * *").interval == nil)
        #expect(try CronExpression("@hourly").interval == nil)
    }

    @Test("expressions are equal when written alike")
    func equality() throws {
        #expect(try CronExpression(" @daily ") == CronExpression("@daily"))
        #expect(try CronExpression("@daily") != CronExpression("0 0 * * *"))
        #expect(try Set([CronExpression("@daily"), CronExpression("@daily")]).count == 1)
    }
}
