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
    /// Where the run sits in its tree (nil for a run an event started) and which call of its handler this is.
    var tree: DirectDelivery.ChildOrigin?
    var step = 1
    /// On a resume: the children of the round the run waited for, as the handler gets them (`"children"`).
    var children: JSONValue?
    /// On a resume after an approval: the decision, as the handler gets it (`"approval"`).
    var approval: JSONValue?
    /// The run's token and the admin endpoint's URL, for an exec handler to call back (see ``RunToken``).
    var runToken: String?
    var adminURL: String?

    /// What the handler reads (exec's stdin, http's body): the event's envelope, and on a resume its children and step.
    var input: [UInt8] {
        let encoded = EventWireFormat.encode(event)
        guard children != nil || approval != nil, case .object(var object)? = try? JSON.parse(encoded) else { return encoded }
        if let children { object["children"] = children }
        if let approval { object["approval"] = approval }
        object["step"] = .int(Int64(step))
        return Array(JSON.serialize(.object(object)).utf8)
    }

    /// `device:tv-1=42,device:tv-2=43`: what the run holds, for the handler.
    var resourcesText: String {
        fencingTokens.keys.sorted().map { "\($0)=\(fencingTokens[$0] ?? 0)" }.joined(separator: ",")
    }
}

/// Runs the handler an agent declares.
struct HandlerRunner: Sendable {
    let logger: Logger
    /// The client of http handlers: redirects are not followed by it (``runHTTP(_:_:)`` follows them when the
    /// definition asks, checking each hop).
    let httpClient: HTTPClient
    /// The clients http handlers use when the worker has a deny list: each connects a host to the address checked.
    var pinnedClients = HandlerRunner.pinnedClients
    /// What exec handlers may start and where http and llm handlers may connect.
    var policy = HandlerPolicy()
    /// What models cost: the cost of a usage that reports tokens and a model but no cost (``LLMPriceTable``).
    var prices: LLMPriceTable?
    /// Told of every call of an `llm` handler once it ended (for tracing); nil by default. Called on the run's task:
    /// it must return at once.
    var llmObserver: (@Sendable (LLMCallRecord) -> Void)?
    /// Where `llm` handlers' `api_key_env` variables are read.
    var environment: [String: String] = ProcessInfo.processInfo.environment

    func run(_ context: TaskContext) async -> HandlerOutcome {
        var outcome: HandlerOutcome
        var isLLM = false
        switch context.agent.effectiveHandler {
        case .noop:
            outcome = HandlerOutcome(status: .succeeded)
        case .log:
            logger.info(
                "event",
                metadata: [
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
            outcome = HandlerOutcome(
                status: .succeeded, result: .object(["emitted": .string(followUp.id.rawValue)]),
                followUps: [FollowUp(followUp, delaySeconds: emit.delaySeconds.map(Double.init))])
            return outcome
        case .delegate(let delegate):
            // Called again with its children: the run succeeds with them. Otherwise it asks, as an exec result would.
            if let children = context.children { return HandlerOutcome(status: .succeeded, result: .object(["children": children])) }
            outcome = HandlerOutcome(status: .succeeded, result: .object(delegate.request(for: context.event)))
        case .exec(let exec):
            outcome = await runExec(exec, context).storable()
        case .http(let http):
            outcome = await runHTTP(http, context).storable()
        case .llm(let llm):
            isLLM = true
            let (answer, call) = await runLLM(llm, context)
            outcome = answer.storable()
            var record = call
            outcome.usage = priced(outcome.usage)
            record.usage = outcome.usage
            llmObserver?(record)
        }
        // The llm handler's usage is the endpoint's count; a `usage` key in the model's own answer is just text.
        if !isLLM, case .object(let object)? = outcome.result, let reported = object["usage"] {
            switch RunUsage.parse(reported) {
            case .success(let usage): outcome.usage = priced(usage)
            case .failure(let problem) where outcome.status == .succeeded:
                outcome.status = .failed
                outcome.message = "the handler's result has an unusable usage: \(problem)"
            case .failure:
                break  // the run failed already, for its own reason
            }
        }
        if outcome.status == .succeeded, case .object(let object)? = outcome.result, let events = object["events"] {
            switch Self.followUps(events, cause: context.event, source: context.agent.metadata.id) {
            case .success(let followUps): outcome.followUps = followUps
            case .failure(let problem):
                outcome.status = .failed
                outcome.message = "the handler's result has unusable follow-up events: \(problem)"
            }
        }
        if outcome.status == .succeeded, case .object(let object)? = outcome.result, let asked = Delegation.from(result: object) {
            switch asked {
            case .success(let delegation): outcome.delegation = delegation
            case .failure(let problem):
                outcome.status = .failed
                outcome.retryable = false
                outcome.message = "the handler's result has an unusable delegation: \(problem)"
            }
        }
        if outcome.status == .succeeded, case .object(let object)? = outcome.result,
            let asked = ApprovalRequest.from(result: object, definition: context.agent)
        {
            switch asked {
            case .success(let request) where outcome.delegation == nil: outcome.approvalRequest = request
            case .success:
                outcome.status = .failed
                outcome.retryable = false
                outcome.message = "the handler's result both delegates and requests an approval; ask for one, then the other"
            case .failure(let problem):
                outcome.status = .failed
                outcome.retryable = false
                outcome.message = "the handler's result has an unusable approval request: \(problem)"
            }
        }
        return outcome
    }

    /// `usage` with its cost from the price table when the handler gave none (and the table knows the model).
    func priced(_ usage: RunUsage?) -> RunUsage? {
        guard var usage, usage.cost == nil, let prices, let cost = prices.cost(of: usage) else { return usage }
        usage.cost = cost
        usage.currency = prices.currency
        return usage
    }

    /// The follow-up events of a result: `"events": [{"type": …, "payload": {…}, "priority": "high", "delay_seconds": 30}]`.
    static func followUps(_ value: JSONValue, cause: Event, source: String) -> Result<[FollowUp], FollowUpProblem> {
        guard case .array(let items) = value else { return .failure(FollowUpProblem("'events' must be an array, not \(value.kindName)")) }
        var events: [FollowUp] = []
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
            var delay: Double?
            if let value = object["delay_seconds"] {
                guard let seconds = value.numberValue, seconds >= 0, seconds <= Double(EmitHandler.maxDelaySeconds) else {
                    return .failure(
                        FollowUpProblem("events[\(index)].delay_seconds must be a number of seconds from 0 to \(EmitHandler.maxDelaySeconds)"))
                }
                delay = seconds
            }
            events.append(FollowUp(cause.followUp(type: type, payload: payload, priority: priority, source: source), delaySeconds: delay))
        }
        return .success(events)
    }

    struct FollowUpProblem: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }
}

/// This build's version, as workers report it.
public enum AgentryVersion {
    public static let current = "0.4.0"
}
