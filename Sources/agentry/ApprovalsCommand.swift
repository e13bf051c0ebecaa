import AgentryAdmin
import AgentryBus
import AgentryCore
import AgentryRuntime
import AgentryStore
import ArgumentParser
import Foundation
import Logging

extension Agentry {
    struct Approvals: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Approvals runs wait for: list them, approve or reject one.",
            discussion: """
                A run that needs a permission its definition's approval_required_for lists (or whose handler asks with \
                request_approval) waits in awaiting_approval, holding no slot or lock. Approved, its handler is called \
                (again) with the decision; rejected, or past its expiry (default 24 h), it ends rejected.
                """,
            subcommands: [List.self, Approve.self, Reject.self])
    }
}

/// Runs `body` with the approvals' control (the database, and the broker for resumes and announcements).
func withApprovals<T: Sendable>(_ options: GlobalOptions, _ body: @Sendable (ApprovalControl, RuntimeStore) async throws -> T) async throws -> T {
    let logger = try options.logger("agentry.approvals", default: .warning)
    return try await withRuntime(options) { connection, store in
        let bus = try await EventBus(connection: connection, logger: logger)
        return try await body(ApprovalControl(store: store, bus: bus, logger: logger), store)
    }
}

extension Agentry.Approvals {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Approvals, newest first (pending ones by default).")
        @OptionGroup var options: GlobalOptions

        @Option(help: "pending, approved, rejected, expired, or all.")
        var state = "pending"

        @Option(help: "At most this many.")
        var limit = 50

        @Flag(help: "Print JSON.")
        var json = false

        func validate() throws {
            if state != "all", ApprovalRecord.State(rawValue: state) == nil {
                throw ValidationError("--state '\(state)' is not one of pending, approved, rejected, expired, all")
            }
        }

        func run() async throws {
            let (state, limit) = (ApprovalRecord.State(rawValue: self.state), self.limit)
            let approvals = try await withRuntime(options) { _, store in try await store.approvals.list(state: state, limit: limit) }
            if json {
                printJSON(.array(approvals.map(Representation.approval)))
                return
            }
            if approvals.isEmpty {
                print(state == .pending ? "no approval is pending" : "no approvals")
                return
            }
            printTable(
                header: ["APPROVAL", "AGENT", "PERMISSION", "STATE", "REQUESTED", "EXPIRES", "DECIDED BY", "REASON"],
                rows: approvals.map { a in
                    [
                        a.approvalID.uuidString.lowercased(), "\(a.agentID) \(a.agentVersion)", a.permission, a.state.rawValue,
                        Timestamp.format(a.requestedAt), Timestamp.format(a.expiresAt), a.decidedBy ?? "-", a.reason ?? "-",
                    ]
                })
        }
    }

    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Approve: the run goes on (its handler is called with the decision).")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "Approval id.") var id: String
        @Option(help: "Why, or anything the handler should know.") var comment: String?

        func run() async throws { try await decide(options, id: id, approve: true, comment: comment) }
    }

    struct Reject: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Reject: the run ends rejected.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "Approval id.") var id: String
        @Option(help: "Why.") var comment: String?

        func run() async throws { try await decide(options, id: id, approve: false, comment: comment) }
    }
}

private func decide(_ options: GlobalOptions, id text: String, approve: Bool, comment: String?) async throws {
    guard let id = UUID(uuidString: text) else {
        throw ValidationError("'\(text)' is not an approval id (a UUID); `agentry approvals list` shows them")
    }
    let who = "\(ProcessInfo.processInfo.environment["USER"] ?? "an operator") (agentry approvals)"
    let approval = try await withApprovals(options) { control, _ in try await control.decide(id, approve: approve, by: who, comment: comment) }
    print(
        approve
            ? "approved \(text): run \(approval.runID.uuidString.lowercased()) of \(approval.agentID) goes on"
            : "rejected \(text): run \(approval.runID.uuidString.lowercased()) of \(approval.agentID) ends rejected")
}
