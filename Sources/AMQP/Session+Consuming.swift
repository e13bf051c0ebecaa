import CRabbitMQ
import Foundation
import Logging
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

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

    init(
        queue: String, tag: String, prefetch: UInt16, noAck: Bool, exclusive: Bool, arguments: AMQPTable, maxBodySize: Int? = nil,
        continuation: AsyncThrowingStream<AMQPDelivery, any Error>.Continuation
    ) {
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

/// Settling the deliveries of consumers: acks, nacks and rejects, batched per channel and flushed once per turn of
/// the loop.
extension Session {
    func settle(generation: UInt64, channel number: UInt16, tag: UInt64, _ settlement: Settlement) {
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

    func forget(_ tag: UInt64, multiple: Bool, on channel: ChannelState) {
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
    func flushAcks() {
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
}
