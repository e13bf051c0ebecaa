import AgentryCore
import AgentryStore
public import AsyncHTTPClient
import Foundation
public import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// Sends the worker's language-model generations to Langfuse in the background (``LangfuseIngestion`` says how they
/// are encoded). ``record(_:)`` only appends to a bounded buffer: it never waits, never fails, and so never delays or
/// fails a run. ``run()`` sends the buffer in batches (``LangfuseConfiguration/batchSize`` generations, or what
/// ``LangfuseConfiguration/flushInterval`` gathered), tries a batch again after a 429, a 5xx or a connection error
/// (with a growing wait, or `Retry-After`), and drops it after ``LangfuseConfiguration/maxAttempts`` tries: tracing
/// is best effort, and a Langfuse outage must not grow the worker's memory. When the buffer is full the oldest
/// generations are dropped (`agentry_langfuse_dropped_total`, and a warning at most once a minute).
///
/// It runs until ``shutdown()``, not until the worker's graceful shutdown begins: stopping runs still record their
/// generations while the worker waits for them, so the worker calls ``shutdown()`` once its runners have stopped;
/// what is still held is then sent within ``LangfuseConfiguration/shutdownGrace``, and the rest dropped.
public final class LangfuseExporter: Sendable {
    /// What the exporter did with the generations recorded so far.
    public struct Statistics: Sendable, Equatable {
        /// Generations Langfuse took (both of their events).
        public var sent = 0
        /// Generations Langfuse refused (an event of theirs in a 207's `errors`, or a 4xx), or that could not be sent
        /// after every try, or that were still held when the shutdown grace ended.
        public var failed = 0
        /// Generations dropped because the buffer was full.
        public var dropped = 0
        /// Generations waiting to be sent.
        public var buffered = 0

        public init(sent: Int = 0, failed: Int = 0, dropped: Int = 0, buffered: Int = 0) {
            self.sent = sent
            self.failed = failed
            self.dropped = dropped
            self.buffered = buffered
        }
    }

    public let configuration: LangfuseConfiguration
    let httpClient: HTTPClient
    let logger: Logger
    private let state = NIOLockedValueBox(State())
    private let wakeup = Wakeup()
    private let stopRequested = Completion<Void>()

    private struct State {
        var buffer = CircularBuffer<LangfuseGeneration>()
        var stopping = false
        var statistics = Statistics()
        /// Drops not yet reported in a warning, and when the last warning was logged.
        var unreportedDrops = 0
        var lastDropWarning: ContinuousClock.Instant?
    }

    /// Drops are reported at most this often.
    static let dropWarningInterval: Duration = .seconds(60)
    /// The longest `Retry-After` honoured.
    static let maxRetryAfter: Duration = .seconds(30)

    /// `httpClient` defaults to ``client``.
    public init(configuration: LangfuseConfiguration, httpClient: HTTPClient = LangfuseExporter.client, logger: Logger) {
        self.configuration = configuration
        self.httpClient = httpClient
        var logger = logger
        logger[metadataKey: "langfuse.host"] = "\(configuration.host)"
        self.logger = logger
    }

    public var statistics: Statistics {
        state.withLockedValue { s in
            var statistics = s.statistics
            statistics.buffered = s.buffer.count
            return statistics
        }
    }

    /// Queues a generation to be sent; returns at once. A full buffer drops its oldest generation to make room.
    public func record(_ generation: LangfuseGeneration) {
        let now = ContinuousClock.now
        let (dropped, report, full) = state.withLockedValue { s -> (Int, Int?, Bool) in
            var dropped = 0
            while s.buffer.count >= max(1, configuration.bufferLimit) {
                s.buffer.removeFirst()
                dropped += 1
            }
            s.buffer.append(generation)
            var report: Int?
            if dropped > 0 {
                s.statistics.dropped += dropped
                s.unreportedDrops += dropped
                if s.lastDropWarning.map({ now - $0 >= Self.dropWarningInterval }) ?? true {
                    report = s.unreportedDrops
                    s.unreportedDrops = 0
                    s.lastDropWarning = now
                }
            }
            return (dropped, report, s.buffer.count == configuration.batchSize)
        }
        // The sender waits only while it holds less than a batch: it needs waking when a batch fills, not after.
        if full { wakeup.signal() }
        if dropped > 0 { Counter(label: "agentry_langfuse_dropped_total").increment(by: dropped) }
        if let report {
            logger.warning(
                "Langfuse does not keep up: dropped the oldest generations of a full buffer",
                metadata: ["langfuse.dropped": "\(report)", "langfuse.buffer_limit": "\(configuration.bufferLimit)"])
        }
    }

    /// Sends what is recorded until ``shutdown()``, then what is left within the shutdown grace. Cancelling the
    /// task stops it at once.
    public func run() async {
        logger.info("tracing language-model generations to Langfuse", metadata: ["langfuse.public_key": "\(configuration.publicKey)"])
        await withTaskCancellationHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.sendLoop() }
                group.addTask {
                    await self.stopRequested.value
                    try? await Task.sleep(for: self.configuration.shutdownGrace)
                }
                await group.next()
                group.cancelAll()
            }
        } onCancel: {
            self.shutdown()
        }
        let left = state.withLockedValue { s -> Int in
            let count = s.buffer.count
            s.buffer.removeAll()
            s.statistics.failed += count
            return count
        }
        if left > 0 {
            Counter(label: "agentry_langfuse_failed_total").increment(by: left)
            logger.warning(
                "dropping the generations not sent to Langfuse within the shutdown grace",
                metadata: ["langfuse.generations": "\(left)", "langfuse.grace_ms": "\(configuration.shutdownGrace.inMilliseconds)"])
        }
        logger.info("Langfuse exporter stopped", metadata: ["langfuse.sent": "\(statistics.sent)", "langfuse.failed": "\(statistics.failed)"])
    }

    /// Asks ``run()`` to send what it holds and return (within the grace). Safe to call more than once.
    public func shutdown() {
        state.withLockedValue { $0.stopping = true }
        stopRequested.complete(())
        wakeup.signal()
    }

    /// Sends batches until the exporter is stopping and holds nothing, or the task is cancelled.
    private func sendLoop() async {
        while !Task.isCancelled {
            let (count, stopping) = state.withLockedValue { ($0.buffer.count, $0.stopping) }
            if count == 0 && stopping { return }
            if count < configuration.batchSize && !stopping {
                await wakeup.wait(for: configuration.flushInterval)
            }
            let batch = state.withLockedValue { s -> [LangfuseGeneration] in
                let n = min(s.buffer.count, max(1, configuration.batchSize))
                defer { s.buffer.removeFirst(n) }
                return Array(s.buffer.prefix(n))
            }
            if !batch.isEmpty { await send(batch) }
        }
    }

    /// Encodes the batch and posts it, in more than one request when it is larger than Langfuse takes at once.
    private func send(_ batch: [LangfuseGeneration]) async {
        let encoded = batch.map { LangfuseIngestion.encode($0, maxTextBytes: configuration.maxTextBytes) }
        var requests: [[(LangfuseGeneration, LangfuseIngestion.Encoded)]] = [[]]
        var size = 0
        for item in zip(batch, encoded) {
            let bytes = item.1.text.utf8.count + 1
            if !requests[requests.count - 1].isEmpty && size + bytes > configuration.maxRequestBytes {
                requests.append([])
                size = 0
            }
            requests[requests.count - 1].append(item)
            size += bytes
        }
        for request in requests where !request.isEmpty {
            await post(request)
        }
    }

    /// Posts one request, trying again after a 429, a 5xx or a connection error; counts and logs what became of
    /// each generation.
    private func post(_ items: [(LangfuseGeneration, LangfuseIngestion.Encoded)]) async {
        let body = ByteBuffer(string: LangfuseIngestion.body(items.map(\.1)))
        var delay = configuration.retryDelay
        var attempt = 1
        while true {
            var retryable = true
            var wait = delay
            let problem: String
            do {
                var request = HTTPClientRequest(url: configuration.ingestionURL)
                request.method = .POST
                request.headers.add(name: "Authorization", value: configuration.authorization)
                request.headers.add(name: "Content-Type", value: "application/json")
                request.headers.add(name: "User-Agent", value: "agentry/\(AgentryVersion.current)")
                request.body = .bytes(body)
                let response = try await httpClient.execute(request, timeout: TimeAmount(configuration.requestTimeout))
                var collected = try await response.body.collect(upTo: 1 << 20)
                let answer = collected.readBytes(length: collected.readableBytes) ?? []
                let code = Int(response.status.code)
                if (200..<300).contains(code) {
                    settle(items, errors: LangfuseIngestion.errors(in: answer))
                    return
                }
                retryable = code == 429 || code >= 500
                if let seconds = response.headers.first(name: "Retry-After").flatMap(Int.init), seconds >= 0 {
                    wait = min(.seconds(seconds), Self.maxRetryAfter)
                }
                let text = String(decoding: answer.prefix(300), as: UTF8.self)
                problem = "Langfuse answered \(code) \(response.status.reasonPhrase)\(text.isEmpty ? "" : ": \(text)")"
            } catch {
                if Task.isCancelled || error is CancellationError {
                    fail(items, "the shutdown grace ended while sending", attempts: attempt)
                    return
                }
                problem = "\(error)"
            }
            guard retryable, attempt < configuration.maxAttempts else {
                fail(items, problem, attempts: attempt)
                return
            }
            logger.notice(
                "Langfuse did not take a batch; trying again",
                metadata: [
                    "error": "\(problem)", "langfuse.attempt": "\(attempt)", "langfuse.retry_in_ms": "\(wait.inMilliseconds)",
                    "langfuse.generations": "\(items.count)",
                ])
            do {
                try await Task.sleep(for: wait)
            } catch {
                fail(items, "the shutdown grace ended while waiting to try again (\(problem))", attempts: attempt)
                return
            }
            delay *= 2
            attempt += 1
        }
    }

    /// Counts an answered request: a generation with an event among the answer's errors failed, the others are sent.
    private func settle(_ items: [(LangfuseGeneration, LangfuseIngestion.Encoded)], errors: [LangfuseIngestion.EventError]) {
        var failedRuns: Set<Int> = []
        for (index, item) in items.enumerated() {
            for error in errors where item.1.eventIDs.contains(error.id) {
                failedRuns.insert(index)
                logger.warning(
                    "Langfuse refused an event",
                    metadata: [
                        "langfuse.event_id": "\(error.id)", "langfuse.status": "\(error.status.map(String.init) ?? "none")",
                        "error": "\(error.message)", "agentry.run.id": "\(item.0.runID.uuidString.lowercased())",
                    ])
            }
        }
        let sent = items.count - failedRuns.count
        state.withLockedValue { s in
            s.statistics.sent += sent
            s.statistics.failed += failedRuns.count
        }
        if sent > 0 { Counter(label: "agentry_langfuse_sent_total").increment(by: sent) }
        if !failedRuns.isEmpty { Counter(label: "agentry_langfuse_failed_total").increment(by: failedRuns.count) }
    }

    /// The exporters' client: the process's event loops; no redirects (they would carry the keys elsewhere); a
    /// refused connection fails the request at once, so that the exporter's own waits between tries apply (instead
    /// of the client trying to connect again until its connect timeout). Never shut down, like `HTTPClient.shared`.
    public static let client: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    private func fail(_ items: [(LangfuseGeneration, LangfuseIngestion.Encoded)], _ problem: String, attempts: Int) {
        state.withLockedValue { $0.statistics.failed += items.count }
        Counter(label: "agentry_langfuse_failed_total").increment(by: items.count)
        logger.warning(
            "dropping a batch Langfuse did not take",
            metadata: ["error": "\(problem)", "langfuse.generations": "\(items.count)", "langfuse.attempts": "\(attempts)"])
    }
}
