public import AgentryCore
public import Foundation
public import Logging
import PostgresNIO

/// A hold a person (or the system) asked for, as `lock_holds` (migration `0032_lock_holds.sql`) records it: from the
/// request, through the hold the keeper takes, to its end.
public struct LockHoldRecord: Sendable, Hashable {
    public enum State: String, Sendable, Hashable, CaseIterable {
        /// Asked for; the keeper waits for the resource (or has not seen it yet).
        case requested
        /// The keeper holds the resource for the owner.
        case held
        /// Given back by its owner (or taken back with `locks release --force`).
        case released
        /// Its time (`hold_until`) ran out.
        case expired
        /// Not granted within its wait; withdrawn.
        case timedOut = "timed_out"

        /// Still asked for or held.
        public var isLive: Bool { self == .requested || self == .held }
    }

    public var id: UUID
    public var resource: ResourceKey
    public var owner: LockOwner
    public var priority: Priority
    /// How long the hold lasts once granted.
    public var holdFor: Duration
    public var requestedAt: Date
    public var requestedBy: String?
    public var waitUntil: Date
    public var state: State
    public var keeperID: String?
    public var acquiredAt: Date?
    public var holdUntil: Date?
    public var fencingToken: Int64?
    public var endedAt: Date?
    public var freedAt: Date?
    public var message: String?
}

/// What a person's request carries.
public struct LockHoldRequest: Sendable {
    public var resource: ResourceKey
    public var owner: LockOwner
    public var priority: Priority
    public var holdFor: Duration
    /// How long the request may wait for the resource (zero: granted at once or not at all).
    public var wait: Duration
    public var requestedBy: String?

    public init(resource: ResourceKey, owner: LockOwner, priority: Priority, holdFor: Duration, wait: Duration, requestedBy: String?) {
        self.resource = resource
        self.owner = owner
        self.priority = priority
        self.holdFor = holdFor
        self.wait = wait
        self.requestedBy = requestedBy
    }
}

/// The `lock_holds` table: people's requests and holds, written by the CLI and the admin API, worked on by the hold
/// keeper. Every change notifies channel ``channel`` (a trigger), which wakes the keepers.
public struct LockHoldStore: Sendable {
    let database: Database
    let logger: Logger
    public static let channel = "agentry_holds"
    /// The role the keepers compete for (a ``Leadership``): the leader takes and holds every person's hold.
    public static let leadershipName = "agentry.holds"

    public init(database: Database, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    static let columns = """
        h.id, h.resource_type, h.resource_id, h.owner_id, h.owner_type, h.priority, extract(epoch FROM h.hold_for)::float8,
        h.requested_at, h.requested_by, h.wait_until, h.state, h.keeper_id, h.acquired_at, h.hold_until, h.fencing_token,
        h.ended_at, h.freed_at, h.message
        """

    /// Records a request; a live request or hold of the same owner on the resource is a ``StoreError/Code/conflict``.
    public func request(_ request: LockHoldRequest) async throws -> LockHoldRecord {
        let id = UUID()
        let holdFor = LockStore.interval(request.holdFor)
        let wait = LockStore.interval(request.wait)
        do {
            let rows = try await database.write(
                """
                INSERT INTO lock_holds AS h (id, resource_type, resource_id, owner_id, owner_type, priority, hold_for, requested_by,
                                        wait_until)
                VALUES (\(id), \(request.resource.type), \(request.resource.id), \(request.owner.id), \(request.owner.kind.rawValue),
                        \(request.priority.rawValue), \(holdFor)::interval, \(request.requestedBy), now() + \(wait)::interval)
                RETURNING \(unescaped: Self.columns)
                """, logger: logger)
            for try await row in rows { return try Self.record(row) }
        } catch let error where StoreError.sqlState(of: error) == "23505" {
            throw StoreError(
                .conflict, "\(request.owner) already asked for or holds \(request.resource); give it back first (agentry locks release)")
        } catch {
            throw StoreError(.query, "cannot record the request for \(request.resource)", cause: error)
        }
        throw StoreError(.query, "cannot record the request for \(request.resource): no row returned")
    }

    /// One hold by id.
    public func hold(_ id: UUID) async throws -> LockHoldRecord? {
        try await select("h.id = $1", binds: { $0.append(id) }, limit: 1).first
    }

    /// The holds still asked for or held, oldest first.
    public func live() async throws -> [LockHoldRecord] {
        try await select("h.state IN ('requested', 'held')", binds: { _ in }, order: "h.requested_at", limit: 10_000)
    }

    /// PostgreSQL's clock: the instants in `lock_holds` (`wait_until`, `hold_until`) are its own, so whoever compares
    /// with them asks it for the time rather than trusting a host clock that may be minutes off.
    public func databaseNow() async throws -> Date {
        do {
            let rows = try await database.query("SELECT now()", logger: logger)
            for try await (now) in rows.decode(Date.self) { return now }
        } catch {
            throw StoreError(.query, "cannot read PostgreSQL's clock", cause: error)
        }
        throw StoreError(.query, "cannot read PostgreSQL's clock: no row")
    }

    /// The latest holds, live or ended, newest first (`live`: only those still asked for or held).
    public func list(liveOnly: Bool = false, resource: ResourceKey? = nil, limit: Int = 100) async throws -> [LockHoldRecord] {
        var conditions = [liveOnly ? "h.state IN ('requested', 'held')" : "true"]
        if resource != nil { conditions.append("h.resource_type = $1 AND h.resource_id = $2") }
        return try await select(
            conditions.joined(separator: " AND "),
            binds: { binds in
                if let resource {
                    binds.append(resource.type)
                    binds.append(resource.id)
                }
            }, order: "h.requested_at DESC", limit: limit)
    }

    /// The keeper starts working on a hold (taking it, or taking it again).
    public func markWorking(_ id: UUID, keeper: String, message: String?) async throws {
        _ = try await update(
            "keeper_id = \(keeper), message = \(message)", id: id, from: [.requested, .held], what: "mark hold \(id) taken up")
    }

    /// The keeper holds the resource: false when the hold was given back or withdrawn meanwhile (then the keeper
    /// releases what it just took).
    public func markHeld(_ id: UUID, keeper: String, acquiredAt: Date, holdUntil: Date, fencingToken: Int64) async throws -> Bool {
        try await update(
            """
            state = 'held', keeper_id = \(keeper), acquired_at = coalesce(acquired_at, \(acquiredAt)), hold_until = \(holdUntil),
            fencing_token = \(fencingToken), message = NULL, freed_at = NULL
            """, id: id, from: [.requested, .held], what: "mark hold \(id) held")
    }

    /// Ends a hold in `state` (released, expired, timed out) when it is in one of `from`; false when it was not.
    /// `freed`: the advisory lock is not held (any more) by the keeper.
    @discardableResult
    public func end(
        _ id: UUID, _ state: LockHoldRecord.State, message: String?, from: Set<LockHoldRecord.State>, freed: Bool
    ) async throws
        -> Bool
    {
        try await update(
            """
            state = \(state.rawValue), ended_at = now(), message = \(message),
            freed_at = CASE WHEN \(freed) THEN now() ELSE freed_at END
            """, id: id, from: from, what: "end hold \(id)")
    }

    /// The keeper gave the advisory lock back (after a release by its owner, or on leaving the lead).
    public func markFreed(_ id: UUID) async throws {
        do {
            try await database.write("UPDATE lock_holds SET freed_at = now(), updated_at = now() WHERE id = \(id)", logger: logger)
        } catch {
            throw StoreError(.query, "cannot mark hold \(id) freed", cause: error)
        }
    }

    /// The owner gives back their live hold (or withdraws their request) on `resource`: the hold, now `released`, or
    /// nil when the owner has none.
    public func release(_ resource: ResourceKey, owner: LockOwner, by: String?) async throws -> LockHoldRecord? {
        let message = "given back" + (by.map { " by \($0)" } ?? "")
        do {
            let rows = try await database.write(
                """
                UPDATE lock_holds AS h SET state = 'released', ended_at = now(), updated_at = now(), message = \(message),
                       freed_at = CASE WHEN h.state = 'requested' AND h.keeper_id IS NULL THEN now() ELSE NULL END
                 WHERE h.resource_type = \(resource.type) AND h.resource_id = \(resource.id) AND h.owner_id = \(owner.id)
                   AND h.owner_type = \(owner.kind.rawValue) AND h.state IN ('requested', 'held')
                RETURNING \(unescaped: Self.columns)
                """, logger: logger)
            for try await row in rows { return try Self.record(row) }
            return nil
        } catch {
            throw StoreError(.query, "cannot release \(resource) for \(owner)", cause: error)
        }
    }

    /// A forced release (`agentry locks release --force`) of a resource a person holds: the hold ends `released`
    /// before the keeper's session is ended, so that the keeper does not take it again. The hold it ended, if any.
    public func endForced(_ resource: ResourceKey, by: String) async throws -> LockHoldRecord? {
        do {
            let rows = try await database.write(
                """
                UPDATE lock_holds AS h SET state = 'released', ended_at = now(), updated_at = now(),
                       message = \("taken back by \(by)")
                 WHERE h.resource_type = \(resource.type) AND h.resource_id = \(resource.id) AND h.state = 'held'
                   AND h.fencing_token = (SELECT l.fencing_token FROM resource_locks l
                                           WHERE l.resource_type = h.resource_type AND l.resource_id = h.resource_id)
                RETURNING \(unescaped: Self.columns)
                """, logger: logger)
            for try await row in rows { return try Self.record(row) }
            return nil
        } catch {
            throw StoreError(.query, "cannot end the person's hold on \(resource)", cause: error)
        }
    }

    /// Who keeps people's holds now: the `application_name` of the session that leads `agentry.holds` (a worker's is
    /// `agentry worker <host> pid <pid>`); nil when no keeper runs.
    public func keeper() async throws -> String? {
        do {
            let rows = try await database.query(
                """
                SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                  AND l.objsubid = 2 AND l.objid = 0
                  AND l.classid = ((hashtext(\(Self.leadershipName))::int8 + 4294967296) % 4294967296)::text::oid
                """, logger: logger)
            for try await name in rows.decode(String.self) { return name }
            return nil
        } catch {
            throw StoreError(.query, "cannot read who keeps people's holds", cause: error)
        }
    }

    // MARK: Internals

    private func update(_ assignments: PostgresQuery, id: UUID, from: Set<LockHoldRecord.State>, what: String) async throws -> Bool {
        var binds = assignments.binds
        binds.append(id)
        let states = from.map(\.rawValue).sorted()
        binds.append(states)
        let sql = """
            UPDATE lock_holds SET \(assignments.sql), updated_at = now()
             WHERE id = $\(binds.count - 1) AND state = ANY ($\(binds.count)::text[])
            RETURNING id
            """
        do {
            let rows = try await database.write(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger)
            for try await _ in rows { return true }
            return false
        } catch {
            throw StoreError(.query, "cannot \(what)", cause: error)
        }
    }

    private func select(
        _ condition: String, binds fill: (inout PostgresBindings) -> Void, order: String = "h.requested_at", limit: Int
    )
        async throws -> [LockHoldRecord]
    {
        var binds = PostgresBindings()
        fill(&binds)
        let sql = "SELECT \(Self.columns) FROM lock_holds h WHERE \(condition) ORDER BY \(order) LIMIT \(max(1, limit))"
        var result: [LockHoldRecord] = []
        do {
            let rows = try await database.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger)
            for try await row in rows { result.append(try Self.record(row)) }
        } catch {
            throw StoreError(.query, "cannot read people's holds", cause: error)
        }
        return result
    }

    static func record(_ row: PostgresRow) throws -> LockHoldRecord {
        let (
            id, type, resourceID, owner, kind, priority, holdFor, requestedAt, requestedBy, waitUntil, state, keeper, acquired,
            holdUntil, token, ended, freed, message
        ) = try row.decode(
            (
                UUID, String, String, String, String, Int, Double, Date, String?, Date, String, String?, Date?, Date?, Int64?,
                Date?, Date?, String?
            ).self)
        return LockHoldRecord(
            id: id, resource: ResourceKey(type: type, id: resourceID),
            owner: LockOwner(id: owner, kind: LockOwner.Kind(rawValue: kind) ?? .user),
            priority: Priority(rawValue: priority) ?? .normal, holdFor: .milliseconds(Int64((holdFor * 1000).rounded())),
            requestedAt: requestedAt, requestedBy: requestedBy, waitUntil: waitUntil,
            state: LockHoldRecord.State(rawValue: state) ?? .released, keeperID: keeper, acquiredAt: acquired,
            holdUntil: holdUntil, fencingToken: token, endedAt: ended, freedAt: freed, message: message)
    }
}
