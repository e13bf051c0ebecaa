import Foundation
public import PostgresNIO
import NIOSSL

/// Where the PostgreSQL database is, from a `postgres://user:password@host:port/database?sslmode=…` URL.
public struct DatabaseConfiguration: Sendable {
    public enum SSLMode: String, Sendable {
        case disable, prefer, require
    }
    public var host: String
    public var port: Int
    public var user: String
    public var password: String?
    public var database: String
    public var sslMode: SSLMode
    /// Connections the pool may open. Default: 10.
    public var maximumConnections: Int = 10
    /// The `application_name` of every connection, which `pg_stat_activity` shows. Default: `agentry`; a worker
    /// names itself (`agentry worker <host> pid <pid>`).
    public var applicationName = Self.defaultApplicationName
    public static let defaultApplicationName = "agentry"

    public init(url: String) throws {
        guard let c = URLComponents(string: url), let scheme = c.scheme, ["postgres", "postgresql"].contains(scheme) else {
            throw StoreError(.invalidConfiguration, "'\(Self.redact(url))' is not a postgres:// URL; expected postgres://user:password@host:port/database")
        }
        host = c.host.flatMap { $0.isEmpty ? nil : $0 } ?? "localhost"
        port = c.port ?? 5432
        user = c.user.flatMap { $0.removingPercentEncoding } ?? "postgres"
        password = c.password.flatMap { $0.removingPercentEncoding }
        let path = c.path.hasPrefix("/") ? String(c.path.dropFirst()) : c.path
        database = path.isEmpty ? user : path
        sslMode = .prefer
        for item in c.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                guard let mode = SSLMode(rawValue: item.value ?? "") else {
                    throw StoreError(.invalidConfiguration, "sslmode=\(item.value ?? "") is not supported; use disable, prefer or require")
                }
                sslMode = mode
            case "max_connections":
                guard let n = Int(item.value ?? ""), n > 0 else {
                    throw StoreError(.invalidConfiguration, "max_connections=\(item.value ?? "") is not a positive number")
                }
                maximumConnections = n
            default:
                throw StoreError(.invalidConfiguration, "unknown URL parameter '\(item.name)'; known: sslmode, max_connections")
            }
        }
    }

    /// The URL without its password, for logs and messages.
    public var redactedURL: String { "postgres://\(user)@\(host):\(port)/\(database)" }

    var tls: PostgresClient.Configuration.TLS {
        switch sslMode {
        case .disable: return .disable
        case .prefer: return .prefer(.makeClientConfiguration())
        case .require: return .require(.makeClientConfiguration())
        }
    }

    /// The pool configuration for postgres-nio.
    public var clientConfiguration: PostgresClient.Configuration {
        var configuration = PostgresClient.Configuration(host: host, port: port, username: user, password: password, database: database, tls: tls)
        configuration.options.maximumConnections = maximumConnections
        configuration.options.additionalStartupParameters = startupParameters
        // Every time a connection goes back to the pool idle, postgres-nio's pool starts a keep-alive timer (30 s by
        // default) and an idle timer (60 s), and cancels them when the connection is leased again. A cancelled
        // `Task.sleep` keeps its wake-up job allocated until the deadline it was sleeping for
        // (https://github.com/swiftlang/swift/issues/60441), so a busy worker, which returns connections hundreds of
        // times a second, held tens of thousands of them: its RSS grew from 65 to 85 MB over 200,000 events and the
        // heap fragmented. With no keep-alive timer and a 10 s idle timer the same run stays at 63 MB. An idle
        // connection is closed after 10 s instead of kept alive by a query (a worker's heartbeat, every 2 s, keeps
        // one open), and a broken one is found by the next query on it, which the callers retry.
        configuration.options.keepAliveBehavior = nil
        configuration.options.connectionIdleTimeout = .seconds(10)
        // postgres-nio 1.33.2's pool opens a connection for a waiting lease only when the lease is asked for, or when
        // it is under its minimum: with a minimum of 0, leases that queued while every connection was busy wait for
        // ever once those connections are closed by the server (seen: a worker whose connections were terminated
        // again and again stopped for good with three runs unclaimed). Below its minimum, the pool opens a new
        // connection as soon as one closes, and that one serves the queue.
        configuration.options.minimumConnections = min(2, maximumConnections)
        return configuration
    }

    /// A single-connection configuration (for session-level advisory locks and LISTEN).
    public var connectionConfiguration: PostgresConnection.Configuration {
        let connectionTLS: PostgresConnection.Configuration.TLS
        switch sslMode {
        case .disable: connectionTLS = .disable
        case .prefer: connectionTLS = .prefer(try! NIOSSLContext(configuration: .makeClientConfiguration()))
        case .require: connectionTLS = .require(try! NIOSSLContext(configuration: .makeClientConfiguration()))
        }
        var configuration = PostgresConnection.Configuration(host: host, port: port, username: user, password: password, database: database, tls: connectionTLS)
        configuration.options.additionalStartupParameters = startupParameters
        return configuration
    }

    /// Sent with every connection's startup message.
    var startupParameters: [(String, String)] { [("application_name", applicationName)] }

    /// The URL with its password replaced by `***`; a URL that does not parse loses everything between `://` and
    /// the authority's last `@` (where a password would be).
    static func redact(_ url: String) -> String {
        if var c = URLComponents(string: url), c.password != nil { c.password = "***"; return c.string ?? "***" }
        guard let scheme = url.range(of: "://"), let at = url[scheme.upperBound...].prefix(while: { $0 != "/" }).lastIndex(of: "@") else { return url }
        return url[..<scheme.upperBound] + "***" + url[at...]
    }
}
