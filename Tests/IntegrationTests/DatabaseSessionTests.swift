import AgentryRuntime
import AgentryStore
import Foundation
import Logging
import PostgresNIO
import Testing

/// Every PostgreSQL session carries limits (statement, lock wait, idle transaction), and TLS can be required and
/// verified.
@Suite("Database sessions")
struct DatabaseSessionTests {
    static func settings(_ configuration: DatabaseConfiguration) async throws -> [String] {
        try await Database.with(configuration, logger: TestEnvironment.logger) { db in
            var values: [String] = []
            for name in ["statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout"] {
                for try await value in try await db.query(PostgresQuery(unsafeSQL: "SHOW \(name)"), logger: TestEnvironment.logger).decode(
                    String.self)
                {
                    values.append(value)
                }
            }
            return values
        }
    }

    @Test("a pooled session has the default limits; URL parameters change them, and a statement past its limit is ended")
    func sessionLimits() async throws {
        #expect(try await Self.settings(TestEnvironment.configuration.database) == ["1min", "30s", "1min"])
        let base = TestEnvironment.configuration.database
        let url =
            "postgres://\(base.user):\(base.password ?? "")@\(base.host):\(base.port)/\(base.database)?statement_timeout=500ms&lock_timeout=2s&idle_in_transaction_session_timeout=0"
        let tuned = try DatabaseConfiguration(url: url)
        #expect(try await Self.settings(tuned) == ["500ms", "2s", "0"])
        try await Database.with(tuned, logger: TestEnvironment.logger) { db in
            do {
                try await db.query("SELECT pg_sleep(3)", logger: TestEnvironment.logger)
                Issue.record("a statement longer than statement_timeout should have been ended")
            } catch {
                #expect(StoreError.describe(error).contains("statement timeout"), "\(StoreError.describe(error))")
            }
        }
        // The migrator's own session lifts the statement and lock limits (a migration may rewrite a large table).
        let migrations = try Migration.load(directory: TestEnvironment.configuration.migrationsDirectory)
        _ = try await Migrator(configuration: tuned, logger: TestEnvironment.logger).migrate(migrations)
    }

    @Test("bad limits and TLS settings stop the configuration with a message naming them")
    func badSettings() throws {
        #expect(throws: StoreError.self) { try DatabaseConfiguration(url: "postgres://a@localhost/db?statement_timeout=soon") }
        do {
            _ = try DatabaseConfiguration(url: "postgres://a@localhost/db?sslmode=verify-ca")
            Issue.record("sslmode=verify-ca should be refused")
        } catch {
            #expect("\(error)".contains("verify-full"), "\(error)")
        }
        #expect(throws: StoreError.self) { try DatabaseConfiguration(url: "postgres://a@localhost/db?sslmode=require&sslrootcert=/tmp/ca.pem") }
        #expect(throws: StoreError.self) {
            try DatabaseConfiguration(url: "postgres://a@localhost/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
        }
        #expect(try DatabaseConfiguration(url: "postgres://a@localhost/db").sslMode == .prefer)
        #expect(try DatabaseConfiguration(url: "postgres://a@localhost/db?sslmode=verify-full").sslMode == .verifyFull)
    }

    @Test("sslmode=require and verify-full refuse a server without TLS; prefer falls back to plain")
    func tlsRequired() async throws {
        let base = TestEnvironment.configuration.database
        let plain = "postgres://\(base.user):\(base.password ?? "")@\(base.host):\(base.port)/\(base.database)"
        func connects(_ mode: String) async throws -> Bool {
            let configuration = try DatabaseConfiguration(url: plain + "?sslmode=\(mode)")
            do {
                let connection = try await PostgresConnection.connect(
                    configuration: configuration.connectionConfiguration, id: 1, logger: TestEnvironment.logger)
                try? await connection.close()
                return true
            } catch {
                return false
            }
        }
        #expect(try await connects("require") == false, "sslmode=require must not connect without TLS")
        #expect(try await connects("verify-full") == false, "sslmode=verify-full must not connect without TLS")
        #expect(try await connects("prefer"))
    }
}
