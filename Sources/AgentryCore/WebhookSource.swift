import Foundation

/// A source of webhooks: who may POST to `/api/webhooks/<name>`, how its requests are signed, and how a request
/// becomes an event. Read from `webhooks.yaml` in the topology directory, or stored through the admin API.
public struct WebhookSource: Sendable, Hashable {
    /// How a source signs its requests.
    public enum Scheme: String, Sendable, Hashable, CaseIterable {
        /// `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`.
        case github
        /// `X-Gitlab-Token: <secret>`.
        case gitlab
        /// `<signature_header>: [sha256=|v1=]<hex HMAC-SHA256(secret, "<timestamp>.<body>")>` and
        /// `<timestamp_header>: <Unix seconds>` (Stripe and Slack style).
        case hmacSHA256 = "hmac-sha256"
    }

    /// The path segment: `[a-z0-9][a-z0-9_-]{0,62}`.
    public var name: String
    /// The name of the environment variable that holds the secret (never the secret itself).
    public var secretEnv: String
    public var scheme: Scheme
    /// The event type, a template: `github.{{header.X-GitHub-Event}}`, `gitlab.{{payload.object_kind}}`, or fixed.
    public var type: String
    /// Default: normal.
    public var priority: Priority
    /// The event's payload: nil for the whole JSON body, else keys to templates (`{{payload.path}}`,
    /// `{{header.Name}}`), or other JSON values taken as they are.
    public var payload: JSONObject?
    /// `hmac-sha256` only. Default `X-Signature`.
    public var signatureHeader: String
    /// `hmac-sha256` only. Default `X-Timestamp`.
    public var timestampHeader: String
    /// The largest body taken, in KiB. Default 1024.
    public var maxBodyKB: Int

    public static let defaultSignatureHeader = "X-Signature"
    public static let defaultTimestampHeader = "X-Timestamp"
    public static let defaultMaxBodyKB = 1024
    /// GitHub's own limit on a delivery (25 MB).
    public static let largestMaxBodyKB = 25 * 1024

    public init(
        name: String, secretEnv: String, scheme: Scheme, type: String, priority: Priority = .normal, payload: JSONObject? = nil,
        signatureHeader: String = WebhookSource.defaultSignatureHeader, timestampHeader: String = WebhookSource.defaultTimestampHeader,
        maxBodyKB: Int = WebhookSource.defaultMaxBodyKB
    ) {
        self.name = name
        self.secretEnv = secretEnv
        self.scheme = scheme
        self.type = type
        self.priority = priority
        self.payload = payload
        self.signatureHeader = signatureHeader
        self.timestampHeader = timestampHeader
        self.maxBodyKB = maxBodyKB
    }

    /// The largest body taken, in bytes.
    public var maxBodyBytes: Int { maxBodyKB * 1024 }

    /// The event's `source` field: `webhook:<name>`.
    public var eventSource: String { "webhook:\(name)" }

    /// Why `name` cannot name a source, or nil when it can.
    public static func nameProblem(_ name: String) -> String? {
        let bytes = Array(name.utf8)
        func allowed(_ byte: UInt8, first: Bool) -> Bool {
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                || (!first && (byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")))
        }
        guard !bytes.isEmpty, bytes.count <= 63, allowed(bytes[0], first: true), bytes.dropFirst().allSatisfy({ allowed($0, first: false) })
        else {
            return "a source name is 1 to 63 of a-z, 0-9, '_' and '-', starting with a letter or digit; found '\(name)'"
        }
        if reservedNames.contains(name) { return "'\(name)' is reserved (GET /api/webhooks/\(name) lists deliveries); choose another name" }
        return nil
    }

    /// Names a source may not have: paths of the admin API under `/api/webhooks/`.
    public static let reservedNames: Set<String> = ["deliveries"]

    /// Why `name` cannot name an environment variable, or nil when it can.
    public static func environmentNameProblem(_ name: String) -> String? {
        let valid =
            !name.isEmpty && name.utf8.count <= 255 && name.first.map { $0 == "_" || ($0.isASCII && $0.isLetter) } == true
            && name.allSatisfy { $0 == "_" || ($0.isASCII && ($0.isLetter || $0.isNumber)) }
        return valid ? nil : "expected the name of an environment variable (letters, digits and '_', not starting with a digit); found '\(name)'"
    }

    /// Why `name` cannot be an HTTP header name, or nil when it can.
    public static func headerNameProblem(_ name: String) -> String? {
        let token = CharacterSet(charactersIn: "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
        let valid = !name.isEmpty && name.unicodeScalars.allSatisfy { token.contains($0) }
        return valid ? nil : "expected an HTTP header name (letters, digits, '-'); found '\(name)'"
    }
}

/// Everything wrong with a set of webhook sources, all at once, in document order.
public struct WebhookSourceError: Error, Sendable, Hashable, CustomStringConvertible {
    public var problems: [ValidationProblem]

    public init(problems: [ValidationProblem]) {
        self.problems = problems
    }

    /// One problem per line.
    public var description: String {
        problems.map(\.description).joined(separator: "\n")
    }
}
