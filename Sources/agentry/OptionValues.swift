import AgentryCore
import ArgumentParser
import Foundation

// The values of flags several commands take (publish, schedules add), read once, with errors that name the flag.

/// A JSON object given as text (`--payload '{"device_id": "tv-1"}'`); the error says where the JSON breaks.
func jsonObjectOption(_ text: String, flag: String) throws -> JSONObject {
    let parsed: JSONValue
    do {
        parsed = try JSON.parse(text)
    } catch {
        throw ValidationError("\(flag) is not valid JSON (\(error)): \(text)")
    }
    guard case .object(let object) = parsed else { throw ValidationError("\(flag) must be a JSON object, e.g. '{\"device_id\": \"tv-1\"}'") }
    return object
}

/// A priority by name (`critical`, `high`, `normal`, `low`, any case) or level.
func priorityOption(_ text: String, flag: String = "--priority") throws -> Priority {
    guard let level = Priority(name: text) else { throw ValidationError("\(flag) '\(text)' is not one of critical, high, normal, low") }
    return level
}

/// An ISO 8601 time (`2026-12-24T08:00:00Z`, with a fraction or an offset too).
func timeOption(_ text: String, flag: String) throws -> Date {
    guard let date = Timestamp.parse(text) else { throw ValidationError("\(flag) '\(text)' is not an ISO 8601 time like 2026-12-24T08:00:00Z") }
    return date
}

/// A number of seconds, or a duration as a schedule's `@every` takes it (`30s`, `5m`, `1h30m`, `2d`, read by the same
/// parser).
func parseDelay(_ text: String) -> Double? {
    if let seconds = Double(text), seconds >= 0, seconds.isFinite { return seconds }
    guard !text.contains(where: \.isWhitespace), let interval = (try? CronExpression("@every \(text)"))?.interval else { return nil }
    return interval.inSeconds
}
