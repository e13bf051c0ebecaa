import AgentryCore
import AgentryStore
import Foundation

/// The console's charts: `GET /api/stats` (the `Stats` schema) and the status stream's `stats` messages.
extension Representation {
    static func count(_ value: Int) -> JSONValue { .int(Int64(value)) }
    static func seconds(_ value: Double?) -> JSONValue { value.map { .double(($0 * 1000).rounded() / 1000) } ?? .null }

    /// `GET /api/stats`: step starts, counts per step, run durations per agent and queue depths.
    static func stats(
        _ counts: StatsCounts, window: Int, durations: [RunDurations], queues: (resolution: Int, series: [String: [Int?]]), since: Date
    ) -> JSONValue {
        let steps = (0..<counts.count).map { JSONValue.string(Timestamp.format(counts.stepStart($0))) }
        return .object([
            "window_seconds": count(window), "step_seconds": count(counts.step), "points": count(counts.count),
            "start": time(counts.start), "until": time(counts.until), "steps": .array(steps),
            "events": .object(
                JSONObject(uniqueKeysWithValues: Priority.allCases.map { ($0.name, .array((counts.events[$0.rawValue] ?? []).map(count))) })),
            "runs": .object(JSONObject(uniqueKeysWithValues: counts.runs.map { ($0.key, .array($0.value.map(count))) })),
            "lock_waits": .object([
                "waits": .array(counts.lockWaits.map(count)), "gave_up": .array(counts.lockGaveUp.map(count)),
                "wait_seconds": .array(counts.lockWaitSeconds.map(seconds)),
                "wait_seconds_max": .array(counts.lockWaitMaxSeconds.map(seconds)),
            ]),
            "durations": .array(
                durations.map { d in
                    .object([
                        "agent_id": .string(d.agentID), "runs": count(d.runs), "p50_seconds": seconds(d.p50Seconds),
                        "p95_seconds": seconds(d.p95Seconds),
                    ])
                }),
            "queues": .object([
                "since": time(since), "resolution_seconds": count(queues.resolution),
                "series": .object(
                    JSONObject(uniqueKeysWithValues: queues.series.map { ($0.key, .array($0.value.map { $0.map(count) ?? .null })) })),
            ]),
        ])
    }

    /// One second's (or step's) counts, as a `stats` message carries them.
    static func statsSecond(_ counts: StatsCounts, _ i: Int) -> JSONValue {
        .object([
            "at": time(counts.stepStart(i)),
            "events": .object(JSONObject(uniqueKeysWithValues: Priority.allCases.map { ($0.name, count(counts.events[$0.rawValue]?[i] ?? 0)) })),
            "runs": .object(JSONObject(uniqueKeysWithValues: counts.runs.map { ($0.key, count($0.value[i])) })),
            "lock_waits": .object([
                "waits": count(counts.lockWaits[i]), "gave_up": count(counts.lockGaveUp[i]),
                "wait_seconds": seconds(counts.lockWaitSeconds[i]), "wait_seconds_max": seconds(counts.lockWaitMaxSeconds[i]),
            ]),
        ])
    }
}
