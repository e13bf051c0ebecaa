import AgentryStore
import Foundation
import NIOConcurrencyHelpers
import Testing

@testable import AgentryRuntime

/// Group commit: what a busy worker writes together, in which order, and what each request gets back.
@Suite("Group commit")
struct GroupCommitTests {
    /// A writer that records its batches and holds the first one until released, so that requests gather behind it.
    final class Writer: Sendable {
        let batches = NIOLockedValueBox<[[Int]]>([])
        let gate = AsyncStream<Void>.makeStream()

        func write(_ batch: [Int]) async -> [Result<String, any Error>] {
            let first = batches.withLockedValue {
                $0.append(batch)
                return $0.count == 1
            }
            if first { for await _ in gate.stream { break } }
            return batch.map { .success("wrote \($0)") }
        }
    }

    @Test("a quiet writer writes each request at once; requests that arrive during a write go together, up to the batch size")
    func batching() async throws {
        let writer = Writer()
        let commit = GroupCommit<Int, String>(maxBatch: 3) { await writer.write($0) }
        let first = commit.enqueue(1)
        // The first batch is being written (held); these wait and go in batches of at most 3, in arrival order.
        while writer.batches.withLockedValue({ $0.isEmpty }) { await Task.yield() }
        let waiting = (2...6).map { commit.enqueue($0) }
        writer.gate.continuation.yield()
        #expect(try await first.value.get() == "wrote 1")
        for (offset, reply) in waiting.enumerated() { #expect(try await reply.value.get() == "wrote \(offset + 2)") }
        #expect(writer.batches.withLockedValue { $0 } == [[1], [2, 3, 4], [5, 6]])
    }

    @Test("waiting requests are ordered by `precedes`, stably among equals")
    func ordering() async throws {
        let writer = Writer()
        // Even numbers first (a higher priority, say); arrival order among equals.
        let commit = GroupCommit<Int, String>(maxBatch: 10, precedes: { $0 % 2 == 0 && $1 % 2 == 1 }) { await writer.write($0) }
        let first = commit.enqueue(1)
        while writer.batches.withLockedValue({ $0.isEmpty }) { await Task.yield() }
        let waiting = [3, 4, 5, 6, 8].map { commit.enqueue($0) }
        writer.gate.continuation.yield()
        _ = try await first.value.get()
        for reply in waiting { _ = try await reply.value.get() }
        #expect(writer.batches.withLockedValue { $0 } == [[1], [4, 6, 8, 3, 5]])
    }

    @Test("a writer that returns fewer results than requests fails the ones left, not the others")
    func missingResults() async throws {
        let commit = GroupCommit<Int, String>(maxBatch: 10) { batch in batch.dropLast().map { .success("wrote \($0)") } }
        let only = commit.enqueue(1)
        await #expect(throws: GroupCommitError.self) { try await only.value.get() }
    }
}
