import Logging
import NIOConcurrencyHelpers
import NIOCore
import PostgresNIO

/// PostgreSQL's notifications for the whole process, on one session of its own (LISTEN), shared by everyone who
/// subscribes: the lock manager (`agentry_locks`) and the status hub (`agentry_status`, `agentry_locks`).
///
/// The session exists while someone subscribes, and listens on the channels its subscribers asked for. When it ends
/// (a restart, a failover, `pg_terminate_backend`, the network) or cannot be opened, the subscribers are told why and
/// it is opened again, after 200 ms, then after twice as long each time it fails, up to 5 s. It is opened like every
/// session of its own (``Database/openSession(_:setup:within:logger:)``): within a deadline, its setup statement watched.
public final class Notifications: Sendable {
    public enum Event: Sendable, Hashable {
        /// The session listens on `channel`; `backendPID` is its backend pid. Sent again after every reconnection:
        /// notifications sent meanwhile were missed.
        case listening(channel: String, backendPID: Int)
        case notification(channel: String, payload: String)
        /// The session ended, or could not be opened, for `reason`; it is being opened again.
        case interrupted(reason: String)
    }

    /// A subscriber's registration: it is told of its channels' events until cancelled.
    public final class Subscription: Sendable {
        let id: Int
        let notifications: Notifications

        init(id: Int, notifications: Notifications) {
            self.id = id
            self.notifications = notifications
        }

        /// Stops the events; the last subscription cancelled closes the session.
        public func cancel() { notifications.unsubscribe(id) }
    }

    struct Subscriber: Sendable {
        let channels: Set<String>
        let handler: @Sendable (Event) -> Void
    }

    /// The session of the moment.
    struct Session: Sendable {
        let generation: Int
        /// Channels asked of this session (the LISTEN of some may not have been answered yet).
        var requested: Set<String>
        var listening: Set<String> = []
        var pid = 0
        /// Channels for the session to add.
        let additions: AsyncStream<String>.Continuation
    }

    struct State: Sendable {
        var subscribers: [Int: Subscriber] = [:]
        var nextID = 0
        /// The loop that keeps the session, while there are subscribers, with its id.
        var loop: (id: Int, task: Task<Void, Never>)?
        var session: Session?
        var generation = 0
    }

    let configuration: DatabaseConfiguration
    let logger: Logger
    let state = NIOLockedValueBox(State())

    init(configuration: DatabaseConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Calls `handler` with the events of `channels` (and every interruption) until the subscription is cancelled.
    /// When the session listens on them already, `handler` is told at once (``Event/listening(channel:backendPID:)``).
    /// `handler` runs on the session's task: it must return quickly.
    public func subscribe(to channels: [String], _ handler: @escaping @Sendable (Event) -> Void) -> Subscription {
        let wanted = Set(channels)
        let (id, already) = state.withLockedValue { s -> (Int, [Event]) in
            s.nextID += 1
            let id = s.nextID
            s.subscribers[id] = Subscriber(channels: wanted, handler: handler)
            guard s.loop != nil else {
                s.loop = (id, Task { await self.keepListening(loop: id) })
                return (id, [])
            }
            guard var session = s.session else { return (id, []) }
            for channel in wanted.subtracting(session.requested).sorted() { session.additions.yield(channel) }
            session.requested.formUnion(wanted)
            s.session = session
            return (id, wanted.intersection(session.listening).sorted().map { .listening(channel: $0, backendPID: session.pid) })
        }
        for event in already { handler(event) }
        return Subscription(id: id, notifications: self)
    }

    func unsubscribe(_ id: Int) {
        let loop = state.withLockedValue { s -> Task<Void, Never>? in
            guard s.subscribers.removeValue(forKey: id) != nil, s.subscribers.isEmpty else { return nil }
            defer {
                s.loop = nil
                s.session = nil
            }
            return s.loop?.task
        }
        loop?.cancel()
    }

    /// Keeps a session open while the loop is the current one.
    private func keepListening(loop: Int) async {
        var delay = Duration.milliseconds(200)
        while !Task.isCancelled {
            var opened = false
            do {
                try await listen(loop: loop, opened: &opened)
            } catch {
                guard !Task.isCancelled else { break }
                tell(.interrupted(reason: StoreError.describe(error)), on: nil)
            }
            if opened { delay = .milliseconds(200) }
            guard !Task.isCancelled else { break }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(5))
        }
    }

    /// One session: opened, listening on every channel asked for (those asked for meanwhile too), until it closes.
    private func listen(loop: Int, opened: inout Bool) async throws {
        let (additions, continuation) = AsyncStream<String>.makeStream()
        let generation = state.withLockedValue { s -> Int? in
            guard s.loop?.id == loop else { return nil }
            s.generation += 1
            let wanted = s.subscribers.values.reduce(into: Set<String>()) { $0.formUnion($1.channels) }
            for channel in wanted.sorted() { continuation.yield(channel) }
            s.session = Session(generation: s.generation, requested: wanted, additions: continuation)
            return s.generation
        }
        guard let generation else { throw CancellationError() }
        defer {
            continuation.finish()
            state.withLockedValue { s in if s.session?.generation == generation { s.session = nil } }
        }
        let (connection, rows) = try await Database.openSession(configuration, setup: "SELECT pg_backend_pid()", logger: logger)
        defer { Database.close(connection) }
        var backendPID = 0
        for try await value in rows.decode(Int.self) { backendPID = value }
        let pid = backendPID
        opened = true
        try await withTaskCancellationHandler {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask {
                    // However postgres-nio's listeners take it, a closed connection ends the session.
                    try? await connection.closeFuture.get()
                    continuation.finish()
                    throw SessionEnded()
                }
                for await channel in additions {
                    group.addTask {
                        // A channel that stops listening ends the session: the other children end with the connection.
                        defer {
                            continuation.finish()
                            Database.close(connection)
                        }
                        try await connection.listen(on: channel) { notifications in
                            self.listening(channel, pid: pid, generation: generation)
                            for try await notification in notifications {
                                self.tell(.notification(channel: channel, payload: notification.payload), on: channel)
                            }
                        }
                        throw SessionEnded()
                    }
                }
            }
        } onCancel: {
            Database.close(connection)
        }
    }

    private func listening(_ channel: String, pid: Int, generation: Int) {
        let handlers = state.withLockedValue { s -> [@Sendable (Event) -> Void] in
            guard s.session?.generation == generation else { return [] }
            s.session?.listening.insert(channel)
            s.session?.pid = pid
            return s.subscribers.values.filter { $0.channels.contains(channel) }.map(\.handler)
        }
        for handler in handlers { handler(.listening(channel: channel, backendPID: pid)) }
    }

    /// Tells the subscribers of `channel` (of every channel: nil) about `event`.
    private func tell(_ event: Event, on channel: String?) {
        let handlers = state.withLockedValue { s in
            s.subscribers.values.filter { channel.map($0.channels.contains) ?? true }.map(\.handler)
        }
        for handler in handlers { handler(event) }
    }
}

/// The notification session closed.
struct SessionEnded: Error, CustomStringConvertible {
    var description: String { "the notification session closed" }
}
