import PostgresNIO

/// An error from the PostgreSQL store, with the server's own words when it sent any.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public static let invalidConfiguration = Code("invalid configuration")
        public static let unreachable = Code("database unreachable")
        public static let migrationFailed = Code("migration failed")
        public static let migrationChanged = Code("migration changed")
        public static let missingMigrations = Code("missing migrations")
        public static let query = Code("query failed")
        public static let notFound = Code("not found")
        public var description: String { name }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    /// The server's message and SQLSTATE of a postgres-nio error, or the error itself.
    public static func describe(_ error: any Error) -> String {
        if let psql = error as? PSQLError {
            if let message = psql.serverInfo?[.message] {
                let state = psql.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
                let detail = psql.serverInfo?[.detail].map { ": \($0)" } ?? ""
                return message + detail + state
            }
            if let underlying = psql.underlying { return "\(psql.code): \(describe(underlying))" }
            return "\(psql.code)"
        }
        if let transaction = error as? PostgresTransactionError {
            if let begin = transaction.beginError { return "cannot begin the transaction: " + describe(begin) }
            if let commit = transaction.commitError { return "cannot commit the transaction: " + describe(commit) }
            let body = transaction.closureError.map(describe) ?? "the transaction failed"
            return transaction.rollbackError.map { body + "; and its rollback failed: " + describe($0) } ?? body
        }
        return "\(error)"
    }
}
