import AgentryCore
import AgentryRuntime
import AgentryStore
import Foundation
import Logging
import NIOConcurrencyHelpers

/// The lock manager against the real database (AGENTRY_DATABASE_URL):
///
/// - uncontended: one owner takes and gives back one resource in a loop — acquire/release pairs per second;
/// - contended: 16 owners on two lock managers (two "hosts") contend for 4 resources, each waiting its turn —
///   pairs per second, and the hand-off latency from the moment a holder starts its release to the moment the next
///   waiter holds the resource.
///
/// Events are off (`announces = false`): this measures the locks, not the broker. `AGENTRY_BENCH_RAW_LOCKS=1` first
/// runs the same SQL functions in a loop on one connection without the manager, to show the manager's own cost.
struct LockBench {
    let logger: Logger

    func run(seconds: Int) async throws {
        let configuration = try DatabaseConfiguration(
            url: ProcessInfo.processInfo.environment["AGENTRY_DATABASE_URL"]
                ?? "postgres://agentry:agentry@localhost:5432/agentry")
        try await Database.with(configuration, logger: logger) { database in
            try await database.ping()
            var options = LockManager.Options()
            options.announces = false
            let managers = (0..<2).map { LockManager(database: database, workerID: "bench-\($0)", options: options, logger: logger) { _ in } }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for manager in managers { group.addTask { await manager.run() } }
                defer { for manager in managers { manager.shutdown() } }
                if ProcessInfo.processInfo.environment["AGENTRY_BENCH_RAW_LOCKS"] == "1" { try await raw(database, seconds: seconds) }
                try await uncontended(managers[0], seconds: seconds)
                try await contended(managers, seconds: seconds)
            }
        }
    }

    /// The lock functions called directly on one lock session, without the manager (to see the manager's own cost).
    private func raw(_ database: Database, seconds: Int) async throws {
        let session = try await LockSessions(database: database, maxIdle: 0, logger: logger) { _ in }.checkout()
        let resource = ResourceKey(type: "device", id: "bench-raw")
        let end = ContinuousClock.now + .seconds(seconds)
        var pairs = 0
        while ContinuousClock.now < end {
            let id = UUID()
            _ = try await session.acquire(
                .init(
                    requestID: id, resources: [resource], owner: .system("bench"), priority: .normal, hold: .seconds(60),
                    waitFor: nil, waiterPID: 0, workerID: nil, runID: nil, takebackGrace: .seconds(5)),
                logger: logger)
            try await session.release([resource], logger: logger)
            pairs += 1
        }
        session.close()
        print(String(format: "locks raw %.0f pairs/s", Double(pairs) / Double(seconds)))
    }

    private func uncontended(_ manager: LockManager, seconds: Int) async throws {
        let resource = ResourceKey(type: "device", id: "bench-uncontended-\(UUID().uuidString.prefix(8))")
        // Warm up: the lock session is opened once.
        for _ in 0..<100 { await manager.release(try await manager.acquire([resource], owner: .system("bench"), hold: .seconds(60))) }
        let start = ContinuousClock.now
        let end = start + .seconds(seconds)
        var pairs = 0
        while ContinuousClock.now < end {
            let hold = try await manager.acquire([resource], owner: .system("bench"), hold: .seconds(60))
            await manager.release(hold)
            pairs += 1
        }
        let elapsed = (ContinuousClock.now - start).inSeconds
        print(String(format: "locks uncontended %d pairs in %.2f s: %.0f pairs/s", pairs, elapsed, Double(pairs) / elapsed))
    }

    private func contended(_ managers: [LockManager], seconds: Int) async throws {
        let prefix = "bench-contended-\(UUID().uuidString.prefix(8))"
        let resources = (0..<4).map { ResourceKey(type: "device", id: "\(prefix)-\($0)") }
        let lastRelease = NIOLockedValueBox<[ResourceKey: ContinuousClock.Instant]>([:])
        let handoffs = NIOLockedValueBox<[Double]>([])
        let pairs = NIOLockedValueBox(0)
        let start = ContinuousClock.now
        let end = start + .seconds(seconds)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for owner in 0..<16 {
                group.addTask {
                    let manager = managers[owner % 2]
                    let resource = resources[owner % 4]
                    let priority = Priority.allCases[(owner / 4) % 4]
                    while ContinuousClock.now < end {
                        let asked = ContinuousClock.now
                        let hold = try await manager.acquire(
                            [resource], owner: .agent("owner-\(owner)"), priority: priority,
                            hold: .seconds(60), wait: .seconds(60))
                        let granted = ContinuousClock.now
                        // A hand-off: this request was already waiting when the previous holder started its release.
                        if let released = lastRelease.withLockedValue({ $0[resource] }), released > asked {
                            let milliseconds = (granted - released).inSeconds * 1000
                            handoffs.withLockedValue { $0.append(milliseconds) }
                        }
                        lastRelease.withLockedValue { $0[resource] = ContinuousClock.now }
                        await manager.release(hold)
                        pairs.withLockedValue { $0 += 1 }
                    }
                }
            }
            try await group.waitForAll()
        }
        let elapsed = (ContinuousClock.now - start).inSeconds
        let total = pairs.withLockedValue { $0 }
        let samples = handoffs.withLockedValue { $0 }.sorted()
        print(String(format: "locks contended 16 owners on 4 resources, %d pairs in %.2f s: %.0f pairs/s", total, elapsed, Double(total) / elapsed))
        guard !samples.isEmpty else { throw BenchError("no hand-off was measured") }
        func percentile(_ p: Double) -> Double { samples[min(samples.count - 1, Int((Double(samples.count) * p).rounded(.down)))] }
        print(
            String(
                format: "locks hand-off ms: p50 %.2f p99 %.2f max %.2f (%d hand-offs)", percentile(0.5), percentile(0.99),
                samples.last ?? 0, samples.count))
    }
}
