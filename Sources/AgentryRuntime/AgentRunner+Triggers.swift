import AgentryCore
import Foundation

/// What decides whether an event starts a task, how long a retry waits, and run ids: pure functions of their inputs.
extension AgentRunner {
    /// Why this event does not start a task of this agent, or nil when it does: a trigger whose pattern matches and
    /// whose filters (if any) hold, or an event pool whose pattern matches.
    static func skipReason(_ definition: AgentDefinition, event: Event, pools: [String: [String]]) -> String? {
        let matching = definition.triggers.filter { EventType.matches(event.type, pattern: $0.type) }
        var reasons: [String] = []
        for trigger in matching {
            let filter = TriggerFilter(trigger.filters)
            if let why = filter.explain(event) {
                reasons.append("trigger '\(trigger.type)': \(why)")
            } else {
                return nil
            }
        }
        for pool in definition.referencedPools {
            if (pools[pool] ?? []).contains(where: { EventType.matches(event.type, pattern: $0) }) { return nil }
        }
        if reasons.isEmpty {
            return "no trigger of \(definition.metadata.id) \(definition.metadata.version) matches event type '\(event.type)'"
        }
        return reasons.joined(separator: "; ")
    }

    /// `seconds` spread by ±`jitter` (a fraction), so that retries of many failed runs do not arrive together.
    static func jittered(_ seconds: Double, jitter: Double) -> Double {
        guard jitter > 0, seconds > 0 else { return seconds }
        return max(0.1, seconds * (1 + Double.random(in: -jitter...jitter)))
    }

    /// Run ids are UUIDv7, sortable by start like event ids.
    static func newRunID() -> UUID {
        UUID.version7()
    }
}
