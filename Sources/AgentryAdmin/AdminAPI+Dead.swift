import AMQP
import AgentryBus
import AgentryCore

/// Messages parked in `agentry.dead`: list them, publish them again.
extension AdminAPI {
    func listParked(_ input: Operations.ListParked.Input) async throws -> Operations.ListParked.Output {
        let parked = try await DeadLetters.list(on: dependencies.connection, limit: try limit(input.query.limit, default: 100))
        return .ok(.init(body: .json(.init(messages: parked.map(Representation.parked), count: parked.count))))
    }

    /// Publishes the messages again where they were first published (only to `agentry.events` or an agent's queue),
    /// and unparks them.
    func replayParked(_ input: Operations.ReplayParked.Input) async throws -> Operations.ReplayParked.Output {
        let body =
            switch input.body {
            case .json(let json): json
            }
        var ids: Set<String>?
        if body.all == true {
            ids = nil
        } else if let given = body.ids, !given.isEmpty {
            ids = Set(given)
        } else {
            throw AdminError.badRequest("give the messages to replay as {\"ids\": [\"…\"]} or {\"all\": true}")
        }
        let channel = try await dependencies.connection.openChannel(confirms: true)
        defer { channel.close() }
        let report = try await DeadLetters(channel: channel).replayReport(on: dependencies.connection, ids: ids)
        return .ok(
            .init(
                body: .json(
                    .init(
                        replayed: report.replayed.count, ids: report.replayed.map(\.id),
                        refused: report.refused.map { .init(id: $0.message.id, reason: $0.reason) }))))
    }
}
