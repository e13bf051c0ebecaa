import AMQP
import AgentryBus
import AgentryCore
import AgentryStore
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// The scenarios that compare Agentry with its peers (issue 7), beside `e2e` and `latency`:
///
///     agentry-bench soak N ROUNDS [exec] one worker: ROUNDS times N events published while it runs; its RSS after
///                                        each round (memory must not grow with the events run); `exec`: the
///                                        handler is `/bin/true` instead of the builtin noop
///     agentry-bench drain N WORKERS [--no-memory]
///                                        N waiting events drained by WORKERS workers (no pipelined phase); with one
///                                        worker (unless --no-memory), its RSS idle and at its peak
///     agentry-bench exec N               the same with a handler that is /bin/true (exec overhead)
///     agentry-bench priority N           N LOW events waiting, one worker; once 1,000 have run, one CRITICAL event:
///                                        how long until it starts, and how many LOW runs started meanwhile
///     agentry-bench recovery SECONDS     a steady 200 events/s; `rabbitmqctl close_all_connections` in the vhost;
///                                        time until an event published after it runs
extension WorkerBench {
    /// With `measuringMemory` (and one worker), the worker's RSS idle and at its peak too.
    func drain(count: Int, workers: Int, handler: String = "builtin: noop", label: String = "drain", measuringMemory: Bool = false) async throws {
        let measuringMemory = measuringMemory && workers == 1
        try await withSetup(workers: workers, handler: handler) { setup in
            let type = "\(Self.eventTypePrefix).drain"
            // A worker alone (which declares the agent's queue), idle for 3 s for its memory at rest when that is
            // measured; then the backlog and the workers that drain it.
            try setup.workers.start(count: 1)
            try await setup.waitForConsumers(1)
            if measuringMemory { try await Task.sleep(for: .seconds(3)) }
            let idle = measuringMemory ? setup.workers.pids.first.map(Memory.init(pid:)) : nil
            await setup.workers.stopAll()
            let published = try await setup.publishAll(count: count, type: type)
            report("\(label) publish", count, "events", published, "events/s")
            try setup.workers.start(count: workers)
            try await setup.waitForRuns(type: type, count: count, backlog: true)
            let peak = setup.workers.pids.first.map(Memory.init(pid:))
            let span = try await setup.span(type: type)
            print(
                "\(label) \(count) runs with \(workers) worker(s) in \(String(format: "%.3f", span.seconds)) s: "
                    + "\(rate(count, span.seconds)) events/s (first run started to last run finished, from task_runs)")
            if let idle, let peak {
                print(String(format: "\(label) memory worker RSS MB: idle %.1f peak %.1f", idle.rssMB, peak.peakMB))
            }
        }
    }

    /// One worker under sustained load: `rounds` times, `count` events published while it runs, then drained; its RSS
    /// after each round. A worker's memory must not grow with the number of events it has run.
    func soak(count: Int, rounds: Int, handler: String = "builtin: noop") async throws {
        try await withSetup(workers: 1, handler: handler) { setup in
            let type = "\(Self.eventTypePrefix).soak"
            try setup.workers.start(count: 1)
            try await setup.waitForConsumers(1)
            guard let pid = setup.workers.pids.first else { throw BenchError("no worker process to measure") }
            var after: [Double] = []
            for round in 1...rounds {
                _ = try await setup.publishAll(count: count, type: type)
                try await setup.waitForRuns(type: type, count: count * round)
                after.append(Memory(pid: pid).rssMB)
            }
            print(
                "soak worker RSS MB after each \(count) events: " + after.map { String(format: "%.1f", $0) }.joined(separator: " ")
                    + String(format: " (first %.1f last %.1f, after %d events)", after[0], after[after.count - 1], count * rounds))
        }
    }

    func priority(backlog: Int) async throws {
        try await withSetup(workers: 1) { setup in
            let lowType = "\(Self.eventTypePrefix).low"
            let criticalType = "\(Self.eventTypePrefix).critical"
            _ = try await setup.publishAll(count: backlog, type: lowType, priority: .low)
            try setup.workers.start(count: 1)
            try await setup.waitForRuns(type: lowType, count: min(1000, backlog))
            let critical = setup.event(criticalType, 0, priority: .critical)
            let publishedAt = Date()
            try await setup.bus.publish(critical)
            // The broker confirms a persistent message once its queues have it (and it is on disk).
            print(String(format: "priority critical publish confirmed ms: %.1f", Date().timeIntervalSince(publishedAt) * 1000))
            try await setup.waitForRuns(type: criticalType, count: 1)
            // Which LOW runs started between the CRITICAL's publish and its start, split by when their deliveries
            // reached the worker: before the publish (already dispatched: in the prefetch window, being claimed),
            // after the publish but before the CRITICAL (the broker handed them out first: it had not queued the
            // CRITICAL yet, or had no credit for it), or after the CRITICAL (overtaking it in the worker: an inversion).
            let runs = try await setup.benchStore.priorityInversions(
                agentID: setup.agentID, lowType: lowType, criticalType: criticalType,
                publishedAt: publishedAt)
            for (started, received, lowBefore, lowDispatchedAfter, lowOvertaking) in runs {
                print(
                    String(
                        format: "priority critical start ms: %.1f low runs started before it: %d (of %d LOW waiting, prefetch %d)",
                        started.timeIntervalSince(publishedAt) * 1000, lowBefore, backlog, maxParallel))
                if let received {
                    print(
                        String(
                            format: "priority critical received by the worker ms: %.1f; of those LOW runs, received after its publish: %d, "
                                + "received after it (overtaking it in the worker): %d",
                            received.timeIntervalSince(publishedAt) * 1000, lowDispatchedAfter, lowOvertaking))
                }
            }
        }
    }

    func recovery(seconds: Int) async throws {
        try await withSetup(workers: 1) { setup in
            try setup.workers.start(count: 1)
            try await setup.waitForConsumers(1)
            let type = "\(Self.eventTypePrefix).steady"
            let vhost = virtualHost
            async let publishing = setup.publishSteadily(rate: 200, seconds: seconds, type: type)
            try await Task.sleep(for: .seconds(max(2, seconds / 3)))
            let closed = Date()
            let close = Process()
            close.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            close.arguments = ["rabbitmqctl", "close_all_connections", "--vhost", vhost, "agentry-bench recovery"]
            close.standardOutput = FileHandle.nullDevice
            close.standardError = FileHandle.nullDevice
            try close.run()
            close.waitUntilExit()
            let sent = try await publishing
            try await setup.waitForRuns(type: type, count: sent.count, stall: .seconds(60))
            let runs = try await setup.runTimes(type: type)
            // Work flows again when an event published after the close has run.
            let after = sent.published.filter { $0.value > closed }.compactMap { runs[$0.key]?.started }.min()
            guard let after else { throw BenchError("no event published after the close ran") }
            print(
                String(
                    format: "recovery ms: %.0f (close_all_connections to the first run of an event published after it)",
                    after.timeIntervalSince(closed) * 1000))
        }
    }
}

/// A process's resident memory, from /proc.
struct Memory {
    var rssMB: Double
    var peakMB: Double

    init(pid: pid_t) {
        var rss = 0.0, peak = 0.0
        if let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) {
            for line in text.split(separator: "\n") {
                let parts = line.split(separator: " ", omittingEmptySubsequences: true)
                guard parts.count >= 2, let kb = Double(parts[1]) else { continue }
                if line.hasPrefix("VmRSS:") { rss = kb / 1024 }
                if line.hasPrefix("VmHWM:") { peak = kb / 1024 }
            }
        }
        rssMB = rss
        peakMB = peak
    }
}
