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

    private struct State {
        var messages: [Message] = []
        /// Set when the connection thread has ended: nothing will read the mailbox again.
        var closed = false
    }

    private let state = NIOLockedValueBox(State())
    let eventFD: Int32

    init() {
        eventFD = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        precondition(eventFD >= 0, "eventfd failed: \(String(cString: strerror(errno)))")
    }

    deinit {
        close(eventFD)
    }

    /// Posts a message for the connection thread; false when the thread has ended (the message was not posted).
    @discardableResult
    func post(_ message: Message) -> Bool {
        let outcome: Bool? = state.withLockedValue { state in
            guard !state.closed else { return nil }
            let wasEmpty = state.messages.isEmpty
            state.messages.append(message)
            return wasEmpty
        }
        guard let wasEmpty = outcome else { return false }
        // The thread resets the eventfd before it takes the queue, so one wake-up per batch is enough.
        if wasEmpty { wake() }
        return true
    }

    func wake() {
        var one: UInt64 = 1
        _ = write(eventFD, &one, MemoryLayout<UInt64>.size)
    }

    /// Called on the connection thread: resets the wake-up, then takes everything posted so far.
    func take() -> [Message] {
        var counter: UInt64 = 0
        _ = read(eventFD, &counter, MemoryLayout<UInt64>.size)
        return state.withLockedValue { state in
            let taken = state.messages
            state.messages.removeAll(keepingCapacity: true)
            return taken
        }
    }

    /// Called by the connection thread as it ends: refuses further posts and returns what is still queued.
    func closeAndTake() -> [Message] {
        state.withLockedValue { state in
            state.closed = true
            let taken = state.messages
            state.messages.removeAll()
            return taken
        }
    }
}
