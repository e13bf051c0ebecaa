import AMQP
import AgentryBus
import AgentryCore
import AgentryStore
import Foundation
import Logging

/// Flow control and budgets: what a claimed run passes before its handler starts (expiry, its key's concurrency, a
/// rate token, its budgets), the debounce of arriving events, and what a run's end gives back. A run that must wait
/// is deferred: its slot given back, its event kept with it, its delivery acked; the scheduler's leader sends it
/// back to this agent's queue when its time comes (see ``FlowStore``).
extension AgentRunner {
    /// Whether runs of `definition` pass the gates: they then announce `agent.task.started` once they pass, not at
    /// their claim.
    func isGated(_ definition: AgentDefinition) -> Bool {
        (definition.flow?.limitsRuns ?? false) || !applicableBudgets(definition).isEmpty
    }

    /// The agent's budgets and those of the event pools it draws from.
    func applicableBudgets(_ definition: AgentDefinition) -> [AppliedBudget] {
        let own = definition.budgets.map { AppliedBudget(scope: "agent:\(agentID)", budget: $0) }
        let pools = definition.referencedPools.flatMap { pool in
            (context.topology.poolBudgets[pool] ?? []).map { AppliedBudget(scope: "pool:\(pool)", budget: $0) }
        }
        return own + pools
    }

    /// The run, ready to start, or nil when it was deferred, skipped or refused (its delivery settled).
    func passGates(_ run: TaskRun, _ received: Received, restarted: Bool) async -> TaskRun? {
        var run = run
        let definition = received.definition
        let event = received.event
        let flow = definition.flow
        let key = flow?.key(for: event) ?? ""
        let envelope = String(decoding: EventWireFormat.encode(event), as: UTF8.self)
        if let expire = flow?.expireAfterSeconds, let reason = Self.expiry(event, after: expire) {
            return await end(run, received, state: .skipped, message: reason)
        }
        if let limit = flow?.concurrency {
            let message = "deferred: \(limit) run(s) of key '\(key)' are running (flow.concurrency \(limit)); it starts when one ends"
            let runCopy = run
            guard
                let taken = await persist(
                    "take the run's flow key",
                    {
                        try await self.context.store.flow.takeKey(
                            runCopy, key: key, limit: limit, event: envelope, fallback: Date().addingTimeInterval(Self.keyFallback), message: message)
                    })
            else {
                release(received.delivery)
                return nil
            }
            if !taken {
                received.delivery.ack()
                await cancelDeferredIfMarked(run, received)
                logger.debug("run deferred: its key is busy", metadata: ["agentry.run.id": "\(run.runID)", "agentry.flow.key": "\(key)"])
                return nil
            }
            run.flowKey = key
        }
        if let rate = flow?.rate {
            let bucket = flow?.bucketKey(for: key) ?? ""
            let agentID = self.agentID
            guard
                let wait = await persist(
                    "take a rate token",
                    {
                        try await self.context.store.flow.takeToken(
                            agentID: agentID, bucket: bucket, capacity: Double(rate.limit), refillPerSecond: rate.refillPerSecond)
                    })
            else {
                release(received.delivery)
                return nil
            }
            if let wait {
                let whose = bucket.isEmpty ? "\(agentID)" : "key '\(bucket)'"
                return await deferRun(
                    run, received, reason: .rate, until: Date().addingTimeInterval(wait), flowKey: run.flowKey,
                    message:
                        "deferred: \(whose) used its rate of \(rate.limit) per \(rate.per.rawValue); next token in \(String(format: "%.1f", wait)) s")
            }
        }
        var applied = applicableBudgets(definition)
        if let root = run.rootRunID ?? received.treeRoot, root != run.runID {
            // A child counts against its root run's budgets too.
            let inherited = await persist("read the root run's budgets") { try await self.context.store.run(id: root)?.budgets } ?? nil
            for budget in AppliedBudget.list(fromJSON: inherited)
            where !applied.contains(where: { $0.scope == budget.scope && $0.budget.unit == budget.budget.unit && $0.budget.per == budget.budget.per })
            {
                applied.append(budget)
            }
        }
        guard !applied.isEmpty else { return run }
        let charges = self.charges(applied, definition: definition)
        let runID = run.runID
        guard let reservation = await persist("reserve the run's budgets", { try await self.context.store.budgets.reserve(runID, charges: charges) })
        else {
            release(received.delivery)
            return nil
        }
        switch reservation {
        case .reserved:
            run.budgets = AppliedBudget.json(applied)
            return run
        case .exceeded(let budget, let usage, let notice):
            if notice { await announce(BudgetNotice(kind: .exceeded, applied: budget, usage: usage)) }
            let spent = "\(usage.used.budgetText) of \(budget.budget.summary) spent, \(usage.reserved.budgetText) reserved by running runs"
            let until = Self.timestamp(usage.periodEnd)
            switch budget.budget.onExceeded {
            case .reject:
                return await end(run, received, state: .overBudget, message: "over budget: \(budget.scope): \(spent) (on_exceeded: reject)")
            case .defer:
                return await deferRun(
                    run, received, reason: .budget, until: usage.periodEnd, flowKey: run.flowKey,
                    message: "deferred: \(budget.scope) is at its budget (\(spent)); it starts in the next period, at \(until)")
            case .pause:
                let owner = budget.agentID ?? agentID
                do {
                    try await AgentControl(store: context.store, connection: context.connection).set(.paused, agentID: owner)
                    logger.warning(
                        "agent paused: its budget is spent", metadata: ["agentry.budget": "\(budget.scope)", "agentry.agent.paused": "\(owner)"])
                } catch {
                    logger.error("cannot pause the agent whose budget is spent", metadata: ["error": "\(error)"])
                }
                return await deferRun(
                    run, received, reason: .budget, until: usage.periodEnd, flowKey: run.flowKey,
                    message:
                        "deferred: \(budget.scope) is at its budget (\(spent)); \(owner) is paused (on_exceeded: pause) and the run waits for the next period, at \(until)"
                )
            }
        }
    }

    /// A queued event older than `expire_after_seconds`: why it is skipped, or nil.
    static func expiry(_ event: Event, after seconds: Double) -> String? {
        let age = Date().timeIntervalSince(event.timestamp)
        guard age > seconds else { return nil }
        return "expired: the event is \(Int(age)) s old, past flow.expire_after_seconds (\(seconds.budgetText) s)"
    }

    /// How long a run deferred for its key waits at most before it is tried again (a run of its key that ends wakes
    /// it sooner; this covers a worker that died before it could).
    static let keyFallback: TimeInterval = 30

    /// The budgets' current periods.
    func charges(_ applied: [AppliedBudget], definition: AgentDefinition) -> [BudgetStore.Charge] {
        let now = Date()
        // With no estimate and no run in the period yet, an llm handler's run reserves its max_tokens.
        var fallback: Double = 0
        if case .llm(let llm)? = definition.handler, let maxTokens = llm.maxTokens { fallback = Double(maxTokens) }
        return applied.map { budget in
            BudgetStore.Charge(
                applied: budget, period: context.options.budgetCalendar.interval(budget.budget.per, containing: now),
                fallbackEstimate: budget.budget.unit == .tokens ? fallback : 0)
        }
    }

    /// Records a claimed run deferred and acks its delivery; nil (the run does not start now).
    private func deferRun(
        _ run: TaskRun, _ received: Received, reason: FlowStore.DeferReason, until: Date, flowKey: String?, message: String
    ) async -> TaskRun? {
        let envelope = String(decoding: EventWireFormat.encode(received.event), as: UTF8.self)
        guard
            let deferred = await persist(
                "defer the run",
                { try await self.context.store.flow.deferRun(run, event: envelope, reason: reason, until: until, message: message, flowKey: flowKey) }
            )
        else {
            release(received.delivery)
            return nil
        }
        if !deferred { logger.info("run was no longer running when it was to be deferred", metadata: ["agentry.run.id": "\(run.runID)"]) }
        received.delivery.ack()
        if deferred { await cancelDeferredIfMarked(run, received) }
        logger.info(
            "run deferred", metadata: ["agentry.run.id": "\(run.runID)", "agentry.defer.reason": "\(reason.rawValue)", "reason": "\(message)"])
        return nil
    }

    /// Ends a claimed run without running it (skipped, over budget) and acks its delivery; nil.
    private func end(_ run: TaskRun, _ received: Received, state: TaskRun.State, message: String) async -> TaskRun? {
        AgentryMetrics.runFinished(agent: agentID, outcome: state.rawValue, seconds: nil)
        guard await persist("record the run", { try await self.context.finish(run, .init(state: state, message: message)) }) != nil else {
            release(received.delivery)
            return nil
        }
        received.delivery.ack()
        logger.info(
            "run not started", metadata: ["agentry.run.id": "\(run.runID)", "agentry.run.state": "\(state.rawValue)", "reason": "\(message)"])
        if case .child? = received.direct {
            await reportToParent(run, received.event, state: state == .overBudget ? .failed : .cancelled, result: nil, message: message)
        }
        return nil
    }

    /// A run that just became deferred, cancelled when a cancel_on event for it was recorded while it was deferred.
    private func cancelDeferredIfMarked(_ run: TaskRun, _ received: Received) async {
        guard !received.definition.cancelOn.isEmpty else { return }
        await cancelWaitingIfMarked(run, event: received.event, definition: received.definition)
    }

    /// An arriving event of a debounced agent: recorded deferred until the window ends, superseding the waiting runs of
    /// its key; its delivery acked.
    func debounce(_ received: Received, window: Double) async {
        let flow = received.definition.flow ?? FlowControl()
        let key = flow.key(for: received.event)
        let until = Date().addingTimeInterval(window)
        let envelope = String(decoding: EventWireFormat.encode(received.event), as: UTF8.self)
        let run = received.run
        let message =
            "debounced: starts at \(Self.timestamp(until)) unless a newer event\(key.isEmpty ? "" : " of key '\(key)'") arrives first (flow.debounce_seconds \(window.budgetText))"
        guard
            let superseded = await persist(
                "record the debounced run",
                { try await self.context.store.flow.debounce(run, key: key, event: envelope, until: until, message: message) })
        else {
            return release(received.delivery)
        }
        AgentryMetrics.consumed(received.event, by: agentID)
        received.delivery.ack()
        if let values = received.definition.cancelValues(of: received.event) {
            // Kept with the run, so that a cancel_on event finds it while it waits; and one that came first cancels it.
            let json = JSON.serialize(.object(values))
            let store = context.store.cancelOn
            await persist("keep the run's cancel_on values") { try await store.keepValues(runID: run.runID, values: json) }
            await cancelWaitingIfMarked(run, event: received.event, definition: received.definition)
        }
        logger.debug("event debounced", metadata: ["agentry.run.id": "\(run.runID)", "agentry.flow.superseded": "\(superseded)"])
    }

    /// After a run's step: its usage counted against its budgets (and thresholds announced), and the next run waiting
    /// for its key woken.
    func afterRun(_ run: TaskRun, definition: AgentDefinition, outcome: HandlerOutcome) async {
        let applied = AppliedBudget.list(fromJSON: run.budgets)
        if !applied.isEmpty {
            let usage = Self.usageAmounts(outcome)
            let charges = self.charges(applied, definition: definition)
            let runID = run.runID
            let notices =
                await persist("count the run's usage against its budgets") {
                    try await self.context.store.budgets.settle(
                        runID, charges: charges, tokens: usage.tokens, cost: usage.cost, currency: usage.currency)
                } ?? []
            for notice in notices { await announce(notice) }
        }
        if let key = run.flowKey, definition.flow?.concurrency != nil {
            let agentID = self.agentID
            await persist("wake the next run of the key") { try await self.context.store.flow.wakeNext(agentID: agentID, key: key) }
        }
    }

    /// The tokens and cost a step used, from its outcome.
    static func usageAmounts(_ outcome: HandlerOutcome) -> (tokens: Double, cost: Double?, currency: String?) {
        guard let usage = outcome.usage else { return (0, nil, nil) }
        return (Double((usage.inputTokens ?? 0) + (usage.outputTokens ?? 0)), usage.cost, usage.currency)
    }

    /// Publishes `budget.warning` or `budget.exceeded`.
    func announce(_ notice: BudgetNotice) async {
        let usage = notice.usage
        var payload: JSONObject = [
            "scope": .string(notice.applied.scope), "unit": .string(usage.unit.rawValue), "per": .string(usage.period.rawValue),
            "limit": .double(usage.limit), "used": .double(usage.used), "reserved": .double(usage.reserved),
            "period_start": .string(Self.timestamp(usage.periodStart)), "period_end": .string(Self.timestamp(usage.periodEnd)),
            "on_exceeded": .string(notice.applied.budget.onExceeded.rawValue), "agent_id": .string(agentID),
        ]
        if let currency = usage.currency { payload["currency"] = .string(currency) }
        if notice.kind == .warning { payload["warn_at"] = .double(notice.applied.budget.warnAt) }
        let event = Event(type: "budget.\(notice.kind.rawValue)", payload: payload, priority: .high, source: context.source)
        logger.warning(
            "budget \(notice.kind.rawValue)",
            metadata: ["agentry.budget": "\(notice.applied.scope)", "agentry.budget.used": "\(usage.used)", "agentry.budget.limit": "\(usage.limit)"])
        await context.announce(event)
    }

    static func timestamp(_ date: Date) -> String { Timestamp.format(date) }
}
