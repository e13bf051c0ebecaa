import CRabbitMQ
import Foundation
import Logging
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// What other threads may read about a connection.
struct ConnectionSnapshot: Sendable {
    var isConnected = false
    var isBlocked = false
    /// The broker's reason for blocking the connection (`low on memory`, `low on disk`).
    var blockedReason: String?
    var reconnects = 0
    var lastError: String?
    /// Deliveries acknowledged, and the `basic.ack` frames that carried them.
    var acknowledged = 0
    var ackFrames = 0
}

/// Resumes the caller of `AMQPConnection.connect` once, with the outcome of the first connection attempt.
final class FirstConnect: Sendable {
    private let continuation = NIOLockedValueBox<CheckedContinuation<Void, any Error>?>(nil)
    let keepTrying: Bool

    init(keepTrying: Bool, continuation: CheckedContinuation<Void, any Error>) {
        self.keepTrying = keepTrying
        self.continuation.withLockedValue { $0 = continuation }
    }

    func resume(_ result: Result<Void, any Error>) {
        continuation.withLockedValue { c in
            c?.resume(with: result)
            c = nil
        }
    }
}

/// One channel the session keeps open, and restores after a reconnect.
final class ChannelState {
    enum Role {
        case publisher(confirms: Bool)
        case consumer(ConsumerState)
    }

    struct PendingPublish {
        let continuation: CheckedContinuation<Void, any Error>
        let messageID: String?
        /// When waiting for the broker's confirm ends with ``AMQPError/Code-swift.struct/timeout`` (see
        /// `expireConfirms`).
        let deadline: ContinuousClock.Instant
        let exchange: String
    }

    let number: UInt16
    let role: Role
    var isOpen = false
    var nextPublishTag: UInt64 = 0
    var lowestPendingTag: UInt64 = 1
    var pending: [UInt64: PendingPublish] = [:]
    var returned: [String: (code: UInt16, text: String)] = [:]
    /// A consumer channel's deliveries, for coalescing acks: the tags received and not yet settled, the lowest of
    /// them (or the next tag to come), and the acks posted since the last flush.
    var unsettled = Set<UInt64>()
    var lowestUnsettled: UInt64 = 1
    var lastDelivered: UInt64 = 0
    var pendingAcks: [UInt64] = []
    /// A delivery whose content frames are still arriving (see `Session+Content.swift`).
    var incoming: IncomingDelivery?

    /// Delivery tags start again at 1 on a newly opened channel.
    func resetDeliveries() {
        unsettled.removeAll()
        lowestUnsettled = 1
        lastDelivered = 0
        pendingAcks.removeAll()
        incoming = nil
    }

    /// Moves `lowestUnsettled` past tags that are settled.
    func advanceLowest() {
        while lowestUnsettled <= lastDelivered, !unsettled.contains(lowestUnsettled) { lowestUnsettled += 1 }
    }

    init(number: UInt16, role: Role) {
        self.number = number
        self.role = role
    }

    var confirms: Bool {
        if case .publisher(let confirms) = role { return confirms }
        return false
    }

    var consumer: ConsumerState? {
        if case .consumer(let consumer) = role { return consumer }
        return nil
    }
}

final class ConsumerState {
    let queue: String
    let tag: String
    let prefetch: UInt16
    let noAck: Bool
    let exclusive: Bool
    let arguments: AMQPTable
    /// Bodies over this many bytes are not kept (see ``AMQPDelivery/isTruncated``); nil: no limit.
    let maxBodySize: Int?
    let continuation: AsyncThrowingStream<AMQPDelivery, any Error>.Continuation
    var settler: DeliverySettler?
    var cancelling = false

    init(queue: String, tag: String, prefetch: UInt16, noAck: Bool, exclusive: Bool, arguments: AMQPTable, maxBodySize: Int? = nil,
         continuation: AsyncThrowingStream<AMQPDelivery, any Error>.Continuation) {
        self.maxBodySize = maxBodySize
        self.queue = queue
        self.tag = tag
        self.prefetch = prefetch
        self.noAck = noAck
        self.exclusive = exclusive
        self.arguments = arguments
        self.continuation = continuation
    }
}

/// The rabbitmq-c connection and everything that depends on it, confined to one thread.
///
/// rabbitmq-c is not thread-safe and has no thread of its own: heartbeats are sent and received only while this
/// thread calls into the library. So the thread never blocks for long: it polls the socket and the mailbox's eventfd
/// with a timeout well under the heartbeat interval, runs posted jobs, then reads every frame that is ready.
final class Session {
    static let controlChannel: UInt16 = 1

    let configuration: AMQPConfiguration
    let mailbox: Mailbox
    let snapshot: NIOLockedValueBox<ConnectionSnapshot>
    var logger: Logger

    private(set) var connection: amqp_connection_state_t?
    private var firstConnect: FirstConnect?
    private(set) var generation: UInt64 = 0
    private var topology = TopologyRecord()
    private(set) var channels: [UInt16: ChannelState] = [:]
    /// Channels we asked to close, with what to run once the broker confirms (or the connection goes).
    private var closingChannels: [UInt16: [@Sendable () -> Void]] = [:]
    private var deferred: [Mailbox.Job] = []
    /// Channels with acks waiting for `flushAcks`.
    private var channelsWithAcks: [UInt16] = []
    private var running = true
    private var reconnectAt: ContinuousClock.Instant? = .now
    private var reconnectDelay: Duration

    init(configuration: AMQPConfiguration, mailbox: Mailbox, snapshot: NIOLockedValueBox<ConnectionSnapshot>,
         firstConnect: FirstConnect, logger: Logger) {
        self.configuration = configuration
        self.mailbox = mailbox
        self.snapshot = snapshot
        self.firstConnect = firstConnect
        self.logger = logger
        self.reconnectDelay = configuration.options.reconnectInitialDelay
    }

    var isConnected: Bool { connection != nil }

    // MARK: - The loop

    func run() {
        while running {
            if connection == nil, let at = reconnectAt, ContinuousClock.now >= at {
                connect()
            }
            processMailbox()
            if running, connection != nil {
                readFrames(limit: 512)
                expireConfirms(now: .now)
            }
            if let connection {
                amqp_maybe_release_buffers(connection)
            }
            if running { waitForActivity() }
        }
        teardown(AMQPError(.closed, "the connection was closed"))
    }

    private func processMailbox() {
        for message in mailbox.take() {
            switch message {
            case .job(let job):
                flushAcks()
                if connection != nil { job.run(self) } else { deferred.append(job) }
            case .control(let body):
                flushAcks()
                body(self)
            case .settle(let generation, let number, let tag, .ack(multiple: false)):
                // Plain acks wait for the end of this round, where those that continue the lowest unsettled tag go
                // as one multiple-ack (see flushAcks).
                if generation == self.generation, let channel = channels[number], channel.isOpen, channel.unsettled.contains(tag) {
                    if channel.pendingAcks.isEmpty { channelsWithAcks.append(number) }
                    channel.pendingAcks.append(tag)
                } else {
                    settle(generation: generation, channel: number, tag: tag, .ack(multiple: false))
                }
            case .settle(let generation, let channel, let tag, let settlement):
                flushAcks()
                settle(generation: generation, channel: channel, tag: tag, settlement)
            }
            if !running { return }
        }
        flushAcks()
    }

    private func waitForActivity() {
        var timeoutMS: Int32 = 1000
        if let connection {
            if amqp_frames_enqueued(connection) != 0 || amqp_data_in_buffer(connection) != 0 { return }
            let heartbeat = Int32(amqp_get_heartbeat(connection))
            if heartbeat > 0 { timeoutMS = min(timeoutMS, heartbeat * 1000 / 4) }
            // OpenSSL may hold decrypted bytes that poll cannot see: look again soon.
            if configuration.tls != nil { timeoutMS = min(timeoutMS, 10) }
        } else if let at = reconnectAt {
            let remaining = ContinuousClock.now.duration(to: at)
            timeoutMS = max(0, min(timeoutMS, Int32(remaining.milliseconds)))
        }
        var fds = [pollfd(fd: mailbox.eventFD, events: Int16(POLLIN), revents: 0)]
        if let connection {
            fds.append(pollfd(fd: amqp_get_sockfd(connection), events: Int16(POLLIN), revents: 0))
        }
        _ = poll(&fds, nfds_t(fds.count), timeoutMS)
    }

    // MARK: - Connecting

    private func connect() {
        reconnectAt = nil
        do {
            let conn = try openConnection()
            connection = conn
            try restore()
            generation += 1
            for channel in channels.values {
                channel.consumer?.settler = DeliverySettler(mailbox: mailbox, channel: channel.number, generation: generation)
            }
            reconnectDelay = configuration.options.reconnectInitialDelay
            let reconnected = snapshot.withLockedValue { s in
                s.isConnected = true
                s.lastError = nil
                if generation > 1 { s.reconnects += 1 }
                return generation > 1
            }
            if reconnected {
                logger.info("AMQP connection restored", metadata: ["amqp.generation": "\(generation)"])
            } else {
                logger.debug("AMQP connected", metadata: ["amqp.server": "\(configuration.redactedURL)"])
            }
            firstConnect?.resume(.success(()))
            firstConnect = nil
            let jobs = deferred
            deferred.removeAll()
            for job in jobs {
                if connection != nil { job.run(self) } else { deferred.append(job) }
            }
        } catch {
            if let conn = connection {
                amqp_destroy_connection(conn)
                connection = nil
            }
            for channel in channels.values { channel.isOpen = false }
            snapshot.withLockedValue { $0.lastError = "\(error)" }
            if let first = firstConnect, !first.keepTrying {
                first.resume(.failure(error))
                firstConnect = nil
                running = false
                return
            }
            logger.warning("AMQP connection attempt failed; retrying", metadata: [
                "amqp.server": "\(configuration.redactedURL)", "error": "\(error)",
                "amqp.retry_in_ms": "\(reconnectDelay.milliseconds)",
            ])
            scheduleReconnect()
        }
    }

    private func scheduleReconnect() {
        let jitter = Double.random(in: 0.8...1.2)
        reconnectAt = .now + reconnectDelay * jitter
        reconnectDelay = min(reconnectDelay * 2, configuration.options.reconnectMaxDelay)
    }

    private func openConnection() throws -> amqp_connection_state_t {
        let conn = amqp_new_connection()!
        let endpoint = "\(configuration.host):\(configuration.port)"
        do {
            let socket: OpaquePointer?
            if let tls = configuration.tls {
                socket = amqp_ssl_socket_new(conn)
                guard let socket else { throw AMQPError(.connectionFailed, "cannot create a TLS socket for \(endpoint)") }
                if let ca = tls.caCertificateFile, amqp_ssl_socket_set_cacert(socket, ca) != AMQP_STATUS_OK.rawValue {
                    throw AMQPError(.connectionFailed, "cannot read CA certificates from '\(ca)'")
                }
                if let cert = tls.certificateFile, let key = tls.keyFile,
                   amqp_ssl_socket_set_key(socket, cert, key) != AMQP_STATUS_OK.rawValue {
                    throw AMQPError(.connectionFailed, "cannot read client certificate '\(cert)' or key '\(key)'")
                }
                amqp_ssl_socket_set_verify_peer(socket, tls.verifyPeer ? 1 : 0)
                amqp_ssl_socket_set_verify_hostname(socket, tls.verifyPeer ? 1 : 0)
            } else {
                socket = amqp_tcp_socket_new(conn)
                guard socket != nil else { throw AMQPError(.connectionFailed, "cannot create a socket for \(endpoint)") }
            }
            var timeout = timeval(duration: configuration.options.connectTimeout)
            let status = amqp_socket_open_noblock(socket, configuration.host, Int32(configuration.port), &timeout)
            guard status == AMQP_STATUS_OK.rawValue else {
                let hint = status == AMQP_STATUS_SOCKET_ERROR.rawValue || status == AMQP_STATUS_TIMEOUT.rawValue ? "; is it running? (Scripts/services starts it)" : ""
                throw AMQPError(.connectionFailed, "cannot connect to RabbitMQ at \(endpoint): \(libraryErrorText(status))\(hint)")
            }
            _ = amqp_set_handshake_timeout(conn, &timeout)
            _ = amqp_set_rpc_timeout(conn, &timeout)

            let arena = CArena()
            var clientProperties: AMQPTable = [
                "capabilities": .table([
                    "publisher_confirms": true, "consumer_cancel_notify": true, "basic.nack": true,
                    "connection.blocked": true, "exchange_exchange_bindings": true,
                    "authentication_failure_close": true,
                ]),
                "product": "agentry",
            ]
            if let name = configuration.options.connectionName { clientProperties["connection_name"] = .string(name) }
            var properties = arena.table(clientProperties)
            let reply = agentry_amqp_login_plain_properties(
                conn, configuration.virtualHost, 0, Int32(configuration.options.frameMax),
                Int32(configuration.options.heartbeat), &properties, configuration.user, configuration.password)
            if let error = Self.error(from: reply, context: "cannot log in to RabbitMQ at \(endpoint) as '\(configuration.user)' (vhost '\(configuration.virtualHost)')") {
                if error.replyCode == 403 || error.replyCode == 530 || reply.library_error == AMQP_STATUS_CONNECTION_CLOSED.rawValue {
                    throw AMQPError(.authenticationFailed, error.message + "; check the user, password and vhost in the URL",
                                    replyCode: error.replyCode, replyText: error.replyText)
                }
                throw error
            }
            _ = amqp_channel_open(conn, Self.controlChannel)
            if let error = Self.error(from: amqp_get_rpc_reply(conn), context: "cannot open the control channel on \(endpoint)") {
                throw error
            }
            return conn
        } catch {
            amqp_destroy_connection(conn)
            throw error
        }
    }

    /// Declares again what was declared, and reopens every channel with its confirm mode, prefetch and consumer.
    private func restore() throws {
        for entry in topology.entries {
            do {
                switch entry {
                case .exchange(let e): try rawDeclareExchange(e, passive: false)
                case .queue(let q): _ = try rawDeclareQueue(q, passive: false)
                case .binding(let b): try rawBind(b, unbind: false)
                }
            } catch let error as AMQPError where error.code == .channelClosedByBroker {
                logger.error("cannot restore a declaration after reconnecting; dropping it", metadata: [
                    "amqp.declaration": "\(entry)", "error": "\(error)",
                ])
                topology.remove(entry)
            }
        }
        for number in channels.keys.sorted() {
            guard let channel = channels[number] else { continue }
            do {
                try openChannel(channel)
            } catch let error as AMQPError where error.code == .channelClosedByBroker {
                if let consumer = channel.consumer {
                    consumer.continuation.finish(throwing: AMQPError(
                        .consumerCancelled, "consumer '\(consumer.tag)' on queue '\(consumer.queue)' could not be restored after reconnecting",
                        replyCode: error.replyCode, replyText: error.replyText))
                }
                channels[number] = nil
            }
        }
    }

    private func openChannel(_ channel: ChannelState) throws {
        guard let conn = connection else { throw lostError() }
        _ = amqp_channel_open(conn, channel.number)
        try check(amqp_get_rpc_reply(conn), channel: channel.number, context: "cannot open channel \(channel.number)")
        channel.nextPublishTag = 0
        channel.lowestPendingTag = 1
        channel.resetDeliveries()
        if channel.confirms {
            _ = amqp_confirm_select(conn, channel.number)
            try check(amqp_get_rpc_reply(conn), channel: channel.number, context: "cannot enable publisher confirms on channel \(channel.number)")
        }
        if let consumer = channel.consumer {
            if consumer.prefetch > 0 {
                _ = amqp_basic_qos(conn, channel.number, 0, consumer.prefetch, 0)
                try check(amqp_get_rpc_reply(conn), channel: channel.number, context: "cannot set prefetch \(consumer.prefetch) on channel \(channel.number)")
            }
            let arena = CArena()
            _ = amqp_basic_consume(conn, channel.number, arena.bytes(consumer.queue), arena.bytes(consumer.tag), 0,
                                   consumer.noAck ? 1 : 0, consumer.exclusive ? 1 : 0, arena.table(consumer.arguments))
            try check(amqp_get_rpc_reply(conn), channel: channel.number, context: "cannot consume from queue '\(consumer.queue)'")
        }
        channel.isOpen = true
    }

    // MARK: - Losing and closing

    private func lostError() -> AMQPError {
        AMQPError(.connectionLost, "the connection to RabbitMQ at \(configuration.host):\(configuration.port) is down")
    }

    /// Drops the connection after a failure and schedules a reconnect. Publishes waiting for a confirm fail:
    /// the broker may or may not have taken them, and the caller decides whether to publish again.
    func lose(_ error: AMQPError) {
        guard let conn = connection else { return }
        connection = nil
        amqp_destroy_connection(conn)
        logger.warning("AMQP connection lost; reconnecting", metadata: ["error": "\(error)"])
        snapshot.withLockedValue { s in
            s.isConnected = false
            s.lastError = "\(error)"
            // A new connection is blocked only once the broker says so again.
            s.isBlocked = false
            s.blockedReason = nil
        }
        failPending(AMQPError(.connectionLost, "connection lost before the broker confirmed the publish; it may or may not have been delivered (\(error.message))",
                              replyCode: error.replyCode, replyText: error.replyText))
        for channel in channels.values { channel.isOpen = false }
        finishClosing()
        scheduleReconnect()
    }

    private func failPending(_ error: AMQPError) {
        for channel in channels.values {
            for pending in channel.pending.values { pending.continuation.resume(throwing: error) }
            channel.pending.removeAll()
            channel.returned.removeAll()
        }
    }

    func shutdown() {
        running = false
    }

    private func teardown(_ error: AMQPError) {
        if let conn = connection {
            _ = amqp_connection_close(conn, Int32(AMQP_REPLY_SUCCESS))
            amqp_destroy_connection(conn)
            connection = nil
        }
        snapshot.withLockedValue { $0.isConnected = false }
        finishClosing()
        failPending(error)
        for channel in channels.values { channel.consumer?.continuation.finish() }
        channels.removeAll()
        for job in deferred { job.fail(error) }
        deferred.removeAll()
        for message in mailbox.closeAndTake() {
            switch message {
            case .job(let job): job.fail(error)
            case .control(let body): body(self)
            case .settle: break
            }
        }
        firstConnect?.resume(.failure(error))
        firstConnect = nil
    }

    // MARK: - Replies and errors

    static func error(from reply: amqp_rpc_reply_t, context: String) -> AMQPError? {
        switch reply.reply_type {
        case AMQP_RESPONSE_NORMAL:
            return nil
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            return AMQPError(.connectionLost, "\(context): \(libraryErrorText(reply.library_error))")
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            if reply.reply.id == Method.channelClose, let decoded = reply.reply.decoded {
                let close = decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
                return AMQPError(.channelClosedByBroker, context, replyCode: close.reply_code, replyText: close.reply_text.string)
            }
            if reply.reply.id == Method.connectionClose, let decoded = reply.reply.decoded {
                let close = decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
                return AMQPError(.connectionClosedByBroker, context, replyCode: close.reply_code, replyText: close.reply_text.string)
            }
            return AMQPError(.library, "\(context): unexpected reply method \(reply.reply.id)")
        default:
            return AMQPError(.library, "\(context): no reply from the library")
        }
    }

    /// Turns a failed synchronous reply into an error, doing what the protocol then requires:
    /// a closed channel gets its close-ok (rabbitmq-c does not send it), a closed connection is dropped.
    private func check(_ reply: amqp_rpc_reply_t, channel: UInt16, context: String) throws {
        guard let error = Self.error(from: reply, context: context) else { return }
        switch error.code {
        case .channelClosedByBroker:
            sendCloseOK(channel: channel)
            channels[channel]?.isOpen = false
            if channel == Self.controlChannel, let conn = connection {
                _ = amqp_channel_open(conn, channel)
                if let reopen = Self.error(from: amqp_get_rpc_reply(conn), context: "cannot reopen the control channel") {
                    lose(reopen)
                }
            }
        case .connectionClosedByBroker:
            sendConnectionCloseOK()
            lose(error)
        default:
            lose(error)
        }
        throw error
    }

    private func sendCloseOK(channel: UInt16) {
        guard let conn = connection else { return }
        var ok = amqp_channel_close_ok_t()
        _ = amqp_send_method(conn, channel, Method.channelCloseOK, &ok)
    }

    private func sendConnectionCloseOK() {
        guard let conn = connection else { return }
        var ok = amqp_connection_close_ok_t()
        _ = amqp_send_method(conn, 0, Method.connectionCloseOK, &ok)
    }

    // MARK: - Declarations (on the control channel, which carries nothing else)

    private func rawDeclareExchange(_ e: ExchangeDeclaration, passive: Bool) throws {
        guard let conn = connection else { throw lostError() }
        let arena = CArena()
        _ = amqp_exchange_declare(conn, Self.controlChannel, arena.bytes(e.name), arena.bytes(e.kind.rawValue),
                                  passive ? 1 : 0, e.durable ? 1 : 0, e.autoDelete ? 1 : 0, e.internal ? 1 : 0,
                                  arena.table(e.arguments))
        try check(amqp_get_rpc_reply(conn), channel: Self.controlChannel,
                  context: passive ? "exchange '\(e.name)' does not exist" : "cannot declare exchange '\(e.name)'")
    }

    private func rawDeclareQueue(_ q: QueueDeclaration, passive: Bool) throws -> QueueStatus {
        guard let conn = connection else { throw lostError() }
        let arena = CArena()
        let ok = amqp_queue_declare(conn, Self.controlChannel, arena.bytes(q.name), passive ? 1 : 0, q.durable ? 1 : 0,
                                    q.exclusive ? 1 : 0, q.autoDelete ? 1 : 0, arena.table(q.arguments))
        try check(amqp_get_rpc_reply(conn), channel: Self.controlChannel,
                  context: passive ? "queue '\(q.name)' does not exist" : "cannot declare queue '\(q.name)'")
        guard let ok else { throw AMQPError(.library, "queue.declare-ok for '\(q.name)' carried no data") }
        return QueueStatus(name: ok.pointee.queue.string, messageCount: ok.pointee.message_count, consumerCount: ok.pointee.consumer_count)
    }

    private func rawBind(_ b: BindingDeclaration, unbind: Bool) throws {
        guard let conn = connection else { throw lostError() }
        let arena = CArena()
        let verb = unbind ? "unbind" : "bind"
        let context = "cannot \(verb) \(b.destination) \(unbind ? "from" : "to") exchange '\(b.source)' with routing key '\(b.routingKey)'"
        switch (b.destination, unbind) {
        case (.queue(let q), false):
            _ = amqp_queue_bind(conn, Self.controlChannel, arena.bytes(q), arena.bytes(b.source), arena.bytes(b.routingKey), arena.table(b.arguments))
        case (.queue(let q), true):
            _ = amqp_queue_unbind(conn, Self.controlChannel, arena.bytes(q), arena.bytes(b.source), arena.bytes(b.routingKey), arena.table(b.arguments))
        case (.exchange(let e), false):
            _ = amqp_exchange_bind(conn, Self.controlChannel, arena.bytes(e), arena.bytes(b.source), arena.bytes(b.routingKey), arena.table(b.arguments))
        case (.exchange(let e), true):
            _ = amqp_exchange_unbind(conn, Self.controlChannel, arena.bytes(e), arena.bytes(b.source), arena.bytes(b.routingKey), arena.table(b.arguments))
        }
        try check(amqp_get_rpc_reply(conn), channel: Self.controlChannel, context: context)
    }

    func declareExchange(_ e: ExchangeDeclaration) throws {
        try rawDeclareExchange(e, passive: false)
        topology.record(.exchange(e))
    }

    func exchangeExists(_ name: String) throws -> Bool {
        do {
            try rawDeclareExchange(ExchangeDeclaration(name: name, kind: .direct), passive: true)
            return true
        } catch let error as AMQPError where error.replyCode == 404 {
            return false
        }
    }

    func declareQueue(_ q: QueueDeclaration) throws -> QueueStatus {
        let status = try rawDeclareQueue(q, passive: false)
        topology.record(.queue(q))
        return status
    }

    func queueStatus(_ name: String) throws -> QueueStatus {
        try rawDeclareQueue(QueueDeclaration(name: name), passive: true)
    }

    func bind(_ b: BindingDeclaration) throws {
        try rawBind(b, unbind: false)
        topology.record(.binding(b))
    }

    func unbind(_ b: BindingDeclaration) throws {
        try rawBind(b, unbind: true)
        topology.removeBinding(b)
    }

    func deleteQueue(_ name: String, ifUnused: Bool, ifEmpty: Bool) throws -> UInt32 {
        guard let conn = connection else { throw lostError() }
        let arena = CArena()
        let ok = amqp_queue_delete(conn, Self.controlChannel, arena.bytes(name), ifUnused ? 1 : 0, ifEmpty ? 1 : 0)
        try check(amqp_get_rpc_reply(conn), channel: Self.controlChannel, context: "cannot delete queue '\(name)'")
        topology.removeQueue(name)
        return ok?.pointee.message_count ?? 0
    }

    func deleteExchange(_ name: String, ifUnused: Bool) throws {
        guard let conn = connection else { throw lostError() }
        let arena = CArena()
        _ = amqp_exchange_delete(conn, Self.controlChannel, arena.bytes(name), ifUnused ? 1 : 0)
        try check(amqp_get_rpc_reply(conn), channel: Self.controlChannel, context: "cannot delete exchange '\(name)'")
        topology.removeExchange(name)
    }

    func purgeQueue(_ name: String) throws -> UInt32 {
        guard let conn = connection else { throw lostError() }
        let arena = CArena()
        let ok = amqp_queue_purge(conn, Self.controlChannel, arena.bytes(name))
        try check(amqp_get_rpc_reply(conn), channel: Self.controlChannel, context: "cannot purge queue '\(name)'")
        return ok?.pointee.message_count ?? 0
    }

    // MARK: - Channels

    private func freeChannelNumber() -> UInt16? {
        var candidate: UInt16 = Self.controlChannel + 1
        while channels[candidate] != nil || closingChannels[candidate] != nil {
            if candidate == UInt16.max { return nil }
            candidate += 1
        }
        return candidate
    }

    func addChannel(role: ChannelState.Role) throws -> ChannelState {
        guard let number = freeChannelNumber() else {
            throw AMQPError(.library, "no free channel number left on this connection")
        }
        let channel = ChannelState(number: number, role: role)
        channel.consumer?.settler = DeliverySettler(mailbox: mailbox, channel: number, generation: generation)
        try openChannel(channel)
        channels[number] = channel
        return channel
    }

    /// Closes a channel without waiting: its close-ok is read by the frame loop like any other frame,
    /// so deliveries still in flight on it cannot confuse a synchronous wait.
    /// `then` runs once the broker has closed the channel (its unacknowledged deliveries are back in their queues),
    /// or at once when there is nothing to close.
    func closeChannel(_ number: UInt16, error: AMQPError, then: (@Sendable () -> Void)? = nil) {
        guard let channel = channels.removeValue(forKey: number) else {
            if let then {
                if closingChannels[number] != nil { closingChannels[number]!.append(then) } else { then() }
            }
            return
        }
        for pending in channel.pending.values { pending.continuation.resume(throwing: error) }
        channel.pending.removeAll()
        channel.consumer?.continuation.finish()
        guard channel.isOpen, let conn = connection else {
            then?()
            return
        }
        var close = amqp_channel_close_t(reply_code: UInt16(AMQP_REPLY_SUCCESS), reply_text: amqp_bytes_t(len: 0, bytes: nil), class_id: 0, method_id: 0)
        if amqp_send_method(conn, number, Method.channelClose, &close) == AMQP_STATUS_OK.rawValue {
            closingChannels[number] = then.map { [$0] } ?? []
        } else {
            then?()
        }
    }

    private func finishClosing() {
        let waiting = closingChannels.values.flatMap { $0 }
        closingChannels.removeAll()
        for then in waiting { then() }
    }

    /// Asks the broker to stop delivering to a consumer; its stream ends when the broker confirms.
    /// The channel stays open so that deliveries already received can still be acknowledged.
    func cancelConsumer(channel number: UInt16) {
        guard let channel = channels[number], let consumer = channel.consumer, !consumer.cancelling else { return }
        consumer.cancelling = true
        guard channel.isOpen, let conn = connection else {
            consumer.continuation.finish()
            return
        }
        let arena = CArena()
        var cancel = amqp_basic_cancel_t(consumer_tag: arena.bytes(consumer.tag), nowait: 0)
        if amqp_send_method(conn, number, Method.basicCancel, &cancel) != AMQP_STATUS_OK.rawValue {
            lose(AMQPError(.connectionLost, "cannot send basic.cancel for consumer '\(consumer.tag)'"))
        }
    }

    // MARK: - Publishing

    func publish(_ message: AMQPMessage, channel number: UInt16, continuation: CheckedContinuation<Void, any Error>) {
        guard let channel = channels[number] else {
            continuation.resume(throwing: AMQPError(.closed, "channel \(number) is closed"))
            return
        }
        guard let conn = connection, channel.isOpen else {
            continuation.resume(throwing: lostError())
            return
        }
        let arena = CArena()
        var properties = arena.properties(message.properties)
        let status = message.body.withUnsafeBytes { body in
            amqp_basic_publish(conn, number, arena.bytes(message.exchange), arena.bytes(message.routingKey),
                               message.mandatory ? 1 : 0, 0, &properties,
                               amqp_bytes_t(len: body.count, bytes: UnsafeMutableRawPointer(mutating: body.baseAddress)))
        }
        guard status == AMQP_STATUS_OK.rawValue else {
            let error = AMQPError(.connectionLost, "cannot publish to exchange '\(message.exchange)': \(libraryErrorText(status))")
            continuation.resume(throwing: error)
            lose(error)
            return
        }
        if channel.confirms {
            channel.nextPublishTag += 1
            channel.pending[channel.nextPublishTag] = .init(continuation: continuation, messageID: message.mandatory ? message.properties.messageID : nil,
                                                            deadline: .now + configuration.options.confirmTimeout, exchange: message.exchange)
        } else {
            continuation.resume()
        }
    }

    private func confirm(channel: ChannelState, tag: UInt64, multiple: Bool, nack: Bool) {
        func resolve(_ t: UInt64) {
            guard let pending = channel.pending.removeValue(forKey: t) else { return }
            if nack {
                pending.continuation.resume(throwing: AMQPError(.publishNacked, "the broker refused to take the message (basic.nack for publish \(t) on channel \(channel.number))"))
            } else if let id = pending.messageID, let returned = channel.returned.removeValue(forKey: id) {
                pending.continuation.resume(throwing: AMQPError(.unroutable, "message '\(id)' matched no queue and was returned",
                                                                replyCode: returned.code, replyText: returned.text))
            } else {
                pending.continuation.resume()
            }
        }
        if multiple {
            var t = channel.lowestPendingTag
            while t <= tag {
                resolve(t)
                t += 1
            }
        } else {
            resolve(tag)
        }
        while channel.lowestPendingTag <= channel.nextPublishTag, channel.pending[channel.lowestPendingTag] == nil {
            channel.lowestPendingTag += 1
        }
    }

    // MARK: - Settling deliveries

    private func settle(generation: UInt64, channel number: UInt16, tag: UInt64, _ settlement: Settlement) {
        guard generation == self.generation, let conn = connection, let channel = channels[number], channel.isOpen else {
            // The delivery belongs to a connection or channel that is gone: the broker has requeued it already.
            logger.trace("dropping settlement of a delivery from a previous connection", metadata: ["amqp.delivery_tag": "\(tag)"])
            return
        }
        let status: Int32
        switch settlement {
        case .ack(let multiple):
            status = amqp_basic_ack(conn, number, tag, multiple ? 1 : 0)
            let before = channel.unsettled.count
            forget(tag, multiple: multiple, on: channel)
            let settled = max(1, before - channel.unsettled.count)
            snapshot.withLockedValue {
                $0.acknowledged += settled
                $0.ackFrames += 1
            }
        case .nack(let requeue, let multiple):
            status = amqp_basic_nack(conn, number, tag, multiple ? 1 : 0, requeue ? 1 : 0)
            forget(tag, multiple: multiple, on: channel)
        case .reject(let requeue):
            status = amqp_basic_reject(conn, number, tag, requeue ? 1 : 0)
            forget(tag, multiple: false, on: channel)
        }
        if status != AMQP_STATUS_OK.rawValue {
            lose(AMQPError(.connectionLost, "cannot settle delivery \(tag) on channel \(number): \(libraryErrorText(status))"))
        }
    }

    private func forget(_ tag: UInt64, multiple: Bool, on channel: ChannelState) {
        if multiple {
            channel.unsettled = channel.unsettled.filter { $0 > tag }
        } else {
            channel.unsettled.remove(tag)
        }
        channel.advanceLowest()
    }

    /// Sends the plain acks posted in this round. Those that continue the channel's lowest unsettled tag without a
    /// gap go as one `basic.ack` with `multiple` (which covers exactly them: every tag up to it is acked); the rest
    /// one by one. A worker's runs finish in groups (their outcomes are written together), so most acks of a busy
    /// consumer travel in a few frames, and the broker handles a few acks instead of one per message.
    private func flushAcks() {
        guard !channelsWithAcks.isEmpty else { return }
        let numbers = channelsWithAcks
        channelsWithAcks.removeAll(keepingCapacity: true)
        for number in numbers {
            guard let channel = channels[number] else { continue }
            var tags = channel.pendingAcks
            channel.pendingAcks.removeAll(keepingCapacity: true)
            guard let conn = connection, channel.isOpen else { continue }
            tags.sort()
            channel.advanceLowest()
            var covered = 0
            while covered < tags.count, tags[covered] == channel.lowestUnsettled {
                channel.unsettled.remove(tags[covered])
                channel.advanceLowest()
                covered += 1
            }
            var frames: [(tag: UInt64, multiple: Bool)] = covered > 0 ? [(tags[covered - 1], covered > 1)] : []
            for tag in tags[covered...] where channel.unsettled.remove(tag) != nil {
                frames.append((tag, false))
            }
            for frame in frames {
                let status = amqp_basic_ack(conn, number, frame.tag, frame.multiple ? 1 : 0)
                if status != AMQP_STATUS_OK.rawValue {
                    lose(AMQPError(.connectionLost, "cannot acknowledge delivery \(frame.tag) on channel \(number): \(libraryErrorText(status))"))
                    return
                }
            }
            let acknowledged = covered + frames.count - (covered > 0 ? 1 : 0)
            snapshot.withLockedValue {
                $0.acknowledged += acknowledged
                $0.ackFrames += frames.count
            }
        }
    }

    // MARK: - Reading frames

    private func readFrames(limit: Int) {
        var zero = timeval(tv_sec: 0, tv_usec: 0)
        var frame = amqp_frame_t()
        for _ in 0..<limit {
            guard let conn = connection else { return }
            let status = amqp_simple_wait_frame_noblock(conn, &frame, &zero)
            if status == AMQP_STATUS_TIMEOUT.rawValue { return }
            guard status == AMQP_STATUS_OK.rawValue else {
                lose(AMQPError(.connectionLost, "reading from RabbitMQ failed: \(libraryErrorText(status))"))
                return
            }
            switch frame.frame_type {
            case UInt8(AMQP_FRAME_METHOD): handleMethod(frame.payload.method, channel: frame.channel)
            case UInt8(AMQP_FRAME_HEADER), UInt8(AMQP_FRAME_BODY): handleContent(frame)
            default: break
            }
        }
    }

    private func handleMethod(_ method: amqp_method_t, channel number: UInt16) {
        guard let conn = connection else { return }
        switch method.id {
        case Method.basicDeliver:
            // Its content header and body frames follow, read by the frame loop like any other frame (see
            // `handleContent`): a body over the consumer's limit is dropped frame by frame, never held whole.
            let deliver = method.decoded.assumingMemoryBound(to: amqp_basic_deliver_t.self).pointee
            guard let channel = channels[number] else { return }
            channel.incoming = IncomingDelivery(exchange: deliver.exchange.string, routingKey: deliver.routing_key.string,
                                                consumerTag: deliver.consumer_tag.string, deliveryTag: deliver.delivery_tag,
                                                redelivered: deliver.redelivered != 0,
                                                maxBodySize: channel.consumer?.maxBodySize)

        case Method.basicAck, Method.basicNack:
            guard let channel = channels[number] else { return }
            if method.id == Method.basicAck {
                let ack = method.decoded.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
                confirm(channel: channel, tag: ack.delivery_tag, multiple: ack.multiple != 0, nack: false)
            } else {
                let nack = method.decoded.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee
                confirm(channel: channel, tag: nack.delivery_tag, multiple: nack.multiple != 0, nack: true)
            }

        case Method.basicReturn:
            let ret = method.decoded.assumingMemoryBound(to: amqp_basic_return_t.self).pointee
            let code = ret.reply_code
            let text = ret.reply_text.string
            var message = amqp_message_t()
            let reply = amqp_read_message(conn, number, &message, 0)
            guard reply.reply_type == AMQP_RESPONSE_NORMAL else {
                lose(Self.error(from: reply, context: "cannot read a returned message on channel \(number)") ?? lostError())
                return
            }
            let id = CDecode.properties(message.properties).messageID
            amqp_destroy_message(&message)
            if let id, let channel = channels[number] {
                channel.returned[id] = (code, text)
            } else {
                logger.warning("a mandatory message without message id was returned", metadata: ["amqp.reply": "\(code) \(text)"])
            }

        case Method.channelClose:
            let close = method.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            let error = AMQPError(.channelClosedByBroker, "RabbitMQ closed channel \(number)",
                                  replyCode: close.reply_code, replyText: close.reply_text.string)
            sendCloseOK(channel: number)
            guard let channel = channels[number] else { return }
            logger.warning("channel closed by the broker; reopening it", metadata: ["amqp.channel": "\(number)", "error": "\(error)"])
            channel.isOpen = false
            for pending in channel.pending.values { pending.continuation.resume(throwing: error) }
            channel.pending.removeAll()
            channel.returned.removeAll()
            do {
                try openChannel(channel)
            } catch {
                if let consumer = channel.consumer {
                    consumer.continuation.finish(throwing: error)
                }
                channels[number] = nil
            }

        case Method.channelCloseOK:
            for then in closingChannels.removeValue(forKey: number) ?? [] { then() }

        case Method.connectionClose:
            let close = method.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            let error = AMQPError(.connectionClosedByBroker, "RabbitMQ closed the connection",
                                  replyCode: close.reply_code, replyText: close.reply_text.string)
            sendConnectionCloseOK()
            lose(error)

        case Method.basicCancel:
            // The broker cancelled the consumer (its queue was deleted, or the node holding it went away).
            guard let channel = channels[number], let consumer = channel.consumer else { return }
            consumer.continuation.finish(throwing: AMQPError(.consumerCancelled, "RabbitMQ cancelled consumer '\(consumer.tag)' on queue '\(consumer.queue)'; was the queue deleted?"))
            closeChannel(number, error: AMQPError(.consumerCancelled, "consumer cancelled"))

        case Method.basicCancelOK:
            channels[number]?.consumer?.continuation.finish()

        case Method.connectionBlocked:
            let reason = method.decoded.assumingMemoryBound(to: amqp_connection_blocked_t.self).pointee.reason.string
            logger.error("RabbitMQ blocked this connection (a resource alarm): its publishes wait until the alarm clears", metadata: [
                "amqp.blocked_reason": "\(reason)", "amqp.connection": "\(configuration.options.connectionName ?? "")",
            ])
            snapshot.withLockedValue {
                $0.isBlocked = true
                $0.blockedReason = reason.isEmpty ? "a resource alarm" : reason
            }

        case Method.connectionUnblocked:
            logger.warning("RabbitMQ unblocked this connection: the alarm cleared", metadata: ["amqp.connection": "\(configuration.options.connectionName ?? "")"])
            snapshot.withLockedValue {
                $0.isBlocked = false
                $0.blockedReason = nil
            }

        default:
            logger.trace("ignoring method", metadata: ["amqp.method": "\(method.id)", "amqp.channel": "\(number)"])
        }
    }
}

extension TopologyRecord {
    mutating func remove(_ entry: Entry) {
        switch entry {
        case .binding(let b): removeBinding(b)
        case .queue(let q): removeQueue(q.name)
        case .exchange(let e): removeExchange(e.name)
        }
    }
}

extension Duration {
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}

extension timeval {
    init(duration: Duration) {
        let ms = duration.milliseconds
        self.init(tv_sec: Int(ms / 1000), tv_usec: Int((ms % 1000) * 1000))
    }
}
