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

    public var host: String
    public var port: Int
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
        self.host = host
        self.port = port
        self.virtualHost = virtualHost
        self.user = user
        self.password = password
        self.tls = tls
        self.options = options
    }

    /// Parses an `amqp://user:pass@host:port/vhost?heartbeat=30&connection_timeout=10000` URL
    /// (RabbitMQ's URI spec: the vhost is percent-decoded, `/%2f` and an empty path both mean `/`).
    /// `amqps://` enables TLS; `cacertfile`, `certfile`, `keyfile` and `verify=verify_none` tune it.
    public init(url: String) throws {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased() else {
            throw AMQPError(.invalidURL, "'\(Self.redact(url))' is not a URL; expected amqp://user:password@host:port/vhost")
        }
        guard scheme == "amqp" || scheme == "amqps" else {
            throw AMQPError(.invalidURL, "URL scheme '\(scheme)' is not supported; expected amqp:// or amqps://")
        }
        let secure = scheme == "amqps"
        self.init()
        self.host = components.host.flatMap { $0.isEmpty ? nil : $0 } ?? "localhost"
        self.port = components.port ?? (secure ? 5671 : 5672)
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

    /// The URL without its password, for logs and messages.
    public var redactedURL: String {
        let scheme = tls == nil ? "amqp" : "amqps"
        return "\(scheme)://\(user)@\(host):\(port)/\(virtualHostPathSegment)"
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
