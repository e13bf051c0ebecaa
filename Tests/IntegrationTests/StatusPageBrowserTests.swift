import AgentryBus
import AgentryCore
import AgentryStore
import Foundation
import NIOHTTP1
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Headless Chromium driven by Selenium (`Scripts/browser.py`, with Debian's chromium-driver): commands in, one JSON
/// answer per line out. The Python is the test virtual environment's that `Scripts/test` makes.
final class HeadlessBrowser: @unchecked Sendable {
    // @unchecked: the process and pipes are used by the one test that owns this value, one command at a time.
    let process = Process()
    let input = Pipe()
    let output = Pipe()
    var buffer = Data()

    init(url: String, width: Int = 1280, height: Int = 900) throws {
        process.executableURL = TestEnvironment.testPython
        process.arguments = [TestEnvironment.repositoryRoot.appendingPathComponent("Scripts/browser.py").path, url, String(width), String(height)]
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    /// Sends a command and returns its answer.
    func send(_ command: String) throws -> JSONValue {
        try input.fileHandleForWriting.write(contentsOf: Data((command + "\n").utf8))
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = buffer[buffer.startIndex..<newline]
                buffer = Data(buffer[buffer.index(after: newline)...])
                return try JSON.parse(Array(line))
            }
            let chunk = output.fileHandleForReading.availableData
            guard !chunk.isEmpty else {
                throw BrowserError(
                    "the browser driver ended (are Debian's chromium and chromium-driver, and selenium in .build/test-venv, installed? Scripts/test installs them)"
                )
            }
            buffer.append(chunk)
        }
    }

    func wait(_ seconds: Int, _ expression: String) throws -> Bool { try send("wait \(seconds) \(expression)")[path: "ok"] == .bool(true) }
    func eval(_ expression: String) throws -> JSONValue? { try send("eval \(expression)")[path: "value"] }

    func close() {
        guard process.isRunning else { return }
        try? input.fileHandleForWriting.write(contentsOf: Data("quit\n".utf8))
        blockingWaitForExit(pid: process.processIdentifier, timeout: .seconds(10))
        process.waitUntilExit()
    }

    struct BrowserError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }
}

@Suite("Status page in a browser", .serialized)
struct StatusPageBrowserTests {
    static let artifacts = TestEnvironment.repositoryRoot.appendingPathComponent(".build/test-artifacts")

    @Test("headless Chromium shows the agents and an instance's state, and the state changes when an event is processed")
    func statusPage() async throws {
        try await withAdminServer { a in
            let id = TestEnvironment.uniqueName("page-")
            let answers = try await a.publishSleepingAlertAgent(id, seconds: 3)
            #expect(answers.registered == 201)
            #expect(answers.published == 200)
            let schedule = try await a.request(
                .POST, "/api/schedules", body: #"{"name": "\#(id)", "cron": "0 30 2 * * *", "type": "page.\#(id)", "time_zone": "Europe/Berlin"}"#)
            #expect(schedule.status == 201, "\(schedule.text)")
            let worker = try WorkerProcess(agents: [id])
            let instance = "document.querySelector('[data-testid=instance][data-agent-id=\"\(id)\"]')"
            // As the worker prints it: the page's URL with the token, which the page keeps and takes out of the URL.
            let token = try #require(a.token)
            let browser = try HeadlessBrowser(url: a.base + "/?token=\(token)")
            defer { browser.close() }
            #expect(try browser.wait(20, "document.body.dataset.ready === 'true'"), "the page should render the first snapshot")
            #expect(try browser.eval("document.getElementById('connection').textContent") == "connected")
            #expect(try browser.eval("location.search") == "", "the token is no longer in the address bar")
            #expect(try browser.eval("localStorage.getItem('agentry-token')") == .string(token))
            #expect(try browser.wait(20, "\(instance)?.dataset.state === 'idle'"), "the agent's instance should appear, idle")
            let scheduleRow = "document.querySelector('[data-testid=schedule][data-name=\"\(id)\"]')"
            #expect(try browser.wait(5, "!!\(scheduleRow)"), "the schedule is listed")
            let row = try browser.eval("\(scheduleRow).textContent")?.stringValue ?? ""
            #expect(row.contains("0 30 2 * * *") && row.contains("Europe/Berlin") && row.contains("enabled"), "\(row)")
            _ = try await a.request(.DELETE, "/api/schedules/\(id)")
            #expect(try browser.eval("!!document.querySelector('[data-testid=agent][data-agent-id=\"\(id)\"]')") == .bool(true))
            // Focus on the test's agent with the selector, as an operator would.
            _ = try browser.eval(
                "(() => { const s = document.getElementById('agent-select'); s.value = '\(id)'; s.dispatchEvent(new Event('change')); return s.value })()"
            )
            #expect(try browser.eval("document.querySelectorAll('[data-testid=instance]').length") == .int(1))

            #expect(try await a.request(.POST, "/api/events/alerts/blackscreen?device_id=tv-\(id)").status == 202)
            #expect(try browser.wait(5, "\(instance)?.dataset.state === 'running'"), "the instance should turn running while the event is processed")
            #expect(try browser.eval("\(instance).querySelector('.badge').className") == "badge state-running")
            #expect(try browser.eval("getComputedStyle(\(instance).querySelector('.badge')).backgroundColor") != nil)
            let shot = Self.artifacts.appendingPathComponent("status-page.png").path
            #expect(try browser.send("shot \(shot)")[path: "ok"] == .bool(true))
            #expect(FileManager.default.fileExists(atPath: shot))
            #expect(
                try browser.wait(15, "\(instance)?.dataset.state === 'idle' && !!document.querySelector('[data-testid=run][data-state=succeeded]')"),
                "back to idle, with the succeeded run listed")
            #expect(try browser.wait(5, "[...document.querySelectorAll('[data-testid=event]')].some(e => e.dataset.type === 'agent.task.completed')"))
            // Times read in the browser's zone, UTC on hover.
            let started = try browser.eval("document.querySelector('[data-testid=run][data-state=succeeded] time')?.title")?.stringValue ?? ""
            #expect(started.hasSuffix(" UTC"), "\(started)")
            // Keys: ? lists them, Escape closes the list, g o opens the overview from a run's page.
            _ = try browser.eval("document.dispatchEvent(new KeyboardEvent('keydown', { key: '?' }))")
            #expect(try browser.wait(5, "!!document.getElementById('shortcuts')?.textContent.includes('Overview')"), "? lists the keys")
            _ = try browser.eval("document.dispatchEvent(new KeyboardEvent('keydown', { key: 'Escape' }))")
            #expect(try browser.eval("!document.getElementById('shortcuts')") == .bool(true), "Escape closes the list")
            _ = try browser.eval("document.querySelector('[data-testid=run][data-state=succeeded]').click()")
            #expect(
                try browser.wait(10, "document.body.dataset.view === 'run' && location.hash.startsWith('#/runs/')"), "a click opens the run's page")
            #expect(try browser.eval("document.getElementById('runs').hidden") == .bool(true), "the overview is out of sight")
            _ = try browser.eval(
                "['g', 'o'].forEach(k => document.dispatchEvent(new KeyboardEvent('keydown', { key: k })))")
            #expect(try browser.wait(5, "document.body.dataset.view === 'overview' && !document.getElementById('runs').hidden"), "g o goes back")
            // A button sends the kept token: Pause reaches the agent's desired state.
            _ = try browser.eval("document.querySelector('[data-testid=agent][data-agent-id=\"\(id)\"] button[data-action=pause]')?.click()")
            #expect(
                try await TestEnvironment.eventually {
                    try await a.request(.GET, "/api/agents").json?[path: "agents"]?.arrayValue?
                        .first { $0[path: "agent_id"]?.stringValue == id }?[path: "desired_state"] == "paused"
                }, "the page's Pause button, with the token it kept, paused the agent")
            browser.close()

            // At a phone's width the page does not overflow sideways.
            let phone = try HeadlessBrowser(url: a.base + "/?token=\(token)", width: 390, height: 844)
            defer { phone.close() }
            #expect(try phone.wait(20, "document.body.dataset.ready === 'true'"))
            #expect(try phone.eval("document.documentElement.scrollWidth <= window.innerWidth + 1") == .bool(true))
            _ = try phone.send("shot \(Self.artifacts.appendingPathComponent("status-page-phone.png").path)")
            await worker.stop()
            await a.worker.cleanup(id)
        }
    }

    @Test("the page decides a pending approval (its run proceeds), draws a run's tree with links both ways, and records feedback")
    func approvalsTreeAndFeedback() async throws {
        try await withAdminServer { a in
            let gate = TestEnvironment.uniqueName("pgate-")
            let parent = TestEnvironment.uniqueName("ptree-")
            let sub = TestEnvironment.uniqueName("psub-")
            _ = try await a.worker.publishAgent(approvalGatedAgentYAML(gate))
            _ = try await a.worker.publishAgent(
                agentYAML(
                    id: sub, trigger: "never.\(sub)",
                    handler: """
                        exec:
                          command: [/bin/sh, -c, 'cat >/dev/null; printf ''{"checked": "%s"}'' "$AGENTRY_TASK"']
                        """))
            // The parent delegates two tasks, awaits them, and ends when called again with its children.
            let script =
                #"in=$(cat); case "$in" in *'"children"'*) printf '{"resumed": true}' ;; *) printf '{"delegate": [{"task": "check"}, {"task": "verify"}], "await": {"deadline_seconds": 60}}' ;; esac"#
            _ = try await a.worker.publishAgent(
                agentYAML(
                    id: parent, trigger: "start.\(parent)",
                    handler: """
                        exec:
                          command: [/bin/sh, -c, '\(script.replacingOccurrences(of: "'", with: "''"))']
                        """,
                    extra: "subagents:\n  - {id: \(sub), version: '^1.0.0', delegate_for: [check, verify]}\n"))
            let worker = try WorkerProcess(agents: [gate, parent, sub])
            let token = try #require(a.token)
            let browser = try HeadlessBrowser(url: a.base + "/?token=\(token)")
            defer { browser.close() }
            #expect(try browser.wait(20, "document.body.dataset.ready === 'true'"), "the page should render the first snapshot")

            // A pending approval appears live with its buttons; Approve (with a comment) decides it and the run goes on.
            let gated = Event(type: "reboot.\(gate)", payload: [:], source: "test")
            try await a.worker.bus.publish(gated)
            let row = "document.querySelector('[data-testid=approval][data-agent-id=\"\(gate)\"]')"
            #expect(
                try browser.wait(
                    30, "!!\(row)?.querySelector('button[data-action=approve]') && !!\(row)?.querySelector('button[data-action=reject]')"),
                "the pending approval is listed with Approve and Reject")
            let rowText = try browser.eval("\(row)?.textContent")?.stringValue ?? ""
            #expect(rowText.contains("devices.reboot") && rowText.contains("1.0.0"), "\(rowText)")
            let gatedRun = try #require(try browser.eval("\(row)?.dataset.runId")?.stringValue)
            let gatedRow = "document.querySelector('[data-testid=run][data-run-id=\"\(gatedRun)\"]')"
            #expect(try browser.wait(10, "\(gatedRow)?.dataset.state === 'awaiting_approval'"), "the waiting run is listed")
            #expect(try browser.eval("\(gatedRow)?.querySelector('.badge').className") == "badge run-awaiting_approval", "with a style of its own")
            _ = try browser.eval(
                "(() => { const i = \(row).querySelector('input[name=comment]'); i.value = 'ok from the page'; i.dispatchEvent(new Event('input')); \(row).querySelector('button[data-action=approve]').click(); return true })()"
            )
            #expect(
                try browser.wait(
                    10,
                    "!\(row) && document.querySelector('[data-testid=decided-approval][data-run-id=\"\(gatedRun)\"]')?.dataset.state === 'approved'"),
                "the approval leaves the pending list and shows as approved")
            let proceeded = try await a.worker.waitForRuns(gate) { $0.contains { $0.eventID == gated.id.rawValue && $0.state == .succeeded } }
            #expect(proceeded.first { $0.eventID == gated.id.rawValue }?.state == .succeeded, "the approved run proceeds")
            #expect(try browser.wait(10, "\(gatedRow)?.dataset.state === 'succeeded'"), "and the page shows it succeeded")
            let approved = try await a.request(.GET, "/api/approvals?state=approved").json?[path: "approvals"]?.arrayValue?
                .first { $0[path: "run_id"]?.stringValue == gatedRun }
            #expect(approved?[path: "comment"] == "ok from the page")
            let decidedBy = approved?[path: "decided_by"]?.stringValue ?? ""
            #expect(decidedBy.contains("admin"), "\(decidedBy)")
            let decidedRow =
                try browser.eval("document.querySelector('[data-testid=decided-approval][data-run-id=\"\(gatedRun)\"]')?.textContent")?.stringValue
                ?? ""
            #expect(decidedRow.contains(decidedBy), "who decided is shown: \(decidedRow)")

            // A run with children: clicking it draws its tree; a child links back to its parent.
            let start = Event(type: "start.\(parent)", payload: [:], source: "test")
            try await a.worker.bus.publish(start)
            let parentRuns = try await a.worker.waitForRuns(parent, timeout: .seconds(40)) {
                $0.contains { $0.eventID == start.id.rawValue && $0.state == .succeeded }
            }
            let parentRun = try #require(parentRuns.first { $0.eventID == start.id.rawValue })
            let parentID = parentRun.runID.uuidString.lowercased()
            let childRuns = try await a.worker.runs(sub).filter { $0.parentRunID == parentRun.runID }
            #expect(childRuns.count == 2)
            let parentRow = "document.querySelector('[data-testid=run][data-run-id=\"\(parentID)\"]')"
            #expect(try browser.wait(10, "\(parentRow)?.dataset.state === 'succeeded'"), "the parent run is listed")
            _ = try browser.eval("\(parentRow).click()")
            let tree = "document.querySelector('[data-testid=run-tree]')"
            #expect(
                try browser.wait(
                    10,
                    "document.getElementById('run-detail-main')?.dataset.runId === '\(parentID)' && \(tree)?.querySelectorAll('[data-testid=tree-node]').length === 3"
                ),
                "the run and its two children")
            #expect(try browser.eval("location.hash") == .string("#/runs/\(parentID)"))
            let drawn = try browser.eval(
                "[...\(tree).querySelectorAll('li li')].map(n => n.dataset.task + ' ' + n.dataset.runId + ' ' + n.dataset.state).sort().join(',')"
            )?.stringValue
            let expected = childRuns.map { "\($0.task ?? "-") \($0.runID.uuidString.lowercased()) succeeded" }.sorted().joined(separator: ",")
            #expect(drawn == expected, "each child: its task, its run and its state")
            let versions = try browser.eval("[...\(tree).querySelectorAll('li li [data-testid=tree-version]')].map(v => v.textContent).join(',')")
            #expect(versions == "1.0.0,1.0.0")
            let childID = try #require(childRuns.first?.runID.uuidString.lowercased())
            _ = try browser.eval("\(tree).querySelector('a[data-run-id=\"\(childID)\"]').click()")
            #expect(
                try browser.wait(
                    10,
                    "document.getElementById('run-detail-main')?.dataset.runId === '\(childID)' && document.querySelector('[data-testid=run-parent] a')?.dataset.runId === '\(parentID)'"
                ), "the child's detail links to its parent")

            // Feedback given from the finished parent's detail reaches the API.
            let pageState =
                "[location.hash, document.getElementById('notice').textContent, document.getElementById('run-detail-main')?.dataset.runId, document.getElementById('run-feedback')?.dataset.runId, document.getElementById('run-feedback')?.textContent].join(' | ')"
            _ = try browser.eval("document.querySelector('[data-testid=run-parent] a').click()")
            let opened = try browser.wait(
                10,
                "document.getElementById('run-detail-main')?.dataset.runId === '\(parentID)' && !!document.querySelector('#run-feedback[data-run-id=\"\(parentID)\"] [data-testid=feedback-none]')"
            )
            let openedState = try browser.eval(pageState)?.stringValue ?? "-"
            #expect(opened, "the parent's detail, with no feedback yet: \(openedState)")
            _ = try browser.eval(
                "(() => { const f = document.querySelector('#run-feedback[data-run-id=\"\(parentID)\"] [data-testid=feedback-form]'); f.elements['rating'].value = '4'; f.elements['label'].value = 'partially'; f.elements['comment'].value = 'tree looked right'; f.querySelector('button[type=submit]').click(); return true })()"
            )
            let listed = try browser.wait(
                10, "[...document.querySelectorAll('[data-testid=feedback-item]')].some(i => i.textContent.includes('tree looked right'))")
            let listedState = try browser.eval(pageState)?.stringValue ?? "-"
            #expect(listed, "the feedback is listed: \(listedState)")
            let given = try await a.request(.GET, "/api/runs/\(parentID)/feedback").json?[path: "feedback"]?.arrayValue ?? []
            #expect(given.count == 1)
            #expect(given.first?[path: "rating"]?.intValue == 4)
            #expect(given.first?[path: "label"] == "partially")
            #expect(given.first?[path: "comment"] == "tree looked right")
            _ = try browser.send("shot \(Self.artifacts.appendingPathComponent("status-page-run-tree.png").path)")
            browser.close()
            await worker.stop()
            for id in [gate, parent, sub] { await a.worker.cleanup(id) }
        }
    }

    @Test("the Budgets panel shows a budget filling up to its limit, flagged there, and the runs panel shows the run it deferred")
    func budgetsPanel() async throws {
        try await withAdminServer { a in
            let id = TestEnvironment.uniqueName("pspend-")
            _ = try await a.worker.publishAgent(budgetedAgentYAML(id))
            let token = try #require(a.token)
            let browser = try HeadlessBrowser(url: a.base + "/?token=\(token)")
            defer { browser.close() }
            #expect(try browser.wait(20, "document.body.dataset.ready === 'true'"), "the page should render the first snapshot")
            let row = "document.querySelector('[data-testid=budget][data-scope=\"agent:\(id)\"]')"
            let used = "\(row)?.querySelector('[data-testid=budget-used]')?.textContent"
            #expect(try browser.wait(10, "\(row)?.dataset.atLimit === 'false'"), "the agent's budget is listed, not at its limit")
            #expect(try browser.eval(used) == "0 / 20 tokens")
            let rowText = try browser.eval("\(row)?.textContent")?.stringValue ?? ""
            #expect(rowText.contains("per month") && rowText.contains("defer") && rowText.contains("0%"), "\(rowText)")

            let worker = try WorkerProcess(agents: [id])
            for n in 0..<3 {
                try await a.worker.bus.publish(Event(type: "spend.\(id)", payload: ["n": .int(Int64(n))], priority: .normal, source: "test"))
            }
            let reached = try browser.wait(40, "\(row)?.dataset.atLimit === 'true' && \(used) === '20 / 20 tokens'")
            let shown = try browser.eval("\(row)?.textContent")?.stringValue ?? "-"
            #expect(reached, "the panel follows the budget live up to its limit: \(shown)")
            #expect(try browser.eval("\(row).querySelector('[data-testid=budget-at-limit]')?.textContent") == "at limit", "flagged at its limit")
            #expect(try browser.eval("\(row).querySelector('.bar > span').style.width") == "100%", "the bar is full")
            #expect(try browser.wait(10, "\(row).querySelectorAll('td')[7].textContent === '1'"), "with the run it deferred counted")

            let deferred = "[...document.querySelectorAll('[data-testid=run][data-agent-id=\"\(id)\"]')].find(r => r.dataset.state === 'deferred')"
            #expect(try browser.wait(10, "!!\(deferred)"), "the deferred run is listed in the runs panel")
            #expect(try browser.eval("\(deferred).querySelector('.badge').className") == "badge run-deferred", "with a style of its own")
            #expect(try browser.eval("\(deferred).querySelector('[data-testid=run-deferred]')?.dataset.reason") == "budget", "and its reason")
            let message = try browser.eval("\(deferred).textContent")?.stringValue ?? ""
            #expect(message.contains("agent:\(id) is at its budget"), "\(message)")
            _ = try browser.send("shot \(Self.artifacts.appendingPathComponent("status-page-budgets.png").path)")
            _ = try browser.eval("\(deferred).scrollIntoView({block: 'center'})")
            _ = try browser.send("shot \(Self.artifacts.appendingPathComponent("status-page-deferred.png").path)")
            browser.close()
            await worker.stop()
            await a.worker.cleanup(id)
        }
    }
}
