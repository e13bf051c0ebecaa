public import Logging
import PostgresNIO

/// The cluster's signing keys (`signing_keys`), made by the migrations.
public struct SigningKeys: Sendable {
    let database: Database
    let logger: Logger

    public init(database: Database, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    /// The key run tokens are signed with.
    public func runTokenKey() async throws -> [UInt8] {
        var secret: String?
        try await database.each("read the run-token key", "SELECT secret FROM signing_keys WHERE name = 'run-tokens'", logger: logger) { row in
            secret = try row.decode(String.self)
        }
        guard let secret else { throw StoreError(.missingMigrations, "the run-token key is missing: run `agentry migrate`") }
        return Array(secret.utf8)
    }
}
