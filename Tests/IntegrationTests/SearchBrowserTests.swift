import AgentryCore
import AgentryStore
import Foundation
import Testing

@Suite("Runs and Events pages in a browser", .serialized)
struct SearchBrowserTests {
    @Test("the Runs page filters by agent and state, pages with More, and keeps the filter in the address (linkable, back button)")
    func runsPage() async throws {
        try await withAdminServer { a in
            let tag = TestEnvironment.uniqueName("sb")
            // 480 runs of agents <tag>-a and <tag>-b; <tag>-b has 60 failed ones (every eighth run).
            let runs = try await SearchAPITests.recordRuns(a.worker.database, tag: tag, count: 480)
            let failed = runs.filter { $0.agent == "\(tag)-b" && $0.state == "failed" }.map(\.id)
            #expect(failed.count == 60)
            let token = try #require(a.token)
            let browser = try HeadlessBrowser(url: a.base + "/?token=\(token)#/runs")
            defer { browser.close() }
            let rows = "[...document.querySelectorAll('#search-runs [data-testid=search-run]')]"
            #expect(
                try browser.wait(20, "document.body.dataset.view === 'runs' && !!document.querySelector('#search-runs form')"), "the Runs view opens")
            #expect(try browser.eval("document.querySelector('nav a[data-nav=runs]').getAttribute('aria-current')") == "page")

            // Filter as an operator does: type the agent, choose the state, press Enter (the form's submit).
            _ = try browser.eval(
                """
                (() => { const f = document.querySelector('#search-runs form'); f.elements.agent.value = '\(tag)-b';
                         f.elements.state.value = 'failed'; f.requestSubmit(); return true })()
                """.replacingOccurrences(of: "\n", with: " "))
            #expect(
                try browser.wait(15, "\(rows).length === 50 && \(rows).every(r => r.dataset.agentId === '\(tag)-b' && r.dataset.state === 'failed')"),
                "the first page: 50 failed runs of the agent")
            let hash = try browser.eval("location.hash")?.stringValue ?? ""
            #expect(
                hash.hasPrefix("#/runs?") && hash.contains("agent=\(tag)-b") && hash.contains("state=failed"), "the filter is in the address: \(hash)"
            )
            #expect(try browser.eval("!document.querySelector('#search-runs [data-testid=search-more]').hidden") == .bool(true), "More is offered")
            #expect(try browser.eval("\(rows)[0].querySelector('a[data-testid=run-link]').getAttribute('href')") == .string("#/runs/\(failed[0])"))

            _ = try browser.eval("document.querySelector('#search-runs [data-testid=search-more]').click()")
            #expect(try browser.wait(15, "\(rows).length === 60"), "More adds the remaining 10")
            let shown = try browser.eval("\(rows).map(r => r.dataset.runId)")?.arrayValue?.compactMap(\.stringValue) ?? []
            #expect(shown == failed, "every failed run of the agent once, newest first")
            #expect(try browser.eval("document.querySelector('#search-runs [data-testid=search-more]').hidden") == .bool(true), "no More at the end")
            #expect(try browser.eval("document.documentElement.scrollWidth <= window.innerWidth + 1") == .bool(true))

            // A run's link opens its page; back returns to the filtered list.
            _ = try browser.eval("\(rows)[0].querySelector('a[data-testid=run-link]').click()")
            #expect(try browser.wait(10, "location.hash === '#/runs/\(failed[0])'"))
            _ = try browser.eval("history.back()")
            #expect(try browser.wait(10, "location.hash === '\(hash)' && \(rows).length === 50"), "back shows the filtered runs again")
            #expect(try browser.eval("document.querySelector('#search-runs form').elements.agent.value") == .string("\(tag)-b"))
            #expect(try browser.eval("document.querySelector('#search-runs form').elements.state.value") == "failed")
            _ = try browser.eval("history.back()")
            #expect(try browser.wait(10, "location.hash === '#/runs' && document.querySelector('#search-runs form').elements.state.value === ''"))
            browser.close()

            // The address alone opens the same filtered list, at a phone's width.
            let linked = try HeadlessBrowser(url: a.base + "/" + hash, width: 390, height: 844)
            defer { linked.close() }
            #expect(
                try linked.wait(20, "\(rows).length === 50 && \(rows).every(r => r.dataset.agentId === '\(tag)-b' && r.dataset.state === 'failed')"))
            #expect(try linked.eval("document.documentElement.scrollWidth <= window.innerWidth + 1") == .bool(true), "no sideways scroll at 390 px")
            _ = try linked.send("shot \(StatusPageBrowserTests.artifacts.appendingPathComponent("runs-search-phone.png").path)")
        }
    }

    @Test("the Events page finds events by a type pattern and payload text, with local times that show UTC on hover")
    func eventsPage() async throws {
        try await withAdminServer { a in
            let tag = TestEnvironment.uniqueName("sbe")
            let store = EventLogStore(database: a.worker.database, logger: TestEnvironment.logger)
            let logged = try await SearchAPITests.logEvents(store, tag: tag, count: 30)
            let want = logged.filter { $0.event.type.hasPrefix("\(tag).alert.") && JSONValue.object($0.event.payload).jsonText.contains("TV-3") }
                .map(\.event.id.rawValue)
            #expect(!want.isEmpty)
            let token = try #require(a.token)
            let browser = try HeadlessBrowser(url: a.base + "/?token=\(token)#/events?type=\(tag).alert.*&q=tv-3")
            defer { browser.close() }
            let rows = "[...document.querySelectorAll('#search-events [data-testid=search-event]')]"
            #expect(try browser.wait(20, "\(rows).length === \(want.count)"), "the events the address asks for")
            let shown = try browser.eval("\(rows).map(r => r.dataset.eventId)")?.arrayValue?.compactMap(\.stringValue) ?? []
            #expect(shown == want)
            #expect(try browser.eval("document.querySelector('#search-events form').elements.type.value") == .string("\(tag).alert.*"))
            let title = try browser.eval("\(rows)[0].querySelector('time').title")?.stringValue ?? ""
            #expect(title.hasSuffix("UTC"), "\(title)")
            _ = try browser.send("shot \(StatusPageBrowserTests.artifacts.appendingPathComponent("events-search.png").path)")
        }
    }
}
