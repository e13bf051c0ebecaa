import Foundation

/// Where and how to connect to RabbitMQ.
public struct AMQPConfiguration: Sendable, Equatable {
    /// TLS settings, for `amqps://` URLs.
    public struct TLS: Sendable, Equatable {
        /// PEM file of the certificate authorities to trust. Default: the system's.
        public var caCertificateFile: String?
        /// PEM client certificate and key, for brokers that require client certificates.
        public var certificateFile: String?
        public var keyFile: String?
        /// Verify the broker's certificate and host name. Default: true.
        public var verifyPeer: Bool = true

        public init(caCertificateFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil, verifyPeer: Bool = true) {
            self.caCertificateFile = caCertificateFile
            self.certificateFile = certificateFile
            self.keyFile = keyFile
            self.verifyPeer = verifyPeer
        }
    }

    /// Behaviour knobs.
    public struct Options: Sendable, Equatable {
        /// Heartbeat interval asked of the broker, in seconds (0 disables). Default: 30.
        public var heartbeat: Int = 30
        /// How long a TCP connect plus AMQP handshake may take. Default: 10 s.
        public var connectTimeout: Duration = .seconds(10)
        /// First delay before reconnecting after a lost connection; doubled on each failure. Default: 100 ms.
        public var reconnectInitialDelay: Duration = .milliseconds(100)
        /// Longest delay between reconnection attempts. Default: 5 s.
        public var reconnectMaxDelay: Duration = .seconds(5)
        /// Largest frame size to negotiate, in bytes. Default: 131072.
        public var frameMax: Int = 131_072
        /// Name shown for this connection in the management UI. Default: none.
        public var connectionName: String?
        /// How long a publish waits for the broker's confirm before it fails with
        /// ``AMQPError/Code-swift.struct/timeout`` (retriable: the message may or may not have been taken). A broker
        /// under a memory or disk alarm confirms nothing until the alarm clears. Default: 30 s.
        public var confirmTimeout: Duration = .seconds(30)
        /// Publishing channels on a connection of their own, so that a broker alarm, which blocks connections that
        /// publish, does not stop this connection's consumers from acknowledging. Default: true.
        public var separatePublishing = true

        public init() {}
    }

    /// One broker node: a host and a port.
    public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
        public var host: String
        public var port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        /// `host:port`, with an IPv6 address in brackets.
        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    /// The broker nodes to connect to, in order: a connection tries the next one when an attempt fails, and starts
    /// with the one after its own when it loses its connection (a node of a cluster went away). Never empty.
    public var endpoints: [Endpoint] {
        get { storedEndpoints }
        set {
            precondition(!newValue.isEmpty, "an AMQP configuration needs at least one endpoint")
            storedEndpoints = newValue
        }
    }
    private var storedEndpoints: [Endpoint]
    /// The first endpoint's host.
    public var host: String {
        get { storedEndpoints[0].host }
        set { storedEndpoints[0].host = newValue }
    }
    /// The first endpoint's port.
    public var port: Int {
        get { storedEndpoints[0].port }
        set { storedEndpoints[0].port = newValue }
    }
    public var virtualHost: String
    public var user: String
    public var password: String
    /// Set for `amqps://` URLs.
    public var tls: TLS?
    public var options: Options

    public init(
        host: String = "localhost", port: Int = 5672, virtualHost: String = "/", user: String = "guest",
        password: String = "guest", tls: TLS? = nil, options: Options = Options()
    ) {
        self.storedEndpoints = [Endpoint(host: host, port: port)]
        self.virtualHost = virtualHost
        self.user = user
        self.password = password
        self.tls = tls
        self.options = options
    }

    /// Parses an `amqp://user:pass@host:port/vhost?heartbeat=30&connection_timeout=10000` URL
    /// (RabbitMQ's URI spec: the vhost is percent-decoded, `/%2f` and an empty path both mean `/`).
    /// `amqps://` enables TLS; `cacertfile`, `certfile`, `keyfile` and `verify=verify_none` tune it.
    ///
    /// A comma-separated list of such URLs names the nodes of a cluster (``endpoints``, in the list's order):
    /// `amqp://u:p@node1:5672/v,amqp://u:p@node2:5672/v`. Every URL of a list must name the same scheme, user,
    /// password, vhost and parameters; only the host and port may differ.
    public init(url: String) throws {
        let urls = Self.splitList(url)
        guard let first = urls.first else {
            throw AMQPError(.invalidURL, "no URL given; expected amqp://user:password@host:port/vhost")
        }
        self = try Self(single: first)
        for other in urls.dropFirst() {
            let next = try Self(single: other)
            let sameScheme = (tls == nil) == (next.tls == nil)
            let differences = [
                ("scheme", !sameScheme), ("user", user != next.user), ("password", password != next.password),
                ("vhost", virtualHost != next.virtualHost), ("parameters", options != next.options || (sameScheme && tls != next.tls)),
            ].filter { $0.1 }.map { $0.0 }
            guard differences.isEmpty else {
                throw AMQPError(
                    .invalidURL,
                    "'\(Self.redact(other))' differs from '\(Self.redact(first))' in its \(differences.joined(separator: ", ")): "
                        + "the URLs of a list must name the same scheme, user, password, vhost and parameters (only host and port may differ)")
            }
            guard !endpoints.contains(next.endpoints[0]) else {
                throw AMQPError(.invalidURL, "the URL list names \(next.endpoints[0]) twice")
            }
            storedEndpoints.append(next.endpoints[0])
        }
    }

    /// The URLs of a comma-separated list, without the whitespace around them; an empty element is kept (as ""), for
    /// the parser to refuse.
    public static func splitList(_ list: String) -> [String] {
        let trimmed = list.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { return [] }
        return trimmed.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
    }

    /// Parses one URL of a list.
    private init(single url: String) throws {
        guard !url.isEmpty else {
            throw AMQPError(.invalidURL, "the URL list has an empty element (a stray comma?)")
        }
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased() else {
            throw AMQPError(.invalidURL, "'\(Self.redact(url))' is not a URL; expected amqp://user:password@host:port/vhost")
        }
        guard scheme == "amqp" || scheme == "amqps" else {
            throw AMQPError(.invalidURL, "URL scheme '\(scheme)' is not supported; expected amqp:// or amqps://")
        }
        let secure = scheme == "amqps"
        self.init()
        let host = components.host.flatMap { $0.isEmpty ? nil : $0 } ?? "localhost"
        let port = components.port ?? (secure ? 5671 : 5672)
        self.storedEndpoints = [Endpoint(host: host, port: port)]
        guard (1...65535).contains(port) else {
            throw AMQPError(.invalidURL, "port \(port) in '\(Self.redact(url))' is out of range 1…65535")
        }
        self.user = components.user.flatMap { $0.removingPercentEncoding } ?? "guest"
        self.password = components.password.flatMap { $0.removingPercentEncoding } ?? "guest"
        let path = components.percentEncodedPath
        if path.isEmpty || path == "/" {
            self.virtualHost = "/"
        } else {
            let raw = String(path.dropFirst())
            guard !raw.contains("/") else {
                throw AMQPError(.invalidURL, "vhost in '\(Self.redact(url))' contains an unescaped '/'; write it as %2f")
            }
            self.virtualHost = raw.removingPercentEncoding ?? raw
        }
        if secure { self.tls = TLS() }
        for item in components.queryItems ?? [] {
            let value = item.value ?? ""
            switch item.name {
            case "heartbeat":
                guard let seconds = Int(value), seconds >= 0 else {
                    throw AMQPError(.invalidURL, "heartbeat=\(value) is not a number of seconds ≥ 0")
                }
                options.heartbeat = seconds
            case "connection_timeout":
                guard let ms = Int(value), ms > 0 else {
                    throw AMQPError(.invalidURL, "connection_timeout=\(value) is not a number of milliseconds > 0")
                }
                options.connectTimeout = .milliseconds(ms)
            case "frame_max":
                guard let n = Int(value), n >= 4096 else {
                    throw AMQPError(.invalidURL, "frame_max=\(value) is not a number of bytes ≥ 4096")
                }
                options.frameMax = n
            case "cacertfile": tls?.caCertificateFile = value
            case "certfile": tls?.certificateFile = value
            case "keyfile": tls?.keyFile = value
            case "verify": tls?.verifyPeer = value != "verify_none"
            case "name", "connection_name": options.connectionName = value
            default:
                throw AMQPError(
                    .invalidURL,
                    "unknown URL parameter '\(item.name)'; known: heartbeat, connection_timeout, frame_max, cacertfile, certfile, keyfile, verify, connection_name"
                )
            }
        }
    }

    /// The vhost as one URL path segment, as AMQP URLs and the management API take it (`/` is `%2F`).
    public var virtualHostPathSegment: String {
        virtualHost.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? virtualHost
    }

    /// The URL (a comma-separated list when there are several endpoints) without its password, for logs and
    /// messages.
    public var redactedURL: String {
        endpoints.map { redactedURL(for: $0) }.joined(separator: ",")
    }

    /// The URL of one endpoint without its password.
    public func redactedURL(for endpoint: Endpoint) -> String {
        let scheme = tls == nil ? "amqp" : "amqps"
        return "\(scheme)://\(user)@\(endpoint)/\(virtualHostPathSegment)"
    }

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
