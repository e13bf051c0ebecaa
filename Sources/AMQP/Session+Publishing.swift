import CRabbitMQ
import Foundation
import Logging
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// Publishing on a channel, and the broker's confirms of what was published.
extension Session {
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
            amqp_basic_publish(
                conn, number, arena.bytes(message.exchange), arena.bytes(message.routingKey),
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
            channel.pending[channel.nextPublishTag] = .init(
                continuation: continuation, messageID: message.mandatory ? message.properties.messageID : nil,
                deadline: .now + configuration.options.confirmTimeout, exchange: message.exchange)
        } else {
            continuation.resume()
        }
    }

    func confirm(channel: ChannelState, tag: UInt64, multiple: Bool, nack: Bool) {
        func resolve(_ t: UInt64) {
            guard let pending = channel.pending.removeValue(forKey: t) else { return }
            if nack {
                pending.continuation.resume(
                    throwing: AMQPError(
                        .publishNacked, "the broker refused to take the message (basic.nack for publish \(t) on channel \(channel.number))"))
            } else if let id = pending.messageID, let returned = channel.returned.removeValue(forKey: id) {
                pending.continuation.resume(
                    throwing: AMQPError(
                        .unroutable, "message '\(id)' matched no queue and was returned",
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
}
