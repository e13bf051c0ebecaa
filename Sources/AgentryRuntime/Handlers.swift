import AgentryCore
import AsyncHTTPClient
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

#if canImport(Glibc)
import Glibc
#endif

/// Everything a handler needs to know about the run it serves.
struct TaskContext: Sendable {
    var runID: UUID
    var agent: AgentDefinition
    var event: Event
    var attempt: Int
    var workerID: String
    var instanceID: UUID?
    /// `config.timeout_seconds` (or the http handler's own timeout).
    var timeout: Duration
    /// How long a process group gets between SIGTERM and SIGKILL.
    var killGrace: Duration
    /// Largest stdout, stderr or response body kept.
    var outputLimit: Int
    /// The resources the run holds, with their fencing tokens (empty when the agent declares none).
    var fencingTokens: [ResourceKey: Int64] = [:]

    /// `device:tv-1=42,device:tv-2=43`: what the run holds, for the handler.
    var resourcesText: String {
        fencingTokens.keys.sorted().map { "\($0)=\(fencingTokens[$0] ?? 0)" }.joined(separator: ",")
    }
}

/// How a handler ended.
struct HandlerOutcome: Sendable {
    enum Status: Sendable, Equatable { case succeeded, failed, timedOut, cancelled }
    var status: Status
    /// The handler's JSON result (stdout of exec, response of http).
    var result: JSONValue?
    /// Output that is not JSON (bounded).
    var output: String?
    var stderr: String?
    var exitStatus: Int?
    /// Why it failed, timed out or was cancelled.
    var message: String?
    /// Events to publish because of this run (the `events` of the result, or the emit handler's event).
    var followUps: [Event] = []

    static func failed(_ message: String, output: String? = nil, stderr: String? = nil, exitStatus: Int? = nil) -> HandlerOutcome {
        HandlerOutcome(status: .failed, output: output, stderr: stderr, exitStatus: exitStatus, message: message)
    }
}

/// Runs the handler an agent declares.
struct HandlerRunner: Sendable {
    let logger: Logger
    let httpClient: HTTPClient

    func run(_ context: TaskContext) async -> HandlerOutcome {
        var outcome: HandlerOutcome
        switch context.agent.effectiveHandler {
        case .noop:
            outcome = HandlerOutcome(status: .succeeded)
        case .log:
            logger.info("event", metadata: [
                "agentry.agent.id": "\(context.agent.metadata.id)", "agentry.event.id": "\(context.event.id)",
                "agentry.event.type": "\(context.event.type)", "agentry.event.priority": "\(context.event.priority.name)",
                "agentry.event.payload": "\(JSON.serialize(.object(context.event.payload)))",
            ])
            outcome = HandlerOutcome(status: .succeeded)
        case .emit(let emit):
            let payload = EventTemplate.render(.object(emit.payload), with: context.event).objectValue ?? [:]
            let type = EventTemplate.renderText(emit.type, with: context.event)
            if let problem = EventType.problem(with: type) {
                return .failed("emit: \(problem)")
            }
            let followUp = context.event.followUp(type: type, payload: payload, priority: emit.priority, source: context.agent.metadata.id)
            outcome = HandlerOutcome(status: .succeeded, result: .object(["emitted": .string(followUp.id.rawValue)]), followUps: [followUp])
            return outcome
        case .exec(let exec):
            outcome = await runExec(exec, context)
        case .http(let http):
            outcome = await runHTTP(http, context)
        }
        if outcome.status == .succeeded, case .object(let object)? = outcome.result, let events = object["events"] {
            switch Self.followUps(events, cause: context.event, source: context.agent.metadata.id) {
            case .success(let followUps): outcome.followUps = followUps
            case .failure(let problem):
                outcome.status = .failed
                outcome.message = "the handler's result has unusable follow-up events: \(problem)"
            }
        }
        return outcome
    }

    /// The follow-up events of a result: `"events": [{"type": …, "payload": {…}, "priority": "high"}]`.
    static func followUps(_ value: JSONValue, cause: Event, source: String) -> Result<[Event], FollowUpProblem> {
        guard case .array(let items) = value else { return .failure(FollowUpProblem("'events' must be an array, not \(value.kindName)")) }
        var events: [Event] = []
        for (index, item) in items.enumerated() {
            guard case .object(let object) = item else {
                return .failure(FollowUpProblem("events[\(index)] must be an object with type and payload"))
            }
            guard let type = object["type"]?.stringValue else { return .failure(FollowUpProblem("events[\(index)] has no 'type'")) }
            if let problem = EventType.problem(with: type) { return .failure(FollowUpProblem("events[\(index)]: \(problem)")) }
            var payload: JSONObject = [:]
            if let p = object["payload"] {
                guard case .object(let o) = p else { return .failure(FollowUpProblem("events[\(index)].payload must be an object")) }
                payload = o
            }
            var priority: Priority?
            if let name = object["priority"] {
                guard let text = name.stringValue, let p = Priority(name: text) else {
                    return .failure(FollowUpProblem("events[\(index)].priority must be one of critical, high, normal, low"))
                }
                priority = p
            }
            events.append(cause.followUp(type: type, payload: payload, priority: priority, source: source))
        }
        return .success(events)
    }

    struct FollowUpProblem: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    // MARK: exec

    /// The worker's variables that exec handlers inherit, read once: `ProcessInfo.environment` copies the whole
    /// environment into a new dictionary on every call (5% of a worker's CPU when it ran one per run).
    static let inheritedEnvironment: [String: String] = {
        let inherited = ProcessInfo.processInfo.environment
        var environment: [String: String] = [:]
        for name in ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "LOGNAME"] {
            if let value = inherited[name] { environment[name] = value }
        }
        if environment["PATH"] == nil { environment["PATH"] = "/usr/local/bin:/usr/bin:/bin" }
        return environment
    }()

    /// The variables every exec handler gets besides its own `env`: a few of the worker's (PATH, HOME, LANG, …,
    /// never its credentials) and the run's identity.
    static func environment(for exec: ExecHandler, _ context: TaskContext) -> [String: String] {
        var environment = inheritedEnvironment
        for (name, value) in exec.env {
            environment[name] = EventTemplate.renderText(value, with: context.event)
        }
        environment["AGENTRY_RUN_ID"] = context.runID.uuidString.lowercased()
        environment["AGENTRY_AGENT_ID"] = context.agent.metadata.id
        environment["AGENTRY_AGENT_VERSION"] = context.agent.metadata.version
        environment["AGENTRY_EVENT_ID"] = context.event.id.rawValue
        environment["AGENTRY_EVENT_TYPE"] = context.event.type
        environment["AGENTRY_EVENT_PRIORITY"] = context.event.priority.name
        environment["AGENTRY_ATTEMPT"] = String(context.attempt)
        environment["AGENTRY_WORKER_ID"] = context.workerID
        environment["AGENTRY_TIMEOUT_SECONDS"] = String(context.timeout.components.seconds)
        if let token = context.fencingTokens.values.max() {
            // A guarded system that remembers the largest token it has seen can refuse a holder that lost its lock.
            environment["AGENTRY_RESOURCES"] = context.resourcesText
            environment["AGENTRY_FENCING_TOKEN"] = String(token)
        }
        return environment
    }

    func runExec(_ exec: ExecHandler, _ context: TaskContext) async -> HandlerOutcome {
        let argv = exec.command.map { EventTemplate.renderText($0, with: context.event) }
        let process: Subprocess
        do {
            process = try Subprocess(argv: argv, environment: Self.environment(for: exec, context),
                                     workingDirectory: exec.workingDirectory, stdin: EventWireFormat.encode(context.event),
                                     outputLimit: context.outputLimit)
        } catch {
            return .failed("\(error)")
        }
        // The timer and cancellation stop the whole process group: TERM, then KILL after the grace period.
        let stopped = NIOLockedValueBox<HandlerOutcome.Status?>(nil)
        let timeout = context.timeout
        let grace = context.killGrace
        @Sendable func stopGroup(_ why: HandlerOutcome.Status) {
            let first = stopped.withLockedValue { state -> Bool in
                guard state == nil else { return false }
                state = why
                return true
            }
            guard first, !process.hasExited else { return }
            process.signalGroup(SIGTERM)
            Task {
                try? await Task.sleep(for: grace)
                if !process.hasExited { process.signalGroup(SIGKILL) }
            }
        }
        // A timer on an event loop, not a sleeping task: the run nearly always ends long before its timeout (an hour
        // by default), and a cancelled `Task.sleep` keeps its wake-up job allocated until the deadline it slept for
        // (https://github.com/swiftlang/swift/issues/60441), which made a worker running exec handlers grow by about
        // 750 bytes per run for an hour (20 MB over 30,000 runs of `/bin/true`). A cancelled scheduled task is
        // dropped at once.
        let timer = httpClient.eventLoopGroup.any().scheduleTask(in: TimeAmount(timeout)) { stopGroup(.timedOut) }
        let output = await withTaskCancellationHandler {
            await process.wait()
        } onCancel: {
            stopGroup(.cancelled)
        }
        timer.cancel()
        var status: HandlerOutcome.Status
        var message: String?
        switch stopped.withLockedValue({ $0 }) {
        case .timedOut?:
            status = .timedOut
            message = "\(argv[0]) did not finish within \(timeout.components.seconds) s (timeout_seconds); its process group was stopped"
        case .cancelled?:
            status = .cancelled
            message = "the run was cancelled; \(argv[0])'s process group was stopped"
        default:
            status = output.status == .exited(0) ? .succeeded : .failed
            if status == .failed { message = "\(argv[0]) ended with \(output.status)" }
        }
        let stdout = Self.text(output.stdout, dropped: output.stdoutTruncated)
        let stderr = output.stderr.isEmpty ? nil : Self.text(output.stderr, dropped: output.stderrTruncated)
        var result: JSONValue?
        var plain: String? = stdout.isEmpty ? nil : stdout
        if output.stdoutTruncated == 0, !stdout.isEmpty, let parsed = try? JSON.parse(Array(stdout.utf8)) {
            result = parsed
            plain = nil
        }
        let exitStatus: Int? = if case .exited(let code) = output.status { Int(code) } else { nil }
        return HandlerOutcome(status: status, result: result, output: plain, stderr: stderr, exitStatus: exitStatus, message: message)
    }

    static func text(_ bytes: [UInt8], dropped: Int) -> String {
        let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return dropped > 0 ? text + "\n… (\(dropped) more bytes not kept)" : text
    }

    // MARK: http

    func runHTTP(_ http: HTTPHandler, _ context: TaskContext) async -> HandlerOutcome {
        let url = EventTemplate.renderText(http.url, with: context.event)
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "agentry/\(AgentryVersion.current)")
        request.headers.add(name: "X-Agentry-Run-Id", value: context.runID.uuidString.lowercased())
        request.headers.add(name: "X-Agentry-Agent-Id", value: context.agent.metadata.id)
        request.headers.add(name: "X-Agentry-Event-Id", value: context.event.id.rawValue)
        request.headers.add(name: "X-Agentry-Attempt", value: String(context.attempt))
        if let token = context.fencingTokens.values.max() {
            request.headers.add(name: "X-Agentry-Resources", value: context.resourcesText)
            request.headers.add(name: "X-Agentry-Fencing-Token", value: String(token))
        }
        for (name, value) in http.headers.sorted(by: { $0.key < $1.key }) {
            request.headers.replaceOrAdd(name: name, value: EventTemplate.renderText(value, with: context.event))
        }
        request.body = .bytes(ByteBuffer(bytes: EventWireFormat.encode(context.event)))
        let timeout = http.timeoutSeconds.map { Duration.seconds($0) } ?? context.timeout
        do {
            let response = try await httpClient.execute(request, timeout: .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000))
            var body = try await response.body.collect(upTo: max(context.outputLimit, 1 << 20))
            let bytes = body.readBytes(length: body.readableBytes) ?? []
            let text = Self.text(Array(bytes.prefix(context.outputLimit)), dropped: max(0, bytes.count - context.outputLimit))
            let parsed = bytes.isEmpty ? nil : try? JSON.parse(bytes)
            let code = Int(response.status.code)
            if (200..<300).contains(code) {
                return HandlerOutcome(status: .succeeded, result: parsed, output: parsed == nil && !text.isEmpty ? text : nil, exitStatus: code)
            }
            return HandlerOutcome(status: .failed, result: parsed, output: text.isEmpty ? nil : text, exitStatus: code,
                                  message: "POST \(url) answered \(code) \(response.status.reasonPhrase)")
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout || error == .connectTimeout {
            return HandlerOutcome(status: .timedOut, message: "POST \(url) did not answer within \(timeout.components.seconds) s (\(error))")
        } catch is CancellationError {
            return HandlerOutcome(status: .cancelled, message: "the run was cancelled during POST \(url)")
        } catch {
            if Task.isCancelled { return HandlerOutcome(status: .cancelled, message: "the run was cancelled during POST \(url)") }
            return .failed("POST \(url) failed: \(error)")
        }
    }
}

/// This build's version, as workers report it.
public enum AgentryVersion {
    public static let current = "0.4.0"
}
