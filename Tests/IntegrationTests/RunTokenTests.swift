import AgentryAdmin
import AgentryBus
import AgentryCore
import AgentryRuntime
import AgentryStore
import AsyncHTTPClient
import Foundation
import NIOHTTP1
import Testing

/// The credentials an exec handler gets (a run token, only good for what its grants allow) and named admin tokens,
/// against a real admin endpoint and a real worker.
@Suite("Run tokens", .serialized)
struct RunTokenTests {
    @Test(
        "a handler's run token publishes events, invokes its subagents, reports its progress and asks approvals while running, and can do nothing else"
    )
    func runTokenScope() async throws {
        try await withAdminServer(configure: { $0.namedTokens = ["alice": "alice-token-0123456789abcdef"] }) { a in
            let h = a.worker
            let helper = TestEnvironment.uniqueName("helper-")
            _ = try await h.publishAgent(
                agentYAML(id: helper, trigger: "never.\(helper)", handler: "builtin: noop").replacingOccurrences(
                    of: "type: continuous", with: "type: on-demand"))
            let caller = TestEnvironment.uniqueName("caller-")
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("\(caller).token").path
            // The handler leaves its token and URL where the test reads them, then runs until the test lets it go.
            let script =
                #"printf '%s %s' "$AGENTRY_RUN_TOKEN" "$AGENTRY_ADMIN_URL" > \#(file).tmp; mv \#(file).tmp \#(file); while [ -e \#(file) ]; do sleep 0.1; done"#
            _ = try await h.publishAgent(
                agentYAML(
                    id: caller, trigger: "start.\(caller)",
                    handler: "exec:\n  command: [/bin/sh, -c, '\(script.replacingOccurrences(of: "'", with: "''"))']",
                    extra: "subagents:\n  - {id: \(helper), version: '>=1.0.0', delegate_for: [help]}\npermissions: {devices: [read]}\n"))
            let worker = try WorkerProcess(agents: [caller, helper], environment: ["AGENTRY_ADMIN_URL": a.base])
            // The handler runs until its file goes: a failed expectation must not leave it (and its worker) running.
            do {
                try await h.bus.publish(Event(type: "start.\(caller)", payload: [:], source: "test"))
                #expect(try await TestEnvironment.eventually(timeout: .seconds(20)) { FileManager.default.fileExists(atPath: file) })
                let parts = try String(contentsOfFile: file, encoding: .utf8).split(separator: " ").map(String.init)
                try #require(parts.count == 2)
                let (token, url) = (parts[0], parts[1])
                #expect(url == a.base)
                #expect(token.hasPrefix("agr1."))
                let run = try #require(try await h.runs(caller).first { $0.state == .running })

                let published = try await a.request(.POST, "/api/events", body: #"{"type": "token.test", "payload": {"k": 1}}"#, token: token)
                #expect(published.status == 202, "\(published.text)")
                let invoked = try await a.request(.POST, "/api/agents/\(helper)/invoke", body: #"{"payload": {}}"#, token: token)
                #expect(invoked.status == 202, "\(invoked.text)")
                let progress = try await a.request(
                    .POST, "/api/runs/\(run.runID.uuidString.lowercased())/progress", body: #"{"progress": {"step": "capture", "done": 0.4}}"#,
                    token: token)
                #expect(progress.status == 200, "\(progress.text)")
                let shown = try await a.request(.GET, "/api/runs/\(run.runID.uuidString.lowercased())")
                #expect(shown.json?[path: "progress.step"]?.stringValue == "capture")
                // Asking a person while the run goes on: recorded as pending; the handler reads the decision.
                let asked = try await a.request(
                    .POST, "/api/runs/\(run.runID.uuidString.lowercased())/approvals",
                    body: #"{"permission": "devices.read", "reason": "look first"}"#,
                    token: token)
                #expect(asked.status == 201, "\(asked.text)")
                #expect(asked.json?[path: "permission"]?.stringValue == "devices.read")
                let approvalID = try #require(asked.json?[path: "approval_id"]?.stringValue)
                let notGranted = try await a.request(
                    .POST, "/api/runs/\(run.runID.uuidString.lowercased())/approvals", body: #"{"permission": "devices.reboot"}"#, token: token)
                #expect(notGranted.status == 400, "\(notGranted.text)")
                let decided = try await a.request(.POST, "/api/approvals/\(approvalID)/approve", body: #"{"comment": "fine"}"#)
                #expect(decided.status == 200, "\(decided.text)")
                let read = try await a.request(.GET, "/api/approvals/\(approvalID)", token: token)
                #expect(read.json?[path: "state"]?.stringValue == "approved")
                #expect(try await h.store.run(id: run.runID)?.state == .running, "the run went on meanwhile")

                let register = try await a.request(
                    .POST, "/api/agents/register", body: agentYAML(id: "sneaky", trigger: "x.y", handler: "builtin: noop"),
                    contentType: "application/yaml", token: token)
                #expect(register.status == 403)
                #expect(register.errorCode == "outside_run_token_grants", "\(register.text)")
                let other = try await a.request(.POST, "/api/agents/\(caller)/invoke", body: "{}", token: token)
                #expect(other.status == 403)
                #expect(other.errorMessage.contains("may invoke only the subagents its definition names (\(helper))"), "\(other.text)")
                let someoneElse = try await a.request(
                    .POST, "/api/runs/\(UUID().uuidString.lowercased())/progress", body: #"{"progress": 1}"#, token: token)
                #expect(someoneElse.status == 403)
                let otherApproval = try await a.request(
                    .POST, "/api/runs/\(UUID().uuidString.lowercased())/approvals", body: #"{"permission": "devices.read"}"#, token: token)
                #expect(otherApproval.status == 403)
                let decideOwn = try await a.request(.POST, "/api/approvals/\(approvalID)/reject", body: "{}", token: token)
                #expect(decideOwn.status == 403, "a run token cannot decide approvals")
                let locks = try await a.request(.POST, "/api/locks/device:tv-1/release", body: "{}", token: token)
                #expect(locks.status == 403)
                var tampered = Array(token)
                tampered[10] = tampered[10] == "A" ? "B" : "A"
                let forged = try await a.request(.POST, "/api/events", body: #"{"type": "token.test"}"#, token: String(tampered))
                #expect(forged.status == 401, "\(forged.text)")

                try FileManager.default.removeItem(atPath: file)
                _ = try await h.waitForRuns(caller) { $0.contains { $0.runID == run.runID && $0.state == .succeeded } }
                _ = try await h.waitForRuns(helper) { $0.contains { $0.state == .succeeded && $0.eventType == "task.invoke" } }
            } catch {
                try? FileManager.default.removeItem(atPath: file)
                await worker.stop()
                throw error
            }
            await worker.stop()
            await h.cleanup(caller)
            await h.cleanup(helper)
        }
    }

    @Test("a named admin token decides an approval under its name; a name's short token is refused at start")
    func namedTokens() async throws {
        #expect(throws: AdminConfigurationError.self) {
            var configuration = AdminConfiguration(token: "admin-token-0123456789")
            configuration.namedTokens = try AdminConfiguration.namedTokens(from: "bob=short")
            try configuration.validate()
        }
        #expect(throws: AdminConfigurationError.self) { _ = try AdminConfiguration.namedTokens(from: "admin=admin-token-0123456789") }
        try await withAdminServer(configure: { $0.namedTokens = ["alice": "alice-token-0123456789abcdef"] }) { a in
            let h = a.worker
            let gated = TestEnvironment.uniqueName("gated-")
            _ = try await h.publishAgent(
                agentYAML(
                    id: gated, trigger: "go.\(gated)", handler: "builtin: noop", config: "approval_required_for: [devices.reboot]",
                    extra: "permissions: {devices: [reboot]}\nuses: [devices.reboot]\n"))
            let worker = try WorkerProcess(agents: [gated])
            try await h.bus.publish(Event(type: "go.\(gated)", payload: [:], source: "test"))
            #expect(
                try await TestEnvironment.eventually(timeout: .seconds(20)) {
                    try await h.store.approvals.list(state: .pending).contains { $0.agentID == gated }
                })
            let approval = try #require(try await h.store.approvals.list(state: .pending).first { $0.agentID == gated })
            let path = "/api/approvals/\(approval.approvalID.uuidString.lowercased())/approve"
            let wrong = try await a.request(.POST, path, body: "{}", token: "alice-token-0123456789abcdeX")
            #expect(wrong.status == 401)
            let answer = try await a.request(.POST, path, body: #"{"comment": "ok"}"#, token: "alice-token-0123456789abcdef")
            #expect(answer.status == 200, "\(answer.text)")
            #expect(answer.json?[path: "decided_by"]?.stringValue?.hasPrefix("admin API (token alice") == true, "\(answer.text)")
            let again = try await a.request(.POST, path, body: "{}")
            #expect(again.status == 409)
            _ = try await h.waitForRuns(gated) { $0.contains { $0.state == .succeeded } }
            await worker.stop()
            await h.cleanup(gated)
        }
    }
}
