import AgentryCore
import Foundation
import Hummingbird
import HummingbirdWebSocket
public import AgentryStore
public import Logging
import NIOConcurrencyHelpers
import NIOCore
public import ServiceLifecycle

/// The admin endpoint: the HTTP API, the live status WebSocket, the status page, `/healthz`, `/readyz` and
/// `/metrics`, on Hummingbird. Runs as a service until graceful shutdown (connected WebSocket clients get a clean
/// close).
public struct AdminServer: Service {
    public let configuration: AdminConfiguration
    public let dependencies: AdminDependencies
    /// The RabbitMQ management API's queue list (`http://user:pass@host:15672/api/queues/<vhost>`), for unacked counts.
    public let managementURL: String?
    /// Called with the port the server listens on, once it does.
    let onListening: @Sendable (Int) async -> Void
    let logger: Logger

    public init(configuration: AdminConfiguration, dependencies: AdminDependencies, managementURL: String?, logger: Logger,
                onListening: @escaping @Sendable (Int) async -> Void = { _ in }) {
        self.configuration = configuration
        self.dependencies = dependencies
        self.managementURL = managementURL
        self.logger = logger
        self.onListening = onListening
    }

    /// How long an admin request's statement may wait for PostgreSQL before the request fails with the reason.
    public static let statementDeadline = Duration.seconds(10)

    /// The admin endpoint's pool (run it as a service beside the server): at most 4 connections, named
    /// `<application name> admin`, its statements bounded by ``statementDeadline``.
    public static func database(for configuration: DatabaseConfiguration, logger: Logger) -> Database {
        var configuration = configuration
        configuration.maximumConnections = min(configuration.maximumConnections, 4)
        configuration.applicationName += " admin"
        return Database(configuration: configuration, logger: logger, statementDeadline: statementDeadline)
    }

    public func run() async throws {
        let metrics = AdminMetrics.shared
        let hub = StatusHub(dependencies: dependencies, managementURL: managementURL, metrics: metrics)
        let api = AdminAPI(configuration: configuration, dependencies: dependencies, status: hub, metrics: metrics)
        let router = Router(context: BasicWebSocketRequestContext.self)
        api.addRoutes(to: router)
        if configuration.token != nil {
            logger.info("admin API: changes need the bearer token (AGENTRY_ADMIN_TOKEN)")
        } else if configuration.openLocal {
            logger.warning("admin API in open local mode: anyone who can reach \(configuration.host):\(configuration.port) can change things")
        } else {
            logger.warning("admin API is read-only: no AGENTRY_ADMIN_TOKEN is set, so requests that change state are refused (403)")
        }
        let logger = self.logger
        let host = configuration.host
        let onListening = self.onListening
        let app = Application(
            router: router,
            server: .http1WebSocketUpgrade(webSocketRouter: router),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "agentry"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                logger.info("admin endpoint listening", metadata: ["http.url": "http://\(host):\(port)/"])
                await onListening(port)
            },
            logger: logger)
        await withDiscardingTaskGroup { group in
            group.addTask { await hub.run() }
            do {
                try await app.run()
            } catch is CancellationError {
            } catch {
                // The worker goes on without its admin endpoint (another process may hold the port).
                logger.error("admin endpoint stopped: \(error); set AGENTRY_ADMIN_ADDR (or --admin-addr) to a free address")
            }
            group.cancelAll()
        }
    }
}
