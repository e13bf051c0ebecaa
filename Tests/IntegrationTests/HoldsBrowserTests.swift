import AgentryBus
import AgentryCore
import AgentryStore
import Foundation
import NIOHTTP1
import Testing

@Suite("People's holds in a browser", .serialized)
struct HoldsBrowserTests {
    @Test(
        "a person takes a device on the page: an agent's run waits for it, the page names the person as holder, and the run starts when the page gives it back"
    )
    func takeAndGiveBack() async throws {
        try await withAdminServer { a in
            let id = TestEnvironment.uniqueName("pagehold-")
            let resource = device("\(id)-tv")
            _ = try await a.worker.publishAgent(deviceAgentYAML(id))
            // The worker runs the agent and the hold keeper.
            let worker = try WorkerProcess(agents: [id])
            let token = try #require(a.token)
            let browser = try HeadlessBrowser(url: a.base + "/?token=\(token)")
            defer { browser.close() }
            #expect(try browser.wait(20, "document.body.dataset.ready === 'true'"))
            #expect(try browser.wait(20, "!!document.querySelector('[data-testid=instance][data-agent-id=\"\(id)\"]')"), "the worker is up")
            try await waitForHoldKeeper(a.worker.database)

            // Take the device for two hours, in the token's name, from the Locks panel's form.
            // One line: the driver reads a command per line.
            let taken = try browser.eval(
                "(() => { const f = document.querySelector('[data-testid=take-device]'); f.elements.resource.value = '\(resource)'; "
                    + "f.elements.duration.value = '7200'; f.querySelector('button[type=submit]').click(); return true })()")
            #expect(taken == .bool(true), "the Take a device form is on the page")
            let row = "document.querySelector('[data-testid=lock][data-resource=\"\(resource)\"]')"
            let named = try browser.wait(20, "\(row)?.dataset.owner === 'admin' && \(row)?.dataset.ownerType === 'user'")
            let said = try browser.eval("document.getElementById('notice').textContent") ?? .null
            #expect(named, "the Locks panel names the person as holder; the page said: \(said)")
            let until = try browser.eval("\(row).querySelector('[data-testid=lock-until] time').title")?.stringValue ?? ""
            #expect(until.hasSuffix("UTC"), "until when, UTC on hover: \(until)")
            let held = try #require(try await a.request(.GET, "/api/locks/\(resource)").json)
            #expect(held[path: "owner_type"]?.stringValue == "user")

            // The agent's run waits behind the person.
            try await a.worker.bus.publish(Event(type: "check.\(id)", payload: ["device": .string("\(id)-tv")], priority: .normal, source: "test"))
            #expect(
                try browser.wait(20, "!!\(row)?.querySelector('[data-testid=lock-waiter][data-owner=\"\(id)\"]')"),
                "the page shows the agent waiting for the device")
            let waiting = try await a.worker.runs(id)
            #expect(waiting.count == 1 && waiting.allSatisfy { $0.state != .succeeded }, "\(waiting.map(\.state))")
            _ = try browser.send("shot \(StatusPageBrowserTests.artifacts.appendingPathComponent("status-page-holds.png").path)")

            // Given back on the page: the run gets the device and runs.
            _ = try browser.eval("\(row).querySelector('button[data-action=give-back]').click()")
            let runs = try await a.worker.waitForRuns(id, timeout: .seconds(20)) { $0.contains { $0.state == .succeeded } }
            #expect(runs.contains { $0.state == .succeeded }, "the run started once the device was given back: \(runs.map(\.state))")
            #expect(try browser.wait(10, "\(row)?.dataset.ownerType !== 'user'"), "the person no longer holds it on the page")
            browser.close()
            await worker.stop()
            await a.worker.cleanup(id)
        }
    }
}
