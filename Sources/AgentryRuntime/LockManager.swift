import AgentryBus
public import AgentryCore
public import AgentryStore
public import Foundation
public import Logging
import NIOConcurrencyHelpers

/// The lock manager of one process (a worker, the CLI, a benchmark): mutual exclusion by PostgreSQL advisory locks,
/// waiting in priority order across every host, hand-off by LISTEN/NOTIFY, expiry, and loss detection.
///
/// - A hold lives on a session of its own (``AgentryStore/LockSessions``), so that losing that session (the process
///   dies, an administrator terminates it) frees exactly that hold, and the holder learns it at once (`onLoss`).
/// - A request that cannot be served is queued in `resource_lock_waiters` at its priority; every release notifies
///   channel `agentry_locks` with the freed key and the waiters of that key try again (the database's notification
///   session, ``AgentryStore/Notifications``, shared with the rest of the process). A holder that dies sends no
///   notification: waiters also re-check every `pollInterval`.
/// - A hold past its expiry is taken back by its own manager (its task is told through `onLoss`); a holder that
///   does not (hung, partitioned) has its session terminated by a waiter `takebackGrace` later.
public final class LockManager: Sendable {
    public struct Options: Sendable {
        /// How often a waiter re-checks without a notification (a holder that died notifies nobody). Default 500 ms.
        public var pollInterval: Duration = .milliseconds(500)
        /// How long past its expiry a hold may stay before a waiter terminates its session. Default 5 s.
        public var takebackGrace: Duration = .seconds(5)
        /// How often each hold's session is checked. Default 2 s.
        public var checkInterval: Duration = .seconds(2)
        /// A hold's session that does not answer a check within this is closed and its task stopped. Default 5 s.
        public var checkTimeout: Duration = .seconds(5)
        /// Idle lock sessions kept for the next hold. Default 8.
        public var maxIdleConnections = 8
        /// Publish `resource.acquired`, `.queued`, `.released` and `.expired`. Default true.
        public var announces = true
        /// A request that may wait needs the notification session (the database's, ``AgentryStore/Notifications``) to
        /// listen on ``LockManager/channel``: when it does not within this (or within the request's own wait, if
        /// shorter), the request fails with the reason. Default 10 s.
        public var listenTimeout: Duration = .seconds(10)
        public init() {}
    }

    struct Waiter: Sendable {
        let keys: Set<Int64>
        let wakeup: Wakeup
    }

    struct State: Sendable {
        /// The backend pid of the notification session while it listens on ``LockManager/channel``.
        var listener: Int?
        var listenerWaiters: [UUID: CheckedContinuation<Int, any Error>] = [:]
        /// Why the notification session could not be opened last (nil once it is open).
        var listenerProblem: String?
        var waiters: [UUID: Waiter] = [:]
        var holds: [UUID: LockHold] = [:]
        /// The hold of each lock session that holds one, by ``AgentryStore/LockSession/id``.
        var held: [Int: LockHold] = [:]
        var shutDown = false
        var subscription: Notifications.Subscription?
    }

    let database: Database
    let store: LockStore
    let sessions: LockSessions
    /// Completed by ``shutdown()``.
    let stopped = Completion<Void>()
    let workerID: String?
    let options: Options
    let logger: Logger
    let state: NIOLockedValueBox<State>
    let events: AsyncStream<Event>
    let eventSink: AsyncStream<Event>.Continuation
    let announce: @Sendable (Event) async -> Void
    public static let channel = "agentry_locks"
    static let source = "agentry.locks"

    /// - Parameter announce: publishes the manager's `resource.*` events (in order, off the caller's path).
    public init(
        database: Database, workerID: String?, options: Options = Options(), logger: Logger,
        announce: @escaping @Sendable (Event) async -> Void
    ) {
        self.database = database
        self.store = LockStore(database: database, logger: logger)
        self.workerID = workerID
        self.options = options
        var logger = logger
        logger[metadataKey: "agentry.component"] = "locks"
        self.logger = logger
        self.announce = announce
        (events, eventSink) = AsyncStream<Event>.makeStream()
        let state = NIOLockedValueBox(State())
        self.state = state
        sessions = LockSessions(database: database, maxIdle: options.maxIdleConnections, logger: logger) { [logger] session in
            Self.sessionClosed(session, state: state, logger: logger)
        }
    }

    /// Listens for releases, checks the holds' sessions and publishes the manager's events until ``shutdown()``.
    public func run() async {
        await withDiscardingTaskGroup { group in
            group.addTask {
                for await event in self.events { await self.announce(event) }
            }
            let watching = Task { await self.watch() }
            let subscription = database.notifications.subscribe(to: [Self.channel]) { event in self.notified(event) }
            let stopped = state.withLockedValue { s in
                s.subscription = subscription
                return s.shutDown
            }
            if stopped { subscription.cancel() }
            await self.stopped.value
            watching.cancel()
            self.eventSink.finish()
        }
    }

    /// Every `checkInterval`, asks each hold's session a trivial question. A session that does not answer within
    /// `checkTimeout` (the database is unreachable: it may already have ended the session and granted the lock to
    /// someone else) is closed, which stops the hold's task: better to stop than to run on unguarded.
    private func watch() async {
        while !Task.isCancelled, !isShutDown {
            try? await Task.sleep(for: options.checkInterval)
            await withDiscardingTaskGroup { group in
                for hold in holds where hold.isHeld {
                    group.addTask { await self.check(hold) }
                }
            }
        }
    }

    private func check(_ hold: LockHold) async {
        let session = hold.session
        let answered = NIOLockedValueBox(false)
        let timer = Task {
            try? await Task.sleep(for: options.checkTimeout)
            guard !Task.isCancelled, !answered.withLockedValue({ $0 }), hold.isHeld else { return }
            logger.error(
                "a hold's database session does not answer; closing it",
                metadata: [
                    "agentry.resources": "\(Self.list(hold.resources))", "db.pid": "\(session.pid)",
                ])
            session.close()
        }
        try? await session.check(logger: logger)
        answered.withLockedValue { $0 = true }
        timer.cancel()
    }

    /// Stops listening and closes the idle sessions (holds still held keep theirs until released).
    public func shutdown() {
        let (subscription, waiting) = state.withLockedValue { s in
            s.shutDown = true
            defer { s.listenerWaiters = [:] }
            return (s.subscription, Array(s.listenerWaiters.values))
        }
        subscription?.cancel()
        for continuation in waiting { continuation.resume(throwing: LockError(.shutDown, "the lock manager is shutting down")) }
        sessions.shutdown()
        stopped.complete(())
        for waiter in state.withLockedValue({ Array($0.waiters.values) }) { waiter.wakeup.signal() }
    }

    private var isShutDown: Bool { state.withLockedValue { $0.shutDown } }

    // MARK: Acquire and release

    /// Takes all of `resources` for `owner`, or none: at once when nobody holds them and no waiter ranks before this
    /// request; otherwise, with `wait`, queued at `priority` until served or until `wait` has passed
    /// (``LockError/Code/timedOut``), without holding any of them meanwhile. Without `wait` it only tries
    /// (``LockError/Code/unavailable``). Cancelling the calling task withdraws the request.
    ///
    /// - Parameters:
    ///   - hold: how long the hold may last; past it, it is taken back and `onLoss` is called.
    ///   - onLoss: called once if the hold stops protecting its task before it is released (expiry, lost session).
    ///   - cause: the event the hold serves (the manager's events follow it up).
    public func acquire(
        _ resources: [ResourceKey], owner: LockOwner, priority: Priority = .normal, hold: Duration,
        wait: Duration? = nil, runID: UUID? = nil, cause: Event? = nil,
        onLoss: @escaping @Sendable (LockLoss) -> Void = { _ in }
    ) async throws -> LockHold {
        let keys = Array(Set(resources)).sorted()
        guard !keys.isEmpty else { throw LockError(.invalid, "no resource to lock") }
        if let problem = keys.lazy.compactMap({ key in key.typeProblem.map { "cannot lock \(key): \($0)" } }).first {
            throw LockError(.invalid, problem)
        }
        guard hold > .zero else { throw LockError(.invalid, "a hold must last longer than zero") }
        let requestID = UUID()
        var waiterPID = 0
        if let wait { waiterPID = try await listenerPID(within: min(wait, options.listenTimeout)) }
        let wakeup = Wakeup()
        if wait != nil {
            state.withLockedValue { $0.waiters[requestID] = Waiter(keys: Set(keys.map(\.advisoryKey)), wakeup: wakeup) }
        }
        defer { _ = state.withLockedValue { $0.waiters.removeValue(forKey: requestID) } }
        let started = ContinuousClock.now
        let deadline = wait.map { started + $0 }
        var queued = false
        do {
            while true {
                try Task.checkCancellation()
                guard !isShutDown else { throw LockError(.shutDown, "the lock manager is shutting down") }
                let session = try await checkout()
                let rows: [LockStore.AcquireRow]
                // Before the request leaves: PostgreSQL grants at a later instant, so `sent + hold` is never later
                // than the expiry it records, whatever this host's wall clock says.
                let sent = ContinuousClock.now
                do {
                    rows = try await session.acquire(
                        .init(
                            requestID: requestID, resources: keys, owner: owner, priority: priority, hold: hold,
                            waitFor: deadline.map { $0 - sent }, waiterPID: waiterPID, workerID: workerID, runID: runID,
                            takebackGrace: options.takebackGrace),
                        logger: logger)
                } catch {
                    session.close()
                    throw LockError(.database, "cannot lock \(Self.list(keys)): \(StoreError.describe(error))")
                }
                if !rows.isEmpty, rows.allSatisfy(\.granted) {
                    AgentryMetrics.lockWaited(seconds: (ContinuousClock.now - started).inSeconds, outcome: "acquired")
                    if queued { await recordWait(requestID, keys, owner, priority, runID, "acquired", since: started) }
                    return grant(
                        rows, requestID: requestID, owner: owner, priority: priority, runID: runID, session: session,
                        expiry: sent + hold, cause: cause, onLoss: onLoss)
                }
                sessions.checkin(session)
                let blocked = rows.filter { !$0.granted }
                guard let deadline else {
                    throw LockError(.unavailable, "\(Self.list(keys)) cannot be locked now: \(Self.why(blocked))")
                }
                if !queued {
                    queued = true
                    for row in blocked {
                        emit(
                            "resource.queued", row.resource, owner, cause: cause,
                            [
                                "position": .int(Int64(row.position ?? 1)), "priority": .string(priority.name),
                                "run_id": runID.map { .string($0.uuidString.lowercased()) } ?? .null,
                            ])
                    }
                }
                for row in blocked where row.takenBack {
                    logger.warning(
                        "took back an expired lock whose holder did not release it",
                        metadata: [
                            "agentry.resource": "\(row.resource)", "agentry.holder": "\(row.holder ?? "?")",
                        ])
                    emit(
                        "resource.expired", row.resource, LockOwner(id: row.holder ?? "unknown", kind: .agent), cause: cause,
                        [
                            "expires_at": row.holderExpiresAt.map { .string(Timestamp.format($0)) } ?? .null,
                            "taken_back_by": .string(owner.id),
                        ])
                }
                let now = ContinuousClock.now
                if now >= deadline {
                    throw LockError(.timedOut, "waited \(Self.seconds(now - started)) for \(Self.list(keys)) and gave up: \(Self.why(blocked))")
                }
                if blocked.contains(where: \.takenBack) { continue }
                await wakeup.wait(for: min(options.pollInterval, deadline - now))
            }
        } catch {
            let outcome = (error as? LockError).map { $0.code.rawValue } ?? (error is CancellationError ? "cancelled" : "error")
            if queued {
                await withdraw(requestID)
                await recordWait(requestID, keys, owner, priority, runID, outcome, since: started)
            }
            AgentryMetrics.lockWaited(seconds: (ContinuousClock.now - started).inSeconds, outcome: outcome)
            throw error
        }
    }

    /// Gives a hold back (idempotent). Its waiters learn at once.
    public func release(_ hold: LockHold) async {
        guard hold.leave(for: .released) else {
            finishLost(hold)
            // Expired holds were recorded when taken back; one lost with its session is recorded now.
            if case .connectionLost = hold.loss { await recordForRun(hold, ending: .lost) }
            return
        }
        hold.expiry.withLockedValue { $0?.cancel() }
        await giveBack(hold, event: "resource.released")
    }

    /// The seed's `release(resource, owner)`: releases the hold of this process that holds `resource` (the whole
    /// hold). Another owner's hold is refused with the holder's name; a hold of another process needs
    /// `agentry locks release --force`.
    public func release(_ resource: ResourceKey, owner: LockOwner) async throws {
        let hold = state.withLockedValue { $0.holds.values.first { $0.resources.contains(resource) } }
        if let hold {
            guard hold.owner == owner else {
                throw LockError(.notOwner, "cannot release \(resource): it is held by \(hold.owner), not \(owner)")
            }
            await release(hold)
            return
        }
        let status = try await store.status(resource)
        if let holder = status.holder {
            if holder.owner == owner {
                throw LockError(
                    .notOwner,
                    "\(resource) is held by \(owner) from another process (worker \(holder.workerID ?? "unknown")); only that process can release it, or an administrator with `agentry locks release \(resource) --force`"
                )
            }
            throw LockError(.notOwner, "cannot release \(resource): it is held by \(holder.owner), not \(owner)")
        }
        throw LockError(.notHeld, "cannot release \(resource): nobody holds it")
    }

    /// The seed's `is_available`.
    public func isAvailable(_ resource: ResourceKey) async throws -> Bool { try await store.isAvailable(resource) }

    /// The seed's `get_status`, with the waiters in order.
    public func status(_ resource: ResourceKey) async throws -> LockStatus { try await store.status(resource) }

    /// Holds of this process.
    public var holds: [LockHold] { state.withLockedValue { Array($0.holds.values) } }

    // MARK: Internals

    /// Records a granted hold and starts its expiry timer. `expiry` is on this process's monotonic clock: the rows'
    /// `expires_at` is PostgreSQL's wall-clock time, and comparing it with this host's wall clock would let a host
    /// whose clock runs ahead stop every task at once, and one whose clock runs behind go on after waiters took the
    /// resource back.
    private func grant(
        _ rows: [LockStore.AcquireRow], requestID: UUID, owner: LockOwner, priority: Priority, runID: UUID?,
        session: LockSession, expiry: ContinuousClock.Instant, cause: Event?, onLoss: @escaping @Sendable (LockLoss) -> Void
    ) -> LockHold {
        let acquiredAt = rows.compactMap(\.acquiredAt).min() ?? Date()
        let expiresAt = rows.compactMap(\.expiresAt).min() ?? Date()
        var tokens: [ResourceKey: Int64] = [:]
        for row in rows { tokens[row.resource] = row.fencingToken ?? 0 }
        let hold = LockHold(
            requestID: requestID, owner: owner, resources: rows.map(\.resource).sorted(), fencingTokens: tokens,
            priority: priority, acquiredAt: acquiredAt, expiresAt: expiresAt, runID: runID,
            session: session, cause: cause, onLoss: onLoss)
        state.withLockedValue { s in
            s.held[session.id] = hold
            s.holds[requestID] = hold
        }
        for resource in hold.resources {
            emit(
                "resource.acquired", resource, owner, cause: cause,
                [
                    "fencing_token": .int(tokens[resource] ?? 0), "acquired_at": .string(Timestamp.format(acquiredAt)),
                    "expires_at": .string(Timestamp.format(expiresAt)), "priority": .string(priority.name),
                    "run_id": runID.map { .string($0.uuidString.lowercased()) } ?? .null,
                    "worker_id": workerID.map { .string($0) } ?? .null,
                ])
        }
        hold.expiry.withLockedValue {
            $0 = Task { [weak hold] in
                try? await Task.sleep(until: expiry, clock: .continuous)
                guard !Task.isCancelled, let hold else { return }
                await self.expire(hold)
            }
        }
        // The session may have ended between the grant and now: then nobody will call back.
        if session.isClosed { Self.sessionClosed(session, state: state, logger: logger) }
        return hold
    }

    private func expire(_ hold: LockHold) async {
        let loss = LockLoss.expired(hold.resources[0], at: hold.expiresAt)
        guard hold.leave(for: .lost(loss)) else { return }
        logger.warning(
            "a hold outlived its expiry; taking it back and stopping its task",
            metadata: [
                "agentry.resources": "\(Self.list(hold.resources))", "agentry.owner": "\(hold.owner)",
                "agentry.run.id": "\(hold.runID.map { "\($0)" } ?? "-")",
            ])
        hold.onLoss(loss)
        await giveBack(hold, event: "resource.expired")
    }

    /// Releases the hold's locks on its session and returns the session to the idle list.
    private func giveBack(_ hold: LockHold, event: String) async {
        state.withLockedValue { _ = $0.holds.removeValue(forKey: hold.requestID) }
        let session = hold.session
        do {
            try await session.release(hold.resources, logger: logger)
            state.withLockedValue { _ = $0.held.removeValue(forKey: session.id) }
            sessions.checkin(session)
        } catch {
            // Closing the session frees its advisory locks all the same.
            logger.warning(
                "cannot release a hold cleanly; closing its session",
                metadata: [
                    "agentry.resources": "\(Self.list(hold.resources))", "error": "\(StoreError.describe(error))",
                ])
            state.withLockedValue { _ = $0.held.removeValue(forKey: session.id) }
            session.close()
        }
        await recordForRun(hold, ending: event == "resource.expired" ? .expired : .released)
        let held = Int64((Date().timeIntervalSince(hold.acquiredAt) * 1000).rounded())
        for resource in hold.resources {
            var extra: JSONObject = ["fencing_token": .int(hold.fencingTokens[resource] ?? 0), "held_ms": .int(held)]
            if event == "resource.expired" { extra["expires_at"] = .string(Timestamp.format(hold.expiresAt)) }
            extra["run_id"] = hold.runID.map { .string($0.uuidString.lowercased()) } ?? .null
            emit(event, resource, hold.owner, cause: hold.cause, extra)
        }
    }

    /// A hold released after it was lost: its session is gone (or was given back at expiry); forget it.
    private func finishLost(_ hold: LockHold) {
        state.withLockedValue { _ = $0.holds.removeValue(forKey: hold.requestID) }
        hold.expiry.withLockedValue { $0?.cancel() }
    }

    /// A lock session closed: the hold it held (if any) is lost, and its task told.
    static func sessionClosed(_ session: LockSession, state: NIOLockedValueBox<State>, logger: Logger) {
        guard let hold = state.withLockedValue({ $0.held.removeValue(forKey: session.id) }) else { return }
        let loss = LockLoss.connectionLost(resources: hold.resources, reason: "its database session \(session.pid) ended")
        guard hold.leave(for: .lost(loss)) else { return }
        hold.expiry.withLockedValue { $0?.cancel() }
        state.withLockedValue { _ = $0.holds.removeValue(forKey: hold.requestID) }
        logger.error(
            "lost the database session that held locks; stopping their task",
            metadata: [
                "agentry.resources": "\(Self.list(hold.resources))", "agentry.owner": "\(hold.owner)", "db.pid": "\(session.pid)",
                "agentry.run.id": "\(hold.runID.map { "\($0)" } ?? "-")",
            ])
        hold.onLoss(loss)
    }

    private func withdraw(_ requestID: UUID) async {
        do {
            try await store.withdraw(requestID)
        } catch {
            logger.warning("cannot withdraw a lock request (its rows expire on their own)", metadata: ["error": "\(error)"])
        }
    }

    /// A lock session: an idle one, or a new one (whose server-side TCP keepalives end it within about 25 s should
    /// this host vanish, later than ``watch()`` stops its holder's task).
    private func checkout() async throws -> LockSession {
        do {
            return try await sessions.checkout()
        } catch {
            throw LockError(
                .database, "cannot open a lock session to PostgreSQL at \(database.configuration.redactedURL): \(StoreError.describe(error))")
        }
    }

    // MARK: Listening

    /// The backend pid of the notification session (waiter rows name it), waiting at most `limit` for it to open.
    private func listenerPID(within limit: Duration) async throws -> Int {
        let id = UUID()
        return try await withCheckedThrowingContinuation { continuation in
            let ready = state.withLockedValue { s -> Result<Int, any Error>? in
                if s.shutDown { return .failure(LockError(.shutDown, "the lock manager is shutting down")) }
                if let listener = s.listener { return .success(listener) }
                s.listenerWaiters[id] = continuation
                return nil
            }
            if let ready {
                continuation.resume(with: ready)
                return
            }
            Task { [state] in
                try? await Task.sleep(for: limit)
                let (waiter, problem) = state.withLockedValue { s in (s.listenerWaiters.removeValue(forKey: id), s.listenerProblem) }
                waiter?.resume(
                    throwing: LockError(
                        .database,
                        "cannot wait for resources: the lock notification session did not open "
                            + "within \(Self.seconds(limit)) (\(problem ?? "no answer yet"))"))
            }
        }
    }

    /// What the notification session says: it listens (waiters re-check, as notifications may have been missed while
    /// it reconnected), a release, or an interruption.
    private func notified(_ event: Notifications.Event) {
        switch event {
        case .listening(_, let pid):
            let waiting = state.withLockedValue { s -> [CheckedContinuation<Int, any Error>] in
                s.listener = pid
                s.listenerProblem = nil
                defer { s.listenerWaiters = [:] }
                return Array(s.listenerWaiters.values)
            }
            for continuation in waiting { continuation.resume(returning: pid) }
            for waiter in state.withLockedValue({ Array($0.waiters.values) }) { waiter.wakeup.signal() }
        case .notification(_, let payload):
            guard let key = Int64(payload) else { return }
            for waiter in state.withLockedValue({ Array($0.waiters.values) }) where waiter.keys.contains(key) {
                waiter.wakeup.signal()
            }
        case .interrupted(let reason):
            state.withLockedValue { s in
                s.listener = nil
                s.listenerProblem = reason
            }
            if !isShutDown {
                AgentryMetrics.reconnected("lock-notifications")
                logger.warning("lock notifications interrupted; reconnecting", metadata: ["error": "\(reason)"])
            }
        }
    }

    // MARK: Events

    private func emit(_ type: String, _ resource: ResourceKey, _ owner: LockOwner, cause: Event?, _ extra: JSONObject) {
        guard options.announces else { return }
        var payload: JSONObject = [
            "resource_id": .string(resource.id), "resource_type": .string(resource.type), "resource": .string(resource.description),
            "owner_id": .string(owner.id), "owner_type": .string(owner.kind.rawValue),
        ]
        for (key, value) in extra { payload[key] = value }
        let event =
            cause.map { $0.followUp(type: type, payload: payload, priority: .normal, source: Self.source) }
            ?? Event(type: type, payload: payload, priority: .normal, source: Self.source)
        eventSink.yield(event)
    }

    static func list(_ resources: [ResourceKey]) -> String { resources.map(\.description).joined(separator: ", ") }

    static func seconds(_ duration: Duration) -> String { String(format: "%.1f s", duration.inSeconds) }

    static func why(_ rows: [LockStore.AcquireRow]) -> String {
        rows.map { row in
            var parts: [String] = []
            if let holder = row.holder {
                parts.append("held by \(holder)" + (row.holderExpiresAt.map { " until \(Timestamp.format($0))" } ?? ""))
            }
            if let position = row.position, position > 1 { parts.append("\(position - 1) waiting before") }
            if parts.isEmpty { parts.append("just taken by another request") }
            return "\(row.resource) \(parts.joined(separator: ", "))"
        }.joined(separator: "; ")
    }
}
