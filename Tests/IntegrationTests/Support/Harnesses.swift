import AMQP
import AgentryBus
import AgentryCore
import AgentryRuntime
import AgentryStore
import Foundation
import Logging
import PostgresNIO
import Testing

// The servers' pieces most tests run against, each set up and torn down around a test's body.

/// Runs `body` with an agent registry on the real servers (and, with `eventLog`, the event log service).
func withRegistry(eventLog: Bool = false, _ body: @Sendable (AgentRegistry, EventBus, AMQPConnection, Database) async throws -> Void) async throws {
    try await TestEnvironment.migrate()
    let logger = TestEnvironment.logger
    let connection = try await TestEnvironment.connect()
    let topology = try TestEnvironment.topology()
    _ = try await topology.apply(on: connection)
    try await Database.with(TestEnvironment.configuration.database, logger: logger) { database in
        let bus = try await EventBus(connection: connection, logger: logger)
        let registry = AgentRegistry(store: AgentRegistryStore(database: database, logger: logger), bus: bus, topology: topology, logger: logger)
        try await body(registry, bus, connection, database)
    }
    await connection.close()
}

/// Runs the event log service in this process while `body` runs, against the real servers.
func withEventLog(vhost: String? = nil, _ body: @Sendable (EventBus, EventLogStore, AMQPConnection) async throws -> Void) async throws {
    try await TestEnvironment.migrate()
    let configuration = TestEnvironment.configuration
    let logger = TestEnvironment.logger
    let connection = try await TestEnvironment.connect(vhost: vhost)
    _ = try await TestEnvironment.topology().apply(on: connection)
    try await Database.with(configuration.database, logger: logger) { database in
        let store = EventLogStore(database: database, logger: logger)
        let bus = try await EventBus(connection: connection, logger: logger)
        var options = EventLogService.Options()
        options.maxLatency = .milliseconds(20)
        let service = EventLogService(connection: connection, bus: bus, store: store, options: options, logger: logger)
        let running = Task { try await service.run() }
        do {
            try await body(bus, store, connection)
        } catch {
            running.cancel()
            _ = try? await running.value
            throw error
        }
        // Stop the service (it flushes what it holds) before the database pool goes away.
        running.cancel()
        _ = try? await running.value
    }
    await connection.close()
}

/// Lock managers running against the real database (as many "hosts" as asked), their events collected.
func withLockManagers(
    _ count: Int = 1, options: LockManager.Options = LockManager.Options(),
    _ body: @Sendable ([LockManager], Database, Collector<Event>) async throws -> Void
) async throws {
    try await TestEnvironment.migrate()
    let events = Collector<Event>()
    try await Database.with(TestEnvironment.configuration.database, logger: TestEnvironment.logger) { database in
        let managers = (0..<count).map { index in
            LockManager(database: database, workerID: "lock-test-\(index)", options: options, logger: TestEnvironment.logger) { event in
                await events.append(event)
            }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for manager in managers { group.addTask { await manager.run() } }
            defer {
                for manager in managers { manager.shutdown() }
            }
            try await body(managers, database, events)
            for manager in managers {
                for hold in manager.holds { await manager.release(hold) }
            }
        }
    }
}

func device(_ id: String) -> ResourceKey { ResourceKey(type: "device", id: id) }

/// Waits until `resource` has `count` live waiters.
func waitForWaiters(_ manager: LockManager, _ resource: ResourceKey, count: Int) async throws -> LockStatus {
    _ = try await TestEnvironment.eventually { try await manager.status(resource).waiters.count == count }
    return try await manager.status(resource)
}
