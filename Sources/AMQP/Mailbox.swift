import CRabbitMQ
import Foundation
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// Work for the connection thread: the only way other threads reach a rabbitmq-c connection.
/// Posting wakes the thread through an eventfd it polls beside the socket.
final class Mailbox: Sendable {
    /// A unit of work that needs a live connection: held back while reconnecting, failed if the connection is closed.
    struct Job: Sendable {
        let run: @Sendable (Session) -> Void
        let fail: @Sendable (any Error) -> Void
    }

    enum Message: Sendable {
        /// Runs when the connection is up (deferred while it reconnects).
        case job(Job)
        /// Runs at once, connected or not.
        case control(@Sendable (Session) -> Void)
        /// Settles a delivery; dropped when `generation` is not the current connection's.
        case settle(generation: UInt64, channel: UInt16, tag: UInt64, Settlement)
    }

    private let queue = NIOLockedValueBox<[Message]>([])
    let eventFD: Int32

    init() {
        eventFD = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        precondition(eventFD >= 0, "eventfd failed: \(String(cString: strerror(errno)))")
    }

    deinit {
        close(eventFD)
    }

    func post(_ message: Message) {
        let wasEmpty = queue.withLockedValue { queue in
            let wasEmpty = queue.isEmpty
            queue.append(message)
            return wasEmpty
        }
        // The thread resets the eventfd before it takes the queue, so one wake-up per batch is enough.
        if wasEmpty { wake() }
    }

    func wake() {
        var one: UInt64 = 1
        _ = write(eventFD, &one, MemoryLayout<UInt64>.size)
    }

    /// Called on the connection thread: resets the wake-up, then takes everything posted so far.
    func take() -> [Message] {
        var counter: UInt64 = 0
        _ = read(eventFD, &counter, MemoryLayout<UInt64>.size)
        return queue.withLockedValue { queue in
            let taken = queue
            queue.removeAll(keepingCapacity: true)
            return taken
        }
    }
}
