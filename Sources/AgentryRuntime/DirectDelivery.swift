import AMQP
import AgentryBus
import AgentryCore
import AgentryStore
import Foundation

/// Messages sent straight to one agent's queue, past trigger matching: a delegated task (to the subagent chosen for
/// it), a waiting run's resume (to its own agent), an invocation (`agentry agents invoke`). Their headers say which,
/// and where the run sits in its tree.
///
/// Any AMQP client can set these headers, so none of them is trusted beyond what the database confirms: a resume is
/// only claimed for a run that is `resuming`, a child's end is only recorded against the parent's row for that
/// position and event id, and a pinned version must be a published version of the agent.
enum DirectDelivery: Sendable, Hashable {
    /// A delegated task.
    case child(ChildOrigin)
    /// `agentry agents invoke` (or the API) by `by`; at the agent's current version unless `version`.
    case invoke(by: String, version: String?)
    /// The resume of run `runID`, at the version it started with.
    case resume(runID: UUID, version: String)

    enum Header {
        static let kind = "x-agentry-direct"
        static let run = "x-agentry-run"
        static let parent = "x-agentry-parent-run"
        static let root = "x-agentry-root-run"
        static let position = "x-agentry-child"
        static let depth = "x-agentry-depth"
        static let task = "x-agentry-task"
        static let version = "x-agentry-version"
        static let invokedBy = "x-agentry-invoked-by"
    }

    /// Where a delegated task comes from.
    struct ChildOrigin: Sendable, Hashable {
        var parent: UUID
        var position: Int
        var root: UUID
        /// The child's own depth (its parent's plus one).
        var depth: Int
        var task: String
        var version: String
    }

    /// The version the delivery must run at, when it names one.
    var pinnedVersion: String? {
        switch self {
        case .child(let origin): return origin.version
        case .invoke(_, let version): return version
        case .resume(_, let version): return version
        }
    }

    /// What a delivery's headers say; nil for an ordinary event (or headers that do not add up, which are then
    /// ordinary: the event meets the agent's triggers like any other).
    init?(headers: AMQPTable?) {
        guard let headers, let kind = headers[Header.kind]?.stringValue else { return nil }
        switch kind {
        case "delegate":
            guard let parent = headers[Header.parent]?.stringValue.flatMap(UUID.init(uuidString:)),
                let root = headers[Header.root]?.stringValue.flatMap(UUID.init(uuidString:)),
                let position = headers[Header.position]?.intValue, let depth = headers[Header.depth]?.intValue,
                let task = headers[Header.task]?.stringValue, let version = headers[Header.version]?.stringValue
            else { return nil }
            self = .child(ChildOrigin(parent: parent, position: Int(position), root: root, depth: Int(depth), task: task, version: version))
        case "invoke":
            self = .invoke(by: headers[Header.invokedBy]?.stringValue ?? "?", version: headers[Header.version]?.stringValue)
        case "resume":
            guard let run = headers[Header.run]?.stringValue.flatMap(UUID.init(uuidString:)), let version = headers[Header.version]?.stringValue
            else { return nil }
            self = .resume(runID: run, version: version)
        default:
            return nil
        }
    }

    var headers: AMQPTable {
        switch self {
        case .child(let origin):
            return [
                Header.kind: .string("delegate"), Header.parent: .string(origin.parent.uuidString.lowercased()),
                Header.root: .string(origin.root.uuidString.lowercased()), Header.position: .int(Int64(origin.position)),
                Header.depth: .int(Int64(origin.depth)), Header.task: .string(origin.task), Header.version: .string(origin.version),
            ]
        case .invoke(let by, let version):
            var headers: AMQPTable = [Header.kind: .string("invoke"), Header.invokedBy: .string(by)]
            if let version { headers[Header.version] = .string(version) }
            return headers
        case .resume(let run, let version):
            return [Header.kind: .string("resume"), Header.run: .string(run.uuidString.lowercased()), Header.version: .string(version)]
        }
    }

    /// Publishes a delegated task to its subagent's queue.
    static func publish(_ dispatch: ChildDispatch, on bus: EventBus) async throws {
        let child = dispatch.child
        let event = try EventWireFormat.decodeStored(child.event)
        let origin = ChildOrigin(
            parent: child.parentRunID, position: child.position, root: dispatch.rootRunID, depth: dispatch.parentDepth + 1,
            task: child.task, version: child.agentVersion)
        try await bus.publish(event, toQueue: "agentry.agent.\(child.agentID)", headers: DirectDelivery.child(origin).headers)
    }

    /// Publishes a run's resume to its agent's queue.
    static func publish(_ wake: RunWake, on bus: EventBus) async throws {
        let event = try EventWireFormat.decodeStored(wake.event)
        try await bus.publish(
            event, toQueue: "agentry.agent.\(wake.agentID)", headers: DirectDelivery.resume(runID: wake.runID, version: wake.agentVersion).headers)
    }
}

extension EventWireFormat {
    /// An event kept as its envelope's JSON text in PostgreSQL.
    static func decodeStored(_ text: String) throws -> Event {
        try decode(body: Array(text.utf8), envelope: Envelope(routingKey: ""), maxBodySize: Int.max)
    }
}
