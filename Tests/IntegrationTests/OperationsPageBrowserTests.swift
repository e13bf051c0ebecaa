import AgentryBus
import AgentryCore
import Foundation
import NIOHTTP1
import Testing

/// The console's Dead letters view and its Workers and Instances panels, in headless Chromium (see
/// StatusPageBrowserTests for the driver).
@Suite("Dead letters and workers in a browser", .serialized)
struct OperationsPageBrowserTests {
    static let artifacts = StatusPageBrowserTests.artifacts

    @Test("a failed task's dead letter shows with its reason; Replay on the page runs its event again, and it leaves the list")
    func deadLetterReplayed() async throws {
        try await withAdminServer { a in
            let id = TestEnvironment.uniqueName("pdead-")
            let marker = FileManager.default.temporaryDirectory.appendingPathComponent("agentry-\(id).ready")
            defer { try? FileManager.default.removeItem(at: marker) }
            // Fails until the marker exists; one attempt, so its event is parked at once.
            _ = try await a.worker.publishAgent(
                agentYAML(
                    id: id, trigger: "fix.\(id)",
                    handler: """
                        exec:
                          command: [/bin/sh, -c, 'test -f \(marker.path) || { echo "not ready" >&2; exit 3; }']
                        """, extra: "retry:\n  attempts: 1\n"))
            let worker = try WorkerProcess(agents: [id])
            defer { Task { await worker.stop() } }
            let event = Event(type: "fix.\(id)", payload: ["device": "tv-1"], priority: .high, source: "test")
            try await a.worker.bus.publish(event)
            let eventID = event.id.rawValue
            #expect(
                try await TestEnvironment.eventually(timeout: .seconds(30)) {
                    try await DeadLetters.list(on: a.worker.connection, limit: 100_000).contains { $0.id == eventID }
                }, "the failed task is parked")

            let token = try #require(a.token)
            let browser = try HeadlessBrowser(url: a.base + "/?token=\(token)#/dead")
            defer { browser.close() }
            #expect(try browser.wait(20, "document.body.dataset.ready === 'true'"))
            #expect(try browser.wait(10, "Number(document.getElementById('nav-dead-count')?.textContent) >= 1"), "the nav link counts the parked")
            let row = "document.querySelector('[data-testid=dead-message][data-id=\"\(eventID)\"]')"
            #expect(try browser.wait(20, "!!\(row)"), "the parked message is listed")
            #expect(try browser.eval("\(row).dataset.reason") == "task-failed")
            #expect(try browser.eval("\(row).textContent.includes('agentry.agent.\(id)')") == .bool(true), "its queue is shown")
            // Its reason's chip counts it, and filters the list to that reason.
            _ = try browser.eval("document.querySelector('[data-testid=dead-reason][data-reason=\"task-failed\"]').click()")
            #expect(try browser.wait(10, "location.hash === '#/dead?reason=task-failed' && !!\(row)"))
            #expect(
                try browser.wait(
                    10, "[...document.querySelectorAll('[data-testid=dead-message]')].every(r => r.dataset.reason === 'task-failed')"),
                "the list holds that reason's messages only")
            // The preview expands to the whole message.
            _ = try browser.eval("\(row).querySelector('button[data-action=expand]').click()")
            #expect(
                try browser.wait(10, "document.querySelector('[data-testid=dead-body][data-id=\"\(eventID)\"] pre')?.textContent.includes('tv-1')"),
                "the whole body is shown")
            _ = try browser.send("shot \(Self.artifacts.appendingPathComponent("dead-letters.png").path)")

            // The cause is fixed; Replay sends it back to its agent, which now succeeds.
            #expect(FileManager.default.createFile(atPath: marker.path, contents: nil))
            _ = try browser.eval("\(row).querySelector('button[data-action=replay]').click()")
            #expect(
                try await TestEnvironment.eventually(timeout: .seconds(30)) {
                    let runs = try await a.request(.GET, "/api/runs?agent_id=\(id)&event_id=\(eventID)").json?[path: "runs"]?.arrayValue ?? []
                    return runs.contains { $0[path: "state"] == "succeeded" }
                }, "the replayed event ran and succeeded")
            #expect(try browser.wait(15, "!\(row)"), "the dead letter is gone from the list")
            #expect(try browser.wait(5, "document.getElementById('notice').textContent.includes('Replayed 1')"), "the page says what it did")
            #expect(try await DeadLetters.list(on: a.worker.connection, limit: 100_000).contains { $0.id == eventID } == false)
            await worker.stop()
            await a.worker.cleanup(id)
        }
    }

    @Test("live workers first with RSS and a ticking heartbeat age; a stopped worker's instances fold into a count that opens on click")
    func workersAndStoppedInstances() async throws {
        try await withAdminServer { a in
            let id = TestEnvironment.uniqueName("pwk-")
            let answers = try await a.publishSleepingAlertAgent(id, seconds: 1)
            #expect(answers.registered == 201 && answers.published == 200)
            func workerID(_ pid: Int32) async throws -> String? {
                try await a.request(.GET, "/api/workers").json?[path: "workers"]?.arrayValue?
                    .first { $0[path: "pid"]?.intValue == Int64(pid) && $0[path: "alive"] == true }?[path: "worker_id"]?.stringValue
            }
            let first = try WorkerProcess(agents: [id])
            var firstID: String?
            #expect(
                try await TestEnvironment.eventually(timeout: .seconds(20)) {
                    firstID = try await workerID(first.pid)
                    return firstID != nil
                })
            await first.stop()
            let second = try WorkerProcess(agents: [id], extra: ["--label", "room=\(id)"])
            defer { Task { await second.stop() } }
            var secondID: String?
            #expect(
                try await TestEnvironment.eventually(timeout: .seconds(20)) {
                    secondID = try await workerID(second.pid)
                    return secondID != nil
                })
            let (stopped, running) = (try #require(firstID), try #require(secondID))

            let token = try #require(a.token)
            let browser = try HeadlessBrowser(url: a.base + "/?token=\(token)")
            defer { browser.close() }
            #expect(try browser.wait(20, "document.body.dataset.ready === 'true'"))
            let live = "document.querySelector('[data-testid=worker][data-worker-id=\"\(running)\"]')"
            #expect(try browser.wait(10, "\(live)?.dataset.alive === 'true'"), "the live worker is listed")
            #expect(
                try browser.eval("document.querySelector('[data-testid=worker]').dataset.alive") == "true",
                "a live worker comes first")
            #expect(
                try browser.eval(
                    "(() => { const rows = [...document.querySelectorAll('[data-testid=worker]')].map(r => r.dataset.alive); return rows.indexOf('false') < 0 || rows.lastIndexOf('true') < rows.indexOf('false') })()"
                ) == .bool(true), "every live worker before every other")
            #expect(try browser.eval("Number(\(live).dataset.rss) > 1048576") == .bool(true), "its RSS is over a MiB")
            #expect(try browser.eval("\(live).textContent.includes('MiB') && \(live).textContent.includes('room=\(id)')") == .bool(true))
            let age = "\(live).querySelector('[data-testid=heartbeat-age]').textContent"
            let ageShown = try browser.wait(5, "/^(now|[0-9]+ s ago)$/.test(\(age))")
            let ageText = try browser.eval(age)
            #expect(ageShown, "its heartbeat age: \(String(describing: ageText))")
            let stale = "document.querySelector('[data-testid=worker][data-worker-id=\"\(stopped)\"]')"
            #expect(try browser.wait(10, "\(stale)?.dataset.alive === 'false'"), "the stopped worker is listed as gone")

            // The live worker's instance is shown; the stopped one's is folded into the count.
            let instance = { (worker: String) in "document.querySelector('[data-testid=instance][data-worker-id=\"\(worker)\"]')" }
            #expect(try browser.wait(10, "!!\(instance(running))"), "the live worker's instance is shown")
            #expect(try browser.eval("!!\(instance(stopped))") == .bool(false), "the stopped worker's instance is folded away")
            let fold = "document.querySelector('[data-testid=stale-instances]')"
            #expect(try browser.eval("Number(\(fold).dataset.count) >= 1 && \(fold).textContent.includes('stopped instance')") == .bool(true))
            #expect(try browser.eval("\(fold).getAttribute('aria-expanded')") == "false")
            _ = try browser.eval("(() => { const b = \(fold); b.focus(); b.click(); return true })()")
            #expect(try browser.wait(5, "\(instance(stopped))?.dataset.stale === 'true'"), "a click shows the stopped worker's instance")
            #expect(try browser.eval("document.querySelector('[data-testid=stale-instances]').getAttribute('aria-expanded')") == "true")
            _ = try browser.send("shot \(Self.artifacts.appendingPathComponent("workers.png").path)")
            // The button keeps the focus as the lists are redrawn, so the keyboard folds them again.
            #expect(try browser.eval("document.activeElement === document.querySelector('[data-testid=stale-instances]')") == .bool(true))
            _ = try browser.eval("document.activeElement.click()")
            #expect(try browser.wait(5, "!\(instance(stopped))"), "folded again")
            await second.stop()
            await a.worker.cleanup(id)
        }
    }
}
