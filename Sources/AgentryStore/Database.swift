public import Logging
import NIOCore
public import PostgresNIO
public import ServiceLifecycle

/// The PostgreSQL connection pool, run as a service: postgres-nio serves queries only while `run()` runs.
public final class Database: Service, Sendable {
    public let configuration: DatabaseConfiguration
    public let client: PostgresClient
    /// How long a statement through ``query(_:logger:)``, ``execute(_:logger:)`` or ``withTransaction(logger:_:)`` may
    /// take, waiting for a connection included, before it fails with the reason the server does not answer; nil: no
    /// limit. For the admin endpoint, whose requests should fail while PostgreSQL is down rather than wait as long as
    /// postgres-nio's pool keeps trying to connect. The worker's own statements have none: their callers retry anyway,
    /// and a timer per statement would cost the hot path.
    public let statementDeadline: Duration?
    /// The notification session on this database, shared by everyone in the process who listens (see ``Notifications``).
    public let notifications: Notifications
    let logger: Logger

    public init(configuration: DatabaseConfiguration, logger: Logger, statementDeadline: Duration? = nil) {
        self.configuration = configuration
        self.client = PostgresClient(configuration: configuration.clientConfiguration, backgroundLogger: logger)
        self.statementDeadline = statementDeadline
        self.notifications = Notifications(configuration: configuration, logger: logger)
        self.logger = logger
    }

    public func run() async {
        await client.run()
    }

    /// Runs `body` with the pool running, then stops the pool (for commands that do one thing and exit).
    @discardableResult
    public static func with<T: Sendable>(
        _ configuration: DatabaseConfiguration, logger: Logger,
        _ body: @Sendable (Database) async throws -> T
    ) async throws -> T {
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
    /// statement waits for a connection as long as that takes. So the ping has a deadline, and a connection of its own
    /// says why the server does not answer (connection refused, authentication failed, no such database, …).
    public func ping(timeout: Duration = .seconds(5)) async throws {
        do {
            // Straight to the pool (``statement(_:)`` would add the statement deadline, and a second probe).
            _ = try await within(timeout) {
                try await self.onOpenConnection { connection in _ = try await connection.queryAll("SELECT 1", logger: self.logger) }
            }
        } catch let error as StoreError where error.code == .unreachable {
            throw error
        } catch let error as CancellationError {
            throw error
        } catch {
            throw StoreError(.unreachable, "PostgreSQL at \(configuration.redactedURL) does not answer", cause: error)
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
    /// first, and a closed one is given back (the pool drops it) for another. Whether a newer postgres-nio still needs
    /// this: without the check (and without ``answer(on:_:)``'s watch), run the worker test "a worker whose PostgreSQL
    /// connections are terminated again and again mid-work …" (`WorkerTests`) ten times; none may hang.
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
                    throw StoreError(
                        .unreachable, "PostgreSQL at \(configuration.redactedURL) closed every connection the pool offered (\(closedLeases) in a row)"
                    )
                }
                // The pool learns of the closure from the connection itself, on its event loop: give it a moment.
                try await Task.sleep(for: .milliseconds(closedLeases))
            }
        }
    }

    /// A query on an open connection, its rows read in full as they arrive (see ``withConnection(_:)``,
    /// ``answer(on:_:)`` and ``PostgresNIO/PostgresConnection/queryAll(_:logger:)``). `for try await` over the result,
    /// and its `decode`, work as over postgres-nio's row sequence.
    @discardableResult
    public func query(_ query: PostgresQuery, logger: Logger) async throws -> Rows {
        try await statement { connection in try await connection.queryAll(query, logger: logger) }
    }

    /// A statement that writes, like ``query(_:logger:)``, answered only once PostgreSQL has committed it (see
    /// ``committed(on:_:)``): for writes whose caller acts on them (acks a delivery, starts a handler).
    @discardableResult
    public func write(_ query: PostgresQuery, logger: Logger) async throws -> Rows {
        try await statement { connection in try await Self.committed(on: connection) { try await $0.queryAll(query, logger: logger) } }
    }

    /// A prepared statement on an open connection, its rows read and decoded in full (see ``withConnection(_:)``
    /// and ``answer(on:_:)``).
    ///
    /// The statement must answer with one row at most (arrays, where it has more to say): postgres-nio runs prepared
    /// statements only through its row sequence, which stops reading while rows wait for the reader, and a result of
    /// several rows can then stop the process (see ``PostgresNIO/PostgresConnection/queryAll(_:logger:)``). One row
    /// arrives whole or not at all.
    ///
    /// Prepared statements are the worker's writes (claims, outcomes, the event log): answered, like ``write(_:logger:)``,
    /// only once PostgreSQL has committed them.
    @discardableResult
    public func execute<Statement: PostgresPreparedStatement>(_ statement: Statement, logger: Logger) async throws -> [Statement.Row]
    where Statement.Row: Sendable {
        try await self.statement { connection in
            try await Self.committed(on: connection) { connection in
                var rows: [Statement.Row] = []
                for try await row in try await connection.execute(statement, logger: logger) { rows.append(row) }
                return rows
            }
        }
    }

    /// `operation`, one statement outside a transaction block, and then proof that PostgreSQL committed it: a second
    /// statement on the same connection, which postgres-nio sends only once the first one's `ReadyForQuery` came.
    ///
    /// In the extended query protocol, which postgres-nio uses for every statement, PostgreSQL commits a statement
    /// outside a transaction block when it takes the `Sync` that follows `Execute`: after it sent `CommandComplete`.
    /// postgres-nio answers the statement at `CommandComplete`. A connection closed in between (a restart, a failover,
    /// `pg_terminate_backend`: the server sends what it had buffered, `CommandComplete` included, with its last error)
    /// leaves the caller told "done" about a write that was rolled back. Measured: a worker whose connections were
    /// terminated every 100 ms recorded outcomes that were then not there (runs left `running`, their slots held for
    /// good, their deliveries acked) in about one run of the connection-loss test in five, and claims likewise.
    /// (rust-postgres waits for `ReadyForQuery` for the same reason: rust-postgres/rust-postgres#833.)
    ///
    /// When the proof does not come, the error says that the write may or may not have been committed: every caller
    /// retries writes that are idempotent (a claim by its run ids, an outcome by its run, the event log by event id).
    /// Whether a newer postgres-nio still needs this: the test "a write whose connection ends before PostgreSQL
    /// confirmed its commit …" (`DatabaseTests`) ends the connection between the two; once postgres-nio answers a
    /// statement only at `ReadyForQuery`, a write there fails without the second statement.
    static func committed<T: Sendable>(
        on connection: PostgresConnection,
        _ operation: @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        let value = try await operation(connection)
        let unconfirmed = "the connection to PostgreSQL closed before the server confirmed the commit (the write may or may not have been committed)"
        // A statement written to a closed connection gets no answer at all (see ``withConnection(_:)``).
        guard !connection.isClosed else { throw StoreError(.unreachable, unconfirmed) }
        do {
            _ = try await connection.queryAll("SELECT 1", logger: Self.quiet)
        } catch {
            throw StoreError(.unreachable, "\(unconfirmed)", cause: error)
        }
        return value
    }

    /// For the commit confirmation's statement, which has nothing to log.
    static let quiet = Logger(label: "agentry.store.confirm", factory: { _ in SwiftLogNoOpLogHandler() })

    /// A transaction on an open connection (see ``withConnection(_:)`` and ``answer(on:_:)``): committed when
    /// `body` returns, rolled back when it throws. When the rollback succeeds, `body`'s own error is thrown (not
    /// postgres-nio's wrapper), so that callers can tell their own errors apart.
    public func withTransaction<T: Sendable>(logger: Logger, _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        do {
            return try await statement { connection in
                try await connection.withTransaction(logger: logger) { connection in try await body(connection) }
            }
        } catch let error as PostgresTransactionError {
            if let bodyError = error.closureError, error.rollbackError == nil { throw bodyError }
            throw error
        }
    }

    /// `operation` on an open connection of the pool, its answer watched, within ``statementDeadline`` when there is
    /// one: what ``query(_:logger:)``, ``execute(_:logger:)`` and ``withTransaction(logger:_:)`` run.
    func statement<T: Sendable>(_ operation: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        guard let deadline = statementDeadline else { return try await onOpenConnection(operation) }
        return try await within(deadline) { try await self.onOpenConnection(operation) }
    }

    /// `operation` on an open connection of the pool (``withConnection(_:)``), its answer watched (``answer(on:_:)``).
    func onOpenConnection<T: Sendable>(_ operation: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try await withConnection { connection in try await Self.answer(on: connection, operation) }
    }

    /// Runs `operation` within `deadline`. Past it, or as soon as a connection of its own shows the server down or
    /// refusing us (looked at once `operation` has waited a second), the operation is cancelled (a lease that still
    /// waits is given up) and the error says why the server does not answer.
    func within<T: Sendable>(_ deadline: Duration, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        let probeAfter = min(deadline, .seconds(1))
        // The first of: the operation's value, or why the server does not answer (a Result, so that the operation's
        // own errors still come out of the group as thrown errors).
        let outcome = try await withThrowingTaskGroup(of: Result<T, StoreError>.self) { group in
            group.addTask { .success(try await operation()) }
            group.addTask {
                try await Task.sleep(for: probeAfter)
                if let reason = await self.probe() {
                    return .failure(StoreError(.unreachable, "PostgreSQL at \(self.configuration.redactedURL) does not answer: \(reason)"))
                }
                try await Task.sleep(for: deadline - probeAfter)
                return .failure(
                    StoreError(
                        .unreachable,
                        "PostgreSQL at \(self.configuration.redactedURL) gave no answer within \(deadline) (it accepts connections: busy, or a lock held?)"
                    ))
            }
            defer { group.cancelAll() }
            guard let first = try await group.next() else { throw CancellationError() }
            return first
        }
        return try outcome.get()
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
    /// its deadline once cancelled: swiftlang/swift#60441). Whether a newer postgres-nio still needs this: see
    /// ``withConnection(_:)``, whose test covers both.
    static func answer<T: Sendable>(
        on connection: PostgresConnection,
        _ operation: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        let answer = Completion<Result<T, any Error>>()
        let check = connection.eventLoop.scheduleRepeatedTask(initialDelay: closedConnectionCheck, delay: closedConnectionCheck) { task in
            guard connection.isClosed else { return }
            task.cancel()
            answer.complete(
                .failure(
                    StoreError(
                        .unreachable,
                        "the connection to PostgreSQL closed and the statement got no answer (a write may or may not have been committed)")))
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

extension Database {
    /// A statement, each of its rows given to `each`; a write (`writes`) is answered once committed (``write(_:logger:)``).
    /// A failure says it could not do `what`; a ``StoreError`` thrown by `each` passes as it is.
    func each(
        _ what: @autoclosure () -> String, writes: Bool = false, _ query: PostgresQuery, logger: Logger, _ each: (PostgresRow) throws -> Void
    ) async throws {
        do {
            let rows = writes ? try await write(query, logger: logger) : try await self.query(query, logger: logger)
            for try await row in rows {
                try each(row)
            }
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(.query, "cannot \(what())", cause: error)
        }
    }
}

extension PostgresConnection {
    /// A query's rows, read in full as they arrive: through postgres-nio's `EventLoopFuture` interface, which asks for
    /// every row at once, and not its row sequence (`query(_:logger:) async`), which stops reading while rows wait
    /// for the reader.
    ///
    /// postgres-nio 1.33.2 stops the process (a precondition in `RowStreamStateMachine.channelReadComplete`: "How can
    /// we receive a body part, after a channelReadComplete, but no read has been forwarded yet") when the server
    /// closes the connection while rows of a result wait for the reader: NIO then reads what is left on the socket,
    /// more rows, without being asked to. The row sequence asks for more rows only once the reader took the last ones,
    /// so any result longer than one read can be caught that way by a restart, a failover or `pg_terminate_backend`.
    /// Measured: a worker whose connections were terminated every 100 ms stopped so about once in ten runs of the
    /// connection-loss test, reading the published agents (a few hundred rows). Asked for at once, rows never wait.
    /// (async-http-client fixed the same case in its own state machine: swift-server/async-http-client#450.) Whether a
    /// newer postgres-nio still needs this: read the rows of the test "a query whose connection is ended while its rows
    /// stream in …" (`DatabaseTests`) through the row sequence, slowly; the process must not stop.
    @discardableResult
    public func queryAll(_ query: PostgresQuery, logger: Logger) async throws -> Database.Rows {
        let result: PostgresQueryResult = try await self.query(query, logger: logger).get()
        return Database.Rows(rows: result.rows)
    }
}

/// A leased connection that was closed already (see ``Database/withConnection(_:)``).
private struct ClosedLease: Error {}
