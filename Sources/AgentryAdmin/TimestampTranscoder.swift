import AgentryCore
import Foundation
import OpenAPIRuntime

/// Dates in the admin API as the rest of Agentry writes and reads them (``Timestamp``): written in UTC with
/// milliseconds, read with or without a fraction and with `Z` or an offset. The runtime's own ISO 8601 transcoder
/// reads only one of the two forms.
struct TimestampTranscoder: DateTranscoder {
    struct NotATime: Error, CustomStringConvertible {
        let text: String
        var description: String { "'\(text)' is not an ISO 8601 time like 2026-12-24T08:00:00Z or 2026-12-24T09:00:00.250+01:00" }
    }

    func encode(_ date: Date) throws -> String { Timestamp.format(date) }

    func decode(_ text: String) throws -> Date {
        guard let date = Timestamp.parse(text) else { throw NotATime(text: text) }
        return date
    }
}
