public import AMQP
import AgentryBus
import AgentryCore
public import Foundation

/// A control message to every worker, through `agentry.control`.
public enum WorkerCommand: Sendable, Equatable {
    /// Re-read published agents and desired states now (after publish, pause, resume, stop, start).
    case sync
    /// Cancel a running task.
    case cancel(runID: UUID, by: String)
    /// Stop these running tasks of an agent, which the event `eventID` cancels by the agent's `cancel_on`;
    /// `description` is what their records say after "cancelled by" (see ``AgentryStore/CancelMark``).
    case cancelByEvent(agentID: String, runIDs: [UUID], eventID: String, description: String)

    var json: JSONValue {
        switch self {
        case .sync: return .object(["command": "sync"])
        case .cancel(let id, let by): return .object(["command": "cancel", "run_id": .string(id.uuidString.lowercased()), "by": .string(by)])
        case .cancelByEvent(let agentID, let runIDs, let eventID, let description):
            return .object([
                "command": "cancel_by_event", "agent_id": .string(agentID), "run_ids": .array(runIDs.map { .string($0.uuidString.lowercased()) }),
                "event_id": .string(eventID), "description": .string(description),
            ])
        }
    }

    init?(json: JSONValue) {
        switch json.objectValue?["command"]?.stringValue {
        case "sync": self = .sync
        case "cancel":
            guard let object = json.objectValue, let text = object["run_id"]?.stringValue, let id = UUID(uuidString: text) else { return nil }
            self = .cancel(runID: id, by: object["by"]?.stringValue ?? "an operator")
        case "cancel_by_event":
            guard let object = json.objectValue, let agentID = object["agent_id"]?.stringValue, let eventID = object["event_id"]?.stringValue,
                let ids = object["run_ids"]?.arrayValue
            else { return nil }
            self = .cancelByEvent(
                agentID: agentID, runIDs: ids.compactMap { $0.stringValue.flatMap(UUID.init(uuidString:)) }, eventID: eventID,
                description: object["description"]?.stringValue ?? "event \(eventID)")
        default: return nil
        }
    }

    /// Who sends control messages from this process: the program, host and pid.
    public static var defaultSender: String {
        let process = ProcessInfo.processInfo
        return "\(process.processName) on \(process.hostName) pid \(process.processIdentifier)"
    }

    /// Sends the command to every worker (fire and forget: a worker that is down reads the desired state from
    /// PostgreSQL when it starts). The message says who sent it: `sender` in the body, and the AMQP `user-id` (which
    /// RabbitMQ checks against the connection's user) and `app-id` properties; every worker logs it.
    public func send(on connection: AMQPConnection, sender: String = WorkerCommand.defaultSender) async throws {
        let channel = try await connection.openChannel(confirms: true)
        defer { channel.close() }
        var body = json.objectValue ?? [:]
        body["sender"] = .string(sender)
        try await channel.publish(
            AMQPMessage(
                exchange: Topology.controlExchange, routingKey: "", body: Array(JSON.serialize(.object(body)).utf8),
                properties: AMQPProperties(
                    contentType: "application/json", deliveryMode: 1,
                    userID: connection.configuration.user, appID: "agentry")))
    }
}
