import Foundation

/// Where the admin endpoint listens, who may change things through it, and from where.
///
/// - host and port: `AGENTRY_ADMIN_ADDR` / `--admin-addr` (default `127.0.0.1:8000`; port 0 picks a free one).
/// - token: `AGENTRY_ADMIN_TOKEN`, or a random one made at start (``generatedToken()``) and printed with the status
///   page's URL. Every request that changes state needs `Authorization: Bearer <token>`; there is no open mode.
/// - Reads are open on loopback to callers that are not browsers, and need the token elsewhere (see ``AdminGuard``).
/// - allowedHosts: the names besides the bound address that requests may carry in `Host` (a proxy's public name).
/// - tls: a PEM certificate chain and key (`--admin-tls-cert`, `--admin-tls-key`).
public struct AdminConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var token: String
    /// Whether the token was made at start (printed with the status page's URL) rather than configured.
    public var tokenGenerated: Bool
    /// Host names (without port) that requests may name in `Host` besides the bound address (and, on loopback,
    /// `localhost`). Lower case.
    public var allowedHosts: [String]
    public var tls: TLSFiles?
    /// Request bodies above this are refused with 413. Default 1 MiB.
    public var maxBodySize: Int = 1 << 20
    /// A connection that sends or receives nothing for this long is closed. Default 60 s.
    public var idleTimeout: Duration = .seconds(60)
    /// A request's head (request line and headers) must arrive whole within this time of the connection's opening
    /// or of the previous response. Default 10 s.
    public var headerTimeout: Duration = .seconds(10)
    /// A connection's first request is answered within this time of its head, or the connection is closed (a head
    /// the HTTP parser refuses gets no answer otherwise). Default 60 s: above every request's own deadline.
    public var firstAnswerTimeout: Duration = .seconds(60)
    /// Most status WebSocket clients served at once; more are refused with 503. Default 64.
    public var maxWebSocketClients: Int = 64
    /// The catalog of bundles that `GET /api/catalog` lists and `POST /api/bundles/install` installs from, and the
    /// status page's "+ Add Agent" shows: a directory or an http(s) URL holding `index.json` (`AGENTRY_CATALOG`).
    /// Default: none (those answer 404 `no_catalog`).
    public var catalog: String?
    /// The environment webhook sources read their secrets from (each source's `secret_env` names a variable).
    /// Default: this process's, as it was when the configuration was made.
    public var webhookSecrets: [String: String] = ProcessInfo.processInfo.environment

    public struct TLSFiles: Sendable, Hashable {
        public var certificateChain: String
        public var privateKey: String
        public init(certificateChain: String, privateKey: String) {
            self.certificateChain = certificateChain
            self.privateKey = privateKey
        }
    }

    /// More admin tokens, each with a name (`AGENTRY_ADMIN_TOKENS=alice=…,ci=…`): they may do what the admin token
    /// does, and what they decide is recorded under their name (an approval's `decided_by`). The admin token's name is
    /// `admin`.
    public var namedTokens: [String: String] = [:]

    /// The shortest token accepted from `AGENTRY_ADMIN_TOKEN`.
    public static let minimumTokenLength = 16

    /// Named tokens from `name=token,name=token`; a malformed entry is an error naming it.
    public static func namedTokens(from text: String) throws -> [String: String] {
        var tokens: [String: String] = [:]
        for entry in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !entry.isEmpty {
            guard let equals = entry.firstIndex(of: "="), equals != entry.startIndex else {
                throw AdminConfigurationError("AGENTRY_ADMIN_TOKENS: '\(entry.prefix(12))…' is not NAME=TOKEN")
            }
            let name = String(entry[..<equals])
            let token = String(entry[entry.index(after: equals)...])
            guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }) else {
                throw AdminConfigurationError("AGENTRY_ADMIN_TOKENS: the name '\(name)' may hold letters, digits, '-', '_' and '.' only")
            }
            guard tokens[name] == nil, name != "admin" else { throw AdminConfigurationError("AGENTRY_ADMIN_TOKENS: the name '\(name)' is taken") }
            tokens[name] = token
        }
        return tokens
    }

    public init(host: String = "127.0.0.1", port: Int = 8000, token: String? = nil, allowedHosts: [String] = [], tls: TLSFiles? = nil) {
        self.host = host
        self.port = port
        self.token = token ?? Self.generatedToken()
        self.tokenGenerated = token == nil
        self.allowedHosts = allowedHosts.map { $0.lowercased() }
        self.tls = tls
    }

    /// 32 random bytes as 64 hex digits (from the system's generator).
    public static func generatedToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<4).map { _ in
            let word = generator.next() as UInt64
            let hex = String(word, radix: 16)
            return String(repeating: "0", count: 16 - hex.count) + hex
        }.joined()
    }

    /// Whether the endpoint listens on a loopback address only: `localhost`, `::1`, or an IPv4 address in 127.0.0.0/8
    /// (four numbers, the first 127; `127.example.com` is a name, not one).
    public var isLoopback: Bool { Self.isLoopback(host) }

    public static func isLoopback(_ host: String) -> Bool {
        let host = host.lowercased()
        if host == "localhost" || host == "::1" || host == "[::1]" { return true }
        guard let octets = ipv4(host) else { return false }
        return octets[0] == 127
    }

    /// The four numbers of a dotted IPv4 address, or nil.
    static func ipv4(_ text: String) -> [Int]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var octets: [Int] = []
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isASCII), let n = Int(part), (0...255).contains(n) else { return nil }
            octets.append(n)
        }
        return octets
    }

    /// Whether the endpoint listens on every address (`0.0.0.0`, `::`).
    var isWildcard: Bool { host == "0.0.0.0" || host == "::" || host == "[::]" }

    /// The scheme of the endpoint's own URLs and origin.
    public var scheme: String { tls == nil ? "http" : "https" }

    /// The URL exec handlers on this host call back with their run tokens (nil when the port is picked at start).
    public var callbackURL: String? {
        guard port != 0 else { return nil }
        let name = ["0.0.0.0", "::", ""].contains(host) ? "127.0.0.1" : (host.contains(":") ? "[\(host)]" : host)
        return "\(scheme)://\(name):\(port)"
    }

    /// The status page's URL with the token, as printed at start (`http://127.0.0.1:8000/?token=…`).
    public func statusPageURL(port: Int) -> String {
        let name = isWildcard ? (ProcessInfo.processInfo.hostName) : (host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host)
        return "\(scheme)://\(name):\(port)/?token=\(token)"
    }

    /// Refuses a token that is too short to guess at, TLS files that cannot be read, and malformed host names.
    public func validate() throws {
        if !tokenGenerated, token.count < Self.minimumTokenLength {
            throw AdminConfigurationError(
                "AGENTRY_ADMIN_TOKEN is \(token.count) characters long; use at least \(Self.minimumTokenLength) (e.g. `openssl rand -hex 32`)")
        }
        for (name, named) in namedTokens.sorted(by: { $0.key < $1.key }) where named.count < Self.minimumTokenLength {
            throw AdminConfigurationError(
                "AGENTRY_ADMIN_TOKENS: the token of '\(name)' is \(named.count) characters long; use at least \(Self.minimumTokenLength)")
        }
        if let tls { _ = try AdminServer.tlsConfiguration(tls) }
        if let bad = allowedHosts.first(where: { $0.isEmpty || $0.contains("/") || $0.contains(" ") }) {
            throw AdminConfigurationError(
                "'\(bad)' is not a host name for --admin-allowed-host (give a name such as agentry.example.com, without scheme or path)")
        }
    }

    /// Whether reads need the token too (off loopback).
    var readsNeedToken: Bool { !isLoopback }
}

public struct AdminConfigurationError: Error, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
