import Foundation
import Testing

@testable import AgentryCore

/// The validation tests' definition (12 lines) with `handler` (at line 13).
private func definition(handler: String) -> String {
    base + "handler:\n" + handler.split(separator: "\n").map { "  \($0)" }.joined(separator: "\n") + "\n"
}

private func problems(_ yaml: String) -> [ValidationProblem] {
    do {
        _ = try AgentDefinition.parse(yaml: yaml)
        return []
    } catch {
        return error.problems
    }
}

@Suite("The llm handler's definition, usage and the price table")
struct LLMDefinitionTests {
    static let full = """
        llm:
          base_url: http://127.0.0.1:8080/v1/
          model: gpt-4o-mini
          system: "You triage device alerts."
          prompt: "Device {{payload.device_id}} shows {{payload.symptom}}. The event: {{payload}}. Answer JSON."
          api_key_env: OPENAI_API_KEY
          temperature: 0.2
          max_tokens: 400
          json: true
          timeout_seconds: 60
          retries: 3
        """

    @Test("every field reads, writes out and reads back the same; the endpoint is <base_url>/chat/completions")
    func roundTrip() throws {
        let parsed = try AgentDefinition.parse(yaml: definition(handler: Self.full))
        guard case .llm(let llm)? = parsed.handler else {
            Issue.record("not an llm handler: \(String(describing: parsed.handler))")
            return
        }
        #expect(llm.baseURL == "http://127.0.0.1:8080/v1/" && llm.model == "gpt-4o-mini")
        #expect(llm.system == "You triage device alerts." && llm.prompt.hasPrefix("Device {{payload.device_id}}"))
        #expect(llm.apiKeyEnv == "OPENAI_API_KEY" && llm.temperature == 0.2 && llm.maxTokens == 400 && llm.json)
        #expect(llm.timeoutSeconds == 60 && llm.retries == 3 && llm.effectiveRetries == 3)
        #expect(llm.endpoint == "http://127.0.0.1:8080/v1/chat/completions")
        let again = try AgentDefinition.parse(yaml: parsed.yaml())
        #expect(again == parsed, "\(parsed.yaml())")
        #expect(try AgentDefinition.parse(yaml: JSON.serialize(parsed.jsonValue())) == parsed)
        #expect(parsed.yaml() == again.yaml())

        let minimal = try AgentDefinition.parse(yaml: definition(handler: "llm: {base_url: 'https://api.openai.com/v1', model: m, prompt: hi}"))
        guard case .llm(let small)? = minimal.handler else {
            Issue.record("not an llm handler")
            return
        }
        #expect(small.effectiveRetries == LLMHandler.defaultRetries && !small.json && small.system == nil && small.apiKeyEnv == nil)
        #expect(try AgentDefinition.parse(yaml: minimal.yaml()) == minimal)
        #expect(minimal.yaml().contains("llm:") && !minimal.yaml().contains("retries"), "\(minimal.yaml())")
    }

    @Test("each mistake is reported with its path, line and column, and what to do")
    func mistakes() {
        let cases: [(String, String, String)] = [
            ("llm: {model: m, prompt: hi}", "handler.llm.base_url", "missing required field 'base_url'"),
            ("llm: {base_url: 'ftp://x/v1', model: m, prompt: hi}", "handler.llm.base_url", "http:// or https://"),
            ("llm: {base_url: 'https://{{payload.host}}/v1', model: m, prompt: hi}", "handler.llm.base_url", "name the endpoint literally"),
            ("llm: {base_url: 'https://x/v1/chat/completions', model: m, prompt: hi}", "handler.llm.base_url", "without /chat/completions"),
            ("llm: {base_url: 'https://x/v1', prompt: hi}", "handler.llm.model", "missing required field 'model'"),
            ("llm: {base_url: 'https://x/v1', model: '{{payload.m}}', prompt: hi}", "handler.llm.model", "name the model literally"),
            ("llm: {base_url: 'https://x/v1', model: m}", "handler.llm.prompt", "missing required field 'prompt'"),
            ("llm: {base_url: 'https://x/v1', model: m, prompt: ''}", "handler.llm.prompt", "found an empty string"),
            ("llm: {base_url: 'https://x/v1', model: m, prompt: 'x {{paylod.id}}'}", "handler.llm.prompt", "not part of an event"),
            ("llm: {base_url: 'https://x/v1', model: m, prompt: hi, system: '{{nope}}'}", "handler.llm.system", "not part of an event"),
            ("llm: {base_url: 'https://x/v1', model: m, prompt: hi, api_key_env: 'sk-abc123'}", "handler.llm.api_key_env", "not the key itself"),
            ("llm: {base_url: 'https://x/v1', model: m, prompt: hi, api_key_env: 'MY KEY'}", "handler.llm.api_key_env", "environment variable"),
            ("llm: {base_url: 'https://x/v1', model: m, prompt: hi, temperature: 3}", "handler.llm.temperature", "from 0 to 2"),
            ("llm: {base_url: 'https://x/v1', model: m, prompt: hi, max_tokens: 0}", "handler.llm.max_tokens", "positive whole number"),
            ("llm: {base_url: 'https://x/v1', model: m, prompt: hi, retries: 11}", "handler.llm.retries", "0 to 10"),
            ("llm: {base_url: 'https://x/v1', model: m, prompt: hi, json: 'yes'}", "handler.llm.json", "true or false"),
            ("llm: {base_url: 'https://x/v1', model: m, prompt: hi, json: true}", "handler.llm.json", "mentions JSON"),
            ("llm: {base_url: 'https://x/v1', model: m, prompt: hi, timeout_seconds: -1}", "handler.llm.timeout_seconds", "positive"),
            ("llm: {base_url: 'https://x/v1', model: m, prompt: hi, temprature: 1}", "handler.llm.temprature", "unknown key"),
        ]
        for (handler, path, fragment) in cases {
            let found = problems(definition(handler: handler))
            #expect(found.count == 1, "\(handler): \(found)")
            #expect(found.first?.path == path, "\(handler): \(found)")
            #expect(found.first?.message.contains(fragment) == true, "\(handler): \(found)")
            #expect(found.first?.line == 14, "\(handler): the problem points into the handler: \(found)")
            #expect(found.first?.column != nil)
        }
        let typo = problems(definition(handler: "llm: {base_url: 'https://x/v1', model: m, prompt: hi, temprature: 1}"))
        #expect(typo.first?.suggestion == "did you mean 'temperature'?", "\(typo)")
        let both = problems(definition(handler: "llm: {base_url: 'https://x/v1', model: m, prompt: hi}\nhttp: {url: 'https://x'}"))
        #expect(both.first?.message.contains("exactly one of exec, http, builtin, emit, delegate, llm") == true, "\(both)")
    }

    @Test("{{payload}} is the whole payload as JSON in an llm prompt, and refused elsewhere")
    func wholePayload() throws {
        let event = Event(type: "alert.x", payload: ["device_id": "tv-1", "n": .int(2)])
        let text = EventTemplate.renderText("Event: {{payload}}", with: event)
        let json = try JSON.parse(String(text.dropFirst("Event: ".count)))
        #expect(json == .object(event.payload), "\(text)")
        #expect(EventTemplate.scan("{{payload}}").problems.count == 1)
        #expect(EventTemplate.scan("{{payload}}", wholePayload: true).problems.isEmpty)
        let emit = problems(definition(handler: "emit: {type: a.b, payload: {all: '{{payload}}'}}"))
        #expect(emit.first?.message.contains("names the whole payload") == true, "\(emit)")
    }

    @Test("redaction hides a password in base_url; the key's variable name stays")
    func redaction() throws {
        let parsed = try AgentDefinition.parse(
            yaml: definition(handler: "llm: {base_url: 'https://u:secret@x.example/v1', model: m, prompt: hi, api_key_env: KEY}"))
        let shown = parsed.redactingSecrets()
        guard case .llm(let llm)? = shown.handler else {
            Issue.record("not an llm handler")
            return
        }
        #expect(!llm.baseURL.contains("secret") && llm.baseURL.contains("x.example"), "\(llm.baseURL)")
        #expect(llm.apiKeyEnv == "KEY")
    }

    @Test("a result's usage reads when usable and says what is wrong when not")
    func usage() {
        let good = RunUsage.parse(.object(["input_tokens": .int(812), "output_tokens": .int(96), "cost": .double(0.5), "model": "gpt-4o-mini"]))
        #expect(
            (try? good.get()) == RunUsage(inputTokens: 812, outputTokens: 96, cost: 0.5, currency: "USD", model: "gpt-4o-mini"),
            "a cost without a currency is in USD")
        #expect((try? RunUsage.parse(.object(["output_tokens": .double(3)])).get())?.outputTokens == 3)
        let usage = RunUsage(inputTokens: 1, outputTokens: 2, cost: 0.25, currency: "EUR", model: "m")
        #expect((try? RunUsage.parse(usage.jsonValue).get()) == usage, "jsonValue reads back")
        let bad: [(JSONValue, String)] = [
            (.array([]), "must be an object"),
            (.object([:]), "at least one"),
            (.object(["input_tokens": .int(-1)]), "input_tokens must be a whole number"),
            (.object(["output_tokens": .double(1.5)]), "output_tokens must be a whole number"),
            (.object(["input_tokens": "12"]), "input_tokens must be a whole number"),
            (.object(["cost": .double(-0.1)]), "cost must be a number, 0 or more"),
            (.object(["cost": "free"]), "cost must be a number"),
            (.object(["cost": .int(1), "currency": "usd"]), "currency must be a currency code"),
            (.object(["currency": "DOLLARS"]), "currency must be a currency code"),
            (.object(["model": ""]), "model must be a model name"),
            (.object(["prompt_tokens": .int(3)]), "unknown key 'prompt_tokens'"),
        ]
        for (value, fragment) in bad {
            switch RunUsage.parse(value) {
            case .success(let usage): Issue.record("\(JSON.serialize(value)) read as \(usage)")
            case .failure(let problem): #expect(problem.description.contains(fragment), "\(JSON.serialize(value)): \(problem)")
            }
        }
    }

    @Test("the price table reads, prices exact names before the longest prefix, and names each problem's place")
    func prices() throws {
        let table = try LLMPriceTable.parse(
            yaml: """
                currency: EUR
                models:
                  gpt-4o-mini: {input_per_million: 0.15, output_per_million: 0.60}
                  "gpt-4o*": {input_per_million: 2.5, output_per_million: 10}
                  "gpt*": {input_per_million: 1, output_per_million: 1}
                  "llama3*": {input_per_million: 0, output_per_million: 0}
                """, file: "prices.yaml")
        #expect(table.currency == "EUR")
        #expect(table.price(for: "gpt-4o-mini")?.inputPerMillion == 0.15)
        #expect(table.price(for: "gpt-4o-2024-08-06")?.inputPerMillion == 2.5, "the longest prefix wins")
        #expect(table.price(for: "gpt-3.5-turbo")?.inputPerMillion == 1)
        #expect(table.price(for: "mistral") == nil)
        let cost = try #require(table.cost(of: RunUsage(inputTokens: 1_000_000, outputTokens: 500_000, model: "gpt-4o-mini")))
        #expect(abs(cost - 0.45) < 1e-12, "\(cost)")
        #expect(table.cost(of: RunUsage(inputTokens: 10, model: "llama3.1:8b")) == 0)
        #expect(table.cost(of: RunUsage(model: "gpt-4o-mini")) == nil, "no tokens, no cost")
        #expect(table.cost(of: RunUsage(inputTokens: 10)) == nil, "no model, no cost")
        #expect(try LLMPriceTable.parse(yaml: "models: {m: {input_per_million: 1, output_per_million: 2}}").currency == "USD")

        let bad: [(String, String)] = [
            ("currency: usd\nmodels: {}", "prices.yaml:1:11: currency must be"),
            ("models:\n  m: {input_per_million: -1, output_per_million: 2}", "prices.yaml:2:26: m.input_per_million must be a number, 0 or more"),
            ("models:\n  m: {input_per_million: 1}", "needs both input_per_million and output_per_million"),
            ("models:\n  'g*pt': {input_per_million: 1, output_per_million: 1}", "a * may only end a model name"),
            ("models:\n  m: {input_per_million: 1, output_per_million: 1, cached: 2}", "unknown key 'cached'"),
            ("currency: USD", "missing 'models'"),
            ("modles: {}", "unknown key 'modles'"),
            ("models: [a, b]", "models must be a mapping"),
            ("models: {a: [1", "invalid YAML"),
        ]
        for (yaml, fragment) in bad {
            do {
                _ = try LLMPriceTable.parse(yaml: yaml, file: "prices.yaml")
                Issue.record("\(yaml) was accepted")
            } catch {
                #expect(error.description.contains(fragment), "\(yaml): \(error.description)")
            }
        }
    }
}
