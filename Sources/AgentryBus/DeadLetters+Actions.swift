public import AMQP
import AgentryCore

/// What can be done with parked messages: publish them again where they came from, or delete them.
extension DeadLetters {
    /// Which parked messages an action concerns.
    public enum Selection: Sendable, Hashable {
        /// The messages with these ids (every message with one of them: an event parked twice has one id).
        case ids(Set<String>)
        /// Every message parked for this reason (`""`: those without a reason header).
        case reason(String)
        /// Every parked message.
        case all

        public func contains(_ parked: ParkedMessage) -> Bool {
            switch self {
            case .ids(let ids): ids.contains(parked.id)
            case .reason(let reason): parked.reason == reason
            case .all: true
            }
        }

        /// The ids asked for that `found` does not hold (none for a reason or all).
        public func missing(from found: [ParkedMessage]) -> Set<String> {
            guard case .ids(let ids) = self else { return [] }
            return ids.subtracting(found.map(\.id))
        }
    }

    /// Publishes parked messages again to where they were first published (their original exchange and routing key,
    /// with the parking headers and the attempt count removed, so a replayed task gets its retries afresh), and removes
    /// them from `agentry.dead`. `ids` nil replays every message. Only messages bound for `agentry.events` or for one
    /// agent's queue are replayed (see ``replayRefusal(_:)``); the others stay parked.
    /// - Returns: the messages replayed.
    public func replay(on connection: AMQPConnection, ids: Set<String>?) async throws -> [ParkedMessage] {
        try await replayReport(on: connection, selection: ids.map(Selection.ids) ?? .all).replayed
    }

    /// What a replay did: the messages published again, and those left parked with the reason.
    public struct ReplayReport: Sendable {
        public var replayed: [ParkedMessage] = []
        public var refused: [(message: ParkedMessage, reason: String)] = []
    }

    /// Why a parked message must not be published where its headers say, or nil when it may.
    ///
    /// The destination comes from the message's own headers, which whoever can publish to `agentry.dead` writes: a
    /// replay must not become a way to send anything anywhere (to `agentry.control`, say, whose commands every
    /// worker obeys). So a replay goes only where Agentry itself parks from: the events exchange (with the event
    /// type as routing key), or one agent's queue through the default exchange. A truncated body (over the size
    /// limit) is not the message any more and is never replayed.
    public static func replayRefusal(_ parked: ParkedMessage) -> String? {
        if parked.truncated {
            return "its body was over the size limit and only its first \(parked.bodySize) bytes were kept"
        }
        switch parked.originalExchange {
        case Topology.eventsExchange:
            return nil
        case ""
        where parked.originalRoutingKey.hasPrefix(Topology.agentQueuePrefix)
            && AgentDefinition.idProblem(String(parked.originalRoutingKey.dropFirst(Topology.agentQueuePrefix.count))) == nil:
            return nil
        default:
            let to = parked.originalExchange.isEmpty ? "queue '\(parked.originalRoutingKey)'" : "exchange '\(parked.originalExchange)'"
            return
                "it is addressed to \(to); a replay goes only to \(Topology.eventsExchange) or an agent's queue (\(Topology.agentQueuePrefix)<agent-id>)"
        }
    }

    /// ``replay(on:ids:)``, saying also which messages were left parked and why.
    public func replayReport(on connection: AMQPConnection, ids: Set<String>?) async throws -> ReplayReport {
        try await replayReport(on: connection, selection: ids.map(Selection.ids) ?? .all)
    }

    /// Publishes the selected messages again (see ``replay(on:ids:)``) and says which were left parked and why.
    ///
    /// A message leaves `agentry.dead` only once the broker has confirmed its copy (on a channel with confirms). A copy
    /// that carries a message id is published mandatory: one that reaches no queue (its agent's queue is gone) is
    /// returned, and the message stays parked, as does one the broker refuses. Another failure (the connection
    /// drops) ends the replay with that message and the rest still parked.
    public func replayReport(on connection: AMQPConnection, selection: Selection) async throws -> ReplayReport {
        var report = ReplayReport()
        let channel = self.channel
        _ = try await Self.visit(on: connection, limit: Int.max) { delivery in
            let parked = ParkedMessage(delivery)
            guard selection.contains(parked) else { return false }
            if let reason = Self.replayRefusal(parked) {
                report.refused.append((parked, reason))
                return false
            }
            var properties = delivery.properties
            properties.headers = properties.headers?.filter {
                !$0.key.hasPrefix("x-agentry-dead-") && !$0.key.hasPrefix("x-agentry-original-") && $0.key != Header.attempt
                    && $0.key != Header.delay
            }
            if properties.headers?.isEmpty == true { properties.headers = nil }
            do {
                try await channel.publish(
                    AMQPMessage(
                        exchange: parked.originalExchange, routingKey: parked.originalRoutingKey, body: delivery.body, properties: properties,
                        mandatory: properties.messageID != nil))
            } catch let error as AMQPError where error.code == .unroutable || error.code == .publishNacked {
                let to = parked.originalExchange.isEmpty ? "queue '\(parked.originalRoutingKey)'" : parked.originalExchange
                report.refused.append(
                    (
                        parked,
                        error.code == .unroutable
                            ? "no queue took it: \(to) does not exist (is the agent retired?)" : "the broker refused the copy to \(to) (\(error))"
                    ))
                return false
            }
            report.replayed.append(parked)
            return true
        }
        return report
    }

    /// Deletes the selected messages from `agentry.dead` for good, and returns them.
    public static func delete(on connection: AMQPConnection, selection: Selection) async throws -> [ParkedMessage] {
        var deleted: [ParkedMessage] = []
        _ = try await visit(on: connection, limit: Int.max) { delivery in
            let parked = ParkedMessage(delivery)
            guard selection.contains(parked) else { return false }
            deleted.append(parked)
            return true
        }
        return deleted
    }
}
