public import AgentryCore
public import Foundation
public import Logging
public import PostgresNIO

/// Who holds or wants a resource: the seed's `owner_id` and `owner_type`.
public struct LockOwner: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable, CaseIterable { case agent, user, system }
    public var id: String
    public var kind: Kind

    public init(id: String, kind: Kind) {
        self.id = id
        self.kind = kind
    }

    public static func agent(_ id: String) -> LockOwner { LockOwner(id: id, kind: .agent) }
    public static func user(_ id: String) -> LockOwner { LockOwner(id: id, kind: .user) }
    public static func system(_ id: String) -> LockOwner { LockOwner(id: id, kind: .system) }

    public var description: String { "\(kind.rawValue) \(id)" }
}

/// A held resource, as `resource_locks` describes it.
public struct LockRecord: Sendable, Hashable {
    public var resource: ResourceKey
    public var owner: LockOwner
    public var acquiredAt: Date
    public var expiresAt: Date
    public var priority: Priority
    public var fencingToken: Int64?
    public var workerID: String?
    public var runID: UUID?
    public var holderPID: Int?
    /// Whether the holder's session still holds the advisory lock (false: the row was left by a session that ended;
    /// the next acquirer overwrites it).
    public var held: Bool
}

/// A request waiting for a resource, in the order it will be served.
public struct LockWaiterRecord: Sendable, Hashable {
    public var requestID: UUID
    public var resource: ResourceKey
    public var owner: LockOwner
    public var priority: Priority
    public var queuedAt: Date
    public var waitUntil: Date
    public var workerID: String?
    public var runID: UUID?
    /// 1 for the next to be served.
    public var position: Int
}

/// The seed's `get_status`, plus the waiters in order.
public struct LockStatus: Sendable, Hashable {
    public var resource: ResourceKey
    /// The holder, when the resource is held.
    public var holder: LockRecord?
    public var waiters: [LockWaiterRecord]
    public var isAvailable: Bool { holder == nil }
    public var queueLength: Int { waiters.count }
}

/// What a forced release did.
public struct ForcedRelease: Sendable, Hashable {
    public var resource: ResourceKey
    public var owner: LockOwner
    public var workerID: String?
    public var runID: UUID?
    public var fencingToken: Int64?
    /// Whether the holder's session ended within 5 s (false: it is still going down).
    public var terminatedHolder: Bool
}

/// The lock tables and functions (migration `0010_lock_manager.sql`). Reads go through the pool; taking and giving
/// back locks happens on the session that holds them (see ``LockSession``).
public struct LockStore: Sendable {
    let database: Database
    let logger: Logger

    public init(database: Database, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    // MARK: On the holding connection

    /// One row of `agentry_lock_acquire`: a resource granted, or why not.
    public struct AcquireRow: Sendable, Hashable {
        public var resource: ResourceKey
        public var granted: Bool
        public var fencingToken: Int64?
        public var acquiredAt: Date?
        public var expiresAt: Date?
        public var position: Int?
        public var holder: String?
        public var holderExpiresAt: Date?
        public var takenBack: Bool
    }

    public struct AcquireRequest: Sendable {
        public var requestID: UUID
        public var resources: [ResourceKey]
        public var owner: LockOwner
        public var priority: Priority
        public var hold: Duration
        /// Queue the request when it cannot be served now, for at most this long from now (nil: only try). A duration,
        /// not an instant: PostgreSQL adds it to its own clock, so a requester whose clock is off by minutes neither
        /// looks abandoned to the other waiters nor stays queued minutes too long.
        public var waitFor: Duration?
        public var waiterPID: Int
        public var workerID: String?
        public var runID: UUID?
        public var takebackGrace: Duration

        public init(
            requestID: UUID, resources: [ResourceKey], owner: LockOwner, priority: Priority, hold: Duration,
            waitFor: Duration?, waiterPID: Int, workerID: String?, runID: UUID?, takebackGrace: Duration
        ) {
            self.requestID = requestID
            self.resources = resources
            self.owner = owner
            self.priority = priority
            self.hold = hold
            self.waitFor = waitFor
            self.waiterPID = waiterPID
            self.workerID = workerID
            self.runID = runID
            self.takebackGrace = takebackGrace
        }
    }

    /// `agentry_lock_acquire` as a prepared statement: each lock session parses and plans it once.
    struct AcquireStatement: PostgresPreparedStatement {
        /// Named here: the protocol's default name is built with `String(reflecting:)` on every execution.
        static let name = "agentry_lock_acquire"
        static let sql = """
            SELECT o_type, o_id, o_granted, o_token, o_acquired, o_expires, o_position, o_holder, o_holder_expires, o_taken_back
            FROM agentry_lock_acquire($1, $2, $3, $4, $5, $6, $7::integer, $8::interval, now() + $9::text::interval, $10::integer,
                                      $11::text, $12::uuid, $13::interval)
            """
        typealias Row = AcquireRow
        let request: AcquireRequest

        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 13)
            bindings.append(request.requestID)
            bindings.append(request.resources.map(\.type))
            bindings.append(request.resources.map(\.id))
            bindings.append(request.resources.map(\.advisoryKey))
            bindings.append(request.owner.id)
            bindings.append(request.owner.kind.rawValue)
            bindings.append(request.priority.rawValue)
            bindings.append(LockStore.interval(request.hold))
            // Text, cast in the SQL: a NULL bound first (a request that only tries) would otherwise fix the prepared
            // parameter's type as interval, which the text of a later request cannot be read as.
            bindings.append(request.waitFor.map { LockStore.interval(max($0, .zero)) })
            bindings.append(request.waiterPID)
            bindings.append(request.workerID)
            bindings.append(request.runID)
            bindings.append(LockStore.interval(request.takebackGrace))
            return bindings
        }

        func decodeRow(_ row: PostgresRow) throws -> AcquireRow {
            let (type, id, granted, token, acquired, expires, position, holder, holderExpires, takenBack) =
                try row.decode((String, String, Bool, Int64?, Date?, Date?, Int?, String?, Date?, Bool).self)
            return AcquireRow(
                resource: ResourceKey(type: type, id: id), granted: granted, fencingToken: token,
                acquiredAt: acquired, expiresAt: expires, position: position, holder: holder,
                holderExpiresAt: holderExpires, takenBack: takenBack)
        }
    }

    public static func acquire(_ request: AcquireRequest, on connection: PostgresConnection, logger: Logger) async throws -> [AcquireRow] {
        var result: [AcquireRow] = []
        for try await row in try await connection.execute(AcquireStatement(request: request), logger: logger) {
            result.append(row)
        }
        return result
    }

    struct ReleaseStatement: PostgresPreparedStatement {
        static let name = "agentry_lock_release"
        static let sql = "SELECT agentry_lock_release($1)"
        typealias Row = Void
        let keys: [Int64]
        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 1)
            bindings.append(keys)
            return bindings
        }
        func decodeRow(_ row: PostgresRow) throws {}
    }

    /// Gives back a hold's keys on the connection that holds them; the waiters are notified.
    public static func release(resources: [ResourceKey], on connection: PostgresConnection, logger: Logger) async throws {
        let keys = Array(Set(resources.map(\.advisoryKey))).sorted()
        for try await _ in try await connection.execute(ReleaseStatement(keys: keys), logger: logger) {}
    }

    // MARK: Through the pool

    /// A waiter gives up: its rows go and the other waiters re-check.
    public func withdraw(_ requestID: UUID) async throws {
        do {
            try await database.write("SELECT agentry_lock_withdraw(\(requestID))", logger: logger)
        } catch {
            throw StoreError(.query, "cannot withdraw lock request \(requestID)", cause: error)
        }
    }

    /// Every held resource (by type and id) and every resource with waiters.
    public func list() async throws -> [LockStatus] {
        let holders = try await holders(where: "true", binds: PostgresBindings())
        let waiters = try await waiters(where: "true", binds: PostgresBindings())
        var byResource: [ResourceKey: LockStatus] = [:]
        for holder in holders where holder.held {
            byResource[holder.resource] = LockStatus(resource: holder.resource, holder: holder, waiters: [])
        }
        for waiter in waiters {
            byResource[waiter.resource, default: LockStatus(resource: waiter.resource, holder: nil, waiters: [])].waiters.append(waiter)
        }
        return byResource.values.sorted { $0.resource < $1.resource }
    }

    /// The seed's `get_status`: holder (when the advisory lock is really held), expiry, waiters in order.
    public func status(_ resource: ResourceKey) async throws -> LockStatus {
        var binds = PostgresBindings()
        binds.append(resource.type)
        binds.append(resource.id)
        let holder = try await holders(where: "l.resource_type = $1 AND l.resource_id = $2", binds: binds).first { $0.held }
        let waiters = try await waiters(where: "w.resource_type = $1 AND w.resource_id = $2", binds: binds)
        return LockStatus(resource: resource, holder: holder, waiters: waiters)
    }

    /// The seed's `is_available`: nobody holds the resource's advisory lock.
    public func isAvailable(_ resource: ResourceKey) async throws -> Bool {
        do {
            let rows = try await database.query("SELECT agentry_lock_holder_pid(\(resource.advisoryKey)) IS NULL", logger: logger)
            for try await free in rows.decode(Bool.self) { return free }
            return true
        } catch {
            throw StoreError(.query, "cannot check \(resource)", cause: error)
        }
    }

    /// Takes a resource back from its holder (see `agentry_lock_force_release`); nil when nobody held it.
    public func forceRelease(_ resource: ResourceKey) async throws -> ForcedRelease? {
        // A person's hold ends first (committed), so that its keeper, losing its session, does not take it again (the
        // keeper may then give it back itself before the session is ended: it was released all the same).
        let person = try await LockHoldStore(database: database, logger: logger).endForced(resource, by: "a forced release")
        do {
            let rows = try await database.write(
                """
                SELECT o_owner, o_owner_type, o_worker, o_run, o_token, o_terminated
                FROM agentry_lock_force_release(\(resource.type), \(resource.id))
                """, logger: logger)
            for try await (owner, kind, worker, run, token, terminated) in rows.decode((String, String, String?, UUID?, Int64?, Bool).self) {
                return ForcedRelease(
                    resource: resource, owner: LockOwner(id: owner, kind: LockOwner.Kind(rawValue: kind) ?? .system),
                    workerID: worker, runID: run, fencingToken: token, terminatedHolder: terminated)
            }
            return person.map { hold in
                ForcedRelease(
                    resource: resource, owner: hold.owner, workerID: hold.keeperID, runID: nil, fencingToken: hold.fencingToken,
                    terminatedHolder: true)
            }
        } catch {
            throw StoreError(.query, "cannot force the release of \(resource)", cause: error)
        }
    }

    func holders(where condition: String, binds: PostgresBindings) async throws -> [LockRecord] {
        let sql = """
            SELECT l.resource_type, l.resource_id, l.owner_id, l.owner_type, l.acquired_at, l.expires_at, l.priority,
                   l.fencing_token, l.worker_id, l.run_id, l.holder_pid,
                   l.lock_key IS NOT NULL AND agentry_lock_holder_pid(l.lock_key) IS NOT DISTINCT FROM l.holder_pid
            FROM resource_locks l WHERE \(condition) ORDER BY l.resource_type, l.resource_id
            """
        var result: [LockRecord] = []
        do {
            let rows = try await database.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger)
            for try await row in rows {
                let (type, id, owner, kind, acquired, expires, priority, token, worker, run, pid, held) =
                    try row.decode((String, String, String, String, Date, Date, Int, Int64?, String?, UUID?, Int?, Bool).self)
                result.append(
                    LockRecord(
                        resource: ResourceKey(type: type, id: id),
                        owner: LockOwner(id: owner, kind: LockOwner.Kind(rawValue: kind) ?? .system),
                        acquiredAt: acquired, expiresAt: expires, priority: Priority(rawValue: priority) ?? .low,
                        fencingToken: token, workerID: worker, runID: run, holderPID: pid, held: held))
            }
        } catch {
            throw StoreError(.query, "cannot read resource locks", cause: error)
        }
        return result
    }

    private func waiters(where condition: String, binds: PostgresBindings) async throws -> [LockWaiterRecord] {
        // Only live waiters: within their wait, with their session still there.
        let sql = """
            SELECT w.id, w.resource_type, w.resource_id, w.owner_id, w.owner_type, w.priority, w.queued_at, w.wait_until,
                   w.worker_id, w.run_id,
                   row_number() OVER (PARTITION BY w.resource_type, w.resource_id ORDER BY w.priority, w.queued_at, w.id)
            FROM resource_lock_waiters w
            WHERE \(condition) AND w.wait_until >= now()
              AND EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = w.backend_pid)
            ORDER BY w.resource_type, w.resource_id, w.priority, w.queued_at, w.id
            """
        var result: [LockWaiterRecord] = []
        do {
            let rows = try await database.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger)
            for try await row in rows {
                let (request, type, id, owner, kind, priority, queued, until, worker, run, position) =
                    try row.decode((UUID, String, String, String, String, Int, Date, Date, String?, UUID?, Int).self)
                result.append(
                    LockWaiterRecord(
                        requestID: request, resource: ResourceKey(type: type, id: id),
                        owner: LockOwner(id: owner, kind: LockOwner.Kind(rawValue: kind) ?? .system),
                        priority: Priority(rawValue: priority) ?? .low, queuedAt: queued, waitUntil: until,
                        workerID: worker, runID: run, position: position))
            }
        } catch {
            throw StoreError(.query, "cannot read lock waiters", cause: error)
        }
        return result
    }

    /// `'1.5 seconds'`, for an `interval` parameter.
    static func interval(_ duration: Duration) -> String {
        "\(Double(duration.inMilliseconds) / 1000) seconds"
    }
}
