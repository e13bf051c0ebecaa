public import AMQP
public import AgentryBus
public import AgentryCore
import AgentryRuntime
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

    public init(
        database: Database, connection: AMQPConnection, bus: EventBus, topology: Topology, expectedSchemaVersion: Int, logger: Logger,
        budgetCalendar: BudgetCalendar = BudgetCalendar()
    ) {
        self.budgetCalendar = budgetCalendar
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
}
