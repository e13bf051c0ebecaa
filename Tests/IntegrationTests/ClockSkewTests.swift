import AgentryBus
import AgentryCore
import AgentryRuntime
import AgentryStore
import Foundation
import Testing

/// libfaketime (Debian `faketime`, which Scripts/services installs): preloaded into a worker, it moves that worker's
/// wall clock (`Date()`, `clock_gettime(CLOCK_REALTIME)`) and leaves its monotonic clock alone.
func fakeTimeLibrary() -> String? {
    for directory in ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib"] {
        let path = "\(directory)/faketime/libfaketime.so.1"
        if FileManager.default.fileExists(atPath: path) { return path }
    }
    return nil
}

/// The chaos suite's clock-skew scenario, reduced to one worker: the instants in PostgreSQL are PostgreSQL's, and a
/// worker whose own clock is minutes off must neither stop its runs early nor keep a lock past its expiry.
@Suite("Workers whose clock is off", .serialized)
struct ClockSkewTests {
    @Test("a worker whose clock runs 5 minutes ahead keeps the locks of its runs for their whole hold, and its runs succeed")
    func locksOnAFastClock() async throws {
        guard let library = fakeTimeLibrary() else {
            Issue.record("libfaketime is missing: install Debian's faketime (Scripts/services does)")
            return
        }
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("skew-")
            _ = try await h.publishAgent(
                agentYAML(
                    id: id, trigger: "check.\(id)",
                    handler: "exec: {command: [/bin/sh, -c, 'sleep 0.3; printf {}']}",
                    config: "max_parallel_tasks: 2\nauto_retry: false\ntimeout_seconds: 60",
                    extra: "permissions:\n  devices: [take_control]\nresources: [\"device:{{payload.device}}\"]\n"))
            // Through a shell: an agentry started straight with libfaketime preloaded sees no arguments (the library's
            // start-up in the first preloaded process of a chain disturbs how the Swift runtime reads argv); started by
            // a preloaded process, it runs as it should.
            let wrapper = FileManager.default.temporaryDirectory.appendingPathComponent("agentry-skewed-\(id).sh")
            try "#!/bin/sh\nexec \(TestEnvironment.agentryExecutable) \"$@\"\n".write(to: wrapper, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: wrapper.path)
            defer { try? FileManager.default.removeItem(at: wrapper) }
            let worker = try WorkerProcess(
                agents: [id],
                environment: ["LD_PRELOAD": library, "FAKETIME": "+5m", "FAKETIME_DONT_FAKE_MONOTONIC": "1"],
                executable: wrapper.path)
            for n in 0..<4 {
                try await h.bus.publish(
                    Event(type: "check.\(id)", payload: ["device": .string("\(id)-\(n % 2)")], priority: .normal, source: "test"))
            }
            let runs = try await h.waitForRuns(id, timeout: .seconds(60)) { runs in
                runs.count == 4 && runs.allSatisfy { $0.state != .running }
            }
            let output = worker.output
            await worker.stop()
            // The worker's clock was ahead: its log lines carry its wall-clock time.
            let stamps = output.split(separator: "\n").compactMap { line in
                line.split(separator: " ").first.flatMap { try? Date(String($0), strategy: .iso8601) }
            }
            #expect(stamps.contains { $0.timeIntervalSinceNow > 240 }, "the worker's clock should run 5 minutes ahead: \(output.prefix(600))")
            // A run's hold lasts its timeout and a little more (here about 2 minutes, less than the skew). Before the
            // lock manager timed holds on its monotonic clock, each of these stopped at once: "stopped
            // because its lock on device:… expired at <five minutes from now> and was taken back".
            #expect(
                runs.map(\.state) == Array(repeating: .succeeded, count: 4),
                "\(runs.map { "\($0.state) \($0.message ?? "")" }); worker: \(output.suffix(2000))")
        }
    }
}
