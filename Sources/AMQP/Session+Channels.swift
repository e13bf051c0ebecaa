import CRabbitMQ
import Foundation
import Logging
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

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

/// The session's channels: numbers given out, opened, closed on request or by the broker.
extension Session {
    func freeChannelNumber() -> UInt16? {
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
        var close = amqp_channel_close_t(
            reply_code: UInt16(AMQP_REPLY_SUCCESS), reply_text: amqp_bytes_t(len: 0, bytes: nil), class_id: 0, method_id: 0)
        if amqp_send_method(conn, number, Method.channelClose, &close) == AMQP_STATUS_OK.rawValue {
            closingChannels[number] = then.map { [$0] } ?? []
        } else {
            then?()
        }
    }

    func finishClosing() {
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
}
