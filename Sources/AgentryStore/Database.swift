public import Logging
public import PostgresNIO
public import ServiceLifecycle
import NIOCore

/// The PostgreSQL connection pool, run as a service: postgres-nio serves queries only while `run()` runs.
public final class Database: Service, Sendable {
    public let configuration: DatabaseConfiguration
    public let client: PostgresClient
    let logger: Logger

    public init(configuration: DatabaseConfiguration, logger: Logger) {
        self.configuration = configuration
        self.client = PostgresClient(configuration: configuration.clientConfiguration, backgroundLogger: logger)
        self.logger = logger
    }

    public func run() async {
        await client.run()
    }

    /// Runs `body` with the pool running, then stops the pool (for commands that do one thing and exit).
    @discardableResult
    public static func with<T: Sendable>(_ configuration: DatabaseConfiguration, logger: Logger,
                                         _ body: @Sendable (Database) async throws -> T) async throws -> T {
        let database = Database(configuration: configuration, logger: logger)
        let (started, signal) = AsyncStream<Void>.makeStream()
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                signal.finish()
                await database.run()
                return nil
            }
            // Queries made before run() has started wait, and postgres-nio warns about it: let it start first.
            for await _ in started {}
            defer { group.cancelAll() }
            let result = try await body(database)
            return result
        }
    }

    /// Checks that the database answers within `timeout`, with a clear error when it does not.
    ///
    /// postgres-nio's pool never fails a lease: while the server cannot be reached it keeps trying to connect, and a
    /// statement waits for a connection as long as that takes. So the ping has a deadline, and when it fails a
    /// connection of its own says why (connection refused, authentication failed, no such database, …).
    public func ping(timeout: Duration = .seconds(5)) async throws {
        enum Answer: Sendable { case answered, unreachable(String), timedOut }
        let probeAfter = min(timeout, .seconds(1))
        let answer: Answer
        do {
            answer = try await withThrowingTaskGroup(of: Answer.self) { group in
                group.addTask {
                    try await self.query("SELECT 1", logger: self.logger)
                    return .answered
                }
                group.addTask {
                    // No answer yet: a connection of the ping's own tells a server that is down or refuses us (fail
                    // now, with its reason) from one that is only slow (wait out the deadline).
                    try await Task.sleep(for: probeAfter)
                    if let reason = await self.probe() { return .unreachable(reason) }
                    try await Task.sleep(for: timeout - probeAfter)
                    return .timedOut
                }
                defer { group.cancelAll() }
                return try await group.next() ?? .timedOut
            }
        } catch let error as CancellationError {
            throw error
        } catch {
            answer = .unreachable(StoreError.describe(error))
        }
        switch answer {
        case .answered:
            return
        case .unreachable(let reason):
            throw StoreError(.unreachable, "PostgreSQL at \(configuration.redactedURL) does not answer: \(reason)")
        case .timedOut:
            throw StoreError(.unreachable, "PostgreSQL at \(configuration.redactedURL) does not answer: no answer within \(timeout)")
        }
    }

    /// Why a connection of its own cannot be opened, or nil when it can.
    func probe() async -> String? {
        do {
            let connection = try await PostgresConnection.connect(configuration: configuration.connectionConfiguration, id: 0, logger: logger)
            try? await connection.close()
            return nil
        } catch {
            return StoreError.describe(error)
        }
    }
}


// MARK: - Statements on open connections

extension Database {
    /// Runs `body` with a connection of the pool that is open.
    ///
    /// postgres-nio 1.33.2's pool can lease a connection that the server has just closed (a restart, a failover,
    /// `pg_terminate_backend`) before it has noticed, and a statement written to such a connection is dropped without
    /// an error: the caller waits for an answer forever. Measured: a worker whose connections were terminated twenty
    /// times in three seconds hung in one of three drains, a claim or an outcome waiting with the connection it had
    /// leased already closed, and every later claim of the agent waiting behind it. So a leased connection is checked
    /// first, and a closed one is given back (the pool drops it) for another.
    public func withConnection<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        var closedLeases = 0
        while true {
            do {
                return try await client.withConnection { connection in
                    guard !connection.isClosed else { throw ClosedLease() }
                    return try await body(connection)
                }
            } catch is ClosedLease {
                closedLeases += 1
                guard closedLeases < Self.closedLeaseAttempts else {
                    throw StoreError(.unreachable, "PostgreSQL at \(configuration.redactedURL) closed every connection the pool offered (\(closedLeases) in a row)")
                }
                // The pool learns of the closure from the connection itself, on its event loop: give it a moment.
                try await Task.sleep(for: .milliseconds(closedLeases))
            }
        }
    }

    /// A query on an open connection, its rows read in full (see ``withConnection(_:)`` and
    /// ``answer(on:_:)``). `for try await` over the result, and its `decode`, work as over postgres-nio's row sequence.
    @discardableResult
    public func query(_ query: PostgresQuery, logger: Logger) async throws -> Rows {
        try await withConnection { connection in
            try await Self.answer(on: connection) { connection in
                var rows: [PostgresRow] = []
                for try await row in try await connection.query(query, logger: logger) { rows.append(row) }
                return Rows(rows: rows)
            }
        }
    }

    /// A prepared statement on an open connection, its rows read and decoded in full (see ``withConnection(_:)``
    /// and ``answer(on:_:)``).
    @discardableResult
    public func execute<Statement: PostgresPreparedStatement>(_ statement: Statement, logger: Logger) async throws -> [Statement.Row]
    where Statement.Row: Sendable {
        try await withConnection { connection in
            try await Self.answer(on: connection) { connection in
                var rows: [Statement.Row] = []
                for try await row in try await connection.execute(statement, logger: logger) { rows.append(row) }
                return rows
            }
        }
    }

    /// A transaction on an open connection (see ``withConnection(_:)`` and ``answer(on:_:)``): committed when
    /// `body` returns, rolled back when it throws. When the rollback succeeds, `body`'s own error is thrown (not
    /// postgres-nio's wrapper), so that callers can tell their own errors apart.
    public func withTransaction<T: Sendable>(logger: Logger, _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        do {
            return try await withConnection { connection in
                try await Self.answer(on: connection) { connection in
                    try await connection.withTransaction(logger: logger) { connection in try await body(connection) }
                }
            }
        } catch let error as PostgresTransactionError {
            if let bodyError = error.closureError, error.rollbackError == nil { throw bodyError }
            throw error
        }
    }

    /// Waits for `operation`'s answer on `connection`, or for the connection to close without one.
    ///
    /// The check in ``withConnection(_:)`` leaves a gap: a connection can close between the check and the moment its
    /// event loop takes the statement, and then too the statement is dropped without an answer (seen in two of five
    /// drains whose connections were terminated twenty times, each time an event log insert). So the connection is
    /// looked at every `closedConnectionCheck` while its answer is awaited; once it is closed and still nothing has
    /// come, the wait ends with an error the callers retry. The statement's own task is left waiting (postgres-nio
    /// never ends it); the pool has dropped its closed connection. The check is a timer on the connection's event
    /// loop, removed when the answer comes (a `Task.sleep` per statement would keep its wake-up job allocated until
    /// its deadline once cancelled: swiftlang/swift#60441).
    static func answer<T: Sendable>(on connection: PostgresConnection,
                                    _ operation: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let answer = Completion<Result<T, any Error>>()
        let check = connection.eventLoop.scheduleRepeatedTask(initialDelay: closedConnectionCheck, delay: closedConnectionCheck) { task in
            guard connection.isClosed else { return }
            task.cancel()
            answer.complete(.failure(StoreError(.unreachable, "the connection to PostgreSQL closed and the statement got no answer")))
        }
        let statement = Task {
            let result: Result<T, any Error>
            do { result = .success(try await operation(connection)) } catch { result = .failure(error) }
            check.cancel()
            answer.complete(result)
        }
        return try await withTaskCancellationHandler {
            try await answer.value.get()
        } onCancel: {
            statement.cancel()
        }
    }

    static let closedConnectionCheck = TimeAmount.seconds(1)

    static let closedLeaseAttempts = 50

    /// The rows of a query, read in full.
    public struct Rows: AsyncSequence, Sendable {
        public typealias Element = PostgresRow
        public let rows: [PostgresRow]

        public struct AsyncIterator: AsyncIteratorProtocol {
            var base: IndexingIterator<[PostgresRow]>
            public mutating func next() async -> PostgresRow? { base.next() }
        }

        public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: rows.makeIterator()) }
    }
}

/// A leased connection that was closed already (see ``Database/withConnection(_:)``).
private struct ClosedLease: Error {}
