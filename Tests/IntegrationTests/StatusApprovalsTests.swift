import AgentryBus
import AgentryCore
import AgentryStore
import Foundation
import NIOHTTP1
import Testing

/// An agent whose every run needs an approval of `devices.reboot` (declared in its definition), started by
/// `reboot.<id>` events; its handler answers `{"rebooted": true}`.
func approvalGatedAgentYAML(_ id: String) -> String {
    agentYAML(
        id: id, trigger: "reboot.\(id)",
        handler: """
            exec:
              command: [/bin/sh, -c, 'cat >/dev/null; printf ''{"rebooted": true}''']
            """,
        config: "approval_required_for: [devices.reboot]", extra: "permissions: {devices: [reboot]}\nuses: [devices.reboot]\n")
}

@Suite("Status hub: approvals", .serialized)
struct StatusApprovalsTests {
    @Test("the status WebSocket's approvals kind carries a pending approval as it is requested, then its decision with who decided")
    func approvalsKind() async throws {
        try await withAdminServer { a in
            let id = TestEnvironment.uniqueName("gated-")
            _ = try await a.worker.publishAgent(approvalGatedAgentYAML(id))
            let listener = StatusListener(port: a.port)
            defer { listener.stop() }
            let snapshot = await listener.first(within: .seconds(10)) { $0[path: "type"] == "snapshot" }
            let inSnapshot = snapshot?[path: "approvals"]?.arrayValue
            #expect(inSnapshot != nil, "the snapshot carries the approvals kind")
            #expect(inSnapshot?.contains { $0[path: "agent_id"]?.stringValue == id } == false)

            let worker = try WorkerProcess(agents: [id])
            let event = Event(type: "reboot.\(id)", payload: [:], source: "test")
            try await a.worker.bus.publish(event)
            let pendingMessage = await listener.first(within: .seconds(30)) { message in
                message[path: "type"] == "approvals"
                    && message[path: "approvals"]?.arrayValue?.contains { $0[path: "agent_id"]?.stringValue == id && $0[path: "state"] == "pending" }
                        == true
            }
            let approval = try #require(
                pendingMessage?[path: "approvals"]?.arrayValue?.first { $0[path: "agent_id"]?.stringValue == id },
                "a pending approval reaches the WebSocket as an `approvals` message")
            #expect(approval[path: "permission"] == "devices.reboot")
            #expect(approval[path: "agent_version"] == "1.0.0")
            #expect(approval[path: "requested_by"] == "definition")
            #expect(approval[path: "expires_at"]?.stringValue != nil)
            let approvalID = try #require(approval[path: "approval_id"]?.stringValue)
            let runID = try #require(approval[path: "run_id"]?.stringValue)
            let run = try await a.request(.GET, "/api/runs/\(runID)")
            #expect(run.json?[path: "state"] == "awaiting_approval", "\(run.text)")

            let decided = try await a.request(.POST, "/api/approvals/\(approvalID)/approve", body: #"{"comment": "from the hub test"}"#)
            #expect(decided.status == 200, "\(decided.text)")
            let decidedMessage = await listener.first(within: .seconds(10)) { message in
                message[path: "type"] == "approvals"
                    && message[path: "approvals"]?.arrayValue?.contains {
                        $0[path: "approval_id"]?.stringValue == approvalID && $0[path: "state"] == "approved"
                    } == true
            }
            let after = decidedMessage?[path: "approvals"]?.arrayValue?.first { $0[path: "approval_id"]?.stringValue == approvalID }
            #expect(after != nil, "the decision reaches the WebSocket")
            let decidedBy = after?[path: "decided_by"]?.stringValue ?? ""
            #expect(decidedBy.contains("admin"), "\(decidedBy)")
            #expect(after?[path: "comment"] == "from the hub test")
            let stillPending = decidedMessage?[path: "approvals"]?.arrayValue?.contains {
                $0[path: "approval_id"]?.stringValue == approvalID && $0[path: "state"] == "pending"
            }
            #expect(stillPending == false, "no longer listed as pending")
            let runs = try await a.worker.waitForRuns(id) { $0.contains { $0.eventID == event.id.rawValue && $0.state == .succeeded } }
            let ran = runs.first { $0.eventID == event.id.rawValue }
            #expect(ran?.state == .succeeded, "the approved run proceeds: \(ran?.state.rawValue ?? "-")")
            await worker.stop()
            await a.worker.cleanup(id)
        }
    }
}
