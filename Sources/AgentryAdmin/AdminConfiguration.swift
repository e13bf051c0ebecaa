import Foundation

/// Where the admin endpoint listens and who may change things through it.
///
/// - host and port: `AGENTRY_ADMIN_ADDR` / `--admin-addr` (default `127.0.0.1:8000`; port 0 picks a free one).
/// - token: `AGENTRY_ADMIN_TOKEN`; every request that changes state needs `Authorization: Bearer <token>`.
/// - Without a token, such requests are refused (403) unless the operator asks for the open local mode
///   (`AGENTRY_ADMIN_OPEN=1` or `--admin-open`), which only a loopback address allows. Reads are open on loopback and
///   need the token elsewhere; a non-loopback address without a token refuses to start (``validate()``).
public struct AdminConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var token: String?
    public var openLocal: Bool
    /// Request bodies above this are refused with 413. Default 1 MiB.
    public var maxBodySize: Int = 1 << 20

    public init(host: String = "127.0.0.1", port: Int = 8000, token: String? = nil, openLocal: Bool = false) {
        self.host = host
        self.port = port
        self.token = token
        self.openLocal = openLocal
    }

    public var isLoopback: Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// Refuses what would expose the cluster: a non-loopback address without a token, or open mode off loopback.
    public func validate() throws {
        if !isLoopback, token == nil {
            throw AdminConfigurationError("the admin endpoint would listen on \(host):\(port), which is not a loopback address, without AGENTRY_ADMIN_TOKEN: set a token (or listen on 127.0.0.1)")
        }
        if openLocal, !isLoopback {
            throw AdminConfigurationError("the open local mode (AGENTRY_ADMIN_OPEN) is only for a loopback address, not \(host)")
        }
    }

    /// Whether reads need the token too (off loopback).
    var readsNeedToken: Bool { !isLoopback }
}

public struct AdminConfigurationError: Error, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
