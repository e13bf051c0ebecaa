import AgentryAdmin
import AgentryRuntime
import AgentryStore
import ArgumentParser
import Foundation

extension Agentry.Agents {
    /// `agentry agents stats ID`: the agent's versions side by side.
    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Compare an agent's versions side by side: runs, success rate, retries, durations, feedback, approvals.",
            discussion: """
                One column per version, lowest first. runs counts attempts (skipped events left out); success rate is \
                succeeded / finished; retries are runs with attempt > 1; durations are of finished runs (mean, 95th \
                percentile); mean rating and wrong labels come from the runs' feedback (`agentry runs feedback`); \
                approval rate is approved / (approved + rejected + expired). '-' where there is nothing to count.
                """)
        @OptionGroup var options: GlobalOptions
        @Argument(help: "Agent id.") var id: String

        @Flag(help: "Print JSON.")
        var json = false

        func run() async throws {
            let id = self.id
            let (state, stats): (AgentState?, [VersionStats])
            do {
                (state, stats) = try await withRegistry(options) { try await $0.stats(agentID: id) }
            } catch {
                throw fail(error)
            }
            if json {
                printJSON(Representation.agentStats(agentID: id, stats, state: state))
                return
            }
            let current = state?.retired == true ? nil : state?.activeVersion
            let versions = stats.sorted { AgentRegistry.order($0.version, $1.version) }
            let header =
                [id]
                + versions.map { version in
                    if version.version == current { return "\(version.version) (current)" }
                    if let canary = state?.canary, canary.version == version.version { return "\(version.version) (canary \(canary.percent)%)" }
                    return version.version
                }
            let rows: [(String, (VersionStats) -> String)] = [
                ("runs", { String($0.runs) }),
                ("success rate", { Self.percent($0.successRatio, $0.succeeded, $0.finished) }),
                ("retries", { String($0.retries) }),
                ("mean duration", { Self.seconds($0.meanSeconds) }),
                ("p95 duration", { Self.seconds($0.p95Seconds) }),
                ("mean rating", { s in s.ratingMean.map { String(format: "%.2f", $0) } ?? "-" }),
                ("feedback", { String($0.feedback) }),
                ("wrong labels", { Self.percent($0.wrongShare, $0.wrong, $0.labelled) }),
                ("approval rate", { Self.percent($0.approvalRatio, $0.approved, $0.decided) }),
            ]
            printTable(header: header, rows: rows.map { name, value in [name] + versions.map(value) })
        }

        /// `91.7% (11/12)`, or `-` when nothing was counted.
        static func percent(_ ratio: Double?, _ part: Int, _ whole: Int) -> String {
            guard let ratio else { return "-" }
            return String(format: "%.1f%%", ratio * 100) + " (\(part)/\(whole))"
        }

        static func seconds(_ value: Double?) -> String {
            value.map { String(format: "%.3f s", $0) } ?? "-"
        }
    }
}
