import AMQP
import AgentryBus
import AgentryCore
import Foundation
import Testing

/// The console under a flood of events, measured in the browser: its updates are batched, so the main thread stays
/// free however fast events arrive.
@Suite("Console under load in a browser", .serialized)
struct ConsoleLoadBrowserTests {
    /// Events a second, and for how long.
    static let rate = 1000
    static let seconds = 30

    @Test("at 1,000 events/s for 30 s the page keeps up and its main thread is never blocked longer than 200 ms")
    func thousandEventsASecond() async throws {
        try await withAdminServer { a in
            try await withEventLog { _, _, _ in
                // Publishers on connections of their own, so that the test can keep the pace.
                var connections: [AMQPConnection] = []
                var buses: [EventBus] = []
                for _ in 0..<4 {
                    let connection = try await TestEnvironment.connect()
                    connections.append(connection)
                    buses.append(try await EventBus(connection: connection, logger: TestEnvironment.logger))
                }
                let type = "alert.\(TestEnvironment.uniqueName("load-"))"
                let token = try #require(a.token)
                let browser = try HeadlessBrowser(url: a.base + "/?token=\(token)")
                defer { browser.close() }
                #expect(try browser.wait(20, "document.body.dataset.ready === 'true'"), "the page should render the first snapshot")
                // Long tasks (over 50 ms on the main thread) as the browser reports them, from now on.
                let observing = try browser.eval(
                    "(() => { window.__long = []; new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__long.push(Math.round(e.duration)); }).observe({ type: 'longtask' }); return PerformanceObserver.supportedEntryTypes.includes('longtask'); })()"
                )
                #expect(observing == .bool(true), "the browser reports long tasks")
                let before = try browser.eval("Agentry.counters.events")?.intValue ?? 0

                // 1,000 events a second: a tenth of them every 100 ms, each batch published concurrently.
                let batch = Self.rate / 10
                let clock = ContinuousClock()
                let start = clock.now
                var last = Event(type: type, payload: [:], source: "test")
                for tick in 0..<(Self.seconds * 10) {
                    let events = (0..<batch).map { n in
                        Event(
                            type: type, payload: ["device_id": .string("tv-\(n % 40)"), "n": .int(Int64(tick * batch + n))],
                            priority: Priority.allCases[n % Priority.allCases.count], source: "load-test")
                    }
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        for (n, event) in events.enumerated() {
                            let bus = buses[n % buses.count]
                            group.addTask { try await bus.publish(event) }
                        }
                        try await group.waitForAll()
                    }
                    last = events[events.count - 1]
                    try await clock.sleep(until: start + .milliseconds(100 * (tick + 1)))
                }
                let elapsed = clock.now - start
                let published = Self.rate * Self.seconds
                let achieved = Double(published) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
                #expect(achieved >= Double(Self.rate) * 0.9, "the test published at \(Int(achieved))/s, short of \(Self.rate)/s")

                // The page kept up: an event published after the flood (the flood's own order is the broker's, as
                // its batches are published concurrently) is the newest it lists.
                last = Event(type: type, payload: ["marker": .bool(true)], priority: .low, source: "load-test")
                try await buses[0].publish(last)
                let newest = "document.querySelector('[data-testid=event]')?.dataset.eventId"
                #expect(try browser.wait(30, "\(newest) === '\(last.id.rawValue)'"), "the page lists the last event published")
                for connection in connections { await connection.close() }
                let received = (try browser.eval("Agentry.counters.events")?.intValue ?? 0) - before
                #expect(received > published, "the page was told of \(received) events of the \(published) published")
                let flushes = try browser.eval("Agentry.counters.flushes")?.intValue ?? 0
                #expect(flushes < Self.seconds * 10, "updates are batched: \(flushes) redraws in \(Self.seconds) s")
                let long = try browser.eval("window.__long")?.arrayValue?.compactMap(\.intValue) ?? []
                #expect((long.max() ?? 0) <= 200, "the longest main-thread task took \(long.max() ?? 0) ms (\(long.count) over 50 ms)")
                print(
                    "[console load] published \(Int(achieved)) events/s for \(Self.seconds) s; the page was told of \(received), redrew \(flushes) times; long tasks: \(long)"
                )
                _ = try browser.send("shot \(StatusPageBrowserTests.artifacts.appendingPathComponent("console-under-load.png").path)")
            }
        }
    }
}
