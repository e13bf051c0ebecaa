public import AgentryCore
public import Logging
import NIOConcurrencyHelpers
import PostgresNIO

/// A database session dedicated to holds: it holds the advisory locks of one hold at a time, and returns to its
/// ``LockSessions``' idle list after the release.
public final class LockSession: Sendable {
    /// Unique within the process (the holder's map key).
    public let id: Int
    /// The session's backend pid (what `pg_stat_activity` and `resource_locks.holder_pid` name).
    public let pid: Int
    let connection: PostgresConnection
    let database: Database

    init(id: Int, pid: Int, connection: PostgresConnection, database: Database) {
        self.id = id
        self.pid = pid
        self.connection = connection
        self.database = database
    }

    public var isClosed: Bool { connection.isClosed }

    /// `agentry_lock_acquire` on this session: the advisory locks of what is granted are held by it.
    public func acquire(_ request: LockStore.AcquireRequest, logger: Logger) async throws -> [LockStore.AcquireRow] {
        try await database.onSession(connection) { connection in try await LockStore.acquire(request, on: connection, logger: logger) }
    }

    /// Gives back the advisory locks of `resources`, held by this session; their waiters are notified.
    public func release(_ resources: [ResourceKey], logger: Logger) async throws {
        try await database.onSession(connection) { connection in try await LockStore.release(resources: resources, on: connection, logger: logger) }
    }

    /// A trivial question, to see that the session answers.
    public func check(logger: Logger) async throws {
        _ = try await database.onSession(connection) { connection in try await connection.queryAll("SELECT 1", logger: logger) }
    }

    /// Closes the session without waiting: PostgreSQL frees its advisory locks.
    public func close() { Database.close(connection) }
}

/// The lock sessions of one lock manager: opened when a hold needs one and none is idle, kept idle (up to
/// `maxIdle`) for the next hold.
public final class LockSessions: Sendable {
    let database: Database
    let maxIdle: Int
    let logger: Logger
    let onClose: @Sendable (LockSession) -> Void
    let state = NIOLockedValueBox<(idle: [LockSession], shutDown: Bool)>(([], false))

    /// - Parameter onClose: called once for each session when it closes, whoever closed it (this process, the server,
    ///   the network).
    public init(database: Database, maxIdle: Int, logger: Logger, onClose: @escaping @Sendable (LockSession) -> Void) {
        self.database = database
        self.maxIdle = maxIdle
        self.logger = logger
        self.onClose = onClose
    }

    /// An idle session that is still open, or a new one.
    public func checkout() async throws -> LockSession {
        while let idle = state.withLockedValue({ $0.idle.popLast() }) {
            if !idle.isClosed { return idle }
        }
        // TCP keepalives on the server side: should this host vanish, PostgreSQL ends the session (and frees its
        // locks) within about 25 s.
        let setup: PostgresQuery = """
            SELECT pg_backend_pid(), set_config('application_name', 'agentry locks', false),
                   set_config('tcp_keepalives_idle', '10', false), set_config('tcp_keepalives_interval', '5', false),
                   set_config('tcp_keepalives_count', '3', false)
            """
        let (connection, rows) = try await Database.openSession(database.configuration, setup: setup, logger: logger)
        var pid = 0
        do {
            for try await (value, _, _, _, _) in rows.decode((Int, String, String, String, String).self) { pid = value }
        } catch {
            Database.close(connection)
            throw error
        }
        let session = LockSession(id: Database.nextSessionID(), pid: pid, connection: connection, database: database)
        connection.closeFuture.whenComplete { _ in self.onClose(session) }
        return session
    }

    /// Keeps `session` for the next hold, or closes it (shutting down, enough idle ones, or closed already).
    public func checkin(_ session: LockSession) {
        let keep = state.withLockedValue { s -> Bool in
            guard !s.shutDown, s.idle.count < maxIdle, !session.isClosed else { return false }
            s.idle.append(session)
            return true
        }
        if !keep { session.close() }
    }

    /// Closes the idle sessions and keeps none from now on (sessions that hold locks stay until checked in).
    public func shutdown() {
        let idle = state.withLockedValue { s -> [LockSession] in
            s.shutDown = true
            defer { s.idle = [] }
            return s.idle
        }
        for session in idle { session.close() }
    }
}
