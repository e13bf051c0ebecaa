public import AgentryCore
public import Foundation

/// One call of a language model by a run, as ``LangfuseExporter`` sends it: a Langfuse trace whose id is the run's
/// id (so that the generations of a run's attempts gather under one trace) holding one generation.
public struct LangfuseGeneration: Sendable {
    /// The run: the trace's id.
    public var runID: UUID
    public var agentID: String
    public var agentVersion: String
    /// The event that started the run.
    public var eventID: String
    public var eventType: String
    public var model: String
    /// The system prompt, when the call had one.
    public var system: String?
    /// The user prompt.
    public var prompt: String
    /// The model's answer; nil when the call failed.
    public var output: String?
    public var inputTokens: Int?
    public var outputTokens: Int?
    /// What the call cost, in ``currency``. Langfuse counts cost in USD: a cost in another currency is sent in the
    /// generation's metadata only.
    public var cost: Double?
    /// ISO 4217 code (`USD`); nil is taken as USD.
    public var currency: String?
    public var startedAt: Date
    public var endedAt: Date
    /// Why the call failed: the generation is sent with level `ERROR` and this as its status message.
    public var error: String?
    /// HTTP requests the call took (more than one after 429 or 5xx answers).
    public var attempts: Int
    /// The request's model parameters (`temperature`, `max_tokens`, …): strings, numbers or booleans.
    public var modelParameters: [String: JSONValue]

    public init(
        runID: UUID, agentID: String, agentVersion: String, eventID: String, eventType: String, model: String,
        system: String? = nil, prompt: String, output: String? = nil, inputTokens: Int? = nil, outputTokens: Int? = nil,
        cost: Double? = nil, currency: String? = nil, startedAt: Date, endedAt: Date, error: String? = nil, attempts: Int = 1,
        modelParameters: [String: JSONValue] = [:]
    ) {
        self.runID = runID
        self.agentID = agentID
        self.agentVersion = agentVersion
        self.eventID = eventID
        self.eventType = eventType
        self.model = model
        self.system = system
        self.prompt = prompt
        self.output = output
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.cost = cost
        self.currency = currency
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.error = error
        self.attempts = attempts
        self.modelParameters = modelParameters
    }
}

extension LangfuseGeneration {
    /// The generation of one `llm` handler call.
    public init(_ call: LLMCallRecord) {
        self.init(
            runID: call.runID, agentID: call.agentID, agentVersion: call.agentVersion, eventID: call.eventID, eventType: call.eventType,
            model: call.usage?.model ?? call.model, system: call.system, prompt: call.prompt, output: call.output,
            inputTokens: call.usage?.inputTokens, outputTokens: call.usage?.outputTokens, cost: call.usage?.cost,
            currency: call.usage?.currency, startedAt: call.startedAt, endedAt: call.endedAt, error: call.error, attempts: max(1, call.attempts))
    }
}
