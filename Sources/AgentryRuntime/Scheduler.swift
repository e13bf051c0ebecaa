public import AgentryBus
import AgentryCore
public import AgentryStore
import Foundation
public import Logging
import ServiceLifecycle

/// The scheduler every worker runs (unless `--no-scheduler`): it claims the due ticks of schedules and publishes the
/// delayed events (and ticks) whose time has come.
///
/// One worker at a time leads (a session-level advisory lock, ``Leadership``) and polls often; the others ask to lead
/// once a second, so a leader that dies is replaced within about a second. Correctness does not depend on having one
/// leader: a tick is claimed by a compare-and-set on the schedule's `next_run` in the statement that writes its event,
/// and a delayed event is leased (`FOR UPDATE SKIP LOCKED`) before it is published; an event whose publisher died
/// before marking it published is published again under the same id, which the event log and the run claims take once.
public struct Scheduler: Sendable {
    public struct Options: Sendable {
        /// How often the leader looks for due ticks and events. Default: 250 ms.
        public var interval: Duration = .milliseconds(250)
        /// How often a worker that does not lead asks to. Default: 1 s.
        public var followerInterval: Duration = .seconds(1)
        /// Ticks are claimed this long before their time, and delivered at it. Default: 2 s.
        public var lookahead: Duration = .seconds(2)
        /// How long a leased event is left to its scheduler before another may publish it. Default: 10 s.
        public var lease: Duration = .seconds(10)
        /// A failed publish is tried again after this. Default: 1 s.
        public var retryAfter: Duration = .seconds(1)
        /// Published and cancelled delayed events are deleted this long after. Default: 7 days.
        public var retention: Duration = .seconds(7 * 86_400)
        /// How often the leader looks at run trees: waits past their deadline, children and resumes whose publish
        /// was lost. Default: 1 s.
        public var runTreeInterval: Duration = .seconds(1)
        /// A child or resume recorded this long ago and not published counts as lost (its worker died in between).
        /// Default: 5 s.
        public var publishGrace: Duration = .seconds(5)
        public init() {}
    }

    let bus: EventBus
    let schedules: ScheduleStore
    let delayed: DelayedEventStore
    let leadership: Leadership
    let delegations: DelegationStore
    let database: Database
    let workerID: String
    let options: Options
    let logger: Logger

    public init(bus: EventBus, database: Database, workerID: String, options: Options = Options(), logger: Logger) {
        self.bus = bus
        self.schedules = ScheduleStore(database: database, logger: logger)
        self.delayed = DelayedEventStore(database: database, logger: logger)
        self.leadership = Leadership(database: database, name: SchedulerRole.leadershipName, logger: logger)
        self.delegations = DelegationStore(database: database, logger: logger)
        self.database = database
        self.workerID = workerID
        self.options = options
        self.logger = logger
    }

    /// Runs until the task is cancelled or the graceful shutdown begins; gives up the lead when it ends.
    public func run() async {
        defer { leadership.resign() }
        await cancelWhenGracefulShutdown {
            var leading = false
            var lastPrune = ContinuousClock.now - .seconds(3600)
            var lastSweep = ContinuousClock.now - .seconds(3600)
            while !Task.isCancelled {
                let leads = await leadership.lead()
                if leads != leading {
                    leading = leads
                    logger.info(leads ? "leading the scheduler" : "no longer leading the scheduler", metadata: ["worker": "\(workerID)"])
                }
                var pause = options.followerInterval
                if leads {
                    pause = await step(now: Date())
                    if ContinuousClock.now - lastSweep >= options.runTreeInterval {
                        lastSweep = .now
                        await sweepRunTrees()
                        await expireApprovals()
                        await wakeDeferred()
                    }
                    if ContinuousClock.now - lastPrune > .seconds(60) {
                        lastPrune = .now
                        await prune()
                        await releaseAbandonedReservations()
                    }
                }
                try? await Task.sleep(for: pause)
            }
        }
    }

    /// One round of the leader: one read says what is due; due ticks are claimed and due events published. Returns
    /// how long to wait for the next round: the interval, or less when something is due sooner.
    func step(now: Date) async -> Duration {
        let due: (tick: Date?, delivery: Date?)
        do {
            due = try await schedules.nextDue()
        } catch {
            logger.warning("cannot read what the scheduler has due", metadata: ["error": "\(error)"])
            return options.interval
        }
        let horizon = now.addingTimeInterval(options.lookahead.inSeconds)
        if let tick = due.tick, tick <= horizon { await claimTicks(now: now) }
        var next = due.delivery
        if let delivery = due.delivery, delivery <= now {
            await publishDue()
            next = try? await delayed.nextDelivery()
        }
        // A tick just claimed is a delivery a little later: the next round's read finds it.
        guard let next else { return options.interval }
        let wait = next.timeIntervalSinceNow
        return wait <= 0 ? .milliseconds(10) : min(options.interval, .milliseconds(Int64(wait * 1000) + 1))
    }

    /// Claims the ticks of every schedule due within the lookahead; each claim writes the ticks' events.
    func claimTicks(now: Date) async {
        let due: [ScheduleRecord]
        do {
            due = try await schedules.due(until: now.addingTimeInterval(options.lookahead.inSeconds))
        } catch {
            logger.warning("cannot read the due schedules", metadata: ["error": "\(error)"])
            return
        }
        for record in due {
            guard let expected = record.nextRun else { continue }
            let plan = record.schedule.plan(nextRun: expected, now: now, lookahead: options.lookahead)
            do {
                if try await schedules.claim(record, expected: expected, plan: plan) {
                    AgentryMetrics.scheduleTicks(schedule: record.schedule.name, claimed: plan.fire.count, missed: plan.missed)
                    if plan.missed > 0 {
                        logger.notice(
                            "schedule \(record.schedule.name): \(plan.missed) ticks missed (no scheduler ran within their grace of \(record.schedule.graceSeconds) s); \(record.schedule.missed == .fireOnce ? "fired once for the latest" : "skipped")"
                        )
                    }
                    if plan.nextRun == nil {
                        logger.info("schedule \(record.schedule.name) has no more ticks (its end has passed)")
                    }
                }
            } catch {
                logger.warning("cannot claim the ticks of schedule \(record.schedule.name)", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Publishes the delayed events whose time has come (at most 500 a round), with the broker's confirm, then marks
    /// them published.
    func publishDue() async {
        let due: [DelayedEvent]
        do {
            due = try await delayed.lease(limit: 500, by: workerID, for: options.lease)
        } catch {
            logger.warning("cannot read the due delayed events", metadata: ["error": "\(error)"])
            return
        }
        guard !due.isEmpty else { return }
        let published = await withTaskGroup(of: EventID?.self) { group in
            for item in due {
                group.addTask {
                    do {
                        try await bus.publish(item.event)
                        AgentryMetrics.delayedPublished(
                            kind: item.scheduleName == nil ? "delayed" : "tick", lateness: -item.deliverAt.timeIntervalSinceNow)
                        return item.event.id
                    } catch {
                        logger.warning(
                            "cannot publish delayed event \(item.event.id) (\(item.event.type)); trying again", metadata: ["error": "\(error)"])
                        try? await delayed.markFailed(item.event.id, error: "\(error)", retryAfter: options.retryAfter)
                        return nil
                    }
                }
            }
            var ids: [EventID] = []
            for await id in group { if let id { ids.append(id) } }
            return ids
        }
        do {
            try await delayed.markPublished(published)
        } catch {
            // Their leases run out and they are published again, under the same ids: the log and the runs take them once.
            logger.warning("cannot mark \(published.count) delayed events published", metadata: ["error": "\(error)"])
        }
    }

    /// Approvals past their expiry: their runs end `rejected`.
    func expireApprovals() async {
        do {
            let count = try await ApprovalControl(store: RuntimeStore(database: database, logger: logger), bus: bus, logger: logger).expireDue()
            if count > 0 { logger.info("\(count) approval requests expired; their runs were rejected") }
        } catch {
            logger.warning("cannot expire approvals", metadata: ["error": "\(error)"])
        }
    }

    /// Deferred runs whose time came (their key freed, a rate token due, their budget's next period, the end of their
    /// debounce window) are sent back to their agents' queues.
    func wakeDeferred() async {
        let flow = RuntimeStore(database: database, logger: logger).flow
        do {
            for wake in try await flow.wakeDue() {
                AgentryMetrics.runWoken(reason: "deferred")
                try await DirectDelivery.publish(wake, on: bus)
                try await delegations.markResumePublished(wake.runID)
            }
        } catch {
            logger.warning("cannot wake the deferred runs", metadata: ["error": "\(error)"])
        }
    }

    /// Budget reservations of runs whose worker died before settling them are given back.
    func releaseAbandonedReservations() async {
        do {
            let count = try await RuntimeStore(database: database, logger: logger).budgets.releaseAbandoned(olderThan: .seconds(600))
            if count > 0 { logger.notice("gave back \(count) budget reservations of runs that ended without settling them") }
        } catch {
            logger.warning("cannot give back abandoned budget reservations", metadata: ["error": "\(error)"])
        }
    }

    /// Run trees: waiting runs past their deadline resume (their pending children recorded as timed out); children
    /// and resumes whose worker died between recording and publishing them are published.
    func sweepRunTrees() async {
        do {
            for wake in try await delegations.expireWaits() {
                AgentryMetrics.runWoken(reason: "deadline")
                logger.info("run's await deadline passed; resuming it", metadata: ["agentry.run.id": "\(wake.runID)"])
                try await DirectDelivery.publish(wake, on: bus)
                try await delegations.markResumePublished(wake.runID)
            }
            for wake in try await delegations.unpublishedResumes(olderThan: options.publishGrace) {
                try await DirectDelivery.publish(wake, on: bus)
                try await delegations.markResumePublished(wake.runID)
            }
            let children = try await delegations.unpublishedChildren(olderThan: options.publishGrace)
            for child in children {
                try await DirectDelivery.publish(child, on: bus)
                try await delegations.markPublished(parent: child.child.parentRunID, positions: [child.child.position])
            }
            if !children.isEmpty { logger.notice("published \(children.count) delegated tasks whose worker did not") }
        } catch {
            logger.warning("cannot look after run trees", metadata: ["error": "\(error)"])
        }
    }

    func prune() async {
        do {
            let count = try await delayed.prune(olderThan: options.retention)
            if count > 0 { logger.debug("deleted \(count) delayed events published or cancelled long ago") }
        } catch {
            logger.warning("cannot prune delayed events", metadata: ["error": "\(error)"])
        }
    }
}
