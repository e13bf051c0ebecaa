public import AgentryCore
import AgentryRuntime
public import AgentryStore
import Foundation

/// Feedback on runs and per-version statistics, as the API answers them and `--json` prints them.
extension Representation {
    public static func feedback(_ record: FeedbackRecord) -> JSONValue {
        .object([
            "feedback_id": id(record.feedbackID), "run_id": id(record.runID), "agent_id": .string(record.agentID),
            "agent_version": .string(record.agentVersion), "rating": record.rating.map { .int(Int64($0)) } ?? .null,
            "label": string(record.label?.rawValue), "comment": string(record.comment), "by": .string(record.by),
            "event_id": string(record.eventID), "created_at": time(record.createdAt),
        ])
    }

    /// An agent's versions side by side, lowest first, with which is current and which the canary.
    public static func agentStats(agentID: String, _ stats: [VersionStats], state: AgentState?) -> JSONValue {
        let current = state?.retired == true ? nil : state?.activeVersion
        let versions = stats.filter { $0.agentID == agentID }.sorted { AgentRegistry.order($0.version, $1.version) }
        return .object([
            "agent_id": .string(agentID), "current_version": string(current),
            "canary": state?.canary.map { ["version": .string($0.version), "percent": .int(Int64($0.percent))] } ?? .null,
            "versions": .array(
                versions.map { version in
                    versionStats(version, current: version.version == current, canary: version.version == state?.canary?.version)
                }),
        ])
    }

    static func versionStats(_ s: VersionStats, current: Bool, canary: Bool) -> JSONValue {
        func number(_ value: Double?) -> JSONValue { value.map(JSONValue.double) ?? .null }
        func count(_ value: Int) -> JSONValue { .int(Int64(value)) }
        return .object([
            "version": .string(s.version), "current": .bool(current), "canary": .bool(canary),
            "runs": count(s.runs), "succeeded": count(s.succeeded), "finished": count(s.finished),
            "success_ratio": number(s.successRatio), "retries": count(s.retries),
            "mean_seconds": number(s.meanSeconds), "p95_seconds": number(s.p95Seconds),
            "feedback": count(s.feedback), "rating_mean": number(s.ratingMean), "labelled": count(s.labelled),
            "wrong": count(s.wrong), "wrong_share": number(s.wrongShare),
            "approved": count(s.approved), "decided": count(s.decided), "approval_ratio": number(s.approvalRatio),
        ])
    }
}
