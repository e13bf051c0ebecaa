/// Asks a language model through an OpenAI-compatible chat-completion endpoint (OpenAI, vLLM, llama.cpp's server,
/// Ollama, most gateways): POST `<base_url>/chat/completions` with the system and user messages filled from the
/// event.
///
/// ```yaml
/// handler:
///   llm:
///     base_url: https://api.openai.com/v1    # required; http or https
///     model: gpt-4o-mini                     # required
///     system: "You triage device alerts."   # optional template
///     prompt: "Device {{payload.device_id}} shows {{payload.symptom}}. Event: {{payload}}"   # required template
///     api_key_env: OPENAI_API_KEY            # optional: the worker's variable holding the key (sent as Bearer)
///     temperature: 0.2                       # optional, 0 to 2
///     max_tokens: 400                        # optional, positive
///     json: true                             # optional: ask for a JSON object and parse the answer
///     timeout_seconds: 60                    # optional; default config.timeout_seconds
///     retries: 3                             # optional: extra tries on 429, 5xx and connection errors; default 2
/// ```
///
/// Templates are ``EventTemplate``s; in `system` and `prompt` `{{payload}}` also stands for the whole payload as JSON.
/// The key is never in the definition, only the name of the worker's environment variable that holds it.
public struct LLMHandler: Sendable, Hashable {
    /// The API's base URL (`https://api.openai.com/v1`, `http://127.0.0.1:8080/v1`); no templates.
    public var baseURL: String
    public var model: String
    /// The system message; nil sends none.
    public var system: String?
    /// The user message.
    public var prompt: String
    /// The name of the worker's environment variable that holds the API key; nil sends no `Authorization`.
    public var apiKeyEnv: String?
    /// 0 to 2; nil leaves it to the endpoint.
    public var temperature: Double?
    /// Positive; nil leaves it to the endpoint.
    public var maxTokens: Int?
    /// Ask for `response_format: {"type": "json_object"}` and parse the answer as JSON. Default false: the result is
    /// `{"answer": "<text>"}`.
    public var json: Bool
    /// How long the call may take, retries and their waits included; nil means `config.timeout_seconds`.
    public var timeoutSeconds: Int?
    /// Extra tries after a 429, a 5xx or a connection error; nil means ``defaultRetries``.
    public var retries: Int?

    public static let defaultRetries = 2
    /// The most extra tries a definition may ask for.
    public static let maxRetries = 10

    public init(
        baseURL: String, model: String, system: String? = nil, prompt: String, apiKeyEnv: String? = nil,
        temperature: Double? = nil, maxTokens: Int? = nil, json: Bool = false, timeoutSeconds: Int? = nil, retries: Int? = nil
    ) {
        self.baseURL = baseURL
        self.model = model
        self.system = system
        self.prompt = prompt
        self.apiKeyEnv = apiKeyEnv
        self.temperature = temperature
        self.maxTokens = maxTokens
        self.json = json
        self.timeoutSeconds = timeoutSeconds
        self.retries = retries
    }

    /// ``retries``, or ``defaultRetries``.
    public var effectiveRetries: Int { retries ?? Self.defaultRetries }

    /// Where the request goes: `<base_url>/chat/completions` (one slash between them).
    public var endpoint: String {
        var base = Substring(baseURL)
        while base.hasSuffix("/") { base = base.dropLast() }
        return String(base) + "/chat/completions"
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case baseURL = "base_url"
        case model, system, prompt
        case apiKeyEnv = "api_key_env"
        case temperature
        case maxTokens = "max_tokens"
        case json
        case timeoutSeconds = "timeout_seconds"
        case retries
    }
}
