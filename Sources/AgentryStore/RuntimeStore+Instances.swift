import AgentryCore
public import Foundation
import PostgresNIO

/// The seed's `AgentInstance`: one agent served by one worker.
public struct InstanceRecord: Sendable, Hashable {
    public enum State: String, Sendable, Hashable, CaseIterable {
        case idle, running, paused, error, stopped
    }
    public var instanceID: UUID
    public var agentID: String
    public var version: String
    public var workerID: String
    public var state: State
    public var currentTask: UUID?
    public var runningTasks: Int
    /// How many deliveries the instance takes at once (its share of the agent's limit); nil while it consumes nothing.
    public var prefetch: Int?
    public var startedAt: Date
    public var updatedAt: Date
    public var error: String?

    /// The prefetch while the instance takes events (idle or running); nil otherwise (a stopped or lost worker's
    /// rows keep their last value).
    public var consumingPrefetch: Int? { state == .idle || state == .running ? prefetch : nil }
}

/// What an operator asked an agent to do; every worker obeys it, including those that start later.
public enum DesiredState: String, Sendable, Hashable, CaseIterable {
    case running, paused, stopped
}

/// Agent instances (one agent served by one worker), the agents' desired states, and the status hubs' registrations.
extension RuntimeStore {
    /// Creates or updates the worker's instance of an agent; returns its id.
    public func upsertInstance(workerID: String, agentID: String, version: String, state: InstanceRecord.State) async throws -> UUID {
        var id: UUID?
        try await query(
            "instance of \(agentID) on \(workerID)", writes: true,
            """
            INSERT INTO agent_instances (agent_id, version, worker_id, state)
            VALUES (\(agentID), \(version), \(workerID), \(state.rawValue))
            ON CONFLICT (worker_id, agent_id) DO UPDATE SET version = EXCLUDED.version, state = EXCLUDED.state,
                error = NULL, updated_at = now(),
                started_at = CASE WHEN agent_instances.state IN ('stopped', 'error') THEN now() ELSE agent_instances.started_at END
            RETURNING instance_id
            """
        ) { row in id = try row.decode(UUID.self) }
        guard let id else { throw StoreError(.query, "no instance row returned for \(agentID) on \(workerID)") }
        return id
    }

    public func updateInstance(
        _ instanceID: UUID, state: InstanceRecord.State, currentTask: UUID?, runningTasks: Int, prefetch: Int? = nil,
        error: String? = nil
    ) async throws {
        try await execute(
            "update instance \(instanceID)",
            """
            UPDATE agent_instances SET state = \(state.rawValue), current_task = \(currentTask), running_tasks = \(runningTasks),
                   prefetch = \(prefetch),
                   error = \(error), updated_at = now()
            WHERE instance_id = \(instanceID)
            """)
    }

    public func instances(agentID: String? = nil) async throws -> [InstanceRecord] {
        var result: [InstanceRecord] = []
        try await query(
            "list instances",
            """
            SELECT instance_id, agent_id, version, worker_id, state, current_task, running_tasks, prefetch, started_at, updated_at, error
            FROM agent_instances WHERE (\(agentID)::text IS NULL OR agent_id = \(agentID))
            ORDER BY agent_id, started_at
            """
        ) { row in
            let (id, agent, version, worker, state, task, running, prefetch, started, updated, error) =
                try row.decode((UUID, String, String, String, String, UUID?, Int, Int?, Date, Date, String?).self)
            result.append(
                InstanceRecord(
                    instanceID: id, agentID: agent, version: version, workerID: worker,
                    state: InstanceRecord.State(rawValue: state) ?? .error, currentTask: task,
                    runningTasks: running, prefetch: prefetch, startedAt: started, updatedAt: updated, error: error))
        }
        return result
    }

    /// How many instances of each agent are taking events right now: consuming (idle or running) on a worker that is
    /// running and whose heartbeat is younger than `expiry`. Workers divide an agent's `max_parallel_tasks` among its
    /// instances by this count (see `AgentRunner.prefetch`). Agents with no such instance are absent.
    public func consumingInstances(agentID: String? = nil, expiry: Duration) async throws -> [String: Int] {
        var counts: [String: Int] = [:]
        try await query(
            "count consuming instances",
            """
            SELECT i.agent_id, count(*)::int8 FROM agent_instances i JOIN workers w ON w.worker_id = i.worker_id
            WHERE i.state IN ('idle', 'running') AND w.status = 'running'
              AND w.heartbeat_at > now() - make_interval(secs => \(expiry.inSeconds))
              AND (\(agentID)::text IS NULL OR i.agent_id = \(agentID))
            GROUP BY i.agent_id
            """
        ) { row in
            let (agent, count) = try row.decode((String, Int).self)
            counts[agent] = count
        }
        return counts
    }

    // MARK: Desired states

    /// Sets what an agent should do. Throws `notFound` when the agent was never published.
    public func setDesiredState(_ state: DesiredState, agentID: String) async throws {
        var found = false
        try await query(
            "set \(agentID) \(state.rawValue)", writes: true,
            """
            UPDATE agents SET desired_state = \(state.rawValue), updated_at = now() WHERE agent_id = \(agentID) RETURNING agent_id
            """
        ) { _ in found = true }
        if !found {
            throw StoreError(.notFound, "agent '\(agentID)' is not published; publish it with `agentry agents publish \(agentID)` first")
        }
    }

    /// A published (not retired) agent as workers see it.
    public struct ActiveAgent: Sendable, Hashable {
        public var agentID: String
        public var version: String
        public var desired: DesiredState
        /// The routing patterns its queue is bound to.
        public var patterns: [String]
        /// Retired: nothing new reaches its queue; workers drain what is left, then stop serving it.
        public var retired: Bool
        /// The canary, when the agent has one: the version that takes a share of its events.
        public var canary: AgentState.Canary? = nil
    }

    /// Every published agent (retired ones included) with its active version, desired state, bound patterns and canary.
    public func activeAgents() async throws -> [ActiveAgent] {
        var result: [ActiveAgent] = []
        try await query(
            "active agents",
            """
            SELECT agent_id, active_version, desired_state, bound_patterns::text, status = 'retired', canary_version, canary_percent
            FROM agents WHERE active_version IS NOT NULL ORDER BY agent_id
            """
        ) { row in
            let (agent, version, desired, patterns, retired, canaryVersion, canaryPercent) =
                try row.decode((String, String, String, String, Bool, String?, Int32?).self)
            let list = try StoredJSON.strings(patterns, "the bound patterns of \(agent)")
            let canary = canaryVersion.flatMap { version in canaryPercent.map { AgentState.Canary(version: version, percent: Int($0)) } }
            result.append(
                ActiveAgent(
                    agentID: agent, version: version, desired: DesiredState(rawValue: desired) ?? .running,
                    patterns: list, retired: retired, canary: canary))
        }
        return result
    }

    // MARK: Status hubs

    /// Registers a status hub with clients, until `expiry` from now: while any registration is current, changes to
    /// runs, instances, locks and agents notify `agentry_status` (migration 0016); otherwise they notify nobody.
    public func watchStatus(hubID: String, expiry: Duration) async throws {
        try await execute(
            "register status hub \(hubID)",
            """
            INSERT INTO status_watchers (hub_id, expires_at) VALUES (\(hubID), now() + make_interval(secs => \(expiry.inSeconds)))
            ON CONFLICT (hub_id) DO UPDATE SET expires_at = EXCLUDED.expires_at
            """)
    }

    /// Ends a status hub's registration (and forgets registrations that expired long ago).
    public func unwatchStatus(hubID: String) async throws {
        try await execute(
            "unregister status hub \(hubID)",
            """
            DELETE FROM status_watchers WHERE hub_id = \(hubID) OR expires_at < now() - interval '1 hour'
            """)
    }
}
