import AMQP
import AgentryBus
import AgentryCore
import AgentryRuntime
import AgentryStore
import AsyncHTTPClient
import Foundation
import HummingbirdWebSocket
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// The live status of the cluster for WebSocket clients: a snapshot on connect, then each change as it happens.
///
/// Changes come from PostgreSQL (statement triggers notify `agentry_status` when instances, runs, locks, waiters,
/// agents or workers change, on any host, while some hub with clients is registered in `status_watchers`; releases
/// notify `agentry_locks`) and from the bus (`agent.*`, `resource.*`
/// and `alert.*` events are forwarded as they are published). A kind that changed is read again at most every
/// 100 ms and sent only when it differs from what clients have; queue depths, schedules, webhook deliveries,
/// approvals (pending, and the last few decided), budgets, workers and the depth of `agentry.dead` are sampled every
/// second and sent when they move; a `stats` message goes out every second for the console's charts, and queue depths
/// are kept for their history (StatusHub+Stats.swift). Forwarded events go out in batches, one message every 100 ms at
/// most (``StatusHub/enqueue(_:)``). Each client has a bounded outbox (in messages and in bytes): one that does not
/// keep up is dropped, so it slows neither the others nor the worker.
public final class StatusHub: Sendable {
    enum Kind: String, CaseIterable, Sendable { case instances, agents, locks, runs, queues, schedules, webhooks, approvals, budgets, workers, dead }

    struct Client: Sendable {
        let outbox: AsyncStream<String>.Continuation
        var writer: Task<Void, Never>?
        /// Messages broadcast while the client's snapshot is being read, sent right after it (nil once it has it).
        var pending: [String]? = []
        /// Bytes yielded to the outbox and not yet written to the socket.
        var queuedBytes = 0
    }

    struct State: Sendable {
        var clients: [UUID: Client] = [:]
        var dirty: Set<Kind> = []
        var last: [Kind: String] = [:]
        /// Event subscriptions bound to the bus right now (one per forwarded pattern).
        var subscriptions = 0
        /// Whether this hub's row in `status_watchers` is current, so that changes notify `agentry_status`.
        var watching = false
        /// Since when `watching` holds: a reading taken before then may have missed a change nobody was notified of.
        var watchingSince: ContinuousClock.Instant?
        /// The last reading of each kind, with when it was taken: new clients' snapshots and `/metrics` scrapes
        /// within ``readingLifetime`` of it share it instead of asking PostgreSQL and RabbitMQ again.
        var readings: [Kind: (at: ContinuousClock.Instant, value: [JSONValue])] = [:]
        var recentEvents: (at: ContinuousClock.Instant, value: [JSONValue])?
        /// The published agents' definitions, as the `budgets` kind last read them, with when and at which
        /// `agentsChanges`: used again while the hub watches and no agent changed since.
        var budgetDefinitions: (at: ContinuousClock.Instant, changes: Int, value: [AgentDefinition])?
        /// Agent changes notified so far.
        var agentsChanges = 0
        /// Events forwarded since the last flush (oldest first, each serialized), their bytes, and how many were left
        /// out.
        var eventBatch: [String] = []
        var eventBatchBytes = 0
        var eventsOmitted = 0
    }

    /// How long a reading serves snapshots and scrapes (live updates always read afresh).
    static let readingLifetime: Duration = .seconds(1)

    /// How many decided approvals the `approvals` kind carries after the pending ones.
    static let decidedApprovals = 10

    static let forwardedPatterns = ["agent.#", "resource.#", "alert.#"]

    let dependencies: AdminDependencies
    let managementURL: String?
    let metrics: AdminMetrics
    let logger: Logger
    let state = NIOLockedValueBox(State())
    /// Queue depths over time, as this hub sampled them (``QueueHistory``).
    let queueHistory = QueueHistory()
    /// Messages a client may have waiting before it counts as too slow…
    let outboxLimit: Int
    /// …and bytes (batches of events are few but may be large).
    static let outboxByteLimit = 4 << 20
    /// This hub's row in `status_watchers` while it has clients.
    let hubID = "hub-\(UUID().uuidString.lowercased())"
    /// A registration lasts this long unless renewed (so that a hub that dies stops the notifications soon)…
    static let watchExpiry: Duration = .seconds(30)
    /// …and is renewed this often while the hub has clients.
    static let watchRenewal: Duration = .seconds(10)

    init(dependencies: AdminDependencies, managementURL: String?, metrics: AdminMetrics, outboxLimit: Int = 256) {
        self.dependencies = dependencies
        self.managementURL = managementURL
        self.metrics = metrics
        self.logger = dependencies.logger
        self.outboxLimit = outboxLimit
    }

    var clientCount: Int { state.withLockedValue { $0.clients.count } }

    /// Status clients of every hub in the process (the `agentry_status_clients` gauge).
    static let processClients = NIOLockedValueBox(0)

    static func countClients(_ delta: Int) {
        let count = processClients.withLockedValue { n -> Int in
            n += delta
            return n
        }
        Gauge(label: "agentry_status_clients").record(count)
    }

    // MARK: Sources of change

    /// Runs the listeners until cancelled.
    func run() async {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.listenToDatabase() }
            group.addTask { await self.advertiseWatching() }
            group.addTask { await self.forwardEvents() }
            group.addTask { await self.sampleQueues() }
            group.addTask { await self.flushLoop() }
            group.addTask { await self.sendStats() }
            group.addTask { await self.sampleQueueHistory() }
        }
    }

    private func markDirty(_ kinds: Kind...) {
        state.withLockedValue { s in for kind in kinds { s.dirty.insert(kind) } }
    }

    /// Marks what the database notifies as changed, through the database's shared notification session, until cancelled.
    private func listenToDatabase() async {
        let subscription = dependencies.database.notifications.subscribe(to: ["agentry_status", LockManager.channel]) { event in
            switch event {
            case .notification("agentry_status", let payload):
                switch payload {
                case "agent_instances": self.markDirty(.instances)
                // A run's state moves as approvals are requested and decided.
                case "task_runs": self.markDirty(.runs, .instances, .approvals)
                case "resource_locks", "resource_lock_waiters", "lock_holds": self.markDirty(.locks)
                case "agents", "agent_registry":
                    // A publication, a retirement or a new version may change the budgets declared.
                    self.state.withLockedValue { $0.agentsChanges += 1 }
                    self.markDirty(.agents, .budgets)
                default: self.markDirty(.instances)
                }
            case .notification:
                self.markDirty(.locks)
            case .interrupted(let reason):
                self.logger.warning("status notifications interrupted; reconnecting", metadata: ["error": "\(reason)"])
            case .listening:
                break
            }
        }
        while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
        subscription.cancel()
    }

    /// Keeps this hub registered in `status_watchers` while it has clients, and not otherwise: PostgreSQL's status
    /// triggers notify only while some hub is registered (migration 0016), since each notification serializes the
    /// commit of the statement that sends it with every other notifying commit, the workers' claims and outcomes
    /// included.
    private func advertiseWatching() async {
        let store = dependencies.runtime
        let hubID = self.hubID
        var renewed: ContinuousClock.Instant?
        while !Task.isCancelled {
            let watched = clientCount > 0
            do {
                if watched, renewed.map({ ContinuousClock.now - $0 >= Self.watchRenewal }) ?? true {
                    try await store.watchStatus(hubID: hubID, expiry: Self.watchExpiry)
                    renewed = .now
                    state.withLockedValue { s in
                        if !s.watching { s.watchingSince = ContinuousClock.now }
                        s.watching = true
                    }
                } else if !watched, renewed != nil {
                    // Not watching from here on: a client that arrives meanwhile waits for the next registration.
                    state.withLockedValue { $0.watching = false }
                    try await store.unwatchStatus(hubID: hubID)
                    renewed = nil
                }
            } catch {
                if !Task.isCancelled {
                    logger.warning("cannot register the status hub for database notifications; retrying", metadata: ["error": "\(error)"])
                }
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        if renewed != nil {
            // The hub is stopping (its task is cancelled): unregister from a task of its own, which is not.
            await Task.detached { try? await store.unwatchStatus(hubID: hubID) }.value
        }
    }

    /// Forwards events while at least one client is connected: with nobody watching, the hub costs the broker
    /// nothing (its subscription queues exist only meanwhile).
    private func forwardEvents() async {
        var forwarding: Task<Void, Never>?
        while !Task.isCancelled {
            let watched = clientCount > 0
            if watched, forwarding == nil {
                forwarding = Task { await self.subscribeAndForward() }
            } else if !watched, let running = forwarding {
                running.cancel()
                await running.value
                forwarding = nil
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        forwarding?.cancel()
        await forwarding?.value
    }

    private func subscribeAndForward() async {
        await withDiscardingTaskGroup { group in
            for pattern in Self.forwardedPatterns {
                group.addTask {
                    while !Task.isCancelled {
                        var subscription: EventSubscription?
                        do {
                            subscription = try await self.dependencies.bus.subscribe(to: pattern)
                            let active = subscription!
                            self.state.withLockedValue { $0.subscriptions += 1 }
                            defer { self.state.withLockedValue { $0.subscriptions -= 1 } }
                            try await withTaskCancellationHandler {
                                for try await received in active {
                                    received.ack()
                                    let event = received.event
                                    self.metrics.consumed(event)
                                    self.enqueue(Representation.event(event))
                                    if event.type.hasPrefix("resource.") { self.markDirty(.locks) }
                                    if event.type.hasPrefix("agent.") { self.markDirty(.instances, .runs) }
                                }
                            } onCancel: {
                                active.cancel()
                            }
                        } catch {
                            if !Task.isCancelled {
                                self.logger.warning("status event subscription ended; subscribing again", metadata: ["error": "\(error)"])
                            }
                        }
                        subscription?.cancel()
                        try? await Task.sleep(for: .seconds(1))
                    }
                }
            }
        }
    }

    private func sampleQueues() async {
        while !Task.isCancelled {
            // Schedules change as ticks are claimed, approvals as they expire, budgets as runs settle and periods end,
            // with no notification: sampled too, sent when they differ.
            // Workers' heartbeats and memory, and the parking lot's depth, likewise.
            markDirty(.queues, .schedules, .webhooks, .approvals, .budgets, .workers, .dead)
            try? await Task.sleep(for: .seconds(1))
        }
    }

    private func flushLoop() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(100))
            flushEvents()
            let dirty = state.withLockedValue { s -> Set<Kind> in
                defer { s.dirty = [] }
                return s.clients.isEmpty ? [] : s.dirty
            }
            for kind in Kind.allCases where dirty.contains(kind) {
                guard let list = try? await read(kind) else { continue }
                let message = JSON.serialize(.object(["type": .string(kind.rawValue), kind.rawValue: .array(list)]))
                let changed = state.withLockedValue { s -> Bool in
                    guard s.last[kind] != message else { return false }
                    s.last[kind] = message
                    return true
                }
                if changed { broadcast(message) }
            }
        }
    }

    // MARK: Reading the state

    /// Reads `kind` afresh (and keeps the reading for ``recent(_:)``).
    func read(_ kind: Kind) async throws -> [JSONValue] {
        let value: [JSONValue]
        switch kind {
        case .instances: value = try await dependencies.runtime.instances().map(Representation.instance)
        case .agents: value = try await agents()
        case .locks: value = try await dependencies.locks.list().map(Representation.lock)
        case .runs: value = try await dependencies.runtime.runs(limit: 20).map(Representation.run)
        case .queues:
            value = try await queues()
            recordQueueDepths(value)
        case .schedules:
            value = try await ScheduleStore(database: dependencies.database, logger: logger).records().map { record in
                Representation.schedule(record, upcoming: record.upcoming(3))
            }
        case .webhooks:
            value = try await WebhookStore(database: dependencies.database, logger: logger).recentDeliveries(limit: 10)
                .map(Representation.webhookDelivery)
        case .approvals:
            // The pending approvals (newest request first, as the API lists them), then the last few decided.
            let approvals = dependencies.runtime.approvals
            value = try await (approvals.list(state: .pending, limit: 100) + approvals.decided(limit: Self.decidedApprovals))
                .map(Representation.approval)
        case .budgets: value = try await budgets()
        case .workers: value = try await dependencies.runtime.workers().map(Representation.worker)
        case .dead:
            let depth = try await dependencies.connection.queueStatus(Topology.deadQueue).messageCount
            value = [["queue": .string(Topology.deadQueue), "messages": .int(Int64(depth))]]
        }
        let now = ContinuousClock.now
        state.withLockedValue { $0.readings[kind] = (now, value) }
        return value
    }

    /// The reading of `kind` taken within ``readingLifetime``, else a fresh one: a burst of new clients or of
    /// scrapes costs the servers one reading.
    func recent(_ kind: Kind) async throws -> [JSONValue] {
        let now = ContinuousClock.now
        if let kept = state.withLockedValue({ s in s.readings[kind].flatMap { usable($0.at, s) ? $0 : nil } }), now - kept.at < Self.readingLifetime {
            return kept.value
        }
        return try await read(kind)
    }

    /// Whether a reading taken `at` may stand in for a fresh one: while the hub watches, a change after it is notified
    /// (and reaches the clients through the flush); before, it might not be.
    func usable(_ at: ContinuousClock.Instant, _ s: State) -> Bool {
        guard s.watching, let since = s.watchingSince else { return s.clients.isEmpty }
        return at >= since
    }

    /// Every registered agent with its desired state and triggers.
    func agents() async throws -> [JSONValue] {
        let desired = Dictionary(uniqueKeysWithValues: try await dependencies.runtime.activeAgents().map { ($0.agentID, $0.desired) })
        return try await dependencies.registry.list().map { summary in
            Representation.agent(summary, desired: desired[summary.agentID], description: summary.description, triggers: summary.triggers)
        }
    }

    /// Depth, consumers and unacked messages of each agent's queue: from the management plugin in one request when it
    /// answers, else by asking the broker queue by queue (without unacked counts).
    func queues() async throws -> [JSONValue] {
        let active = try await dependencies.runtime.activeAgents()
        let managed = await managementQueues()
        var result: [JSONValue] = []
        for agent in active {
            let name = "agentry.agent.\(agent.agentID)"
            let messages: Int, consumers: Int, unacked: Int?
            if let managed {
                guard let queue = managed[name] else { continue }
                (messages, consumers, unacked) = (queue.ready, queue.consumers, queue.unacked)
            } else {
                guard let status = try? await dependencies.connection.queueStatus(name) else { continue }
                (messages, consumers, unacked) = (Int(status.messageCount), Int(status.consumerCount), nil)
            }
            metrics.queueDepth(name, messages)
            result.append(
                .object([
                    "name": .string(name), "agent_id": .string(agent.agentID), "messages": .int(Int64(messages)),
                    "consumers": .int(Int64(consumers)), "unacked": unacked.map { .int(Int64($0)) } ?? .null,
                ]))
        }
        return result
    }

    private func managementQueues() async -> [String: (ready: Int, consumers: Int, unacked: Int)]? {
        guard let managementURL else { return nil }
        do {
            var request = HTTPClientRequest(url: managementURL + "?columns=name,messages_ready,messages_unacknowledged,consumers")
            request.headers.add(name: "Accept", value: "application/json")
            if let url = URL(string: managementURL), let user = url.user {
                let credentials = Data("\(user):\(url.password ?? "")".utf8).base64EncodedString()
                request.headers.add(name: "Authorization", value: "Basic \(credentials)")
            }
            let response = try await HTTPClient.shared.execute(request, timeout: .milliseconds(500))
            guard response.status == .ok else { return nil }
            let body = try await response.body.collect(upTo: 8 << 20)
            guard case .array(let items) = try JSON.parse(Array(buffer: body)) else { return nil }
            var result: [String: (ready: Int, consumers: Int, unacked: Int)] = [:]
            for item in items {
                guard let name = item[path: "name"]?.stringValue else { continue }
                result[name] = (
                    Int(item[path: "messages_ready"]?.intValue ?? 0), Int(item[path: "consumers"]?.intValue ?? 0),
                    Int(item[path: "messages_unacknowledged"]?.intValue ?? 0)
                )
            }
            return result
        } catch {
            return nil
        }
    }

    func snapshot() async throws -> String {
        var object: JSONObject = ["type": "snapshot"]
        for kind in Kind.allCases { object[kind.rawValue] = .array(try await recent(kind)) }
        let now = ContinuousClock.now
        if let kept = state.withLockedValue({ s in s.recentEvents.flatMap { usable($0.at, s) ? $0 : nil } }), now - kept.at < Self.readingLifetime {
            object["events"] = .array(kept.value)
        } else {
            let events = try await dependencies.eventLog.recent(limit: 20).map { Representation.event($0.event) }
            state.withLockedValue { $0.recentEvents = (now, events) }
            object["events"] = .array(events)
        }
        return JSON.serialize(.object(object))
    }

    // MARK: Clients

    func broadcast(_ message: String) {
        let size = message.utf8.count
        let slow = state.withLockedValue { s -> [UUID] in
            var slow: [UUID] = []
            for id in s.clients.keys {
                if s.clients[id]?.pending != nil {
                    s.clients[id]?.pending?.append(message)
                    if s.clients[id]?.pending?.count ?? 0 > outboxLimit { slow.append(id) }
                    continue
                }
                s.clients[id]?.queuedBytes += size
                if case .dropped = s.clients[id]?.outbox.yield(message) {
                    slow.append(id)
                } else if s.clients[id]?.queuedBytes ?? 0 > Self.outboxByteLimit {
                    slow.append(id)
                }
            }
            return slow
        }
        for id in slow {
            logger.warning("dropping a status client that does not keep up", metadata: ["client": "\(id)"])
            drop(id)
        }
    }

    /// Waits until the hub's event subscriptions are bound and its registration for database notifications is
    /// current (or `limit` has passed: without the bus or the database, the snapshot says what it can).
    private func waitForSources(upTo limit: Duration) async {
        let deadline = ContinuousClock.now + limit
        while state.withLockedValue({ $0.subscriptions < Self.forwardedPatterns.count || !$0.watching }), ContinuousClock.now < deadline,
            !Task.isCancelled
        {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    private func drop(_ id: UUID) {
        guard let client = state.withLockedValue({ $0.clients.removeValue(forKey: id) }) else { return }
        Self.countClients(-1)
        client.outbox.finish()
        client.writer?.cancel()
    }

    /// Serves one WebSocket client until it goes away (or is dropped for not keeping up).
    ///
    /// The client counts from the start, so that the hub binds its event subscriptions and registers for database
    /// notifications; the snapshot is read once both are in place (or after 2 s without the bus or the database), and
    /// what is broadcast meanwhile follows the snapshot: nothing published or changed after the snapshot is missed.
    func serve(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, limit: Int = .max) async {
        let id = UUID()
        let (outbox, continuation) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingOldest(outboxLimit))
        // Upgrades are checked against the limit before they happen; clients that upgraded at once may still pass it.
        let admitted = state.withLockedValue { s -> Bool in
            guard s.clients.count < limit else { return false }
            s.clients[id] = Client(outbox: continuation)
            return true
        }
        guard admitted else {
            try? await outbound.write(
                .text(
                    JSON.serialize(
                        .object([
                            "type": "error", "code": "too_many_clients",
                            "message": .string("the status stream serves its limit of \(limit) clients; try again later"),
                        ]))))
            return
        }
        Self.countClients(+1)
        await waitForSources(upTo: .seconds(2))
        let snapshot: String
        do {
            snapshot = try await self.snapshot()
        } catch {
            drop(id)
            try? await outbound.write(.text(JSON.serialize(.object(["type": "error", "message": .string("cannot read the status: \(error)")]))))
            return
        }
        let live = state.withLockedValue { s -> Bool in
            guard let pending = s.clients[id]?.pending else { return false }
            continuation.yield(snapshot)
            for message in pending { continuation.yield(message) }
            s.clients[id]?.queuedBytes = pending.reduce(snapshot.utf8.count) { $0 + $1.utf8.count }
            s.clients[id]?.pending = nil
            return true
        }
        guard live else { return }
        let writer = Task {
            for await message in outbox {
                do {
                    try await outbound.write(.text(message))
                } catch {
                    break
                }
                let size = message.utf8.count
                self.state.withLockedValue { $0.clients[id]?.queuedBytes -= size }
            }
        }
        state.withLockedValue { $0.clients[id]?.writer = writer }
        // The client's messages are not needed; reading them tells when it leaves.
        let reader = Task {
            do {
                for try await _ in inbound {}
            } catch {}
            self.drop(id)
        }
        await writer.value
        drop(id)
        reader.cancel()
    }
}
