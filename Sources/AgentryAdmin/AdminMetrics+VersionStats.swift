import AgentryStore
import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers

/// Per-version statistics of every agent as gauges, labelled `agent` and `version`: read from PostgreSQL at scrape
/// time, at most every ``versionStatsInterval`` (a scrape in between renders the last values), so that an endpoint
/// nobody scrapes never runs the query.
extension AdminMetrics {
    static let versionStatsInterval: Duration = .seconds(15)

    func refreshVersionStats(_ dependencies: AdminDependencies) async {
        let now = ContinuousClock.now
        let due = versionStatsRead.withLockedValue { last -> Bool in
            guard last.map({ now - $0 >= Self.versionStatsInterval }) ?? true else { return false }
            last = now
            return true
        }
        guard due else { return }
        let stats: [VersionStats]
        do {
            stats = try await dependencies.versionStats.all()
        } catch {
            // Tried again at the next scrape.
            versionStatsRead.withLockedValue { $0 = nil }
            dependencies.logger.warning("cannot read the agents' per-version statistics for /metrics", metadata: ["error": "\(error)"])
            return
        }
        for version in stats { Self.record(version) }
    }

    static func record(_ s: VersionStats) {
        let dimensions = [("agent", s.agentID), ("version", s.version)]
        func gauge(_ name: String, _ value: Double?) {
            guard let value else { return }
            Gauge(label: "agentry_agent_version_\(name)", dimensions: dimensions).record(value)
        }
        gauge("runs", Double(s.runs))
        gauge("success_ratio", s.successRatio)
        gauge("retries", Double(s.retries))
        gauge("duration_mean_seconds", s.meanSeconds)
        gauge("duration_p95_seconds", s.p95Seconds)
        gauge("feedback", Double(s.feedback))
        gauge("rating_mean", s.ratingMean)
        gauge("wrong_ratio", s.wrongShare)
        gauge("approval_ratio", s.approvalRatio)
    }
}
