public import AMQP
public import AgentryCore
public import AgentryStore
public import Foundation

/// Agentry's one configuration value: each setting from its flag, else its environment variable, else its default.
public struct AgentryConfiguration: Sendable {
    /// `AGENTRY_AMQP_URL`: one URL, or a comma-separated list of them for the nodes of a cluster (see
    /// ``AMQPConfiguration/init(url:)``). Default: `amqp://guest:guest@localhost:5672/%2f`.
    public var amqp: AMQPConfiguration
    /// `AGENTRY_DATABASE_URL`. Default: `postgres://agentry:agentry@localhost:5432/agentry`.
    public var database: DatabaseConfiguration
    /// `AGENTRY_ADMIN_ADDR`. Default: `127.0.0.1:8000`.
    public var adminHost: String
    public var adminPort: Int
    /// `AGENTRY_ADMIN_TOKEN`. Default: none.
    public var adminToken: String?
    /// `AGENTRY_MIGRATIONS_DIR`: a directory of migrations to use instead of those built into the binary. Default: none.
    public var migrationsDirectory: String?
    /// `AGENTRY_TOPOLOGY_DIR`: a directory of topology files to use instead of the built-in topology. Default: none.
    public var topologyDirectory: String?
    /// `AGENTRY_BUDGET_TIMEZONE` (default UTC) and `AGENTRY_BUDGET_PERIOD_SECONDS` (shortened periods, `day=5`): where
    /// budget periods begin and end.
    public var budgetCalendar = BudgetCalendar()
    /// `LANGFUSE_HOST`, `LANGFUSE_PUBLIC_KEY`, `LANGFUSE_SECRET_KEY`: where the worker traces its language-model
    /// generations (``LangfuseExporter``). Default: none (no tracing).
    public var langfuse: LangfuseConfiguration? = nil
    /// `AGENTRY_BUNDLES_DIR` (default `/var/lib/agentry/bundles`) and `AGENTRY_TRUSTED_KEYS` (default none): where
    /// installed bundles' files go and which keys may sign them (``BundleSettings``).
    public var bundles = BundleSettings()

    public static let defaultAMQPURL = "amqp://guest:guest@localhost:5672/%2f"
    public static let defaultDatabaseURL = "postgres://agentry:agentry@localhost:5432/agentry"
    public static let defaultAdminAddress = "127.0.0.1:8000"

    /// Settings given on the command line; nil means "not given".
    public struct Overrides: Sendable {
        public var amqpURL: String?
        public var databaseURL: String?
        public var adminAddress: String?
        public var adminToken: String?
        public var migrationsDirectory: String?
        public var topologyDirectory: String?
        public var bundlesDirectory: String?
        /// Trusted keys files, colon-separated.
        public var trustedKeys: String?
        public init(
            amqpURL: String? = nil, databaseURL: String? = nil, adminAddress: String? = nil, adminToken: String? = nil,
            migrationsDirectory: String? = nil, topologyDirectory: String? = nil, bundlesDirectory: String? = nil,
            trustedKeys: String? = nil
        ) {
            self.bundlesDirectory = bundlesDirectory
            self.trustedKeys = trustedKeys
            self.amqpURL = amqpURL
            self.databaseURL = databaseURL
            self.adminAddress = adminAddress
            self.adminToken = adminToken
            self.migrationsDirectory = migrationsDirectory
            self.topologyDirectory = topologyDirectory
        }
    }

    /// Builds the configuration; every bad value is reported at once, each naming its setting.
    public static func resolve(
        _ overrides: Overrides = Overrides(), environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> AgentryConfiguration {
        func value(_ flag: String?, _ variable: String) -> String? {
            if let flag, !flag.isEmpty { return flag }
            if let env = environment[variable], !env.isEmpty { return env }
            return nil
        }
        func value(_ flag: String?, _ variable: String, _ fallback: String) -> String { value(flag, variable) ?? fallback }
        var problems: [String] = []
        var amqp = AMQPConfiguration()
        do {
            amqp = try AMQPConfiguration(url: value(overrides.amqpURL, "AGENTRY_AMQP_URL", defaultAMQPURL))
        } catch {
            problems.append("AGENTRY_AMQP_URL (--amqp-url): \(error)")
        }
        var database: DatabaseConfiguration?
        do {
            database = try DatabaseConfiguration(url: value(overrides.databaseURL, "AGENTRY_DATABASE_URL", defaultDatabaseURL))
        } catch {
            problems.append("AGENTRY_DATABASE_URL (--database-url): \(error)")
        }
        let address = value(overrides.adminAddress, "AGENTRY_ADMIN_ADDR", defaultAdminAddress)
        var host = "127.0.0.1"
        var port = 8000
        if let colon = address.lastIndex(of: ":"), let p = Int(address[address.index(after: colon)...]), (0...65535).contains(p) {
            host = String(address[..<colon])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            if host.isEmpty { host = "0.0.0.0" }
            port = p
        } else {
            problems.append("AGENTRY_ADMIN_ADDR (--admin-addr): '\(address)' is not HOST:PORT (e.g. 127.0.0.1:8000)")
        }
        let token = overrides.adminToken ?? environment["AGENTRY_ADMIN_TOKEN"]
        if let token, !token.isEmpty, token.count < 16 {
            problems.append("AGENTRY_ADMIN_TOKEN: a token of \(token.count) characters is too easy to guess; use at least 16")
        }
        var calendar = BudgetCalendar()
        do {
            calendar = try BudgetCalendar.from(
                timeZone: environment["AGENTRY_BUDGET_TIMEZONE"], lengths: environment["AGENTRY_BUDGET_PERIOD_SECONDS"])
        } catch {
            problems.append("\(error)")
        }
        var langfuse: LangfuseConfiguration?
        do {
            langfuse = try LangfuseConfiguration.resolve(environment: environment)
        } catch {
            problems.append(contentsOf: error.problems)
        }
        guard problems.isEmpty, let database else {
            throw ConfigurationError(problems: problems)
        }
        var configuration = AgentryConfiguration(
            amqp: amqp, database: database, adminHost: host, adminPort: port,
            adminToken: token.flatMap { $0.isEmpty ? nil : $0 },
            migrationsDirectory: value(overrides.migrationsDirectory, "AGENTRY_MIGRATIONS_DIR"),
            topologyDirectory: value(overrides.topologyDirectory, "AGENTRY_TOPOLOGY_DIR"), langfuse: langfuse)
        configuration.budgetCalendar = calendar
        configuration.bundles = BundleSettings.resolve(
            directory: overrides.bundlesDirectory, trustedKeys: overrides.trustedKeys, environment: environment)
        return configuration
    }
}

/// Settings that cannot be used, each naming the setting.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    public var problems: [String]
    public var description: String {
        "invalid configuration:\n" + problems.map { "  - \($0)" }.joined(separator: "\n")
    }
}
