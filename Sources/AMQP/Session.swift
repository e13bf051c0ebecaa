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
    /// The endpoint the connection is up on; nil while it is down.
    var endpoint: AMQPConfiguration.Endpoint?
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

/// The rabbitmq-c connection and everything that depends on it, confined to one thread.
///
/// rabbitmq-c is not thread-safe and has no thread of its own: heartbeats are sent and received only while this
/// thread calls into the library. So the thread never blocks for long: it polls the socket and the mailbox's eventfd
/// with a timeout well under the heartbeat interval, runs posted jobs, then reads every frame that is ready.
///
/// This file holds the connection: the loop, connecting and restoring, losing and closing. Declarations, channels,
/// publishing (and confirms), consuming (content and settling) and reading frames are in `Session+*.swift`.
final class Session {
    static let controlChannel: UInt16 = 1

    let configuration: AMQPConfiguration
    let mailbox: Mailbox
    let snapshot: NIOLockedValueBox<ConnectionSnapshot>
    var logger: Logger

    private(set) var connection: amqp_connection_state_t?
    var firstConnect: FirstConnect?
    private(set) var generation: UInt64 = 0
    var topology = TopologyRecord()
    var channels: [UInt16: ChannelState] = [:]
    /// Channels we asked to close, with what to run once the broker confirms (or the connection goes).
    var closingChannels: [UInt16: [@Sendable () -> Void]] = [:]
    var deferred: [Mailbox.Job] = []
    /// Channels with acks waiting for `flushAcks`.
    var channelsWithAcks: [UInt16] = []
    var running = true
    var reconnectAt: ContinuousClock.Instant? = .now
    var reconnectDelay: Duration
    var rotation: EndpointRotation
    /// While `connect` runs: a connection dropped then (during restore) is an attempt that failed, which `connect`
    /// accounts for, not a lost connection to move on from.
    var connecting = false
    /// Why each attempt of the current round failed, for the error of a first connect that does not keep trying.
    var roundFailures: [(endpoint: AMQPConfiguration.Endpoint, error: any Error)] = []

    init(
        configuration: AMQPConfiguration, mailbox: Mailbox, snapshot: NIOLockedValueBox<ConnectionSnapshot>,
        firstConnect: FirstConnect, logger: Logger
    ) {
        self.configuration = configuration
        self.mailbox = mailbox
        self.snapshot = snapshot
        self.firstConnect = firstConnect
        self.logger = logger
        self.reconnectDelay = configuration.options.reconnectInitialDelay
        self.rotation = EndpointRotation(count: configuration.endpoints.count)
    }

    var isConnected: Bool { connection != nil }
    /// The endpoint connected to, or to try next.
    var endpoint: AMQPConfiguration.Endpoint { configuration.endpoints[rotation.current] }

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

    func processMailbox() {
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

    func waitForActivity() {
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

    /// One attempt on the current endpoint: connect, log in, restore. A failure moves on to the next endpoint at once;
    /// only when every endpoint failed in a round does the session back off (see ``EndpointRotation``).
    func connect() {
        reconnectAt = nil
        let endpoint = self.endpoint
        logger[metadataKey: "amqp.server"] = "\(endpoint)"
        do {
            connecting = true
            let conn = try openConnection(to: endpoint)
            connection = conn
            try restore()
            connecting = false
            rotation.connected()
            roundFailures.removeAll()
            generation += 1
            for channel in channels.values {
                channel.consumer?.settler = DeliverySettler(mailbox: mailbox, channel: channel.number, generation: generation)
            }
            reconnectDelay = configuration.options.reconnectInitialDelay
            let reconnected = snapshot.withLockedValue { s in
                s.isConnected = true
                s.endpoint = endpoint
                s.lastError = nil
                if generation > 1 { s.reconnects += 1 }
                return generation > 1
            }
            if reconnected {
                logger.info("AMQP connection restored", metadata: ["amqp.generation": "\(generation)"])
            } else {
                // Which node of a list answered is worth seeing; a lone broker's is not.
                logger.log(
                    level: configuration.endpoints.count > 1 ? .info : .debug, "AMQP connected",
                    metadata: ["amqp.url": "\(configuration.redactedURL(for: endpoint))"])
            }
            firstConnect?.resume(.success(()))
            firstConnect = nil
            let jobs = deferred
            deferred.removeAll()
            for job in jobs {
                if connection != nil { job.run(self) } else { deferred.append(job) }
            }
        } catch {
            connecting = false
            if let conn = connection {
                amqp_destroy_connection(conn)
                connection = nil
            }
            for channel in channels.values { channel.isOpen = false }
            snapshot.withLockedValue { $0.lastError = "\(error)" }
            roundFailures.append((endpoint, error))
            let roundFailed = rotation.attemptFailed()
            if let first = firstConnect, !first.keepTrying {
                if roundFailed {
                    first.resume(.failure(roundError()))
                    firstConnect = nil
                    running = false
                } else {
                    reconnectAt = .now
                }
                return
            }
            if roundFailed {
                roundFailures.removeAll()
                logger.warning(
                    "AMQP connection attempt failed; retrying",
                    metadata: ["error": "\(error)", "amqp.retry_in_ms": "\(reconnectDelay.milliseconds)", "amqp.next_server": "\(self.endpoint)"])
                scheduleReconnect()
            } else {
                logger.warning(
                    "AMQP connection attempt failed; trying the next endpoint",
                    metadata: ["error": "\(error)", "amqp.next_server": "\(self.endpoint)"])
                reconnectAt = .now
            }
        }
    }

    /// The failure of a whole round, for a first connect that does not keep trying: with one endpoint its error, with
    /// several an error that names each endpoint and why it failed.
    func roundError() -> any Error {
        guard roundFailures.count > 1, let last = roundFailures.last else { return roundFailures.last?.error ?? lostError() }
        let reasons = roundFailures.map { "\($0.endpoint): \(($0.error as? AMQPError)?.message ?? "\($0.error)")" }
        let lastError = last.error as? AMQPError
        return AMQPError(
            lastError?.code ?? .connectionFailed, "no RabbitMQ endpoint answered (\(reasons.joined(separator: "; ")))",
            replyCode: lastError?.replyCode, replyText: lastError?.replyText)
    }

    func scheduleReconnect() {
        let jitter = Double.random(in: 0.8...1.2)
        reconnectAt = .now + reconnectDelay * jitter
        reconnectDelay = min(reconnectDelay * 2, configuration.options.reconnectMaxDelay)
    }

    func openConnection(to endpoint: AMQPConfiguration.Endpoint) throws -> amqp_connection_state_t {
        let conn = amqp_new_connection()!
        do {
            let socket: OpaquePointer?
            if let tls = configuration.tls {
                socket = amqp_ssl_socket_new(conn)
                guard let socket else { throw AMQPError(.connectionFailed, "cannot create a TLS socket for \(endpoint)") }
                if let ca = tls.caCertificateFile, amqp_ssl_socket_set_cacert(socket, ca) != AMQP_STATUS_OK.rawValue {
                    throw AMQPError(.connectionFailed, "cannot read CA certificates from '\(ca)'")
                }
                if let cert = tls.certificateFile, let key = tls.keyFile,
                    amqp_ssl_socket_set_key(socket, cert, key) != AMQP_STATUS_OK.rawValue
                {
                    throw AMQPError(.connectionFailed, "cannot read client certificate '\(cert)' or key '\(key)'")
                }
                amqp_ssl_socket_set_verify_peer(socket, tls.verifyPeer ? 1 : 0)
                amqp_ssl_socket_set_verify_hostname(socket, tls.verifyPeer ? 1 : 0)
            } else {
                socket = amqp_tcp_socket_new(conn)
                guard socket != nil else { throw AMQPError(.connectionFailed, "cannot create a socket for \(endpoint)") }
            }
            var timeout = timeval(duration: configuration.options.connectTimeout)
            let status = amqp_socket_open_noblock(socket, endpoint.host, Int32(endpoint.port), &timeout)
            guard status == AMQP_STATUS_OK.rawValue else {
                let hint =
                    status == AMQP_STATUS_SOCKET_ERROR.rawValue || status == AMQP_STATUS_TIMEOUT.rawValue
                    ? "; is it running? (Scripts/services starts it)" : ""
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
            if let error = Self.error(
                from: reply, context: "cannot log in to RabbitMQ at \(endpoint) as '\(configuration.user)' (vhost '\(configuration.virtualHost)')")
            {
                if error.replyCode == 403 || error.replyCode == 530 || reply.library_error == AMQP_STATUS_CONNECTION_CLOSED.rawValue {
                    throw AMQPError(
                        .authenticationFailed, error.message + "; check the user, password and vhost in the URL",
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

    // MARK: - Losing and closing

    func lostError() -> AMQPError {
        AMQPError(.connectionLost, "the connection to RabbitMQ at \(endpoint) is down")
    }

    /// Drops the connection after a failure and schedules a reconnect. Publishes waiting for a confirm fail:
    /// the broker may or may not have taken them, and the caller decides whether to publish again.
    func lose(_ error: AMQPError) {
        guard let conn = connection else { return }
        connection = nil
        amqp_destroy_connection(conn)
        if !connecting { rotation.lost() }
        logger.warning("AMQP connection lost; reconnecting", metadata: ["error": "\(error)", "amqp.next_server": "\(endpoint)"])
        snapshot.withLockedValue { s in
            s.isConnected = false
            s.endpoint = nil
            s.lastError = "\(error)"
            // A new connection is blocked only once the broker says so again.
            s.isBlocked = false
            s.blockedReason = nil
        }
        failPending(
            AMQPError(
                .connectionLost, "connection lost before the broker confirmed the publish; it may or may not have been delivered (\(error.message))",
                replyCode: error.replyCode, replyText: error.replyText))
        for channel in channels.values { channel.isOpen = false }
        finishClosing()
        if !connecting { scheduleReconnect() }
    }

    func failPending(_ error: AMQPError) {
        for channel in channels.values {
            for pending in channel.pending.values { pending.continuation.resume(throwing: error) }
            channel.pending.removeAll()
            channel.returned.removeAll()
        }
    }

    func shutdown() {
        running = false
    }

    func teardown(_ error: AMQPError) {
        if let conn = connection {
            _ = amqp_connection_close(conn, Int32(AMQP_REPLY_SUCCESS))
            amqp_destroy_connection(conn)
            connection = nil
        }
        snapshot.withLockedValue {
            $0.isConnected = false
            $0.endpoint = nil
        }
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
    func check(_ reply: amqp_rpc_reply_t, channel: UInt16, context: String) throws {
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

    func sendCloseOK(channel: UInt16) {
        guard let conn = connection else { return }
        var ok = amqp_channel_close_ok_t()
        _ = amqp_send_method(conn, channel, Method.channelCloseOK, &ok)
    }

    func sendConnectionCloseOK() {
        guard let conn = connection else { return }
        var ok = amqp_connection_close_ok_t()
        _ = amqp_send_method(conn, 0, Method.connectionCloseOK, &ok)
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
