import Foundation
import Yams

/// The `llm` handler's checks. The endpoint and the model are named literally (an event does not choose where its text
/// goes, nor which model it runs on, whose name is also a metrics label); the prompts are templates, in which
/// `{{payload}}` stands for the whole payload. The API key is never written in the definition: `api_key_env` names the
/// worker's environment variable that holds it.
extension DefinitionReader {
    mutating func llmHandler(_ body: Node) -> Handler? {
        guard let l = mapping(body, path: "handler.llm", known: LLMHandler.CodingKeys.allCases.map(\.rawValue)) else { return nil }
        var complete = true
        let baseURL = string(l, "base_url", required: true)
        if let baseURL, let node = l["base_url"] {
            if baseURL.contains("{{") {
                report(
                    "handler.llm.base_url", node,
                    "a template in base_url lets an event choose where its prompt goes; name the endpoint literally (e.g. https://api.openai.com/v1)")
                complete = false
            } else if let problem = Self.urlProblem(baseURL) {
                report("handler.llm.base_url", node, problem, suggestion: "e.g. https://api.openai.com/v1 or http://127.0.0.1:11434/v1")
                complete = false
            } else if let url = URLComponents(string: baseURL), url.query != nil || url.fragment != nil {
                report(
                    "handler.llm.base_url", node,
                    "expected the API's base URL without a query or fragment (the request goes to <base_url>/chat/completions), found '\(baseURL)'")
                complete = false
            } else if baseURL.hasSuffix("/chat/completions") || baseURL.hasSuffix("/chat/completions/") {
                report(
                    "handler.llm.base_url", node,
                    "base_url is the API's base, without /chat/completions (the handler adds it)",
                    suggestion: "did you mean '\(baseURL.replacingOccurrences(of: "/chat/completions", with: "").trimmingSuffix("/"))'?")
                complete = false
            }
        }
        let model = string(l, "model", required: true)
        if let model, let node = l["model"] {
            if model.trimmingCharacters(in: .whitespaces).isEmpty {
                report("handler.llm.model", node, "expected a model name (e.g. gpt-4o-mini, llama3.1:8b), found an empty string")
                complete = false
            } else if model.contains("{{") {
                report("handler.llm.model", node, "a template in model lets an event choose the model (and what it costs); name the model literally")
                complete = false
            } else if model.count > RunUsage.maxModelLength {
                report("handler.llm.model", node, "expected a model name of at most \(RunUsage.maxModelLength) characters, found \(model.count)")
                complete = false
            }
        }
        let system = string(l, "system", required: false)
        if let system, let node = l["system"] { checkTemplates(system, node: node, path: "handler.llm.system", wholePayload: true) }
        let prompt = string(l, "prompt", required: true)
        if let prompt, let node = l["prompt"] {
            if prompt.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                report(
                    "handler.llm.prompt", node,
                    "expected the user message (a template such as 'Device {{payload.device_id}} …'), found an empty string")
                complete = false
            }
            checkTemplates(prompt, node: node, path: "handler.llm.prompt", wholePayload: true)
        }
        let keyVariable = string(l, "api_key_env", required: false)
        if let keyVariable, let node = l["api_key_env"], let problem = Self.variableNameProblem(keyVariable) {
            report("handler.llm.api_key_env", node, problem)
            complete = false
        }
        var temperature = double(l, "temperature")
        if let value = temperature, !(0...2).contains(value) {
            report("handler.llm.temperature", l["temperature"], "expected a temperature from 0 to 2, found \(value.agentYAMLText)")
            temperature = nil
            complete = false
        }
        let maxTokens = int(l, "max_tokens", positive: true)
        let json = bool(l, "json") ?? false
        let timeout = int(l, "timeout_seconds", positive: true)
        var retries = int(l, "retries", positive: false)
        if let n = retries, !(0...LLMHandler.maxRetries).contains(n) {
            report("handler.llm.retries", l["retries"], "expected 0 to \(LLMHandler.maxRetries) extra tries, found \(n)")
            retries = nil
            complete = false
        }
        if json, let prompt, !"\(system ?? "") \(prompt)".lowercased().contains("json") {
            report(
                "handler.llm.json", l["json"],
                "json: true asks the model for a JSON object, but neither system nor prompt mentions JSON; OpenAI refuses such a request, and every model answers better when told",
                suggestion: "say in the prompt which JSON to answer with, e.g. 'Answer in JSON: {\"action\": …}'")
            complete = false
        }
        guard complete, let baseURL, let model, let prompt else { return nil }
        return .llm(
            LLMHandler(
                baseURL: baseURL, model: model, system: system, prompt: prompt, apiKeyEnv: keyVariable, temperature: temperature,
                maxTokens: maxTokens, json: json, timeoutSeconds: timeout, retries: retries))
    }

    /// Why `name` is not an environment variable's name (letters, digits and `_`, not starting with a digit), or looks
    /// like a key itself.
    static func variableNameProblem(_ name: String) -> String? {
        let looksLikeKey = name.hasPrefix("sk-") || name.hasPrefix("sk_") || (name.count >= 32 && name.contains("-"))
        if looksLikeKey {
            return
                "api_key_env names the worker's environment variable that holds the key, not the key itself; set the key in the worker's environment (e.g. OPENAI_API_KEY) and name that variable here"
        }
        let scalars = name.unicodeScalars
        let valid =
            !scalars.isEmpty && !("0"..."9").contains(scalars.first!)
            && scalars.allSatisfy { ("A"..."Z").contains($0) || ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" }
        return valid ? nil : "expected the name of an environment variable (letters, digits and _, e.g. OPENAI_API_KEY), found '\(name)'"
    }
}

extension String {
    fileprivate func trimmingSuffix(_ suffix: String) -> String {
        var text = self
        while text.hasSuffix(suffix) { text.removeLast(suffix.count) }
        return text
    }
}
