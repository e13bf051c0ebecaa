import AMQP
import AgentryAdmin
import AgentryBus
import AgentryCore
import AgentryRuntime
import AgentryStore
import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

/// The admin endpoint's options shared by `agentry worker` and `agentry admin` (the address and token are global
/// settings).
struct AdminOptions: ParsableArguments {
    @Option(
        name: .customLong("admin-allowed-host"),
        help: ArgumentHelp(
            "A host name requests may carry in Host besides the bound address, e.g. a proxy's public name (repeatable; also AGENTRY_ADMIN_ALLOWED_HOSTS, comma-separated).",
            valueName: "NAME"))
    var allowedHosts: [String] = []

    @Option(
        name: .customLong("admin-tls-cert"),
        help: ArgumentHelp("Serve the admin endpoint over TLS with this PEM certificate chain (AGENTRY_ADMIN_TLS_CERT).", valueName: "FILE"))
    var tlsCertificate: String?

    @Option(
        name: .customLong("admin-tls-key"), help: ArgumentHelp("The PEM private key of --admin-tls-cert (AGENTRY_ADMIN_TLS_KEY).", valueName: "FILE"))
    var tlsKey: String?

    @Option(
        name: .customLong("catalog"),
        help: ArgumentHelp(
            "The catalog of bundles the status page's + Add Agent and /api/catalog offer: a directory or an http(s) URL holding index.json (AGENTRY_CATALOG).",
            valueName: "DIR|URL"))
    var catalog: String?

    func resolve(_ configuration: AgentryConfiguration) throws -> AdminConfiguration {
        let environment = ProcessInfo.processInfo.environment
        let hosts =
            allowedHosts
            + (environment["AGENTRY_ADMIN_ALLOWED_HOSTS"] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter {
                !$0.isEmpty
            }
        let certificate = tlsCertificate ?? environment["AGENTRY_ADMIN_TLS_CERT"].flatMap { $0.isEmpty ? nil : $0 }
        let key = tlsKey ?? environment["AGENTRY_ADMIN_TLS_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        if (certificate == nil) != (key == nil) {
            throw ValidationError("--admin-tls-cert and --admin-tls-key go together: give both (PEM files) or neither")
        }
        if environment["AGENTRY_ADMIN_OPEN"] != nil {
            FileHandle.standardError.write(
                Data(
                    "warning: AGENTRY_ADMIN_OPEN has no effect: the admin API always needs a token (AGENTRY_ADMIN_TOKEN, or the one printed at start)\n"
                        .utf8))
        }
        var admin = AdminConfiguration(
            host: configuration.adminHost, port: configuration.adminPort, token: configuration.adminToken,
            allowedHosts: hosts,
            tls: certificate.map { AdminConfiguration.TLSFiles(certificateChain: $0, privateKey: key ?? "") })
        do {
            admin.namedTokens = try AdminConfiguration.namedTokens(from: environment["AGENTRY_ADMIN_TOKENS"] ?? "")
            admin.catalog = (catalog ?? environment["AGENTRY_CATALOG"]).flatMap { $0.isEmpty ? nil : $0 }
            try admin.validate()
        } catch {
            throw ValidationError("\(error)")
        }
        return admin
    }

    /// The RabbitMQ management API's queue list for the broker's vhost (AGENTRY_RABBITMQ_MANAGEMENT_URL overrides).
    /// With a list of broker URLs it is the first node's: every node of a cluster answers for all queues, and while
    /// that node is down the status page reads depths with passive declares through the connection, which has moved
    /// to a live node.
    static func managementURL(_ configuration: AgentryConfiguration) -> String? {
        if let url = ProcessInfo.processInfo.environment["AGENTRY_RABBITMQ_MANAGEMENT_URL"] { return url.isEmpty ? nil : url }
        let amqp = configuration.amqp
        let user = amqp.user.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? amqp.user
        let password = amqp.password.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? amqp.password
        return "http://\(user):\(password)@\(amqp.host):15672/api/queues/\(amqp.virtualHostPathSegment)"
    }
}

extension Agentry {
    struct Admin: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Serve the admin endpoint alone (for a host that runs no agents), until SIGTERM or SIGINT.",
            discussion: """
                Every `agentry worker` serves it too (unless --no-admin). Requests that change state need \
                `Authorization: Bearer <token>`: AGENTRY_ADMIN_TOKEN, or a token made at start and printed with the \
                status page's URL. See SECURITY.md for serving it off loopback.
                """)

        @OptionGroup var options: GlobalOptions
        @OptionGroup var admin: AdminOptions
        @OptionGroup var bundle: BundleOptions

        func run() async throws {
            let configuration = try options.resolve()
            let bundles = bundle.settings(configuration)
            let logger = try options.logger("agentry.admin")
            let adminConfiguration = try admin.resolve(configuration)
            do {
                let topology = try Topology.load(directory: configuration.topologyDirectory)
                let expected = try Migration.load(directory: configuration.migrationsDirectory).map(\.version).max() ?? 0
                var amqp = configuration.amqp
                amqp.options.connectionName = amqp.options.connectionName ?? "agentry admin \(ProcessInfo.processInfo.hostName)"
                let connection = AMQPConnection(configuration: amqp, logger: logger)
                try await connection.connect(keepTrying: true)
                let database = AdminServer.database(for: configuration.database, logger: logger)
                let bus = try await EventBus(connection: connection, logger: logger)
                let server = AdminServer(
                    configuration: adminConfiguration,
                    dependencies: AdminDependencies(
                        database: database, connection: connection, bus: bus, topology: topology,
                        expectedSchemaVersion: expected, logger: logger, budgetCalendar: configuration.budgetCalendar,
                        bundles: bundles),
                    managementURL: AdminOptions.managementURL(configuration), logger: logger)
                // People's holds outlive the requests that ask for them: this endpoint keeps them too when it leads.
                let keeper = HoldKeeperService(
                    keeper: HoldKeeper(
                        database: database, keeperID: "admin-\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)",
                        logger: logger
                    ) { [logger] event in
                        do {
                            try await bus.publish(event)
                        } catch {
                            logger.warning("cannot announce \(event.type)", metadata: ["error": "\(error)"])
                        }
                    })
                let group = ServiceGroup(
                    configuration: .init(
                        services: [
                            .init(service: database), .init(service: keeper),
                            .init(service: server, successTerminationBehavior: .gracefullyShutdownGroup),
                        ],
                        gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
                try await group.run()
                await connection.close()
            } catch {
                throw fail(error)
            }
        }
    }
}
