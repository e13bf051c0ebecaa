import Foundation
import NIOSSL
public import PostgresNIO

/// Where the PostgreSQL database is, from a `postgres://user:password@host:port/database?sslmode=…` URL.
public struct DatabaseConfiguration: Sendable {
    /// TLS to the server, as libpq names it. `prefer` (the default) and `require` encrypt without checking who
    /// answers; `verify-full` checks the server's certificate against the system's trust roots (or `sslrootcert`)
    /// and its host name.
    public enum SSLMode: String, Sendable, CaseIterable {
        case disable, prefer, require
        case verifyFull = "verify-full"
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
    /// CA certificates (PEM) that `sslmode=verify-full` trusts instead of the system's roots (`sslrootcert`).
    /// Default: nil, the system's roots.
    public var sslRootCertificate: String?
    /// Session limits sent with every connection's startup message, in PostgreSQL's units (`30s`, `500ms`, `2min`;
    /// `0` for none): a statement that runs longer, a lock waited for longer, or a transaction left idle longer is
    /// ended by the server, so that a stuck client or query cannot hold locks and connections for ever. Defaults:
    /// `statement_timeout` 60s, `lock_timeout` 30s, `idle_in_transaction_session_timeout` 60s.
    public var sessionLimits: [(name: String, value: String)] = Self.defaultSessionLimits
    public static let sessionLimitNames = ["statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout"]
    public static let defaultSessionLimits: [(name: String, value: String)] = [
        ("statement_timeout", "60s"), ("lock_timeout", "30s"), ("idle_in_transaction_session_timeout", "60s"),
    ]

    public init(url: String) throws {
        guard let c = URLComponents(string: url), let scheme = c.scheme, ["postgres", "postgresql"].contains(scheme) else {
            throw StoreError(
                .invalidConfiguration, "'\(Self.redact(url))' is not a postgres:// URL; expected postgres://user:password@host:port/database")
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
                    throw StoreError(
                        .invalidConfiguration, "sslmode=\(item.value ?? "") is not supported; use disable, prefer, require or verify-full")
                }
                sslMode = mode
            case "sslrootcert":
                guard let path = item.value, !path.isEmpty else {
                    throw StoreError(.invalidConfiguration, "sslrootcert= needs the path of a PEM file of CA certificates")
                }
                sslRootCertificate = path
            case let name where Self.sessionLimitNames.contains(name):
                let value = item.value ?? ""
                guard Self.isDuration(value) else {
                    throw StoreError(.invalidConfiguration, "\(name)=\(value) is not a duration; expected e.g. 30s, 500ms, 2min, or 0 for no limit")
                }
                sessionLimits = sessionLimits.map { $0.name == name ? (name, value) : $0 }
            case "max_connections":
                guard let n = Int(item.value ?? ""), n > 0 else {
                    throw StoreError(.invalidConfiguration, "max_connections=\(item.value ?? "") is not a positive number")
                }
                maximumConnections = n
            default:
                let known = ["sslmode", "sslrootcert", "max_connections"] + Self.sessionLimitNames
                throw StoreError(.invalidConfiguration, "unknown URL parameter '\(item.name)'; known: \(known.joined(separator: ", "))")
            }
        }
        if sslRootCertificate != nil, sslMode != .verifyFull {
            throw StoreError(.invalidConfiguration, "sslrootcert is used only with sslmode=verify-full (sslmode is \(sslMode.rawValue))")
        }
        // The trust roots are read now, so that a missing or unreadable file stops the command at start.
        _ = try makeConnectionConfiguration()
    }

    /// A PostgreSQL duration: a number, optionally with a unit (`ms`, `s`, `min`, `h`, `d`; none means ms).
    static func isDuration(_ text: String) -> Bool {
        let digits = text.prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty, digits.count <= 9 else { return false }
        return ["", "ms", "s", "min", "h", "d"].contains(String(text.dropFirst(digits.count)))
    }

    /// The URL without its password, for logs and messages.
    public var redactedURL: String { "postgres://\(user)@\(host):\(port)/\(database)" }

    /// NIOSSL's settings for the mode: `prefer` and `require` take any certificate (as libpq does: they protect
    /// against eavesdropping, not against someone answering in the server's place); `verify-full` checks the chain
    /// and that the certificate names `host`.
    var tlsConfiguration: TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        switch sslMode {
        case .disable, .prefer, .require:
            tls.certificateVerification = .none
        case .verifyFull:
            tls.certificateVerification = .fullVerification
            if let sslRootCertificate { tls.trustRoots = .file(sslRootCertificate) }
        }
        return tls
    }

    var tls: PostgresClient.Configuration.TLS {
        switch sslMode {
        case .disable: return .disable
        case .prefer: return .prefer(tlsConfiguration)
        case .require, .verifyFull: return .require(tlsConfiguration)
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
        // one open), and a broken one is found by the next query on it, which the callers retry. Whether a newer
        // postgres-nio (or Swift) still needs this: run `agentry-bench e2e 200000 1` with the defaults and watch the
        // worker's RSS.
        configuration.options.keepAliveBehavior = nil
        configuration.options.connectionIdleTimeout = .seconds(10)
        // postgres-nio 1.33.2's pool opens a connection for a waiting lease only when the lease is asked for, or when
        // it is under its minimum: with a minimum of 0, leases that queued while every connection was busy wait for
        // ever once those connections are closed by the server (seen: a worker whose connections were terminated
        // again and again stopped for good with three runs unclaimed). Below its minimum, the pool opens a new
        // connection as soon as one closes, and that one serves the queue. Whether a newer postgres-nio still needs
        // this: with a minimum of 0, run the worker test "a worker whose PostgreSQL connections are terminated again
        // and again mid-work …" (`WorkerTests`) ten times; none may stop with runs unclaimed.
        configuration.options.minimumConnections = min(2, maximumConnections)
        return configuration
    }

    /// A single-connection configuration (for session-level advisory locks and LISTEN). Its TLS settings were
    /// checked when the configuration was made from its URL.
    public var connectionConfiguration: PostgresConnection.Configuration {
        do {
            return try makeConnectionConfiguration()
        } catch {
            preconditionFailure("\(error)")
        }
    }

    /// A single-connection configuration (for session-level advisory locks and LISTEN). Throws when the TLS
    /// settings cannot be loaded (an unreadable `sslrootcert`).
    public func makeConnectionConfiguration() throws -> PostgresConnection.Configuration {
        let connectionTLS: PostgresConnection.Configuration.TLS
        switch sslMode {
        case .disable: connectionTLS = .disable
        case .prefer: connectionTLS = .prefer(try context())
        case .require, .verifyFull: connectionTLS = .require(try context())
        }
        func context() throws -> NIOSSLContext {
            do {
                return try NIOSSLContext(configuration: tlsConfiguration)
            } catch {
                throw StoreError(
                    .invalidConfiguration,
                    "cannot set up TLS for PostgreSQL (sslmode=\(sslMode.rawValue)\(sslRootCertificate.map { ", sslrootcert=\($0)" } ?? "")): \(error)"
                )
            }
        }
        var configuration = PostgresConnection.Configuration(
            host: host, port: port, username: user, password: password, database: database, tls: connectionTLS)
        configuration.options.additionalStartupParameters = startupParameters
        return configuration
    }

    /// Sent with every connection's startup message: the name, and the session limits (PostgreSQL takes any
    /// setting there, as `SET` would).
    var startupParameters: [(String, String)] { [("application_name", applicationName)] + sessionLimits.map { ($0.name, $0.value) } }

    /// The URL with its password replaced by `***`; a URL that does not parse loses everything between `://` and
    /// the authority's last `@` (where a password would be).
    static func redact(_ url: String) -> String {
        if var c = URLComponents(string: url), c.password != nil {
            c.password = "***"
            return c.string ?? "***"
        }
        guard let scheme = url.range(of: "://"), let at = url[scheme.upperBound...].prefix(while: { $0 != "/" }).lastIndex(of: "@") else {
            return url
        }
        return url[..<scheme.upperBound] + "***" + url[at...]
    }
}
