import Foundation
import Testing

@testable import AgentryCore

/// An expression's next ticks after an instant, in a zone, as UTC instants.
struct CronTickCase: Sendable, CustomStringConvertible {
    var expression: String
    var zone: String
    var after: String
    var ticks: [String]
    var note: String
    var description: String { "\(expression) in \(zone) after \(after): \(note)" }
}

@Suite("CronExpression: ticks, time zones and daylight saving")
struct CronScheduleTests {
    // Europe/Berlin: 2026-03-29 01:00Z the clock goes from 02:00 CET to 03:00 CEST (02:00-03:00 does not exist);
    // 2026-10-25 01:00Z from 03:00 CEST back to 02:00 CET (02:00-03:00 happens twice: 00:00-01:00Z and 01:00-02:00Z).
    // America/New_York: 2026-03-08 07:00Z from 02:00 EST to 03:00 EDT; 2026-11-01 06:00Z from 02:00 EDT back to
    // 01:00 EST (01:00-02:00 happens twice: 05:00-06:00Z and 06:00-07:00Z).
    static let cases: [CronTickCase] = [
        // Berlin, spring forward.
        .init(
            expression: "30 2 * * *", zone: "Europe/Berlin", after: "2026-03-28T12:00:00Z",
            ticks: ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"],
            note: "02:30 does not exist: once at 03:00 CEST, then 02:30 CEST"),
        .init(
            expression: "30 2 * * *", zone: "Europe/Berlin", after: "2026-03-29T00:59:59Z", ticks: ["2026-03-29T01:00:00Z"],
            note: "from the second before the gap"),
        .init(
            expression: "30 2 * * *", zone: "Europe/Berlin", after: "2026-03-29T01:00:00Z", ticks: ["2026-03-30T00:30:00Z"],
            note: "from the gap's tick itself"),
        .init(
            expression: "0,30 2 * * *", zone: "Europe/Berlin", after: "2026-03-28T23:00:00Z",
            ticks: ["2026-03-29T01:00:00Z", "2026-03-30T00:00:00Z", "2026-03-30T00:30:00Z"],
            note: "02:00 and 02:30 are both skipped: one tick at 03:00"),
        .init(
            expression: "0,30 2,3 * * *", zone: "Europe/Berlin", after: "2026-03-28T23:00:00Z",
            ticks: ["2026-03-29T01:00:00Z", "2026-03-29T01:30:00Z", "2026-03-30T00:00:00Z"],
            note: "03:00 is a tick itself: still one tick there"),
        .init(
            expression: "15 30 2 * * *", zone: "Europe/Berlin", after: "2026-03-28T12:00:00Z",
            ticks: ["2026-03-29T01:00:00Z", "2026-03-30T00:30:15Z"], note: "with seconds: 02:30:15 skipped, fires at 03:00:00"),
        .init(
            expression: "*/30 * * * *", zone: "Europe/Berlin", after: "2026-03-29T00:00:00Z",
            ticks: ["2026-03-29T00:30:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:30:00Z"],
            note: "01:30 CET, then 03:00 CEST: nothing in the missing hour"),
        // Berlin, fall back.
        .init(
            expression: "30 2 * * *", zone: "Europe/Berlin", after: "2026-10-24T12:00:00Z",
            ticks: ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"], note: "02:30 twice: once, at the first (CEST)"),
        .init(
            expression: "30 2 * * *", zone: "Europe/Berlin", after: "2026-10-25T00:40:00Z", ticks: ["2026-10-26T01:30:00Z"],
            note: "from the first pass, after the tick: not again in the second pass"),
        .init(
            expression: "45 2 * * *", zone: "Europe/Berlin", after: "2026-10-25T01:10:00Z", ticks: ["2026-10-26T01:45:00Z"],
            note: "from inside the second pass: 02:45 CET is a repeat"),
        .init(
            expression: "*/15 2 * * *", zone: "Europe/Berlin", after: "2026-10-24T12:00:00Z",
            ticks: ["2026-10-25T00:00:00Z", "2026-10-25T00:15:00Z", "2026-10-25T00:30:00Z", "2026-10-25T00:45:00Z", "2026-10-26T01:00:00Z"],
            note: "a fixed hour with a minute step: the first pass only"),
        .init(
            expression: "*/30 * * * *", zone: "Europe/Berlin", after: "2026-10-24T23:50:00Z",
            ticks: ["2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z", "2026-10-25T01:00:00Z", "2026-10-25T01:30:00Z", "2026-10-25T02:00:00Z"],
            note: "02:00 and 02:30 in CEST and again in CET"),
        .init(
            expression: "*/15 * * * *", zone: "Europe/Berlin", after: "2026-10-25T01:05:00Z",
            ticks: ["2026-10-25T01:15:00Z", "2026-10-25T01:30:00Z"], note: "from inside the second pass"),
        // New York, spring forward.
        .init(
            expression: "30 2 * * *", zone: "America/New_York", after: "2026-03-07T12:00:00Z",
            ticks: ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"], note: "02:30 does not exist: once at 03:00 EDT"),
        .init(
            expression: "*/30 * * * *", zone: "America/New_York", after: "2026-03-08T06:00:00Z",
            ticks: ["2026-03-08T06:30:00Z", "2026-03-08T07:00:00Z", "2026-03-08T07:30:00Z"],
            note: "01:30 EST, then 03:00 EDT"),
        // New York, fall back.
        .init(
            expression: "30 2 * * *", zone: "America/New_York", after: "2026-10-31T12:00:00Z",
            ticks: ["2026-11-01T07:30:00Z", "2026-11-02T07:30:00Z"], note: "02:30 happens once (the repeated hour is 01:00)"),
        .init(
            expression: "30 1 * * *", zone: "America/New_York", after: "2026-10-31T12:00:00Z",
            ticks: ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"], note: "01:30 twice: once, at the first (EDT)"),
        .init(
            expression: "*/30 * * * *", zone: "America/New_York", after: "2026-11-01T04:50:00Z",
            ticks: ["2026-11-01T05:00:00Z", "2026-11-01T05:30:00Z", "2026-11-01T06:00:00Z", "2026-11-01T06:30:00Z", "2026-11-01T07:00:00Z"],
            note: "01:00 and 01:30 in EDT and again in EST"),
        // Calendar corners.
        .init(
            expression: "0 0 29 2 *", zone: "UTC", after: "2025-01-01T00:00:00Z", ticks: ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"],
            note: "29 February: leap years only"),
        .init(
            expression: "0 0 29 2 *", zone: "Europe/Berlin", after: "2025-01-01T00:00:00Z", ticks: ["2028-02-28T23:00:00Z"],
            note: "midnight CET"),
        .init(
            expression: "0 0 29 2 *", zone: "UTC", after: "2097-01-01T00:00:00Z", ticks: ["2104-02-29T00:00:00Z"],
            note: "2100 is no leap year"),
        .init(
            expression: "0 0 L * *", zone: "UTC", after: "2027-12-31T12:00:00Z",
            ticks: ["2028-01-31T00:00:00Z", "2028-02-29T00:00:00Z", "2028-03-31T00:00:00Z", "2028-04-30T00:00:00Z"],
            note: "the last day of January, leap February, March, April"),
        .init(
            expression: "0 0 L * *", zone: "UTC", after: "2026-01-31T00:00:00Z", ticks: ["2026-02-28T00:00:00Z"],
            note: "February of a common year"),
        .init(expression: "0 0 30 2 *", zone: "UTC", after: "2026-01-01T00:00:00Z", ticks: [], note: "never: 30 February"),
        .init(expression: "0 0 31 4,6,9,11 *", zone: "Europe/Berlin", after: "2026-01-01T00:00:00Z", ticks: [], note: "never"),
        // @every: multiples of the interval since the epoch, whatever the zone.
        .init(
            expression: "@every 30s", zone: "Europe/Berlin", after: "2026-03-29T00:59:45Z",
            ticks: ["2026-03-29T01:00:00Z", "2026-03-29T01:00:30Z"], note: "across the gap, unaffected"),
        .init(
            expression: "@every 1h30m", zone: "America/New_York", after: "2026-11-01T05:00:00Z",
            ticks: ["2026-11-01T06:00:00Z", "2026-11-01T07:30:00Z"], note: "2026-11-01T06:00Z is 328 536 × 5400 s"),
    ]

    @Test("next ticks, as UTC instants", arguments: cases)
    func ticks(_ c: CronTickCase) throws {
        let cron = try CronExpression(c.expression)
        let zone = try #require(TimeZone(identifier: c.zone))
        let ticks = cron.ticks(after: utcInstant(c.after), in: zone, count: c.ticks.count + 1)
        #expect(ticks.prefix(c.ticks.count).map(utcText) == c.ticks)
        if c.ticks.isEmpty { #expect(cron.next(after: utcInstant(c.after), in: zone) == nil) }
    }

    @Test(
        "ticks strictly increase, and next(after:) from any instant between two ticks is the second",
        arguments: ["*/15 * * * *", "30 2 * * *", "0,30 1-3 * * *", "0 */2 * * *", "15 30 2 * * SUN", "@every 7m"],
        ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC"])
    func consistency(expression: String, zone: String) throws {
        let cron = try CronExpression(expression)
        let timeZone = try #require(TimeZone(identifier: zone))
        // Around both changes of the year in each hemisphere.
        for start in ["2026-03-27T00:00:00Z", "2026-10-23T00:00:00Z", "2026-04-03T00:00:00Z", "2026-10-02T00:00:00Z"] {
            let ticks = cron.ticks(after: utcInstant(start), in: timeZone, count: 300)
            #expect(ticks.count == 300)
            var generator = SystemRandomNumberGenerator()
            for (earlier, later) in zip(ticks, ticks.dropFirst()) {
                #expect(earlier < later)
                #expect(earlier.timeIntervalSince1970 == earlier.timeIntervalSince1970.rounded())
                let between = earlier.timeIntervalSince1970 + Double.random(in: 0..<later.timeIntervalSince(earlier), using: &generator)
                #expect(cron.next(after: Date(timeIntervalSince1970: between), in: timeZone) == later)
                #expect(cron.next(after: later.addingTimeInterval(-1), in: timeZone) == later)
            }
        }
    }

    @Test("@every ticks are multiples of the interval since the epoch, in any zone, from any instant")
    func everyAlignment() throws {
        for (text, seconds) in [("@every 30s", 30.0), ("@every 1h30m", 5400), ("@every 7m", 420), ("@every 2d", 172_800)] {
            let cron = try CronExpression(text)
            for zone in ["UTC", "Europe/Berlin", "Asia/Kathmandu"] {
                let timeZone = try #require(TimeZone(identifier: zone))
                let after = Date(timeIntervalSince1970: 1_790_000_123.75)
                let ticks = cron.ticks(after: after, in: timeZone, count: 5)
                #expect(ticks.first.map { $0 > after && $0.timeIntervalSince(after) <= seconds } == true)
                for tick in ticks { #expect(tick.timeIntervalSince1970.truncatingRemainder(dividingBy: seconds) == 0) }
                #expect(zip(ticks, ticks.dropFirst()).allSatisfy { $1.timeIntervalSince($0) == seconds })
            }
        }
        let half = try CronExpression("@every 30s")
        #expect(half.next(after: Date(timeIntervalSince1970: 29.999), in: .gmt) == Date(timeIntervalSince1970: 30))
        #expect(half.next(after: Date(timeIntervalSince1970: 30), in: .gmt) == Date(timeIntervalSince1970: 60))
        #expect(half.next(after: Date(timeIntervalSince1970: -45), in: .gmt) == Date(timeIntervalSince1970: -30))
    }

    @Test("next costs microseconds: a month of five-minute ticks, and 29 February searched for years")
    func cost() throws {
        let every5 = try CronExpression("*/5 * * * *")
        let leap = try CronExpression("0 0 29 2 *")
        let never = try CronExpression("0 0 30 2 *")
        let berlin = try #require(TimeZone(identifier: "Europe/Berlin"))
        let clock = ContinuousClock()
        let elapsed = clock.measure {
            let ticks = every5.ticks(after: utcInstant("2026-01-01T00:00:00Z"), in: berlin, count: 8928)
            #expect(ticks.count == 8928)
            for _ in 0..<1000 {
                _ = leap.next(after: utcInstant("2029-03-01T00:00:00Z"), in: berlin)
                _ = never.next(after: utcInstant("2029-03-01T00:00:00Z"), in: berlin)
            }
        }
        // Minute by minute this would be hundreds of millions of steps; field by field it is well under a second
        // even in a debug build.
        #expect(elapsed < .seconds(10), "took \(elapsed)")
    }
}
