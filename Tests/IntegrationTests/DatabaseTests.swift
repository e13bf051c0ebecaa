import AgentryRuntime
import Foundation
import PostgresNIO
import Testing

@testable import AgentryStore

/// Statements whose connection the server ends under them (a restart, a failover, `pg_terminate_backend`).
@Suite("Database: connections ended under a statement")
struct DatabaseConnectionLossTests {
    /// A pool of its own, its connections named so that the test can find and end them.
    func withNamedDatabase(_ body: @Sendable (Database, String) async throws -> Void) async throws {
        var configuration = TestEnvironment.configuration.database
        configuration.applicationName = TestEnvironment.uniqueName("agentry-test-loss-")
        let name = configuration.applicationName
        try await Database.with(configuration, logger: TestEnvironment.logger) { db in try await body(db, name) }
    }

    /// Ends the backends of connections named `name`; returns how many.
    func terminate(_ name: String, where condition: String = "true") async throws -> Int {
        try await Database.with(TestEnvironment.configuration.database, logger: TestEnvironment.logger) { db in
            var ended = 0
            let rows = try await db.query(
                PostgresQuery(
                    unsafeSQL: """
                        SELECT count(*)::int8 FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                                                    WHERE application_name = $1 AND \(condition)) t
                        """,
                    binds: {
                        var b = PostgresBindings()
                        b.append(name)
                        return b
                    }()), logger: TestEnvironment.logger)
            for try await n in rows.decode(Int64.self) { ended = Int(n) }
            return ended
        }
    }

    @Test(
        "a query whose connection is ended while its rows stream in fails with the server's reason, and the pool goes on",
        .timeLimit(.minutes(1)))
    func queryEndedMidResult() async throws {
        try await withNamedDatabase { db, name in
            // Rows trickle in for about 10 s (a flush every few hundred rows); the connection is ended after a second.
            let started = ContinuousClock.now
            async let streaming: Int = db.query(
                "SELECT g, pg_sleep(0.0005)::text FROM generate_series(1, 20000) g",
                logger: TestEnvironment.logger
            ).rows.count
            try await Task.sleep(for: .seconds(1))
            // Once its rows stream in (on a slow machine the pool may still be connecting after a second).
            #expect(
                try await TestEnvironment.eventually(timeout: .seconds(5)) {
                    try await terminate(name, where: "state = 'active' AND query LIKE '%generate_series%'") == 1
                }, "the streaming query's backend was found and ended")
            do {
                let count = try await streaming
                Issue.record("the query answered \(count) rows after its connection was ended")
            } catch {
                let reason = StoreError.describe(error)
                #expect(reason.contains("57P01") || reason.contains("closed"), "the reason: \(reason)")
            }
            #expect(ContinuousClock.now - started < .seconds(8), "it failed when its connection ended, not when the rows would have")
            // The ended connection may still be leased once while it closes (that statement fails, and callers retry).
            #expect(
                try await TestEnvironment.eventually(timeout: .seconds(10)) {
                    guard let rows = try? await db.query("SELECT 1", logger: TestEnvironment.logger) else { return false }
                    var one = 0
                    for try await value in rows.decode(Int.self) { one = value }
                    return one == 1
                }, "the pool serves the next statements on a new connection")
        }
    }

    @Test(
        "a write whose connection ends before PostgreSQL confirmed its commit fails, saying it may or may not be committed",
        .timeLimit(.minutes(1)))
    func writeUnconfirmed() async throws {
        try await withNamedDatabase { db, name in
            let table = TestEnvironment.uniqueName("confirm_").replacingOccurrences(of: "-", with: "_")
            try await db.query(PostgresQuery(unsafeSQL: "CREATE TABLE \(table) (n int)"), logger: TestEnvironment.logger)
            do {
                // A write answered normally; then the server ends the connection before the commit's confirmation.
                let terminate = self.terminate
                // Straight on the connection: the statement watch (`Database.answer(on:_:)`) would see it closed too.
                _ = try await db.withConnection { connection in
                    // Only this connection's backend: ending the pool's other (idle) connection too would fail the
                    // write below when it leases that one before the pool has seen it close.
                    var pid = 0
                    for try await value in try await connection.queryAll("SELECT pg_backend_pid()", logger: TestEnvironment.logger)
                        .decode(Int.self)
                    { pid = value }
                    let backend = pid
                    return try await Database.committed(on: connection) { connection in
                        try await connection.queryAll(PostgresQuery(unsafeSQL: "INSERT INTO \(table) VALUES (1)"), logger: TestEnvironment.logger)
                        _ = try await terminate(name, "pid = \(backend)")
                        while !connection.isClosed { try await Task.sleep(for: .milliseconds(10)) }
                    }
                }
                Issue.record("the write was answered as committed on a connection that had ended")
            } catch {
                #expect("\(error)".contains("may or may not have been committed"), "\(error)")
            }
            // And a write the connection lives to confirm is answered.
            try await db.write(PostgresQuery(unsafeSQL: "INSERT INTO \(table) VALUES (2)"), logger: TestEnvironment.logger)
            var values: [Int] = []
            for try await n in try await db.query(
                PostgresQuery(unsafeSQL: "SELECT n FROM \(table) ORDER BY n"),
                logger: TestEnvironment.logger
            ).decode(Int.self) { values.append(n) }
            #expect(values == [1, 2], "both committed here (the first one's commit came before its connection ended)")
            try await db.query(PostgresQuery(unsafeSQL: "DROP TABLE \(table)"), logger: TestEnvironment.logger)
        }
    }
}
