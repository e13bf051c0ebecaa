import AgentryBus
import AgentryCore
import Foundation
import Testing

@Suite("Charts in a browser", .serialized)
struct ChartsBrowserTests {
    static let artifacts = TestEnvironment.repositoryRoot.appendingPathComponent(".build/test-artifacts")

    /// `data-<name>` of the chart `name`, as a number.
    static func chart(_ name: String, _ attribute: String) -> String {
        "Number(document.querySelector('[data-testid=chart][data-chart=\(name)]')?.dataset.\(attribute) ?? -1)"
    }

    @Test("the overview's charts move live as events flow and runs finish, switch windows, and hold at a phone's width")
    func chartsMove() async throws {
        try await withAdminServer { a in
            let id = TestEnvironment.uniqueName("chart-")
            _ = try await a.worker.publishAgent(outcomeAgentYAML(id))
            let worker = try WorkerProcess(agents: [id], eventLog: true)
            let token = try #require(a.token)
            let browser = try HeadlessBrowser(url: a.base + "/?token=\(token)")
            defer { browser.close() }
            #expect(try browser.wait(20, "document.body.dataset.ready === 'true'"), "the page renders the first snapshot")
            let names = ["events", "runs", "durations", "queues", "locks", "lockwait"]
            #expect(
                try browser.wait(10, "\(names.map { "\(Self.chart($0, "points")) >= 0" }.joined(separator: " && "))"),
                "every chart is drawn: \(names)")
            // Each chart has a title its SVG is labelled by, axis labels and a legend.
            for name in ["events", "runs", "queues", "locks"] {
                let figure = "document.querySelector('[data-testid=chart][data-chart=\(name)]')"
                #expect(try browser.eval("!!\(figure).querySelector('svg[role=img][aria-labelledby=chart-\(name)-title]')") == .bool(true), "\(name)")
                #expect(try browser.eval("\(figure).querySelectorAll('.axis-label').length") == .int(2), "\(name) has both axis labels")
                // Queue depths have a legend entry per queue sampled, none before the first sample.
                if name != "queues" {
                    #expect(
                        try browser.eval("\(figure).querySelectorAll('[data-testid=legend] li').length > 0") == .bool(true), "\(name) has a legend")
                }
            }
            #expect(try browser.eval(Self.chart("events", "points")) == .int(360), "an hour in steps of 10 s")
            _ = try await TestEnvironment.eventually { try browser.eval(Self.chart("events", "total"))?.numberValue ?? -1 >= 0 }
            let events = try browser.eval(Self.chart("events", "total"))?.numberValue ?? 0
            let runs = try browser.eval(Self.chart("runs", "total"))?.numberValue ?? 0

            for n in 0..<6 {
                try await a.worker.bus.publish(
                    Event(type: "stats.\(id)", payload: ["outcome": .string(n % 3 == 0 ? "fail" : "ok")], priority: .critical, source: "test"))
            }
            // Six events and their runs' lifecycle events, at least: the line moves without reloading.
            #expect(
                try browser.wait(20, "\(Self.chart("events", "total")) >= \(Int(events) + 6) && \(Self.chart("runs", "total")) >= \(Int(runs) + 6)"),
                "the events and runs charts count what flowed (they had \(events) events and \(runs) runs)")
            // The values at a point show on focus, from the keyboard.
            _ = try browser.eval("document.querySelector('[data-chart=events] svg').focus()")
            #expect(try browser.wait(5, "!document.querySelector('[data-chart=events] .chart-tip').hidden"))
            let tip = try browser.eval("document.querySelector('[data-chart=events] .chart-tip').textContent")?.stringValue ?? ""
            #expect(tip.contains("CRITICAL") && tip.contains("UTC"), "\(tip)")
            _ = try browser.send("shot \(Self.artifacts.appendingPathComponent("charts.png").path)")

            // Five minutes in steps of a second; the history has the runs' durations.
            _ = try browser.eval("document.querySelector('[data-testid=chart-window][data-window=\"5m\"]').click()")
            #expect(try browser.wait(10, "\(Self.chart("events", "points")) === 300 && \(Self.chart("events", "total")) >= 6"))
            #expect(
                try browser.wait(10, "!!document.querySelector('[data-chart=durations] [data-row=\"\(id)\"]')"),
                "the agent's durations are drawn: \(String(describing: try? browser.eval("[...document.querySelectorAll('[data-chart=durations] [data-row]')].map(g => g.dataset.row).join(',') + ' | ' + document.getElementById('charts-status').textContent")))"
            )
            browser.close()

            let phone = try HeadlessBrowser(url: a.base + "/?token=\(token)", width: 390, height: 844)
            defer { phone.close() }
            #expect(try phone.wait(20, "document.body.dataset.ready === 'true' && \(Self.chart("events", "points")) > 0"))
            #expect(try phone.eval("document.documentElement.scrollWidth <= window.innerWidth + 1") == .bool(true), "no horizontal scroll at 390 px")
            #expect(
                try phone.eval("document.querySelector('[data-chart=events] svg').getBoundingClientRect().right <= window.innerWidth") == .bool(true))
            _ = try phone.send("shot \(Self.artifacts.appendingPathComponent("charts-phone.png").path)")
            await worker.stop()
            await a.worker.cleanup(id)
        }
    }
}
