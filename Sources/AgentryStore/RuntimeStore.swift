public import Logging
import PostgresNIO

/// The runtime's state in PostgreSQL: workers (RuntimeStore+Workers), their agent instances, the agents' desired
/// states and the status hubs' registrations (RuntimeStore+Instances), task runs (RuntimeStore+Runs), and the history's
/// retention (RuntimeStore+History).
public struct RuntimeStore: Sendable {
    public let database: Database
    let logger: Logger

    public init(database: Database, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    /// Run trees: delegated tasks, waits and resumes.
    public var delegations: DelegationStore { DelegationStore(database: database, logger: logger) }
    /// Approvals runs wait for.
    public var approvals: ApprovalStore { ApprovalStore(database: database, logger: logger) }

    // MARK: Helpers

    /// A write, answered once committed (``Database/write(_:logger:)``).
    func execute(_ what: String, _ query: PostgresQuery) async throws {
        do {
            try await database.write(query, logger: logger)
        } catch {
            throw StoreError(.query, "cannot \(what)", cause: error)
        }
    }

    /// A query, each of its rows given to `each`; a write (`writes`) is answered once committed (``Database/write(_:logger:)``).
    func query(_ what: String, writes: Bool = false, _ query: PostgresQuery, _ each: (PostgresRow) throws -> Void) async throws {
        try await database.each(what, writes: writes, query, logger: logger, each)
    }
}
