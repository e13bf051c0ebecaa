import AMQP
import AgentryAdmin
import AgentryBus
import AgentryRuntime
import AgentryStore
import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

/// `--admin-open`, shared by `agentry worker` and `agentry admin` (the address and token are global settings).
struct AdminOptions: ParsableArguments {
    @Flag(help: "Without AGENTRY_ADMIN_TOKEN, allow changes through the admin API anyway (loopback addresses only; also AGENTRY_ADMIN_OPEN=1).")
    var adminOpen = false

    func resolve(_ configuration: AgentryConfiguration) throws -> AdminConfiguration {
        let environment = ProcessInfo.processInfo.environment["AGENTRY_ADMIN_OPEN"]?.lowercased() ?? ""
        let admin = AdminConfiguration(host: configuration.adminHost, port: configuration.adminPort, token: configuration.adminToken,
                                       openLocal: adminOpen || ["1", "true", "yes"].contains(environment))
        do {
            try admin.validate()
        } catch {
            throw ValidationError("\(error)")
        }
        return admin
    }

    /// The RabbitMQ management API's queue list for the broker's vhost (AGENTRY_RABBITMQ_MANAGEMENT_URL overrides).
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
                Every `agentry worker` serves it too (unless --no-admin). Set AGENTRY_ADMIN_TOKEN: requests that \
                change state need `Authorization: Bearer <token>`; a non-loopback address without a token refuses \
                to start.
                """)

        @OptionGroup var options: GlobalOptions
        @OptionGroup var admin: AdminOptions

        func run() async throws {
            let configuration = try options.resolve()
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
                let server = AdminServer(configuration: adminConfiguration,
                                         dependencies: AdminDependencies(database: database, connection: connection, bus: bus, topology: topology,
                                                                         expectedSchemaVersion: expected, logger: logger),
                                         managementURL: AdminOptions.managementURL(configuration), logger: logger)
                let group = ServiceGroup(configuration: .init(
                    services: [.init(service: database), .init(service: server, successTerminationBehavior: .gracefullyShutdownGroup)],
                    gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
                try await group.run()
                await connection.close()
            } catch {
                throw fail(error)
            }
        }
    }
}
