public import AMQP
import AgentryBundles
public import AgentryBus
public import AgentryCore
public import AgentryRuntime
public import AgentryStore
public import Logging

/// What the admin API works with: the cluster's database and broker.
public struct AdminDependencies: Sendable {
    public let database: Database
    public let connection: AMQPConnection
    public let bus: EventBus
    public let topology: Topology
    /// The schema version this binary needs (for `/readyz`).
    public let expectedSchemaVersion: Int
    public let logger: Logger
    /// Where budget periods begin and end (from the configuration).
    public var budgetCalendar = BudgetCalendar()
    /// Where installed bundles' files go and which keys may sign them (from the configuration: `AGENTRY_BUNDLES_DIR`,
    /// `AGENTRY_TRUSTED_KEYS`), for installing through the API.
    public var bundles = BundleSettings()

    public init(
        database: Database, connection: AMQPConnection, bus: EventBus, topology: Topology, expectedSchemaVersion: Int, logger: Logger,
        budgetCalendar: BudgetCalendar = BudgetCalendar(), bundles: BundleSettings = BundleSettings()
    ) {
        self.budgetCalendar = budgetCalendar
        self.bundles = bundles
        self.database = database
        self.connection = connection
        self.bus = bus
        self.topology = topology
        self.expectedSchemaVersion = expectedSchemaVersion
        self.logger = logger
    }

    var registry: AgentRegistry {
        AgentRegistry(store: AgentRegistryStore(database: database, logger: logger), bus: bus, topology: topology, logger: logger)
    }
    var runtime: RuntimeStore { RuntimeStore(database: database, logger: logger) }
    var locks: LockStore { LockStore(database: database, logger: logger) }
    var eventLog: EventLogStore { EventLogStore(database: database, logger: logger) }
    var control: AgentControl { AgentControl(store: runtime, connection: connection) }
    var feedback: FeedbackStore { FeedbackStore(database: database, logger: logger) }
    var versionStats: VersionStatsStore { VersionStatsStore(database: database, logger: logger) }
    /// An installer with the configured bundles directory and trusted keys (read now: a key file changed since start
    /// counts); 500 when a trusted keys file cannot be read.
    func installer() throws -> BundleInstaller {
        do {
            return try BundleInstaller(registry: registry, settings: bundles, logger: logger)
        } catch {
            throw AdminError.internalError("the trusted keys (AGENTRY_TRUSTED_KEYS) cannot be read: \(error.message)")
        }
    }
}
