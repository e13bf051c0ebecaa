/// An error from the AMQP client: what failed, on which object, and the broker's own reply when it sent one.
///
/// Codes are exposed as static members so that new codes do not break callers that switch on them.
public struct AMQPError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Sendable {
            case invalidURL = "invalid URL"
            case connectionFailed = "connection failed"
            case authenticationFailed = "authentication failed"
            case connectionLost = "connection lost"
            case connectionClosedByBroker = "connection closed by broker"
            case channelClosedByBroker = "channel closed by broker"
            case publishNacked = "publish nacked"
            case unroutable = "unroutable"
            case closed = "closed"
            case timeout = "timeout"
            case consumerCancelled = "consumer cancelled"
            case library = "library error"
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The `amqp://` or `amqps://` URL cannot be used.
        public static let invalidURL = Code(.invalidURL)
        /// The TCP/TLS connection or the AMQP handshake failed.
        public static let connectionFailed = Code(.connectionFailed)
        /// The broker refused the user name or password (or the vhost).
        public static let authenticationFailed = Code(.authenticationFailed)
        /// The connection dropped; an operation in flight may or may not have taken effect.
        public static let connectionLost = Code(.connectionLost)
        /// The broker closed the connection (`replyCode` and `replyText` say why).
        public static let connectionClosedByBroker = Code(.connectionClosedByBroker)
        /// The broker closed a channel because an operation failed (404, 403, 405, 406 …).
        public static let channelClosedByBroker = Code(.channelClosedByBroker)
        /// The broker nacked a published message: it was not taken into responsibility.
        public static let publishNacked = Code(.publishNacked)
        /// A mandatory publish matched no queue and was returned.
        public static let unroutable = Code(.unroutable)
        /// The connection was closed by this process.
        public static let closed = Code(.closed)
        /// An operation did not finish in time.
        public static let timeout = Code(.timeout)
        /// The broker cancelled a consumer (its queue was deleted, for example).
        public static let consumerCancelled = Code(.consumerCancelled)
        /// rabbitmq-c reported an error of its own.
        public static let library = Code(.library)

        public var description: String { base.rawValue }
    }

    /// What kind of failure this is.
    public var code: Code
    /// What failed, in words, with the object it concerned.
    public var message: String
    /// The AMQP reply code the broker sent (404, 406, 320 …), when it sent one.
    public var replyCode: UInt16?
    /// The broker's reply text, when it sent one.
    public var replyText: String?

    public init(_ code: Code, _ message: String, replyCode: UInt16? = nil, replyText: String? = nil) {
        self.code = code
        self.message = message
        self.replyCode = replyCode
        self.replyText = replyText
    }

    /// Whether trying the same operation again (after the client reconnects) can succeed.
    public var isRetriable: Bool {
        switch code {
        case .connectionLost, .connectionFailed, .timeout: return true
        case .connectionClosedByBroker: return replyCode == 320 || replyCode == nil
        default: return false
        }
    }

    /// Whether the broker refused because the queue lives on a node of its cluster that is down: RabbitMQ answers
    /// 404 `home node 'rabbit@…' of durable queue '…' in vhost '…' is down or inaccessible` until the node is back
    /// or a mirror takes the queue over. Passing, unlike other 404s (a queue that does not exist).
    public var isQueueHomeNodeDown: Bool {
        replyCode == 404 && (replyText?.contains("is down or inaccessible") ?? false)
    }

    /// The symbolic name of an AMQP reply code, as the specification writes it.
    public static func replyName(_ code: UInt16) -> String {
        switch code {
        case 200: return "REPLY_SUCCESS"
        case 311: return "CONTENT_TOO_LARGE"
        case 312: return "NO_ROUTE"
        case 313: return "NO_CONSUMERS"
        case 320: return "CONNECTION_FORCED"
        case 402: return "INVALID_PATH"
        case 403: return "ACCESS_REFUSED"
        case 404: return "NOT_FOUND"
        case 405: return "RESOURCE_LOCKED"
        case 406: return "PRECONDITION_FAILED"
        case 501: return "FRAME_ERROR"
        case 502: return "SYNTAX_ERROR"
        case 503: return "COMMAND_INVALID"
        case 504: return "CHANNEL_ERROR"
        case 505: return "UNEXPECTED_FRAME"
        case 506: return "RESOURCE_ERROR"
        case 530: return "NOT_ALLOWED"
        case 540: return "NOT_IMPLEMENTED"
        case 541: return "INTERNAL_ERROR"
        default: return "UNKNOWN"
        }
    }

    public var description: String {
        var text = "\(message)"
        if let replyCode {
            text += " (broker replied \(replyCode) \(Self.replyName(replyCode))"
            if let replyText, !replyText.isEmpty { text += ": \(replyText)" }
            text += ")"
        }
        return text
    }
}
