import AgentryStore
import NIOConcurrencyHelpers

/// Group commit: requests that arrive while a batch is being written wait and go together in the next one, so a
/// busy worker writes many run outcomes per statement (and per WAL flush) while a quiet one writes each at once.
final class GroupCommit<Request: Sendable, Response: Sendable>: Sendable {
    private struct State {
        var pending: [(Request, Reply<Response>)] = []
        var writing = false
    }

    private let state = NIOLockedValueBox(State())
    private let maxBatch: Int
    /// Orders waiting requests (stably): a request goes before the first waiting one it precedes. Nil: arrival order.
    private let precedes: (@Sendable (Request, Request) -> Bool)?
    /// Writes a batch; returns one result per request, in order (or throws for the whole batch).
    private let write: @Sendable ([Request]) async -> [Result<Response, any Error>]

    init(
        maxBatch: Int, precedes: (@Sendable (Request, Request) -> Bool)? = nil,
        write: @escaping @Sendable ([Request]) async -> [Result<Response, any Error>]
    ) {
        self.maxBatch = maxBatch
        self.precedes = precedes
        self.write = write
    }

    func submit(_ request: Request) async throws -> Response {
        try await enqueue(request).value.get()
    }

    /// Queues the request at once (synchronously, so that requests enqueued one after another keep that order
    /// among equals); its response comes through the returned reply.
    func enqueue(_ request: Request) -> Reply<Response> {
        let reply = Reply<Response>()
        let startWriter = state.withLockedValue { s -> Bool in
            if let precedes, let index = s.pending.firstIndex(where: { precedes(request, $0.0) }) {
                s.pending.insert((request, reply), at: index)
            } else {
                s.pending.append((request, reply))
            }
            guard !s.writing else { return false }
            s.writing = true
            return true
        }
        if startWriter { Task { await self.drain() } }
        return reply
    }

    private func drain() async {
        while true {
            let batch = state.withLockedValue { s -> [(Request, Reply<Response>)] in
                let batch = Array(s.pending.prefix(maxBatch))
                s.pending.removeFirst(batch.count)
                if batch.isEmpty { s.writing = false }
                return batch
            }
            guard !batch.isEmpty else { return }
            let results = await write(batch.map(\.0))
            for (index, (_, reply)) in batch.enumerated() {
                reply.complete(index < results.count ? results[index] : .failure(GroupCommitError()))
            }
        }
    }
}

/// The response to one request of a ``GroupCommit``: its result, set once (`complete`), awaited with
/// `try await reply.value.get()`.
typealias Reply<Response: Sendable> = Completion<Result<Response, any Error>>

struct GroupCommitError: Error, CustomStringConvertible {
    var description: String { "the batch writer returned fewer results than requests" }
}
