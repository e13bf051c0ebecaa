import AMQP
import Foundation
import Logging

/// Consumes a queue and hands deliveries to `flush` in batches: when `batchSize` have gathered, or when the oldest
/// has waited `maxLatency`. Batches are flushed one at a time, in order, so that acknowledging the last delivery of a
/// batch with `multiple` covers exactly that batch and what came before it.
struct BatchingConsumer<Item: Sendable>: Sendable {
    struct Options: Sendable {
        var batchSize: Int
        var maxLatency: Duration
    }

    private enum Input: Sendable {
        case delivery(AMQPDelivery)
        case tick
    }

    let consumer: AMQPConsumer
    let options: Options
    let logger: Logger
    /// Turns a delivery into an item, or returns nil when it has been dealt with (parked, skipped) and acked.
    let prepare: @Sendable (AMQPDelivery) async throws -> Item?
    /// Handles a batch; the deliveries are acknowledged when it returns, and requeued when it throws.
    let flush: @Sendable ([Item]) async throws -> Void

    func run() async throws {
        let (inputs, continuation) = AsyncThrowingStream<Input, any Error>.makeStream()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                do {
                    for try await delivery in consumer { continuation.yield(.delivery(delivery)) }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: options.maxLatency / 2)
                    continuation.yield(.tick)
                }
            }
            var items: [Item] = []
            var last: AMQPDelivery?
            var oldest: ContinuousClock.Instant?
            // One batch is written while the next one gathers; batches finish in order, so that each multiple-ack
            // covers exactly its batch and what came before it.
            var inFlight: Task<Void, Never>?
            let flush = self.flush
            let logger = self.logger
            func flushNow() async {
                guard let lastDelivery = last else { return }
                let batch = items
                items.removeAll(keepingCapacity: true)
                last = nil
                oldest = nil
                guard !batch.isEmpty else { return }
                let previous = inFlight
                inFlight = Task {
                    await previous?.value
                    do {
                        try await flush(batch)
                        lastDelivery.ack(multiple: true)
                    } catch {
                        logger.error(
                            "batch failed; its messages go back to the queue",
                            metadata: ["error": "\(error)", "agentry.batch.size": "\(batch.count)"])
                        lastDelivery.nack(requeue: true, multiple: true)
                        try? await Task.sleep(for: .milliseconds(500))
                    }
                }
                // Keep at most one batch waiting behind the one being written.
                await previous?.value
            }
            var failure: (any Error)?
            do {
                for try await input in inputs {
                    switch input {
                    case .delivery(let delivery):
                        do {
                            if let item = try await prepare(delivery) {
                                items.append(item)
                                last = delivery
                                if oldest == nil { oldest = .now }
                            }
                        } catch {
                            logger.error("cannot process a message; it goes back to the queue", metadata: ["error": "\(error)"])
                            delivery.nack(requeue: true)
                        }
                        if items.count >= options.batchSize { await flushNow() }
                    case .tick:
                        if let oldest, ContinuousClock.now - oldest >= options.maxLatency { await flushNow() }
                    }
                }
            } catch {
                failure = error
            }
            await flushNow()
            await inFlight?.value
            group.cancelAll()
            if let failure { throw failure }
        }
    }
}
