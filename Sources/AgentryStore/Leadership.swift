public import Logging
import NIOConcurrencyHelpers
import PostgresNIO

/// A role that one process at a time holds: a session of its own holding a session-level advisory lock. The holder
/// leads while its session lives; when the process dies, PostgreSQL ends the session and frees the lock, and the next
/// process that asks leads. Used where one leader keeps work cheap but correctness never depends on there being only
/// one (the scheduler: two leaders for a moment still publish each tick once).
public final class Leadership: Sendable {
    let database: Database
    let name: String
    let logger: Logger
    /// The session (while open), whether it holds the lock, and when the session last answered.
    let state = NIOLockedValueBox<(connection: PostgresConnection?, leads: Bool, answered: ContinuousClock.Instant?)>((nil, false, nil))
    /// A leader's session is asked whether it still answers at most this often (a closed one is seen at once).
    static let checkInterval: Duration = .seconds(1)

    /// - Parameter name: the role's name; its lock key is derived from it (`hashtext(name)`, in the two-int4 key space
    ///   with 0 as the second key, which neither the resource locks' bigint keys nor their gates use).
    public init(database: Database, name: String, logger: Logger) {
        self.database = database
        self.name = name
        self.logger = logger
    }

    /// Whether this process leads: asks for the lock when it does not hold it (opening a session when it has none), and
    /// checks that the session still answers when it does. Never waits for another holder.
    public func lead() async -> Bool {
        let (connection, leads, answered) = state.withLockedValue { ($0.connection, $0.leads, $0.answered) }
        do {
            if let connection, !connection.isClosed {
                if leads {
                    if let answered, ContinuousClock.now - answered < Self.checkInterval { return true }
                    _ = try await database.onSession(connection) { try await $0.queryAll("SELECT 1", logger: self.logger) }
                    state.withLockedValue { $0.answered = .now }
                    return true
                }
                let rows = try await database.onSession(connection) { [name, logger] in
                    try await $0.queryAll("SELECT pg_try_advisory_lock(hashtext(\(name)), 0)", logger: logger)
                }
                return record(connection, leads: try Self.granted(rows))
            }
            let (opened, rows) = try await Database.openSession(
                database.configuration, setup: "SELECT pg_try_advisory_lock(hashtext(\(name)), 0)", logger: logger)
            return record(opened, leads: try Self.granted(rows))
        } catch {
            logger.debug("cannot ask to lead \(name): \(error)")
            resign()
            return false
        }
    }

    /// Gives the role up (closes the session, which frees the lock).
    public func resign() {
        let connection = state.withLockedValue { state in
            defer { state = (nil, false, nil) }
            return state.connection
        }
        if let connection { Database.close(connection) }
    }

    private func record(_ connection: PostgresConnection, leads: Bool) -> Bool {
        let previous = state.withLockedValue { state in
            defer { state = (connection, leads, ContinuousClock.now) }
            return state.connection
        }
        if let previous, previous !== connection { Database.close(previous) }
        return leads
    }

    private static func granted(_ rows: Database.Rows) throws -> Bool {
        try rows.rows.first?.decode(Bool.self) ?? false
    }
}
