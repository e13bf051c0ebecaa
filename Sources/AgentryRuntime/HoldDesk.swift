public import AgentryCore
public import AgentryStore
import Foundation
public import Logging

/// Where people ask for holds and give them back (the CLI's `locks acquire` and `locks release --owner`, the admin
/// API, the status page): it writes to `lock_holds` and waits for the hold keeper (``HoldKeeper``) to act. It holds
/// nothing itself, so the process that asks may exit at once.
public struct HoldDesk: Sendable {
    public let store: LockHoldStore
    let locks: LockStore
    let logger: Logger
    /// How long a request may stay unseen by every keeper before the asker gives up. Default 15 s.
    public var keeperGrace: Duration = .seconds(15)

    public init(database: Database, logger: Logger) {
        self.store = LockHoldStore(database: database, logger: logger)
        self.locks = LockStore(database: database, logger: logger)
        self.logger = logger
    }

    /// Longest hold: 7 days.
    public static let maximumHold: Duration = .seconds(7 * 86_400)
    /// Longest wait: 1 day.
    public static let maximumWait: Duration = .seconds(86_400)

    /// Asks for `request` and waits for the keeper's answer, at most `answerWithin` (nil: as long as the request may
    /// wait, plus the keeper's grace). The hold as it stands then: `held`, `timed_out` (``LockError/Code/timedOut``
    /// is thrown instead, naming the holder and until when), or still `requested` when `answerWithin` ran out first.
    public func take(_ request: LockHoldRequest, answerWithin: Duration? = nil) async throws -> LockHoldRecord {
        if let problem = request.resource.typeProblem { throw LockError(.invalid, "cannot lock \(request.resource): \(problem)") }
        guard request.holdFor > .zero, request.holdFor <= Self.maximumHold else {
            throw LockError(.invalid, "a hold lasts more than 0 s and at most 7 days (\(request.holdFor) asked)")
        }
        guard request.wait >= .zero, request.wait <= Self.maximumWait else {
            throw LockError(.invalid, "a request waits at most 1 day (\(request.wait) asked)")
        }
        guard !request.owner.id.isEmpty, request.owner.id.count <= 255 else {
            throw LockError(.invalid, "an owner is named by 1 to 255 characters")
        }
        // Nobody would hold it: say so now rather than after the keeper's grace.
        guard try await store.keeper() != nil else {
            throw LockError(
                .unavailable, "no hold keeper runs on this database: people's holds are kept by the workers (and `agentry admin`); start one")
        }
        let record: LockHoldRecord
        do {
            record = try await store.request(request)
        } catch let error as StoreError where error.code == .conflict {
            throw LockError(.conflict, error.message)
        }
        let limit = answerWithin ?? (request.wait + keeperGrace)
        let current = try await waitForAnswer(record.id, within: limit) { $0.state != .requested }
        guard let current else { throw LockError(.notHeld, "the request \(record.id) for \(request.resource) is gone") }
        switch current.state {
        case .held, .released, .expired:
            return current
        case .timedOut:
            throw LockError(.timedOut, try await whyNot(current))
        case .requested:
            if answerWithin != nil, current.waitUntil.addingTimeInterval(keeperGrace.inSeconds) > Date() { return current }
            // Nobody answered within the wait and the keeper's grace: withdraw it.
            let noKeeper = current.keeperID == nil
            let message =
                noKeeper
                ? "no hold keeper took the request up: is a worker or `agentry admin` running on this database?"
                : "withdrawn: not granted within its wait"
            if try await store.end(current.id, .timedOut, message: message, from: [.requested], freed: noKeeper) {
                var ended = current
                ended.message = message
                throw LockError(.timedOut, noKeeper ? message : try await whyNot(ended))
            }
            // The keeper answered meanwhile.
            guard let latest = try await store.hold(current.id) else { return current }
            if latest.state == .timedOut { throw LockError(.timedOut, try await whyNot(latest)) }
            return latest
        }
    }

    /// The owner gives back their hold on `resource` (or withdraws their request), and waits (at most `within`) for
    /// the keeper to let it go. Someone else's hold is refused, saying whose it is (``LockError/Code/notOwner``);
    /// nothing held is ``LockError/Code/notHeld``.
    public func giveBack(
        _ resource: ResourceKey, owner: LockOwner, by: String?, within: Duration = .seconds(10)
    ) async throws
        -> LockHoldRecord
    {
        guard let released = try await store.release(resource, owner: owner, by: by) else {
            let status = try await locks.status(resource)
            if let holder = status.holder {
                if holder.owner == owner {
                    throw LockError(
                        .notOwner,
                        "\(resource) is held by \(owner) through an agent's run or another process, not by a hold taken with `agentry locks acquire`; only that process can release it, or an administrator with `agentry locks release \(resource) --force`"
                    )
                }
                throw LockError(
                    .notOwner,
                    "cannot release \(resource): it is held by \(holder.owner) until \(Timestamp.format(holder.expiresAt)), not by \(owner)")
            }
            throw LockError(.notHeld, "cannot release \(resource): nobody holds it (\(owner) has no hold or request on it)")
        }
        let freed = try await waitForAnswer(released.id, within: within) { $0.freedAt != nil }
        return freed ?? released
    }

    /// Why a request was not granted: its message, and who holds the resource now and until when.
    func whyNot(_ record: LockHoldRecord) async throws -> String {
        let status = try await locks.status(record.resource)
        var parts: [String] = []
        if let holder = status.holder {
            parts.append("\(record.resource) is held by \(holder.owner) until \(Timestamp.format(holder.expiresAt))")
        } else {
            parts.append("\(record.resource) is free now")
        }
        let before = status.waiters.filter { $0.priority < record.priority || ($0.priority == record.priority && $0.queuedAt < record.requestedAt) }
        if !before.isEmpty { parts.append("\(before.count) waiting before") }
        return "not granted within its wait: " + parts.joined(separator: ", ") + (record.message.map { " (\($0))" } ?? "")
    }

    /// Polls the hold (every 50 ms, backing off to 500 ms) until `done` holds or `within` has passed; the hold as it
    /// was last read (nil when it is gone).
    private func waitForAnswer(_ id: UUID, within: Duration, _ done: (LockHoldRecord) -> Bool) async throws -> LockHoldRecord? {
        let deadline = ContinuousClock.now + within
        var delay = Duration.milliseconds(50)
        while true {
            guard let record = try await store.hold(id) else { return nil }
            if done(record) || ContinuousClock.now >= deadline { return record }
            try await Task.sleep(for: min(delay, deadline - ContinuousClock.now))
            delay = min(delay * 2, .milliseconds(500))
        }
    }
}
