import AMQP
public import AgentryBus
public import AgentryCore
public import AgentryRuntime
public import AgentryStore
import Foundation

/// The JSON shapes of the admin API (openapi.yaml's schemas), shared with the status WebSocket and the CLI's `--json`
/// output.
public enum Representation {
    static func string(_ value: String?) -> JSONValue { value.map(JSONValue.string) ?? .null }
    static func time(_ date: Date?) -> JSONValue { date.map { .string(Timestamp.format($0)) } ?? .null }
    static func id(_ uuid: UUID?) -> JSONValue { uuid.map { .string($0.uuidString.lowercased()) } ?? .null }

    public static func run(_ run: TaskRun) -> JSONValue {
        .object([
            "run_id": id(run.runID), "agent_id": .string(run.agentID), "agent_version": .string(run.agentVersion),
            "event_id": .string(run.eventID), "event_type": .string(run.eventType), "priority": .string(run.priority.name),
            "attempt": .int(Int64(run.attempt)), "state": .string(run.state.rawValue), "worker_id": string(run.workerID),
            "event_at": time(run.eventAt), "received_at": time(run.receivedAt), "started_at": time(run.startedAt),
            "finished_at": time(run.finishedAt),
            "result": run.result.flatMap { try? JSON.parse(Array($0.utf8)) } ?? .null,
            "output": string(run.output), "stderr": string(run.stderr),
            "exit_status": run.exitStatus.map { .int(Int64($0)) } ?? .null,
            "message": string(run.message), "retry_at": time(run.retryAt),
            "parent_run_id": id(run.parentRunID), "root_run_id": id(run.rootRunID), "depth": .int(Int64(run.depth)),
            "task": string(run.task), "steps": .int(Int64(run.steps)), "wait_until": time(run.waitUntil),
            "progress": run.progress.flatMap { try? JSON.parse(Array($0.utf8)) } ?? .null,
            "defer_reason": run.state == .deferred ? string(run.deferReason) : .null, "flow_key": string(run.flowKey),
            "resume_at": run.state == .deferred ? time(run.resumeAt) : .null, "cancelled_by": string(run.cancelledBy),
            "usage": run.usage?.jsonValue ?? .null,
        ])
    }

    /// A run with the tasks it delegated (`GET /api/runs/{run_id}`).
    public static func run(_ run: TaskRun, children: [ChildRecord]) -> JSONValue {
        guard case .object(var object) = Self.run(run) else { return Self.run(run) }
        object["children"] = .array(children.map(child))
        return .object(object)
    }

    public static func approval(_ a: ApprovalRecord) -> JSONValue {
        .object([
            "approval_id": id(a.approvalID), "run_id": id(a.runID), "agent_id": .string(a.agentID), "agent_version": .string(a.agentVersion),
            "permission": .string(a.permission), "reason": string(a.reason),
            "then": a.then.flatMap { try? JSON.parse(Array($0.utf8)) } ?? .null, "requested_by": .string(a.origin.rawValue),
            "state": .string(a.state.rawValue), "requested_at": time(a.requestedAt), "expires_at": time(a.expiresAt),
            "decided_by": string(a.decidedBy), "decided_at": time(a.decidedAt), "comment": string(a.comment),
        ])
    }

    public static func child(_ child: ChildRecord) -> JSONValue {
        .object([
            "position": .int(Int64(child.position)), "round": .int(Int64(child.round)), "task": .string(child.task),
            "agent_id": .string(child.agentID), "agent_version": .string(child.agentVersion), "version_range": .string(child.versionRange),
            "event_id": .string(child.eventID), "awaited": .bool(child.awaited), "state": .string(child.state.rawValue),
            "run_id": id(child.childRunID), "result": child.result.flatMap { try? JSON.parse(Array($0.utf8)) } ?? .null,
            "message": string(child.message), "created_at": time(child.createdAt), "finished_at": time(child.finishedAt),
        ])
    }

    public static func instance(_ instance: InstanceRecord) -> JSONValue {
        .object([
            "instance_id": id(instance.instanceID), "agent_id": .string(instance.agentID), "version": .string(instance.version),
            "worker_id": .string(instance.workerID), "state": .string(instance.state.rawValue), "current_task": id(instance.currentTask),
            "running_tasks": .int(Int64(instance.runningTasks)),
            "prefetch": instance.consumingPrefetch.map { .int(Int64($0)) } ?? .null, "started_at": time(instance.startedAt),
            "updated_at": time(instance.updatedAt), "error": string(instance.error),
        ])
    }

    public static func worker(_ worker: WorkerRecord) -> JSONValue {
        .object([
            "worker_id": .string(worker.workerID), "host": .string(worker.host), "pid": .int(Int64(worker.pid)),
            "version": .string(worker.version), "status": .string(worker.status), "alive": .bool(worker.alive),
            "started_at": time(worker.startedAt), "heartbeat_at": time(worker.heartbeatAt),
            "labels": .object(worker.labels.mapValues(JSONValue.string)), "stopped_at": time(worker.stoppedAt),
            "heartbeat_age_ms": .int(Int64(worker.heartbeatAge.inMilliseconds)),
            "rss_bytes": worker.rssBytes.map { .int(Int64($0)) } ?? .null, "running_tasks": .int(Int64(worker.runningTasks)),
        ])
    }

    public static func lock(_ status: LockStatus) -> JSONValue {
        let holder = status.holder
        return .object([
            "resource": .string(status.resource.description), "resource_type": .string(status.resource.type),
            "resource_id": .string(status.resource.id), "status": .string(status.isAvailable ? "available" : "locked"),
            "owner": string(holder?.owner.id), "owner_type": string(holder?.owner.kind.rawValue),
            "acquired_at": time(holder?.acquiredAt), "expires_at": time(holder?.expiresAt), "priority": string(holder?.priority.name),
            "fencing_token": holder?.fencingToken.map { .int($0) } ?? .null, "worker_id": string(holder?.workerID),
            "run_id": id(holder?.runID), "queue_length": .int(Int64(status.queueLength)),
            "waiters": .array(
                status.waiters.map { waiter in
                    .object([
                        "position": .int(Int64(waiter.position)), "owner": .string(waiter.owner.id),
                        "owner_type": .string(waiter.owner.kind.rawValue), "priority": .string(waiter.priority.name),
                        "queued_at": time(waiter.queuedAt), "wait_until": time(waiter.waitUntil), "run_id": id(waiter.runID),
                    ])
                }),
        ])
    }

    public static func event(_ event: Event) -> JSONValue {
        .object([
            "id": .string(event.id.rawValue), "type": .string(event.type), "priority": .string(event.priority.name),
            "timestamp": time(event.timestamp), "source": string(event.source), "correlation_id": string(event.correlationID),
            "causation_id": string(event.causationID), "payload": .object(event.payload),
        ])
    }

    public static func parked(_ message: ParkedMessage) -> JSONValue {
        .object([
            "id": .string(message.id), "reason": .string(message.reason), "message": .string(message.message),
            "queue": .string(message.queue), "parked_at": .string(message.parkedAt),
            "original_exchange": .string(message.originalExchange), "original_routing_key": .string(message.originalRoutingKey),
            "body_size": .int(Int64(message.bodySize)), "truncated": .bool(message.truncated), "preview": .string(message.preview),
            "replay_refusal": string(DeadLetters.replayRefusal(message)),
        ])
    }

    /// A parked message with its whole body and headers (`GET /api/dead/messages/{id}`).
    static func parked(_ message: ParkedMessage, body: [UInt8], headers: AMQPTable) -> JSONValue {
        guard case .object(var object) = parked(message) else { return parked(message) }
        object["body"] = .string(String(decoding: body, as: UTF8.self))
        object["headers"] = .object(JSONObject(uniqueKeysWithValues: headers.sorted { $0.key < $1.key }.map { ($0.key, amqp($0.value)) }))
        return .object(object)
    }

    /// An AMQP header value as JSON (bytes as text, timestamps as ISO 8601).
    static func amqp(_ value: AMQPValue) -> JSONValue {
        switch value {
        case .bool(let b): .bool(b)
        case .int(let i): .int(i)
        case .double(let d): .double(d)
        case .string(let text): .string(text)
        case .bytes(let bytes): .string(String(decoding: bytes, as: UTF8.self))
        case .timestamp(let seconds): .string(Timestamp.format(Date(timeIntervalSince1970: TimeInterval(seconds))))
        case .table(let table): .object(JSONObject(uniqueKeysWithValues: table.sorted { $0.key < $1.key }.map { ($0.key, amqp($0.value)) }))
        case .array(let items): .array(items.map(amqp))
        case .void: .null
        }
    }

    /// An agent as the status page and `/api/agents/` list it.
    public static func agent(_ summary: AgentRegistry.Summary, desired: DesiredState?, description: String?, triggers: [String]) -> JSONValue {
        .object([
            "agent_id": .string(summary.agentID), "name": .string(summary.name), "description": string(description),
            "latest_version": string(summary.versions.last?.version), "published_version": string(summary.activeVersion),
            "desired_state": string(summary.activeVersion == nil ? nil : (desired ?? .running).rawValue),
            "retired": .bool(summary.retired), "versions": .array(summary.versions.map { .string($0.version) }),
            "triggers": .array(triggers.map(JSONValue.string)),
            "canary": summary.canary.map { ["version": .string($0.version), "percent": .int(Int64($0.percent))] } ?? .null,
        ])
    }
}
