import AgentryCore
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
}
