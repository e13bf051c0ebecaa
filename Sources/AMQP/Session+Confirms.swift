import NIOConcurrencyHelpers

/// Every wait for a publisher confirm has a deadline.
///
/// A broker under a memory or disk alarm stops reading from connections that publish, so their confirms never come
/// while it lasts; a broker can also lose a message without nacking it (a queue's leader gone). The confirms of one
/// channel come in publish order and every publish gets the same timeout, so only the oldest waiting publish of each
/// channel needs to be looked at, on every turn of the connection's loop.
extension Session {
    func expireConfirms(now: ContinuousClock.Instant) {
        for channel in channels.values where !channel.pending.isEmpty {
            while channel.lowestPendingTag <= channel.nextPublishTag {
                guard let pending = channel.pending[channel.lowestPendingTag] else {
                    channel.lowestPendingTag += 1
                    continue
                }
                guard pending.deadline <= now else { break }
                channel.pending.removeValue(forKey: channel.lowestPendingTag)
                channel.lowestPendingTag += 1
                let blocked = snapshot.withLockedValue { $0.isBlocked }
                let why =
                    blocked
                    ? "the broker has blocked this connection (a memory or disk alarm)" : "is the broker overloaded, or did a queue lose its leader?"
                pending.continuation.resume(
                    throwing: AMQPError(
                        .timeout,
                        "RabbitMQ did not confirm a publish to exchange '\(pending.exchange)' within \(configuration.options.confirmTimeout) (\(why)); it may or may not have been taken"
                    ))
            }
        }
    }
}
