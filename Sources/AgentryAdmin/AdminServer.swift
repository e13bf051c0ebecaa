import AgentryCore
public import AgentryStore
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import HummingbirdWebSocket
public import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
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

    public init(
        configuration: AdminConfiguration, dependencies: AdminDependencies, managementURL: String?, logger: Logger,
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) {
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

    /// HTTP/1 with the status WebSocket, behind a deadline for the first request's head and an idle timeout, and
    /// behind TLS when configured.
    static func serverBuilder(router: Router<AdminRoutes.Context>, configuration: AdminConfiguration) throws -> HTTPServerBuilder {
        let tls = try configuration.tls.map(Self.tlsConfiguration)
        let webSocket = HTTP1WebSocketUpgradeChannel.Configuration(
            http1: .init(idleTimeout: .nanoseconds(Int64(configuration.idleTimeout.components.seconds) * 1_000_000_000)),
            ws: .init(maxFrameSize: 1 << 16, autoPing: .enabled(timePeriod: .seconds(30))))
        let headerTimeout = TimeAmount.nanoseconds(Int64(configuration.headerTimeout.components.seconds) * 1_000_000_000)
        let answerTimeout = TimeAmount.nanoseconds(Int64(configuration.firstAnswerTimeout.components.seconds) * 1_000_000_000)
        let webSocketResponder = router.buildResponder()
        return HTTPServerBuilder { responder in
            let base = HeaderTimeoutChannel(
                base: HTTP1WebSocketUpgradeChannel(responder: responder, webSocketResponder: webSocketResponder, configuration: webSocket),
                timeout: headerTimeout, answerTimeout: answerTimeout)
            guard let tls else { return base }
            return try TLSChannel(base, tlsConfiguration: tls)
        }
    }

    /// The server side of TLS from PEM files, or an error that names them.
    static func tlsConfiguration(_ files: AdminConfiguration.TLSFiles) throws -> TLSConfiguration {
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(files.certificateChain).map { NIOSSLCertificateSource.certificate($0) }
            guard !chain.isEmpty else { throw AdminConfigurationError("no certificate in the file") }
            let key = try NIOSSLPrivateKey(file: files.privateKey, format: .pem)
            return TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
        } catch {
            throw AdminConfigurationError(
                "cannot read the admin endpoint's TLS certificate \(files.certificateChain) and key \(files.privateKey) (PEM): \(error)")
        }
    }

    public func run() async throws {
        let metrics = AdminMetrics.shared
        let hub = StatusHub(dependencies: dependencies, managementURL: managementURL, metrics: metrics)
        let api = AdminAPI(
            configuration: configuration, dependencies: dependencies, status: hub, metrics: metrics,
            webhooks: WebhookReceiver(dependencies: dependencies, secrets: configuration.webhookSecrets))
        let router = try AdminRoutes.router(api: api)
        let configuration = self.configuration
        if configuration.tokenGenerated {
            logger.notice("admin API: changes need the token printed with the status page's URL (set AGENTRY_ADMIN_TOKEN to choose one)")
        } else {
            logger.info("admin API: changes need the bearer token (AGENTRY_ADMIN_TOKEN)")
        }
        if !configuration.isLoopback, configuration.tls == nil {
            logger.warning(
                "the admin endpoint listens on \(configuration.host) without TLS: the token crosses the network in clear; give --admin-tls-cert and --admin-tls-key, or put a TLS proxy in front (SECURITY.md)"
            )
        }
        let logger = self.logger
        let onListening = self.onListening
        let server = try Self.serverBuilder(router: router, configuration: configuration)
        let app = Application(
            router: router,
            server: server,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "agentry"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                logger.info("admin endpoint listening", metadata: ["http.url": "\(configuration.scheme)://\(configuration.host):\(port)/"])
                if configuration.tokenGenerated {
                    // As Jupyter does: the one place the generated token appears, on the terminal that started the
                    // process (not in the log, which may be shipped elsewhere).
                    FileHandle.standardError.write(
                        Data("Agentry status page (this token lasts until the process stops):\n    \(configuration.statusPageURL(port: port))\n".utf8)
                    )
                }
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
