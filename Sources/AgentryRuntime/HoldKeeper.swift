public import AgentryCore
public import AgentryStore
import Foundation
public import Logging
import NIOConcurrencyHelpers
public import ServiceLifecycle

/// Keeps the holds people ask for (`agentry locks acquire`, the admin API, the status page): every worker and every
/// `agentry admin` runs one, and the one that leads the role `agentry.holds` (a ``Leadership``) acts.
///
/// A hold is a session-level advisory lock, so it can live only in a process that stays: the CLI and the admin API
/// write the request to `lock_holds` (``LockHoldStore``) and the leader takes it through its own ``LockManager``, as an
/// agent's run would (queued at the request's priority behind the waiters that rank before it, for at most the
/// request's wait), holds it on that manager's session until `hold_until` or until its owner gives it back, then
/// releases it, which wakes the waiting agents through the lock manager's notification.
///
/// When the leader stops (shutdown, crash, lost connection) its sessions end and PostgreSQL frees its holds; the next
/// leader (within about a second) takes again every hold still `held`, queued like any request: a waiter that ranks
/// before it, or that asks in between, may have the resource first. docs/locks.md says so.
public final class HoldKeeper: Sendable {
    public struct Options: Sendable {
        /// How often the leader looks at the requests without a notification. Default 1 s.
        public var interval: Duration = .seconds(1)
        /// How often a keeper that does not lead asks to. Default 1 s.
        public var followerInterval: Duration = .seconds(1)
        /// A request whose wait ended this long before any keeper saw it is withdrawn without trying (as long as
        /// ``HoldDesk`` waits for a keeper). Default 15 s.
        public var staleGrace: Duration = .seconds(15)
        /// The options of the keeper's own lock manager.
        public var lockOptions = LockManager.Options()
        public init() {}
    }

    /// What the keeper does for one hold.
    enum Work: Sendable {
        /// Waiting for the resource (the task is the lock manager's `acquire`).
        case taking(Task<Void, Never>)
        case holding(LockHold)
    }

    let database: Database
    let store: LockHoldStore
    let leadership: Leadership
    let locks: LockManager
    let keeperID: String
    let options: Options
    let logger: Logger
    let work = NIOLockedValueBox<[UUID: Work]>([:])
    let wakeup = Wakeup()

    /// - Parameters:
    ///   - keeperID: names the keeper in `lock_holds.keeper_id` and `resource_locks.worker_id` (the worker's id).
    ///   - announce: publishes the keeper's `resource.*` events (as a worker's lock manager does).
    public init(
        database: Database, keeperID: String, options: Options = Options(), logger: Logger,
        announce: @escaping @Sendable (Event) async -> Void
    ) {
        var logger = logger
        logger[metadataKey: "agentry.component"] = "holds"
        self.database = database
        self.store = LockHoldStore(database: database, logger: logger)
        self.leadership = Leadership(database: database, name: LockHoldStore.leadershipName, logger: logger)
        self.locks = LockManager(database: database, workerID: keeperID, options: options.lockOptions, logger: logger, announce: announce)
        self.keeperID = keeperID
        self.options = options
        self.logger = logger
    }

    /// Keeps holds (while leading) until the task is cancelled or the graceful shutdown begins; then gives back what
    /// it holds (still `held` in `lock_holds`, for the next leader) and the lead.
    public func run() async {
        let lockService = Task { await locks.run() }
        let subscription = database.notifications.subscribe(to: [LockHoldStore.channel]) { [wakeup] event in
            if case .notification = event { wakeup.signal() }
            if case .listening = event { wakeup.signal() }
        }
        await cancelWhenGracefulShutdown {
            var leading = false
            while !Task.isCancelled {
                let leads = await self.leadership.lead()
                if leads != leading {
                    leading = leads
                    self.logger.info(leads ? "keeping people's holds" : "no longer keeping people's holds", metadata: ["worker": "\(self.keeperID)"])
                }
                if leads {
                    await self.sweep()
                } else {
                    await self.giveUpAll()
                }
                await self.wakeup.wait(for: leads ? self.options.interval : self.options.followerInterval)
            }
        }
        subscription.cancel()
        await giveUpAll()
        leadership.resign()
        locks.shutdown()
        await lockService.value
    }

    /// One look at the live requests and holds: takes what is asked for (or held, by a keeper that stopped), ends what
    /// ran out, and gives back what was given back or withdrawn.
    func sweep() async {
        let live: [LockHoldRecord]
        // PostgreSQL's time, not this host's: a keeper whose clock runs minutes ahead must not end people's holds
        // early, nor one whose clock runs behind keep them late.
        let now: Date
        do {
            live = try await store.live()
            now = try await store.databaseNow()
        } catch {
            logger.warning("cannot read people's holds", metadata: ["error": "\(error)"])
            return
        }
        let liveIDs = Set(live.map(\.id))
        for record in live where work.withLockedValue({ $0[record.id] }) == nil {
            switch record.state {
            case .requested where record.waitUntil.addingTimeInterval(options.staleGrace.inSeconds) < now:
                _ = try? await store.end(
                    record.id, .timedOut, message: "no hold keeper took the request up within its wait", from: [.requested], freed: true)
            case .held where (record.holdUntil ?? now) <= now:
                _ = try? await store.end(record.id, .expired, message: "its time ran out", from: [.held], freed: true)
            default:
                take(record, now: now)
            }
        }
        // Given back, withdrawn or ended by someone else: let go.
        let gone = work.withLockedValue { w in w.filter { !liveIDs.contains($0.key) } }
        for (id, item) in gone {
            switch item {
            case .taking(let task): task.cancel()
            case .holding(let hold):
                work.withLockedValue { _ = $0.removeValue(forKey: id) }
                await locks.release(hold)
                try? await store.markFreed(id)
                logger.info("gave a person's hold back", metadata: ["agentry.resource": "\(hold.resources[0])", "agentry.owner": "\(hold.owner)"])
            }
        }
    }

    /// Starts taking `record`'s resource for its owner: a new request, or a hold this keeper does not hold (its keeper
    /// stopped, or its session was lost).
    private func take(_ record: LockHoldRecord, now: Date) {
        let again = record.state == .held
        // Held already: it lasts until its hold_until and may wait for it; requested: it lasts its hold_for, and may
        // wait until its wait_until.
        let hold = again ? Duration.seconds(max(0.001, (record.holdUntil ?? now).timeIntervalSince(now))) : record.holdFor
        let waitSeconds = (again ? record.holdUntil ?? now : record.waitUntil).timeIntervalSince(now)
        let wait: Duration? = waitSeconds > 0.001 ? .milliseconds(Int64(waitSeconds * 1000)) : nil
        // Recorded before the task can end (and forget it).
        work.withLockedValue { w in
            w[record.id] = .taking(Task { await self.acquire(record, hold: hold, wait: wait, again: again) })
        }
    }

    private func acquire(_ record: LockHoldRecord, hold duration: Duration, wait: Duration?, again: Bool) async {
        let id = record.id
        try? await store.markWorking(
            id, keeper: keeperID, message: again ? "taking it again: the keeper that held it stopped or lost its session" : nil)
        do {
            let hold = try await locks.acquire(
                [record.resource], owner: record.owner, priority: record.priority, hold: duration, wait: wait
            ) { [weak self] loss in
                guard let self else { return }
                Task { await self.lost(id, loss) }
            }
            // Not cancellable from here on: what was taken is recorded, or given back.
            await Task.detached { await self.adopt(record, hold) }.value
        } catch is CancellationError {
            try? await store.markFreed(id)
            work.withLockedValue { _ = $0.removeValue(forKey: id) }
        } catch let error as LockError where error.code == .timedOut || error.code == .unavailable {
            // Ended before the work is forgotten, so that a sweep in between does not take it up again.
            defer { work.withLockedValue { _ = $0.removeValue(forKey: id) } }
            let ended: Bool?
            if again {
                ended = try? await store.end(
                    id, .expired, message: "its time ran out while it waited to be taken again: \(error.message)", from: [.held], freed: true)
            } else {
                ended = try? await store.end(id, .timedOut, message: error.message, from: [.requested], freed: true)
            }
            if ended == true {
                logger.info(
                    "a person's request was not granted in time",
                    metadata: ["agentry.resource": "\(record.resource)", "agentry.owner": "\(record.owner)"])
            }
        } catch {
            // The database, or a shutdown: the next sweep tries again while the request may still wait.
            work.withLockedValue { _ = $0.removeValue(forKey: id) }
            logger.warning("cannot take a person's hold", metadata: ["agentry.resource": "\(record.resource)", "error": "\(error)"])
        }
    }

    /// Records a hold just taken, or gives it back when its request was withdrawn meanwhile.
    private func adopt(_ record: LockHoldRecord, _ hold: LockHold) async {
        let id = record.id
        work.withLockedValue { $0[id] = .holding(hold) }
        var recorded = false
        do {
            recorded = try await store.markHeld(
                id, keeper: keeperID, acquiredAt: hold.acquiredAt, holdUntil: hold.expiresAt, fencingToken: hold.fencingToken)
        } catch {
            logger.warning("cannot record a person's hold; giving it back", metadata: ["error": "\(error)"])
        }
        if !recorded {
            work.withLockedValue { _ = $0.removeValue(forKey: id) }
            await locks.release(hold)
            try? await store.markFreed(id)
            return
        }
        logger.info(
            "holding a resource for a person",
            metadata: [
                "agentry.resource": "\(record.resource)", "agentry.owner": "\(record.owner)",
                "agentry.hold_until": "\(Timestamp.format(hold.expiresAt))",
            ])
    }

    /// The lock manager took a hold back (its time ran out) or its session ended.
    private func lost(_ id: UUID, _ loss: LockLoss) async {
        switch loss {
        case .expired:
            _ = try? await store.end(id, .expired, message: "its time ran out", from: [.held], freed: true)
            work.withLockedValue { _ = $0.removeValue(forKey: id) }
        case .connectionLost:
            work.withLockedValue { _ = $0.removeValue(forKey: id) }
            // Still `held`: the next sweep takes it again (a forced release ended it first, so it is not taken again).
            logger.warning("lost the session of a person's hold; taking it again", metadata: ["reason": "\(loss)"])
            wakeup.signal()
        }
    }

    /// Gives back every hold and withdraws every request this keeper works on (it no longer leads, or stops). The
    /// rows stay as they are, for the next leader.
    func giveUpAll() async {
        let all = work.withLockedValue { w in
            defer { w = [:] }
            return w
        }
        for (_, item) in all {
            switch item {
            case .taking(let task):
                task.cancel()
                await task.value
            case .holding(let hold): await locks.release(hold)
            }
        }
        if !all.isEmpty { logger.notice("gave back \(all.count) people's holds; the next keeper takes them again") }
    }
}

/// A ``HoldKeeper`` as a service of a `ServiceGroup` (`agentry admin`).
public struct HoldKeeperService: Service {
    public let keeper: HoldKeeper
    public init(keeper: HoldKeeper) { self.keeper = keeper }
    public func run() async throws { await keeper.run() }
}
