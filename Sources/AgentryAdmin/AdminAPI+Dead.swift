import AMQP
import AgentryBus
import AgentryCore

/// Messages parked in `agentry.dead`: list them with their counts by reason, read one whole, publish them again,
/// delete them.
extension AdminAPI {
    func listParked(_ input: Operations.ListParked.Input) async throws -> Operations.ListParked.Output {
        let limit = try limit(input.query.limit, default: 100)
        let survey = try await DeadLetters.survey(on: dependencies.connection, reason: input.query.reason, limit: limit)
        return .ok(
            .init(
                body: .json(
                    .init(
                        messages: survey.messages.map(Representation.parked), count: survey.messages.count, total: survey.total,
                        reasons: survey.reasonsByCount.map { .init(reason: $0.reason, count: $0.count) }))))
    }

    func getParked(_ input: Operations.GetParked.Input) async throws -> Operations.GetParked.Output {
        guard let found = try await DeadLetters.find(on: dependencies.connection, id: input.path.messageId) else {
            throw AdminError.notFound("no message with id '\(input.path.messageId)' is parked in agentry.dead")
        }
        return .ok(.init(body: .json(Representation.parked(found.message, body: found.body, headers: found.headers))))
    }

    /// Publishes the messages again where they were first published (only to `agentry.events` or an agent's queue),
    /// and unparks each once the broker has its copy.
    func replayParked(_ input: Operations.ReplayParked.Input) async throws -> Operations.ReplayParked.Output {
        let selection =
            switch input.body {
            case .json(let json): try Self.selection(json, "replay")
            }
        let channel = try await dependencies.connection.openChannel(confirms: true)
        defer { channel.close() }
        let report = try await DeadLetters(channel: channel).replayReport(on: dependencies.connection, selection: selection)
        return .ok(
            .init(
                body: .json(
                    .init(
                        replayed: report.replayed.count, ids: report.replayed.map(\.id),
                        refused: report.refused.map { .init(id: $0.message.id, reason: $0.reason) },
                        missing: selection.missing(from: report.replayed + report.refused.map(\.message)).sorted()))))
    }

    /// Deletes parked messages for good.
    func deleteParked(_ input: Operations.DeleteParked.Input) async throws -> Operations.DeleteParked.Output {
        let selection =
            switch input.body {
            case .json(let json): try Self.selection(json, "delete")
            }
        let deleted = try await DeadLetters.delete(on: dependencies.connection, selection: selection)
        return .ok(
            .init(body: .json(.init(deleted: deleted.count, ids: deleted.map(\.id), missing: selection.missing(from: deleted).sorted()))))
    }

    /// The messages a request names: exactly one of `ids` (at least one), `reason` or `all: true`.
    static func selection(_ body: Components.Schemas.ParkedSelection, _ action: String) throws -> DeadLetters.Selection {
        let given = [body.ids != nil, body.reason != nil, body.all != nil].filter { $0 }.count
        guard given == 1 else {
            throw AdminError.badRequest(
                "give the messages to \(action) as exactly one of {\"ids\": [\"…\"]}, {\"reason\": \"…\"} or {\"all\": true}")
        }
        if let ids = body.ids {
            guard !ids.isEmpty else { throw AdminError.badRequest("ids must name at least one message") }
            return .ids(Set(ids))
        }
        if let reason = body.reason { return .reason(reason) }
        guard body.all == true else { throw AdminError.badRequest("all must be true to \(action) every parked message") }
        return .all
    }
}
