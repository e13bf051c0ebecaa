import AMQP
public import AgentryBus
public import AgentryCore
public import AgentryStore
public import Foundation

/// An operator's retry of a run: its event runs again for its agent. While the agent has not completed the event it
/// is the same event, sent to the agent's queue (as a lost run's event is republished, see `republishHandedOver`) with
/// the next attempt number: the new run is one more attempt of it. An agent completes an event once (a success, a
/// skip, or an end for good: rejected, over budget, its retry cancelled), and a redelivery of a completed event is
/// acked without running; so a completed event runs again as a copy, a new event (new id, same type, payload and
/// priority, caused by the original and in its chain), logged and sent to that agent's queue only.
public struct RunRetry: Sendable {
    /// What a retry of a run would do.
    public enum Decision: Sendable, Equatable {
        /// The same event, as this attempt.
        case attempt(Int)
        /// A copy of the event (its first attempt): the agent completed the original.
        case copy
        /// Not now, and why.
        case refused(String)
    }

    /// What a retry did.
    public struct Retried: Sendable {
        public var agentID: String
        /// The event that runs: the run's own, or its copy.
        public var eventID: String
        public var attempt: Int
        public var copy: Bool
        public var message: String
    }

    let store: RuntimeStore
    let eventLog: EventLogStore
    let bus: EventBus

    public init(store: RuntimeStore, eventLog: EventLogStore, bus: EventBus) {
        self.store = store
        self.eventLog = eventLog
        self.bus = bus
    }

    /// States in which an attempt settles its event for its agent (as the claim reads them).
    static let settling: Set<TaskRun.State> = [.succeeded, .skipped, .rejected, .overBudget]

    public static func decide(_ run: TaskRun, _ facts: RuntimeStore.AttemptFacts) -> Decision {
        let id = run.runID.uuidString.lowercased()
        if let parent = run.parentRunID {
            return .refused(
                "run \(id) is a task delegated by run \(parent.uuidString.lowercased()); a delegated task runs again with its parent: retry the root run \((run.rootRunID ?? parent).uuidString.lowercased())"
            )
        }
        if !run.state.isFinished { return .refused("run \(id) has not finished (it is \(run.state.rawValue)); cancel it first or wait for it") }
        if let open = facts.attempts.first(where: { !$0.state.isFinished }) {
            return .refused(
                "attempt \(open.attempt) of this event (run \(open.runID.uuidString.lowercased())) has not finished (it is \(open.state.rawValue))")
        }
        if let last = facts.attempts.last, pendingRetry(last, facts) {
            return .refused(
                "attempt \(last.attempt) waits for its retry, due at \(last.retryAt.map(Timestamp.format) ?? "?"); cancel that retry first to retry now"
            )
        }
        if facts.attempts.contains(where: { settling.contains($0.state) || facts.retryCancelled.contains($0.runID) }) { return .copy }
        return .attempt((facts.attempts.map(\.attempt).max() ?? run.attempt) + 1)
    }

    /// Whether the run can be cancelled: it runs, or it failed and waits for its retry.
    public static func cancellable(_ run: TaskRun, _ facts: RuntimeStore.AttemptFacts) -> Bool {
        run.state == .running || (facts.attempts.last?.runID == run.runID && pendingRetry(run, facts))
    }

    static func pendingRetry(_ run: TaskRun, _ facts: RuntimeStore.AttemptFacts) -> Bool {
        [.failed, .timedOut].contains(run.state) && run.retryAt != nil && !facts.retryCancelled.contains(run.runID)
    }

    /// Runs the run's event again for its agent (see the type's description). Throws `notFound` for an unknown run
    /// and `conflict` when it may not be retried now.
    public func retry(runID: UUID) async throws -> Retried {
        let id = runID.uuidString.lowercased()
        guard let run = try await store.run(id: runID) else { throw StoreError(.notFound, "no run \(id)") }
        let facts = try await store.attemptFacts(of: run)
        let decision = Self.decide(run, facts)
        if case .refused(let why) = decision { throw StoreError(.conflict, why) }
        guard let event = try await event(of: run, facts) else {
            throw StoreError(.conflict, "the event \(run.eventID) of run \(id) is no longer kept (neither in event_log nor with its runs)")
        }
        let queue = "agentry.agent.\(run.agentID)"
        switch decision {
        case .attempt(let attempt):
            try await bus.publish(event, toQueue: queue, headers: [DeadLetters.Header.attempt: .int(Int64(attempt))])
            return Retried(
                agentID: run.agentID, eventID: event.id.rawValue, attempt: attempt, copy: false,
                message: "event \(event.id.rawValue) sent to \(run.agentID) again, as attempt \(attempt)")
        case .copy:
            var copy = event.followUp(type: event.type, payload: event.payload, priority: event.priority, source: event.source)
            copy.timestamp = Date()
            _ = try await eventLog.insert([copy])
            try await bus.publish(copy, toQueue: queue, headers: [DeadLetters.Header.attempt: .int(1)])
            return Retried(
                agentID: run.agentID, eventID: copy.id.rawValue, attempt: 1, copy: true,
                message:
                    "\(run.agentID) completed event \(event.id.rawValue) already (an agent completes an event once); its copy \(copy.id.rawValue) sent to \(run.agentID)"
            )
        case .refused(let why):
            throw StoreError(.conflict, why)
        }
    }

    /// The run's event: as logged, or as kept with one of its attempts.
    public func event(of run: TaskRun, _ facts: RuntimeStore.AttemptFacts) async throws -> Event? {
        if let id = EventID(run.eventID), let entry = try await eventLog.entry(id) { return entry.event }
        guard let kept = facts.keptEvent else { return nil }
        let body = Array(kept.utf8)
        let type = (try? JSON.parse(body))?[path: "type"]?.stringValue ?? run.eventType
        return try? EventWireFormat.decode(body: body, envelope: .init(routingKey: type))
    }
}
