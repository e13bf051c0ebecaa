import Foundation
public import Logging
import NIOConcurrencyHelpers

/// A connection to RabbitMQ over rabbitmq-c, with an async API.
///
/// Each connection runs on a thread of its own, because a rabbitmq-c connection must be used from one thread only
/// and services heartbeats only while that thread calls into it. Callers post work to the thread and await the
/// outcome. After a lost connection the thread reconnects with backoff and restores, by itself, what was declared
/// through it, its channels (with confirm mode and prefetch) and its consumers; publishes that were waiting for a
/// confirm fail with ``AMQPError/Code-swift.struct/connectionLost`` so that no message is silently forgotten.
/// With several ``AMQPConfiguration/endpoints`` (the nodes of a cluster), a failed attempt moves on to the next
/// endpoint at once and a lost connection reconnects starting with the one after it; it backs off only when every
/// endpoint failed in a round (``connectedEndpoint`` says where it is).
///
/// Publishing channels (``openChannel(confirms:)``) live on a second connection of their own, opened with the first
/// of them (unless ``AMQPConfiguration/Options/separatePublishing`` is off): RabbitMQ, under a memory or disk alarm,
/// stops reading from every connection that publishes, acks and all, so consumers that shared it could not
/// acknowledge what they finished until the alarm cleared.
public final class AMQPConnection: Sendable {
    public let configuration: AMQPConfiguration
    let mailbox = Mailbox()
    let snapshot = NIOLockedValueBox(ConnectionSnapshot())
    private let started = NIOLockedValueBox(false)
    /// Whether `connect` keeps trying (the publishing connection is opened the same way).
    private let keepsTrying = NIOLockedValueBox(false)
    /// The connection that carries this one's publishing channels: the task that opens it with the first of them,
    /// and the connection once open.
    private let publishing = NIOLockedValueBox<(opening: Task<AMQPConnection, any Error>?, open: AMQPConnection?)>((nil, nil))
    private let logger: Logger

    public init(configuration: AMQPConfiguration, logger: Logger) {
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "amqp.server"] = "\(configuration.endpoints.map(\.description).joined(separator: ","))"
        self.logger = logger
    }

    deinit {
        // Without this the connection thread would outlive its last user; close() is still the orderly way.
        mailbox.post(.control { $0.shutdown() })
    }

    /// Opens the connection.
    /// - Parameter keepTrying: when false (default), the first failure is thrown (for a CLI that should exit with a
    ///   clear message); when true, it retries with backoff until the broker answers (for a long-running worker).
    public func connect(keepTrying: Bool = false) async throws {
        let alreadyStarted = started.withLockedValue { started in
            defer { started = true }
            return started
        }
        guard !alreadyStarted else { throw AMQPError(.closed, "connect() was already called on this connection") }
        keepsTrying.withLockedValue { $0 = keepTrying }
        let configuration = self.configuration
        let mailbox = self.mailbox
        let snapshot = self.snapshot
        let logger = self.logger
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let first = FirstConnect(keepTrying: keepTrying, continuation: continuation)
            let thread = Thread {
                let session = Session(
                    configuration: configuration, mailbox: mailbox, snapshot: snapshot,
                    firstConnect: first, logger: logger)
                session.run()
            }
            thread.name = "amqp \(configuration.host):\(configuration.port)"
            thread.start()
        }
    }

    /// Closes the connection: publishes still waiting fail, consumers' streams end. Safe to call more than once.
    public func close() async {
        guard started.withLockedValue({ $0 }) else { return }
        if let opening = publishing.withLockedValue({ $0.opening }), let connection = try? await opening.value {
            await connection.close()
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let posted = mailbox.post(
                .control { session in
                    session.shutdown()
                    continuation.resume()
                })
            // The thread has ended already (a failed first connect, or an earlier close).
            if !posted { continuation.resume() }
        }
    }

    /// Whether the connection is up right now.
    public var isConnected: Bool { snapshot.withLockedValue { $0.isConnected } }
    /// The endpoint (of ``AMQPConfiguration/endpoints``) the connection is up on right now; nil while it is down.
    public var connectedEndpoint: AMQPConfiguration.Endpoint? { snapshot.withLockedValue { $0.endpoint } }
    /// The endpoint the publishing connection is up on right now (this connection's own when publishing is not
    /// separate); nil while it is down or not yet opened.
    public var publishingEndpoint: AMQPConfiguration.Endpoint? {
        configuration.options.separatePublishing ? publishingConnection?.connectedEndpoint : connectedEndpoint
    }
    /// How many times the connection (or its publishing connection) was restored after being lost.
    public var reconnectCount: Int { snapshot.withLockedValue { $0.reconnects } + (publishingConnection?.reconnectCount ?? 0) }
    /// Whether the broker has blocked this connection or its publishing connection (a memory or disk alarm:
    /// publishes wait, and their confirms time out, until it clears).
    public var isBlocked: Bool { snapshot.withLockedValue { $0.isBlocked } || publishingConnection?.isBlocked == true }

    /// Why the broker blocked this connection or its publishing connection (`low on memory`, `low on disk`), or nil.
    public var blockedReason: String? {
        snapshot.withLockedValue { $0.blockedReason } ?? publishingConnection?.blockedReason
    }

    /// The connection that carries the publishing channels, when it is open.
    private var publishingConnection: AMQPConnection? { publishing.withLockedValue { $0.open } }
    /// Deliveries this connection acknowledged, and the `basic.ack` frames that carried them: acks posted together
    /// that continue a consumer's lowest unacknowledged delivery travel as one frame with `multiple`.
    public var acknowledgements: (deliveries: Int, frames: Int) {
        snapshot.withLockedValue { ($0.acknowledged, $0.ackFrames) }
    }

    /// Runs `body` on the connection thread once the connection is up, and returns its result.
    func perform<T: Sendable>(_ body: @escaping @Sendable (Session) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let posted = mailbox.post(
                .job(
                    Mailbox.Job(
                        run: { session in continuation.resume(with: Result { try body(session) }) },
                        fail: { error in continuation.resume(throwing: error) })))
            if !posted { continuation.resume(throwing: AMQPError(.closed, "the connection is closed")) }
        }
    }

    // MARK: Declarations

    /// Declares an exchange (and remembers it, to declare it again after a reconnect).
    public func declare(_ exchange: ExchangeDeclaration) async throws {
        try await perform { try $0.declareExchange(exchange) }
    }

    /// Declares a queue (and remembers it, to declare it again after a reconnect).
    @discardableResult
    public func declare(_ queue: QueueDeclaration) async throws -> QueueStatus {
        try await perform { try $0.declareQueue(queue) }
    }

    /// Binds a queue or an exchange (and remembers the binding for reconnects).
    public func bind(_ binding: BindingDeclaration) async throws {
        try await perform { try $0.bind(binding) }
    }

    /// Removes a binding.
    public func unbind(_ binding: BindingDeclaration) async throws {
        try await perform { try $0.unbind(binding) }
    }

    /// Reads a queue's depth and consumer count with a passive declare. A missing queue throws with reply code 404.
    public func queueStatus(_ name: String) async throws -> QueueStatus {
        try await perform { try $0.queueStatus(name) }
    }

    /// Whether an exchange exists (passive declare).
    public func exchangeExists(_ name: String) async throws -> Bool {
        try await perform { try $0.exchangeExists(name) }
    }

    /// Whether a queue exists (passive declare).
    public func queueExists(_ name: String) async throws -> Bool {
        do {
            _ = try await queueStatus(name)
            return true
        } catch let error as AMQPError where error.replyCode == 404 {
            return false
        }
    }

    /// Deletes a queue and returns how many messages it held.
    @discardableResult
    public func deleteQueue(_ name: String, ifUnused: Bool = false, ifEmpty: Bool = false) async throws -> UInt32 {
        try await perform { try $0.deleteQueue(name, ifUnused: ifUnused, ifEmpty: ifEmpty) }
    }

    public func deleteExchange(_ name: String, ifUnused: Bool = false) async throws {
        try await perform { try $0.deleteExchange(name, ifUnused: ifUnused) }
    }

    /// Removes every ready message from a queue and returns how many there were.
    @discardableResult
    public func purgeQueue(_ name: String) async throws -> UInt32 {
        try await perform { try $0.purgeQueue(name) }
    }

    // MARK: Channels and consumers

    /// Opens a channel for publishing; with `confirms` (default) every publish waits for the broker's confirm.
    /// The channel is on the publishing connection (see ``AMQPConnection``), opened with the first channel.
    public func openChannel(confirms: Bool = true) async throws -> AMQPChannel {
        let connection = try await publishingConnectionOpened()
        let number = try await connection.perform { try $0.addChannel(role: .publisher(confirms: confirms)).number }
        return AMQPChannel(connection: connection, number: number, confirms: confirms)
    }

    /// The connection for publishing channels: this one when ``AMQPConfiguration/Options/separatePublishing`` is off,
    /// else a second one, named after this one with ` (publishing)`, opened on first use.
    private func publishingConnectionOpened() async throws -> AMQPConnection {
        guard configuration.options.separatePublishing else { return self }
        guard started.withLockedValue({ $0 }) else { throw AMQPError(.closed, "connect() was not called on this connection") }
        let publishing = self.publishing
        let task = publishing.withLockedValue { state in
            if let task = state.opening { return task }
            var configuration = self.configuration
            configuration.options.separatePublishing = false
            configuration.options.connectionName = (configuration.options.connectionName ?? "agentry") + " (publishing)"
            let keepTrying = keepsTrying.withLockedValue { $0 }
            let logger = self.logger
            let opening = Task {
                let connection = AMQPConnection(configuration: configuration, logger: logger)
                try await connection.connect(keepTrying: keepTrying)
                publishing.withLockedValue { $0.open = connection }
                return connection
            }
            state.opening = opening
            return opening
        }
        return try await task.value
    }

    /// Starts consuming from a queue on a channel of its own.
    /// - Parameters:
    ///   - prefetch: how many unacknowledged deliveries the broker may send ahead (`basic.qos`); 0 = unlimited.
    ///   - noAck: the broker forgets each message once sent (no `ack` needed, nothing redelivered).
    ///   - consumerTag: kept across reconnects; generated when nil.
    ///   - maxBodySize: a message whose body is larger (as its content header announces) is delivered with only its
    ///     first bytes, its other frames read and dropped as they arrive (``AMQPDelivery/isTruncated``), so that one
    ///     huge message cannot fill the consumer's memory. Default nil: every body whole.
    public func consume(
        queue: String, prefetch: UInt16 = 100, noAck: Bool = false, exclusive: Bool = false,
        consumerTag: String? = nil, arguments: AMQPTable = [:], maxBodySize: Int? = nil
    ) async throws -> AMQPConsumer {
        let tag = consumerTag ?? "agentry.\(UUID().uuidString.lowercased())"
        let (stream, continuation) = AsyncThrowingStream<AMQPDelivery, any Error>.makeStream()
        let number = try await perform { session in
            let state = ConsumerState(
                queue: queue, tag: tag, prefetch: prefetch, noAck: noAck, exclusive: exclusive,
                arguments: arguments, maxBodySize: maxBodySize, continuation: continuation)
            return try session.addChannel(role: .consumer(state)).number
        }
        let mailbox = self.mailbox
        continuation.onTermination = { termination in
            // The consuming task went away without cancelling: stop deliveries and let the broker requeue the rest.
            if case .cancelled = termination {
                mailbox.post(.control { $0.closeChannel(number, error: AMQPError(.closed, "consumer stopped")) })
            }
        }
        return AMQPConsumer(connection: self, channel: number, tag: tag, queue: queue, stream: stream)
    }
}

/// A channel for publishing. Publishes through one channel keep their order.
public struct AMQPChannel: Sendable {
    let connection: AMQPConnection
    public let number: UInt16
    public let confirms: Bool

    /// Publishes a message. With confirms, returns once the broker has taken responsibility for it, and throws when
    /// it nacks it, returns it (mandatory, unroutable), closes the channel, or the connection drops before the
    /// confirm (``AMQPError/isRetriable`` is then true: the message may or may not have arrived).
    public func publish(_ message: AMQPMessage) async throws {
        let number = self.number
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let posted = connection.mailbox.post(
                .job(
                    Mailbox.Job(
                        run: { session in session.publish(message, channel: number, continuation: continuation) },
                        fail: { error in continuation.resume(throwing: error) })))
            if !posted { continuation.resume(throwing: AMQPError(.closed, "the connection is closed")) }
        }
    }

    /// Closes the channel; publishes still waiting for a confirm fail.
    public func close() {
        let number = self.number
        connection.mailbox.post(.control { $0.closeChannel(number, error: AMQPError(.closed, "channel \(number) was closed")) })
    }
}

/// A consumer: an async sequence of deliveries that survives reconnects (deliveries received before a reconnect can
/// no longer be acknowledged; the broker redelivers them, marked `redelivered`).
public struct AMQPConsumer: AsyncSequence, Sendable {
    public typealias Element = AMQPDelivery
    let connection: AMQPConnection
    let channel: UInt16
    public let tag: String
    public let queue: String
    let stream: AsyncThrowingStream<AMQPDelivery, any Error>

    public func makeAsyncIterator() -> AsyncThrowingStream<AMQPDelivery, any Error>.AsyncIterator {
        stream.makeAsyncIterator()
    }

    /// Stops new deliveries (`basic.cancel`); the sequence ends once the broker confirms. Deliveries already received
    /// can still be acknowledged until ``close()``.
    public func cancel() {
        let channel = self.channel
        connection.mailbox.post(.control { $0.cancelConsumer(channel: channel) })
    }

    /// Closes the consumer's channel and returns once the broker has closed it: unacknowledged deliveries are then
    /// back in the queue.
    public func close() async {
        let channel = self.channel
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let posted = connection.mailbox.post(
                .control { session in
                    session.closeChannel(channel, error: AMQPError(.closed, "consumer closed"), then: { continuation.resume() })
                })
            if !posted { continuation.resume() }
        }
    }
}
