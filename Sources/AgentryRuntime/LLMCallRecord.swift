public import AgentryCore
public import Foundation

/// One call of an `llm` handler, as it ended: what was asked, what came back, what it used and how long it took. A
/// worker hands it to its handlers' observer (``HandlerRunner/llmObserver``) when one is set, for tracing.
public struct LLMCallRecord: Sendable {
    public var runID: UUID
    public var agentID: String
    public var agentVersion: String
    public var eventID: String
    public var eventType: String
    /// The model the definition asks for.
    public var model: String
    public var baseURL: String
    /// The system message sent, filled from the event.
    public var system: String?
    /// The user message sent, filled from the event.
    public var prompt: String
    /// The model's answer, as text (nil when none came).
    public var output: String?
    /// What the call used (the endpoint's count, priced), nil when the endpoint reported nothing.
    public var usage: RunUsage?
    public var startedAt: Date
    public var endedAt: Date
    /// The last answer's HTTP status (nil when none came).
    public var statusCode: Int?
    /// Why the call failed, nil when it succeeded.
    public var error: String?
    /// Requests sent, retries included.
    public var attempts: Int

    public init(
        runID: UUID, agentID: String, agentVersion: String, eventID: String, eventType: String, model: String, baseURL: String,
        system: String?, prompt: String, output: String? = nil, usage: RunUsage? = nil, startedAt: Date, endedAt: Date,
        statusCode: Int? = nil, error: String? = nil, attempts: Int = 0
    ) {
        self.runID = runID
        self.agentID = agentID
        self.agentVersion = agentVersion
        self.eventID = eventID
        self.eventType = eventType
        self.model = model
        self.baseURL = baseURL
        self.system = system
        self.prompt = prompt
        self.output = output
        self.usage = usage
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.statusCode = statusCode
        self.error = error
        self.attempts = attempts
    }
}
