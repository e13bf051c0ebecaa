import Foundation
import Testing

@testable import AgentryCore

@Suite("Timestamp")
struct TimestampTests {
    /// 2024-01-01T00:00:00Z: 54 years since 1970, 13 of them leap years (1972 … 2020) → 19723 days.
    static let newYear2024: TimeInterval = 19_723 * 86_400

    @Test("the epoch formats as 1970-01-01T00:00:00.000Z")
    func formatEpoch() {
        #expect(Timestamp.format(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
    }

    @Test("a known instant formats in UTC with milliseconds")
    func formatKnownInstant() {
        #expect(Timestamp.format(Date(timeIntervalSince1970: 1_700_000_000.5)) == "2023-11-14T22:13:20.500Z")
        #expect(Timestamp.format(Date(timeIntervalSince1970: Self.newYear2024 + 12 * 3600 + 0.123)) == "2024-01-01T12:00:00.123Z")
    }

    @Test("years, days and milliseconds keep their widths; years past 9999 get more digits")
    func formatWidths() {
        #expect(Timestamp.format(Date(timeIntervalSince1970: -62_135_596_800 + 0.007)) == "0001-01-01T00:00:00.007Z")
        #expect(Timestamp.format(Date(timeIntervalSince1970: 253_402_300_799.999)) == "9999-12-31T23:59:59.999Z")
        #expect(Timestamp.format(Date(timeIntervalSince1970: 253_402_300_800)) == "10000-01-01T00:00:00.000Z")
        #expect(Timestamp.format(Date(timeIntervalSince1970: 946_684_800 + 9 * 86_400 + 9 * 3600 + 9 * 60 + 9.09)) == "2000-01-10T09:09:09.090Z")
    }

    @Test("a leap day formats correctly")
    func formatLeapDay() {
        // 2024-02-29 is 31 + 28 days after 2024-01-01.
        #expect(Timestamp.format(Date(timeIntervalSince1970: Self.newYear2024 + 59 * 86_400)) == "2024-02-29T00:00:00.000Z")
    }

    @Test("an instant just before the epoch formats as the previous day")
    func formatBeforeEpoch() {
        #expect(Timestamp.format(Date(timeIntervalSince1970: -0.5)) == "1969-12-31T23:59:59.500Z")
    }

    @Test("format has the shape YYYY-MM-DDTHH:MM:SS.mmmZ")
    func formatShape() throws {
        let regex = try Regex(#"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z"#)
        let text = Timestamp.format(Date())
        #expect(text.wholeMatch(of: regex) != nil, "\(text)")
    }

    @Test("parse accepts Z")
    func parseZulu() throws {
        let date = try #require(Timestamp.parse("2024-01-01T12:00:00Z"))
        #expect(date.timeIntervalSince1970 == Self.newYear2024 + 12 * 3600)
        let withMillis = try #require(Timestamp.parse("2024-01-01T12:00:00.250Z"))
        #expect(abs(withMillis.timeIntervalSince1970 - (Self.newYear2024 + 12 * 3600 + 0.25)) < 1e-6)
    }

    @Test("parse converts offsets to UTC")
    func parseOffsets() throws {
        let noon = Self.newYear2024 + 12 * 3600
        #expect(try #require(Timestamp.parse("2024-01-01T14:00:00+02:00")).timeIntervalSince1970 == noon)
        #expect(try #require(Timestamp.parse("2024-01-01T06:30:00-05:30")).timeIntervalSince1970 == noon)
        #expect(try #require(Timestamp.parse("2024-01-02T01:00:00+13:00")).timeIntervalSince1970 == noon)
        #expect(try #require(Timestamp.parse("2024-01-01T12:00:00+00:00")).timeIntervalSince1970 == noon)
    }

    @Test("parse takes a time without zone as UTC (Python's utcnow().isoformat())")
    func parseNoZone() throws {
        let date = try #require(Timestamp.parse("2024-01-01T12:00:00.123456"))
        #expect(abs(date.timeIntervalSince1970 - (Self.newYear2024 + 12 * 3600 + 0.123456)) < 1e-5)
        let whole = try #require(Timestamp.parse("2024-01-01T00:00:00"))
        #expect(whole.timeIntervalSince1970 == Self.newYear2024)
    }

    @Test("parse accepts a space instead of T")
    func parseSpace() throws {
        let date = try #require(Timestamp.parse("2024-01-01 12:00:00Z"))
        #expect(date.timeIntervalSince1970 == Self.newYear2024 + 12 * 3600)
    }

    @Test("parse accepts a leap day in a leap year")
    func parseLeapDay() throws {
        let date = try #require(Timestamp.parse("2024-02-29T00:00:00Z"))
        #expect(date.timeIntervalSince1970 == Self.newYear2024 + 59 * 86_400)
    }

    @Test(
        "parse rejects what is not an ISO 8601 instant",
        arguments: [
            "2024-02-30T00:00:00Z",  // no such day
            "2023-02-29T00:00:00Z",  // not a leap year
            "2024-04-31T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T12:60:00Z",
            "yesterday",
            "",
            "2024-01-01",
            "2024-01-01T12:00:00Zjunk",
            "2024-01-01T12:00:00Z ",
            "2024-01-01T12:00:00+02:00x",
            "2024-01-01T12:00:00.",
            "2024-01-01T12:00",
            "2024-01-01X12:00:00Z",
        ])
    func parseRejects(text: String) {
        #expect(Timestamp.parse(text) == nil)
    }

    @Test("format → parse gives back the instant within 1 ms")
    func roundTrip() throws {
        var generator = SystemRandomNumberGenerator()
        var dates = [
            Date(), Date(timeIntervalSince1970: 0), Date(timeIntervalSince1970: 1_700_000_000.5),
            Date(timeIntervalSince1970: 4_102_444_800.999),
        ]
        for _ in 0..<200 {
            dates.append(Date(timeIntervalSince1970: Double.random(in: 0..<4_102_444_800, using: &generator)))
        }
        for date in dates {
            let text = Timestamp.format(date)
            let parsed = try #require(Timestamp.parse(text), "\(text)")
            #expect(
                abs(parsed.timeIntervalSince(date)) < 0.001, "\(text) parsed as \(parsed.timeIntervalSince1970), was \(date.timeIntervalSince1970)")
        }
    }

    @Test("a formatted timestamp survives parse → format unchanged, for every millisecond")
    func formatIsStable() throws {
        for base in [Self.newYear2024, 1_700_000_000, 1_780_000_000] as [TimeInterval] {
            for millis in 0..<1000 {
                let text = Timestamp.format(Date(timeIntervalSince1970: base + Double(millis) / 1000))
                let parsed = try #require(Timestamp.parse(text), "\(text)")
                #expect(Timestamp.format(parsed) == text)
            }
        }
    }
}
