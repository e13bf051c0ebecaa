import Foundation
public import Logging
import PostgresNIO

/// One numbered SQL file of `Sources/AgentryStore/Migrations/` (built in) or of `--migrations DIR`: `0001_event_log.sql` is version 1, named `event_log`.
public struct Migration: Sendable, Hashable {
    public var version: Int
    public var name: String
    public var sql: String

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }

    /// FNV-1a of the SQL text, recorded to notice a migration edited after it was applied.
    public var checksum: String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in sql.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return String(hash, radix: 16)
    }

    /// The migrations to apply: the `NNNN_name.sql` files of `directory` (`--migrations`), or when it is nil the
    /// ones built into the binary (``builtIn``).
    public static func load(directory: String?) throws -> [Migration] {
        guard let directory else { return builtIn }
        let url = URL(fileURLWithPath: directory)
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: url.path)
        } catch {
            throw StoreError(
                .missingMigrations,
                "cannot read the migrations directory '\(directory)' (--migrations, AGENTRY_MIGRATIONS_DIR); without either, the migrations built into agentry are used"
            )
        }
        let files = try names.filter { $0.hasSuffix(".sql") }.map { ($0, try String(contentsOf: url.appendingPathComponent($0), encoding: .utf8)) }
        return try parse(files, source: "'\(directory)'")
    }

    /// Migrations from `NNNN_name.sql` files (name, SQL), in version order. Two files with the same number are an
    /// error; so is none.
    static func parse(_ files: [(name: String, sql: String)], source: String) throws -> [Migration] {
        var migrations: [Migration] = []
        for (file, sql) in files {
            let stem = file.dropLast(4)
            guard let underscore = stem.firstIndex(of: "_"), let version = Int(stem[..<underscore]), version > 0 else {
                throw StoreError(.missingMigrations, "migration file '\(file)' is not named NNNN_name.sql")
            }
            if let other = migrations.first(where: { $0.version == version }) {
                throw StoreError(.missingMigrations, "migrations '\(other.name)' and '\(stem)' both have number \(version)")
            }
            migrations.append(Migration(version: version, name: String(stem[stem.index(after: underscore)...]), sql: sql))
        }
        guard !migrations.isEmpty else {
            throw StoreError(.missingMigrations, "no NNNN_name.sql files in \(source)")
        }
        return migrations.sorted { $0.version < $1.version }
    }
}

/// Applies migrations in order, each in its own transaction, and records them in `schema_migrations`.
/// Several hosts may run it at once: a session-level advisory lock lets one apply while the others wait, then find
/// nothing left to do.
public struct Migrator: Sendable {
    /// The advisory lock key that serialises migrations ("agentry" in ASCII).
    public static let lockKey: Int64 = 0x0061_6765_6e74_7279

    public struct Outcome: Sendable, Equatable {
        /// Versions this run applied.
        public var applied: [Int]
        /// Versions that were already applied.
        public var alreadyApplied: [Int]
    }

    let configuration: DatabaseConfiguration
    let logger: Logger

    public init(configuration: DatabaseConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    public func migrate(_ migrations: [Migration]) async throws -> Outcome {
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(configuration: configuration.connectionConfiguration, id: 1, logger: logger)
        } catch {
            throw StoreError(.unreachable, "cannot connect to PostgreSQL at \(configuration.redactedURL)", cause: error)
        }
        let outcome: Result<Outcome, any Error>
        // Watched like every other statement (``Database/answer(on:_:)``): a connection the server closes (a restart,
        // a failover) ends the wait with an error instead of hanging the command or the starting worker.
        do {
            outcome = .success(
                try await Database.answer(on: connection) { [self] connection in
                    // The session limits (``DatabaseConfiguration/sessionLimits``) are for the platform's own statements:
                    // a migration may rewrite a large table, and another host may wait here while it does. This session
                    // never sits idle inside a transaction (each migration's statements go one after the other), so that
                    // limit stays.
                    try await connection.queryAll("SET statement_timeout = 0", logger: logger)
                    try await connection.queryAll("SET lock_timeout = 0", logger: logger)
                    try await connection.queryAll("SELECT pg_advisory_lock(\(Self.lockKey))", logger: logger)
                    return try await apply(migrations, on: connection)
                })
        } catch let error as StoreError {
            outcome = .failure(error)
        } catch {
            outcome = .failure(StoreError(.migrationFailed, "migrating \(configuration.redactedURL) failed", cause: error))
        }
        // Closing the session would release the lock too; unlocking first lets a waiting host go on at once.
        _ = try? await Database.answer(on: connection) { [logger] connection in
            try await connection.queryAll("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
        }
        try? await connection.close()
        return try outcome.get()
    }

    private func apply(_ migrations: [Migration], on connection: PostgresConnection) async throws -> Outcome {
        try await connection.queryAll(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    integer PRIMARY KEY,
                name       text NOT NULL,
                checksum   text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """, logger: logger)
        var recorded: [Int: String] = [:]
        for try await (version, checksum) in try await connection.queryAll("SELECT version, checksum FROM schema_migrations", logger: logger).decode(
            (Int, String).self)
        {
            recorded[version] = checksum
        }
        var outcome = Outcome(applied: [], alreadyApplied: [])
        for migration in migrations {
            if let checksum = recorded[migration.version] {
                guard checksum == migration.checksum else {
                    throw StoreError(
                        .migrationChanged,
                        "migration \(migration.version) (\(migration.name)) was edited after it was applied; add a new migration instead")
                }
                outcome.alreadyApplied.append(migration.version)
                continue
            }
            do {
                try await connection.queryAll("BEGIN", logger: logger)
                for statement in SQLScript.statements(migration.sql) {
                    try await connection.queryAll(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.queryAll(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (\(migration.version), \(migration.name), \(migration.checksum))",
                    logger: logger)
                try await connection.queryAll("COMMIT", logger: logger)
            } catch {
                _ = try? await connection.queryAll("ROLLBACK", logger: logger)
                throw StoreError(.migrationFailed, "migration \(migration.version) (\(migration.name)) failed and was rolled back", cause: error)
            }
            logger.info("applied migration", metadata: ["agentry.migration": "\(migration.version)_\(migration.name)"])
            outcome.applied.append(migration.version)
        }
        return outcome
    }

    /// The highest applied version, or nil when `schema_migrations` does not exist yet.
    public static func currentVersion(database: Database, logger: Logger) async throws -> Int? {
        let rows = try await database.query("SELECT to_regclass('schema_migrations') IS NOT NULL", logger: logger)
        var exists = false
        for try await value in rows.decode(Bool.self) { exists = value }
        guard exists else { return nil }
        var version: Int?
        for try await value in try await database.query("SELECT max(version) FROM schema_migrations", logger: logger).decode(Int?.self) {
            version = value
        }
        return version
    }
}
