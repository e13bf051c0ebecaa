import AgentryBus
public import AgentryCore
import AgentryStore
import Foundation

extension AgentRegistry {
    /// Invokes an agent by name (`agentry agents invoke`, `POST /api/agents/{id}/invoke`): an event of type
    /// `task.<task>` sent straight to its queue, past its triggers, which runs once at the agent's current version
    /// (or `version`, a published one). `on-demand` agents run only this way or when delegated to. The event is logged
    /// in `event_log` before it is sent; the same `id` given twice is one event (its run is taken once).
    public func invoke(
        agentID: String, task: String = "invoke", payload: JSONObject, priority: Priority = .normal, version: String? = nil,
        by who: String, id: EventID? = nil
    ) async throws -> Event {
        if let problem = EventType.problem(with: "task.\(task)") { throw RegistryError(.invalid, "task '\(task)': \(problem)") }
        guard let state = try await store.state(of: agentID), let active = state.activeVersion, !state.retired else {
            throw RegistryError(.notFound, "agent \(agentID) is not published (or retired): publish it before invoking it")
        }
        if let version, version != active {
            guard let stored = try await store.version(version, of: agentID), stored.status == .published else {
                throw RegistryError(.notFound, "version \(version) of \(agentID) is not published")
            }
        }
        var event = Event(type: "task.\(task)", payload: payload, priority: priority, source: "agentry.invoke")
        if let id { event.id = id }
        _ = try await EventLogStore(database: store.database, logger: logger).insert([event])
        try await bus.publish(
            event, toQueue: "agentry.agent.\(agentID)", headers: DirectDelivery.invoke(by: who, version: version).headers)
        return event
    }
}
