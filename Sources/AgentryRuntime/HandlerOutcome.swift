import AgentryCore

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
    var followUps: [FollowUp] = []
    /// The tasks the result delegates to subagents (its `delegate` and `await`), when it asks for any.
    var delegation: Delegation?
    /// The approval the result asks for before the run goes on (its `request_approval`).
    var approvalRequest: ApprovalRequest?
    /// What the run used: the result's `usage` (any handler), or what the `llm` handler read from the endpoint's
    /// answer; its cost computed from the worker's price table when the handler gave none.
    var usage: RunUsage?
    /// Whether trying again can help. False for failures that the same event meets every time (a program the
    /// worker does not allow, a response over the size limit): the run fails at once, whatever the retry policy.
    var retryable = true

    static func failed(
        _ message: String, output: String? = nil, stderr: String? = nil, exitStatus: Int? = nil,
        retryable: Bool = true
    ) -> HandlerOutcome {
        HandlerOutcome(status: .failed, output: output, stderr: stderr, exitStatus: exitStatus, message: message, retryable: retryable)
    }

    /// The outcome with every text PostgreSQL refuses made storable: a NUL (U+0000) becomes U+FFFD (`�`) in the
    /// output, stderr and message (text columns cannot hold NUL) and in the result's strings and keys (jsonb refuses
    /// `\u0000`), so the result stays valid JSON and the run can always be recorded. Invalid UTF-8 was already
    /// replaced by U+FFFD when the bytes were decoded.
    func storable() -> HandlerOutcome {
        var copy = self
        copy.result = result.map(Self.storable)
        copy.output = output.map(Self.storable)
        copy.stderr = stderr.map(Self.storable)
        copy.message = message.map(Self.storable)
        return copy
    }

    static func storable(_ text: String) -> String {
        guard text.unicodeScalars.contains("\u{0}") else { return text }
        return String(String.UnicodeScalarView(text.unicodeScalars.map { $0 == "\u{0}" ? "\u{FFFD}" : $0 }))
    }

    static func storable(_ value: JSONValue) -> JSONValue {
        switch value {
        case .string(let s): return .string(storable(s))
        case .array(let items): return .array(items.map(storable))
        case .object(let object):
            var copy: JSONObject = [:]
            for (key, item) in object { copy[storable(key)] = storable(item) }
            return .object(copy)
        default: return value
        }
    }
}

/// An event a run publishes when it succeeds: at once, or `delaySeconds` later (kept in PostgreSQL until then).
struct FollowUp: Sendable, Hashable {
    var event: Event
    var delaySeconds: Double?

    init(_ event: Event, delaySeconds: Double? = nil) {
        self.event = event
        self.delaySeconds = delaySeconds
    }
}
