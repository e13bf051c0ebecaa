public import Foundation

/// Where and how the worker sends its language-model generations to Langfuse (``LangfuseExporter``): the host and
/// the project's key pair from `LANGFUSE_HOST`, `LANGFUSE_PUBLIC_KEY` and `LANGFUSE_SECRET_KEY` (the names Langfuse's
/// own SDKs read), and the exporter's batching, retry and shutdown settings.
public struct LangfuseConfiguration: Sendable, CustomStringConvertible {
    /// The Langfuse server, e.g. `https://cloud.langfuse.com`: http or https, without a trailing slash. A path is
    /// kept (a server behind a proxy under a prefix).
    public let host: String
    public let publicKey: String
    public let secretKey: String
    /// Most generations in one request (each is two ingestion events: its trace and the generation). Default 50.
    public var batchSize = 50
    /// Longest a recorded generation waits for its batch to fill. Default 1 s.
    public var flushInterval: Duration = .seconds(1)
    /// Most generations held while Langfuse does not take them; beyond it the oldest are dropped. Default 10,000.
    public var bufferLimit = 10_000
    /// Tries per batch when Langfuse answers 429 or 5xx or cannot be reached; then the batch is dropped. Default 4.
    public var maxAttempts = 4
    /// The wait before the second try, doubled before each later one (a `Retry-After` answer overrides it, up to
    /// 30 s). Default 500 ms.
    public var retryDelay: Duration = .milliseconds(500)
    /// Longest one request may take. Default 10 s.
    public var requestTimeout: Duration = .seconds(10)
    /// After ``LangfuseExporter/shutdown()``, how long the exporter may go on sending what it holds; what is left then
    /// is dropped. Default 5 s.
    public var shutdownGrace: Duration = .seconds(5)
    /// Longest prompt, system prompt or output sent, in UTF-8 bytes; a longer one is cut and marked. Langfuse takes
    /// at most 3.5 MB per request. Default 100,000.
    public var maxTextBytes = 100_000
    /// Largest request body built; a batch that would be larger is split. Default 3,000,000 bytes (Langfuse's limit
    /// is 3.5 MB).
    public var maxRequestBytes = 3_000_000

    /// The three environment variables, in the order they are reported.
    public static let variables = ["LANGFUSE_HOST", "LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY"]

    /// Checks the host: an absolute http or https URL without query or fragment.
    public init(host: String, publicKey: String, secretKey: String) throws(ConfigurationError) {
        var trimmed = host.trimmingCharacters(in: .whitespaces)
        while trimmed.hasSuffix("/") { trimmed.removeLast() }
        guard let url = URLComponents(string: trimmed), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
            let name = url.host, !name.isEmpty, url.query == nil, url.fragment == nil, url.user == nil
        else {
            throw ConfigurationError(problems: [
                "LANGFUSE_HOST: '\(host)' is not an http or https URL without credentials, query or fragment (e.g. https://cloud.langfuse.com)"
            ])
        }
        self.host = trimmed
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    /// The configuration from the environment: nil when none of the three variables is set (tracing is off); every
    /// missing one named when only some are; a host that is not http(s) is refused.
    public static func resolve(
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ConfigurationError) -> LangfuseConfiguration? {
        let values = variables.map { name in environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        let missing = zip(variables, values).filter { $0.1 == nil }.map(\.0)
        if missing.count == variables.count { return nil }
        guard missing.isEmpty, let host = values[0], let publicKey = values[1], let secretKey = values[2] else {
            let set = zip(variables, values).filter { $0.1 != nil }.map(\.0)
            throw ConfigurationError(problems: [
                "\(missing.joined(separator: ", ")) not set: Langfuse tracing needs all of \(variables.joined(separator: ", ")) (\(set.joined(separator: ", ")) \(set.count == 1 ? "is" : "are") set); set the others or unset all three"
            ])
        }
        return try LangfuseConfiguration(host: host, publicKey: publicKey, secretKey: secretKey)
    }

    /// `<host>/api/public/ingestion`, Langfuse's batch ingestion endpoint.
    public var ingestionURL: String { host + "/api/public/ingestion" }

    /// HTTP Basic authentication with the public key as user and the secret key as password.
    var authorization: String {
        "Basic " + Data("\(publicKey):\(secretKey)".utf8).base64EncodedString()
    }

    /// Never shows the secret key.
    public var description: String {
        "Langfuse at \(host) (public key \(publicKey))"
    }
}
