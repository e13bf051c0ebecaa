import AgentryBus
import AgentryCore
import AgentryStore
import Foundation
import Testing

@Suite("A run's page in a browser", .serialized)
struct RunPageBrowserTests {
    @Test("a run's page shows its stderr and both attempts with their outcomes; an old #run= link lands there; Retry makes a new run")
    func runPage() async throws {
        try await withAdminServer { a in
            let id = TestEnvironment.uniqueName("prun-")
            // Fails its first attempt, succeeds on its retry; both say so on stderr.
            let script =
                #"cat >/dev/null; if [ "$AGENTRY_ATTEMPT" = 1 ]; then echo "attempt 1: screen still black" >&2; exit 3; fi; echo "attempt $AGENTRY_ATTEMPT: picture back" >&2; printf '{"picture": "ok"}'"#
            _ = try await a.worker.publishAgent(
                agentYAML(
                    id: id, trigger: "check.\(id)",
                    handler: """
                        exec:
                          command: [/bin/sh, -c, '\(script.replacingOccurrences(of: "'", with: "''"))']
                        """, extra: "retry:\n  attempts: 2\n  backoff: {initial_seconds: 0.3, multiplier: 1, max_seconds: 1}\n"))
            let worker = try WorkerProcess(agents: [id], eventLog: true)
            let event = Event(type: "check.\(id)", payload: ["device": "tv-7"], priority: .high, source: "test")
            try await a.worker.bus.publish(event)
            let runs = try await a.worker.waitForRuns(id, timeout: .seconds(30)) { $0.contains { $0.state == .succeeded } }
            let ordered = runs.sorted { $0.attempt < $1.attempt }
            #expect(ordered.map(\.state) == [.failed, .succeeded])
            let firstID = try #require(ordered.first).runID.uuidString.lowercased()
            let secondID = try #require(ordered.last).runID.uuidString.lowercased()

            let token = try #require(a.token)
            let browser = try HeadlessBrowser(url: a.base + "/?token=\(token)")
            defer { browser.close() }
            #expect(try browser.wait(20, "document.body.dataset.ready === 'true'"), "the page should render the first snapshot")
            // A click on the run in the runs panel opens its page.
            let row = "document.querySelector('[data-testid=run][data-run-id=\"\(secondID)\"]')"
            #expect(try browser.wait(10, "!!\(row)"), "the run is listed")
            _ = try browser.eval("\(row).click()")
            let main = "document.getElementById('run-detail-main')"
            #expect(try browser.wait(10, "\(main)?.dataset.runId === '\(secondID)'"), "its page opens")
            #expect(try browser.eval("location.hash") == .string("#/runs/\(secondID)"))
            // Its stderr, both attempts with their outcomes, its event's payload and its timings.
            let stderr = "document.querySelector('[data-testid=run-stderr]')?.textContent"
            #expect(try browser.wait(10, "(\(stderr) || '').includes('attempt 2: picture back')"), "its stderr is shown")
            let attempts = try browser.eval(
                "[...document.querySelectorAll('[data-testid=run-attempt]')].map(r => r.dataset.attempt + ' ' + r.dataset.state + ' ' + r.dataset.runId).join(',')"
            )?.stringValue
            #expect(attempts == "1 failed \(firstID),2 succeeded \(secondID)", "both attempts with their outcomes")
            let payload = try browser.eval("document.querySelector('[data-testid=run-payload]')?.textContent")?.stringValue ?? ""
            #expect(payload.contains("\"device\": \"tv-7\""), "the payload, pretty: \(payload)")
            #expect(try browser.eval("document.querySelectorAll('[data-testid=run-timing] [data-moment]').length") == .int(4))
            #expect(
                try browser.eval("document.querySelector('button[data-action=cancel]')?.disabled") == .bool(true), "a finished run is not cancelled")

            // The failed attempt's page, from its row: its own stderr.
            _ = try browser.eval("document.querySelector('[data-testid=run-attempt][data-attempt=\"1\"] a').click()")
            #expect(try browser.wait(10, "\(main)?.dataset.runId === '\(firstID)' && (\(stderr) || '').includes('attempt 1: screen still black')"))
            // An old link (#run=ID) lands on the run's page.
            _ = try browser.eval("(() => { location.hash = 'run=\(secondID)'; return true })()")
            #expect(try browser.wait(10, "location.hash === '#/runs/\(secondID)' && \(main)?.dataset.runId === '\(secondID)'"))

            // Retry: the event ran to completion, so a copy of it runs for the agent; the page links to the new run.
            #expect(try browser.wait(10, "document.querySelector('button[data-action=retry]')?.disabled === false"))
            _ = try browser.eval("document.querySelector('button[data-action=retry]').click()")
            let retried = try await a.worker.waitForRuns(id, timeout: .seconds(30)) { $0.contains { $0.eventID != event.id.rawValue } }
            let newRun = try #require(retried.filter { $0.eventID != event.id.rawValue }.min { $0.attempt < $1.attempt })
            #expect(
                try browser.wait(
                    20, "document.querySelector('[data-testid=retry-run]')?.dataset.runId === '\(newRun.runID.uuidString.lowercased())'"),
                "the page links to the new run (its first attempt)")
            _ = try browser.eval("window.scrollTo(0, 0)")
            _ = try browser.send("shot \(StatusPageBrowserTests.artifacts.appendingPathComponent("run-page.png").path)")
            browser.close()
            await worker.stop()
            await a.worker.cleanup(id)
        }
    }
}
