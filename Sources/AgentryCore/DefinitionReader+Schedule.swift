import Foundation
import Yams

extension DefinitionReader {
    /// The schedule of a trigger that has a `schedule` key: the cron expression and its settings; nil when any is
    /// wrong (each problem reported).
    mutating func schedule(_ f: Fields) -> TriggerSchedule? {
        var cron: CronExpression?
        if let node = f["schedule"], let text = string(node, path: f.path("schedule"), what: "a cron expression such as \"*/5 * * * *\"") {
            do throws(CronError) {
                cron = try CronExpression(text)
            } catch {
                // Point at the problem itself when the scalar sits on one line (the position counts from the first
                // character that is not a space).
                let leading = text.prefix(while: \.isWhitespace).count
                report(
                    f.path("schedule"), node, error.problem, suggestion: error.suggestion,
                    columnOffset: Self.columnOffset(of: leading + error.position - 1, in: text, node: node))
            }
        }
        var schedule = cron.map { TriggerSchedule(cron: $0) }
        var complete = cron != nil
        if let name = string(f, "time_zone", required: false) {
            if TimeZone(identifier: name) != nil {
                schedule?.timeZone = name
            } else {
                complete = false
                report(
                    f.path("time_zone"), f["time_zone"],
                    "unknown time zone '\(name)'; expected an IANA time zone name such as UTC, Europe/Berlin or America/New_York",
                    suggestion: Suggest.didYouMean(name, among: TimeZone.knownTimeZoneIdentifiers + ["UTC"]))
            }
        }
        if let payload = jsonObject(f, "payload") { schedule?.payload = payload }
        if let name = string(f, "missed", required: false) {
            if let missed = MissedTicks(rawValue: name) {
                schedule?.missed = missed
            } else {
                complete = false
                let names = MissedTicks.allCases.map(\.rawValue)
                report(
                    f.path("missed"), f["missed"], "expected one of \(names.joined(separator: ", ")); found '\(name)'",
                    suggestion: Suggest.didYouMean(name, among: names))
            }
        }
        if let seconds = int(f, "jitter_seconds", positive: false) {
            if (0...TriggerSchedule.maxJitterSeconds).contains(seconds) {
                schedule?.jitterSeconds = seconds
            } else {
                complete = false
                report(
                    f.path("jitter_seconds"), f["jitter_seconds"],
                    "expected a whole number of seconds 0-\(TriggerSchedule.maxJitterSeconds), found \(seconds)")
            }
        }
        if let description = string(f, "description", required: false) { schedule?.description = description }
        return complete ? schedule : nil
    }

    /// The settings of a schedule in a trigger without one.
    mutating func scheduleKeysWithoutSchedule(_ f: Fields) {
        for key in TriggerSchedule.CodingKeys.allCases.map(\.rawValue) where key != "schedule" {
            guard let node = f[key] else { continue }
            report(
                f.path(key), node,
                "'\(key)' is a setting of a schedule trigger, and this trigger has no schedule",
                suggestion: "add schedule: \"<cron expression>\" to the trigger, or remove '\(key)'")
        }
    }
}
