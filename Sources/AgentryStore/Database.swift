public import Logging
public import PostgresNIO
public import ServiceLifecycle

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

    /// Checks that the database answers, with a clear error when it does not.
    public func ping() async throws {
        do {
            try await client.query("SELECT 1", logger: logger)
        } catch {
            throw StoreError(.unreachable, "PostgreSQL at \(configuration.redactedURL) does not answer: \(StoreError.describe(error))")
        }
    }
}
