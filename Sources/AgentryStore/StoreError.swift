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
        /// The change conflicts with what is kept (a name taken, a row owned by something else).
        public static let conflict = Code("conflict")
        public var description: String { name }
    }

    public var code: Code
    public var message: String
    /// The server's SQLSTATE, when the server refused the statement.
    public var sqlState: String?

    public init(_ code: Code, _ message: String, sqlState: String? = nil) {
        self.code = code
        self.message = message
        self.sqlState = sqlState
    }

    /// `what` failed because of `error`: the message says both, and the server's SQLSTATE is kept.
    public init(_ code: Code, _ what: String, cause error: any Error) {
        self.init(code, "\(what): \(Self.describe(error))", sqlState: Self.sqlState(of: error))
    }

    public var description: String { message }

    /// Whether the server refused the statement for the data it carried (SQLSTATE class 22, data exception: a value
    /// too long, out of range, or text PostgreSQL cannot hold such as NUL): sending the same data again fails again.
    public var isDataError: Bool { sqlState?.hasPrefix("22") == true }

    /// The SQLSTATE of a postgres-nio error (or of a ``StoreError`` that kept one).
    public static func sqlState(of error: any Error) -> String? {
        switch error {
        case let store as StoreError: return store.sqlState
        case let psql as PSQLError: return psql.serverInfo?[.sqlState]
        case let transaction as PostgresTransactionError:
            return transaction.closureError.flatMap(sqlState(of:)) ?? transaction.commitError.flatMap(sqlState(of:))
        default: return nil
        }
    }

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
