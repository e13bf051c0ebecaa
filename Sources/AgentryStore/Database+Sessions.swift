import AgentryCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import PostgresNIO

/// Connections of their own, outside the pool: the lock sessions (session-level advisory locks) and the
/// notification session (LISTEN). Their statements get the pool's workarounds: each answer is watched for the
/// connection closing without one (``Database/answer(on:_:)``), and bounded by ``Database/statementDeadline`` when
/// there is one.
extension Database {
    /// How long opening a session of its own may take, its setup statement included, before it is closed and the
    /// opening fails.
    public static let sessionOpeningDeadline: Duration = .seconds(10)

    /// Ids for the sessions of their own (postgres-nio names its connections by them in its logs).
    static let sessionIDs = NIOLockedValueBox(1_000)

    static func nextSessionID() -> Int {
        sessionIDs.withLockedValue { id in
            id += 1
            return id
        }
    }

    /// Opens a connection of its own and runs `setup` on it, within `deadline`; the rows of `setup` come back with it.
    ///
    /// postgres-nio 1.33.2 can leave a statement unanswered for ever on a connection that the server terminated right
    /// after it opened (seen: `SELECT pg_backend_pid()` on the notification session of a worker whose connections were
    /// terminated again and again, which kept the worker from stopping). Here the statement's answer is watched like
    /// every other (``answer(on:_:)``: a closed connection ends the wait within a second) and the connection is closed
    /// once the deadline passes. Whether a newer postgres-nio still needs this: terminate the session
    /// (`pg_terminate_backend`) between `PostgresConnection.connect` and the first statement, in a loop, and see
    /// whether that statement always fails instead of waiting.
    static func openSession(
        _ configuration: DatabaseConfiguration, setup: PostgresQuery, within deadline: Duration = sessionOpeningDeadline,
        logger: Logger
    ) async throws -> (PostgresConnection, Rows) {
        // `connect` has a deadline of its own: the configuration's `connectTimeout` (10 s).
        let connection = try await PostgresConnection.connect(
            configuration: configuration.connectionConfiguration, id: nextSessionID(), logger: logger)
        let late = NIOLockedValueBox(false)
        let timer = connection.eventLoop.scheduleTask(in: .milliseconds(deadline.inMilliseconds)) {
            late.withLockedValue { $0 = true }
            close(connection)
        }
        do {
            let rows = try await answer(on: connection) { connection in try await connection.queryAll(setup, logger: logger) }
            timer.cancel()
            return (connection, rows)
        } catch {
            timer.cancel()
            close(connection)
            if late.withLockedValue({ $0 }) {
                throw StoreError(.unreachable, "PostgreSQL at \(configuration.redactedURL) did not set up a new session within \(deadline)")
            }
            throw error
        }
    }

    /// `operation` on a session of its own, like every statement through the pool: its answer watched
    /// (``answer(on:_:)``), within ``statementDeadline`` when there is one.
    func onSession<T: Sendable>(
        _ connection: PostgresConnection,
        _ operation: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        guard let deadline = statementDeadline else { return try await Self.answer(on: connection, operation) }
        return try await within(deadline) { try await Self.answer(on: connection, operation) }
    }

    /// Closes a session of its own without waiting, keeping the connection alive until it is closed (postgres-nio
    /// asserts on a connection freed while open).
    static func close(_ connection: PostgresConnection) {
        connection.close().whenComplete { _ in _ = connection }
    }
}
