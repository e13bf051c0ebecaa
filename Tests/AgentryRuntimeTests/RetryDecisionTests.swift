import AgentryCore
import Foundation
import Testing

@testable import AgentryRuntime

/// How long a failed run waits before its retry: the definition's backoff, spread by the worker's jitter.
@Suite("Retry decisions")
struct RetryDecisionTests {
    @Test("without jitter the wait is the backoff's; a wait of 0 stays 0")
    func noJitter() {
        #expect(AgentRunner.jittered(8, jitter: 0) == 8)
        #expect(AgentRunner.jittered(0, jitter: 0.5) == 0)
    }

    @Test("jitter spreads the wait within ±jitter, never under 0.1 s, and does spread it")
    func spread() {
        let samples = (0..<2000).map { _ in AgentRunner.jittered(10, jitter: 0.2) }
        #expect(samples.allSatisfy { $0 >= 8 && $0 <= 12 }, "\(samples.min() ?? 0)…\(samples.max() ?? 0)")
        #expect(samples.contains { $0 < 9 } && samples.contains { $0 > 11 }, "both ends of the range are reached")
        #expect(Set(samples.map { Int($0 * 10) }).count > 20, "the waits differ")
        #expect((0..<200).map { _ in AgentRunner.jittered(0.1, jitter: 1) }.allSatisfy { $0 >= 0.1 })
    }

    @Test("the backoff grows by its multiplier up to its maximum")
    func backoff() throws {
        let d = try AgentDefinition.parse(
            yaml: """
                metadata: {id: a, name: A, version: 1.0.0, author: me, description: d}
                goal: {type: continuous, description: g}
                triggers: [{type: x.y, priority: LOW}]
                retry: {attempts: 6, backoff: {initial_seconds: 2, multiplier: 3, max_seconds: 30}}
                """)
        let backoff = try #require(d.retry?.backoff)
        #expect((0...6).map { backoff.delay(afterAttempt: $0) } == [0, 2, 6, 18, 30, 30, 30])
    }

    @Test("run ids sort by the time they were made")
    func runIDs() async throws {
        let first = AgentRunner.newRunID()
        try await Task.sleep(for: .milliseconds(2))
        let second = AgentRunner.newRunID()
        #expect(first.uuidString.lowercased() < second.uuidString.lowercased())
        #expect(first.uuidString.dropFirst(14).first == "7", "UUIDv7")
    }
}
