import AgentryCore
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

extension HandlerRunner {
    /// The longest wait between two tries when the endpoint does not say (`Retry-After`) how long to wait.
    static let llmMaxBackoffSeconds = 30.0

    /// Asks the model: POST `<base_url>/chat/completions` with the system and user messages filled from the event,
    /// through the same clients and deny list as the http handler, within the handler's timeout (tries and waits
    /// included). A 429 or 5xx answer, or a connection that fails, is tried again up to `retries` times, after the
    /// answer's `Retry-After` (seconds or an HTTP date) or else after 1, 2, 4… seconds (at most 30), as long as the
    /// wait ends within the timeout. Any other answer that is not a success fails the run at once, with the endpoint's
    /// own message, and is not tried again by the run's retry policy either: the same request gets the same answer.
    ///
    /// The result is the answer parsed as JSON with `json: true` (an answer that is not JSON fails the run, its text
    /// kept as the output), else `{"answer": …, "finish_reason": …, "model": …}`. The usage is the endpoint's count
    /// (`prompt_tokens`, `completion_tokens`) and the model that answered.
    func runLLM(_ llm: LLMHandler, _ context: TaskContext) async -> (HandlerOutcome, LLMCallRecord) {
        let system = llm.system.map { EventTemplate.renderText($0, with: context.event) }
        let prompt = EventTemplate.renderText(llm.prompt, with: context.event)
        let url = llm.endpoint
        var record = LLMCallRecord(
            runID: context.runID, agentID: context.agent.metadata.id, agentVersion: context.agent.metadata.version,
            eventID: context.event.id.rawValue, eventType: context.event.type, model: llm.model, baseURL: llm.baseURL,
            system: system, prompt: prompt, startedAt: Date(), endedAt: Date())
        func ended(_ outcome: HandlerOutcome, output: String? = nil) -> (HandlerOutcome, LLMCallRecord) {
            record.endedAt = Date()
            record.output = output
            record.error = outcome.status == .succeeded ? nil : outcome.message
            record.usage = outcome.usage
            return (outcome, record)
        }

        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Accept", value: "application/json")
        headers.add(name: "User-Agent", value: "agentry/\(AgentryVersion.current)")
        headers.add(name: "X-Agentry-Run-Id", value: context.runID.uuidString.lowercased())
        if let variable = llm.apiKeyEnv {
            guard let key = environment[variable], !key.isEmpty else {
                return ended(
                    .failed(
                        "llm: no API key: the environment variable \(variable), which handler.llm.api_key_env names, is not set (or empty) for worker \(context.workerID); set it where the worker starts",
                        retryable: false))
            }
            headers.add(name: "Authorization", value: "Bearer \(key)")
        }
        let body = ByteBuffer(bytes: Array(JSON.serialize(Self.chatRequest(llm, system: system, prompt: prompt)).utf8))
        let timeout = llm.timeoutSeconds.map { Duration.seconds($0) } ?? context.timeout
        let deadline = ContinuousClock.now + timeout
        let clientDeadline = NIODeadline.now() + .nanoseconds(Int64(timeout.inSeconds * 1e9))
        let bodyLimit = max(context.outputLimit, 1 << 20)
        guard let components = URLComponents(string: url), let host = components.host, !host.isEmpty else {
            return ended(.failed("llm: \(url) is not an absolute http or https URL", retryable: false))
        }
        let tries = 1 + llm.effectiveRetries
        var problem = "POST \(url) was not sent"
        var lastCode: Int?
        var lastText: String?
        for attempt in 1...tries {
            record.attempts = attempt
            let pin: PinnedHTTPClients.Target =
                policy.httpDeny.isEmpty ? .unpinned : await PinnedHTTPClients.target(host: host, deny: policy.httpDeny)
            if case .refused(let refusal) = pin {
                return ended(.failed("POST \(url) refused: \(refusal)", retryable: false))
            }
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers = headers
            request.body = .bytes(body)
            var wait: Double
            do {
                let (response, bytes) = try await exchange(request, host: host, target: pin, deadline: clientDeadline, bodyLimit: bodyLimit)
                let code = Int(response.status.code)
                record.statusCode = code
                lastCode = code
                if (200..<300).contains(code) {
                    let (outcome, answer) = Self.completion(bytes, llm: llm, code: code, outputLimit: context.outputLimit)
                    return ended(outcome, output: answer)
                }
                let text = Self.text(Array(bytes.prefix(context.outputLimit)), dropped: max(0, bytes.count - context.outputLimit))
                lastText = text.isEmpty ? nil : text
                problem =
                    "POST \(url) answered \(code) \(response.status.reasonPhrase)" + (Self.endpointMessage(bytes).map { ": \($0)" } ?? "")
                guard code == 429 || code >= 500 else {
                    // A 4xx (a bad key, an unknown model, a prompt too long) or a redirect: the same request gets the
                    // same answer.
                    return ended(HandlerOutcome(status: .failed, output: lastText, exitStatus: code, message: problem, retryable: false))
                }
                wait = Self.retryAfter(response.headers.first(name: "Retry-After")) ?? Self.backoff(afterTry: attempt)
            } catch is NIOTooManyBytesError {
                return ended(.failed("POST \(url): the answer is larger than \(bodyLimit) bytes, the most a worker reads", retryable: false))
            } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout || error == .connectTimeout {
                let message = "POST \(url) did not answer within \(timeout.components.seconds) s (\(error); \(Self.tries(attempt)))"
                return ended(HandlerOutcome(status: .timedOut, message: message))
            } catch is CancellationError {
                return ended(HandlerOutcome(status: .cancelled, message: "the run was cancelled during POST \(url)"))
            } catch {
                if Task.isCancelled { return ended(HandlerOutcome(status: .cancelled, message: "the run was cancelled during POST \(url)")) }
                problem = "POST \(url) failed: \(error)"
                lastCode = nil
                lastText = nil
                wait = Self.backoff(afterTry: attempt)
            }
            guard attempt < tries else { break }
            let left = (deadline - ContinuousClock.now).inSeconds
            if wait >= left {
                problem +=
                    "; not tried again: the next try, \(String(format: "%.1f", wait)) s later, would pass the timeout of \(timeout.components.seconds) s"
                break
            }
            do {
                try await Task.sleep(for: .milliseconds(Int64(wait * 1000)))
            } catch {
                return ended(HandlerOutcome(status: .cancelled, message: "the run was cancelled while waiting to try POST \(url) again"))
            }
        }
        return ended(HandlerOutcome(status: .failed, output: lastText, exitStatus: lastCode, message: "\(problem) (\(Self.tries(record.attempts)))"))
    }

    static func tries(_ count: Int) -> String { count == 1 ? "1 try" : "\(count) tries" }

    /// The chat-completion request's body.
    static func chatRequest(_ llm: LLMHandler, system: String?, prompt: String) -> JSONValue {
        var messages: [JSONValue] = []
        if let system { messages.append(.object(["role": "system", "content": .string(system)])) }
        messages.append(.object(["role": "user", "content": .string(prompt)]))
        var request: JSONObject = ["model": .string(llm.model), "messages": .array(messages)]
        if let temperature = llm.temperature { request["temperature"] = .double(temperature) }
        if let maxTokens = llm.maxTokens { request["max_tokens"] = .int(Int64(maxTokens)) }
        if llm.json { request["response_format"] = .object(["type": "json_object"]) }
        return .object(request)
    }

    /// Reads a chat completion: the outcome, and the answer's text (for the observer).
    static func completion(_ bytes: [UInt8], llm: LLMHandler, code: Int, outputLimit: Int) -> (HandlerOutcome, String?) {
        let body = try? JSON.parse(bytes)
        guard let body, let choice = body[path: "choices"]?.arrayValue?.first else {
            let text = text(Array(bytes.prefix(min(outputLimit, 2000))), dropped: max(0, bytes.count - min(outputLimit, 2000)))
            return (
                HandlerOutcome(
                    status: .failed, output: text.isEmpty ? nil : text, exitStatus: code,
                    message: "the endpoint's answer is not a chat completion (no choices); is base_url an OpenAI-compatible API?"), nil
            )
        }
        let model = body[path: "model"]?.stringValue.flatMap { $0.isEmpty ? nil : String($0.prefix(RunUsage.maxModelLength)) } ?? llm.model
        let input = body[path: "usage.prompt_tokens"]?.intValue.map { Int(max(0, $0)) }
        let output = body[path: "usage.completion_tokens"]?.intValue.map { Int(max(0, $0)) }
        let usage = RunUsage(inputTokens: input, outputTokens: output, model: model)
        let finish = choice[path: "finish_reason"]?.stringValue
        let finishText = finish.map { "finish_reason \($0)" } ?? "no finish_reason"
        guard let content = choice[path: "message.content"]?.stringValue else {
            var outcome = HandlerOutcome.failed("the model gave no text answer (\(finishText))", exitStatus: code)
            outcome.usage = usage
            return (outcome, nil)
        }
        let kept = String(content.prefix(outputLimit))
        guard llm.json else {
            var result: JSONObject = ["answer": .string(content), "model": .string(model)]
            if let finish { result["finish_reason"] = .string(finish) }
            return (HandlerOutcome(status: .succeeded, result: .object(result), exitStatus: code, usage: usage), content)
        }
        guard let parsed = try? JSON.parse(unfenced(content)) else {
            let truncated = finish == "length" ? "; the answer was cut off at max_tokens" : ""
            var outcome = HandlerOutcome.failed(
                "the model's answer is not JSON (\(finishText)\(truncated)); its text is the run's output", output: kept, exitStatus: code)
            outcome.usage = usage
            return (outcome, content)
        }
        return (
            HandlerOutcome(status: .succeeded, result: parsed, output: "model \(model), \(finishText)", exitStatus: code, usage: usage),
            content
        )
    }

    /// The answer without a Markdown code fence around it (` ```json … ``` `), which some models add.
    static func unfenced(_ text: String) -> String {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.hasPrefix("```"), trimmed.hasSuffix("```"), trimmed.count >= 6 else { return trimmed }
        var inner = trimmed.dropFirst(3).dropLast(3)
        if let newline = inner.firstIndex(of: "\n") { inner = inner[inner.index(after: newline)...] }
        return inner.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The endpoint's own explanation in an error answer: OpenAI's `error.message`, Ollama's `error`, vLLM's
    /// `message`, FastAPI's `detail`; else the start of the text.
    static func endpointMessage(_ bytes: [UInt8]) -> String? {
        if let json = try? JSON.parse(bytes) {
            for path in ["error.message", "error", "message", "detail"] {
                if let text = json[path: path]?.stringValue, !text.isEmpty { return String(text.prefix(500)) }
            }
        }
        let text = String(decoding: bytes.prefix(500), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? nil : text
    }

    /// The wait a `Retry-After` header asks for, in seconds: a number of seconds, or an HTTP date.
    static func retryAfter(_ value: String?, now: Date = Date()) -> Double? {
        guard let value = value?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        if let seconds = Double(value), seconds.isFinite { return max(0, seconds) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        for format in ["EEE, dd MMM yyyy HH:mm:ss zzz", "EEEE, dd-MMM-yy HH:mm:ss zzz", "EEE MMM d HH:mm:ss yyyy"] {
            formatter.dateFormat = format
            if let date = formatter.date(from: value) { return max(0, date.timeIntervalSince(now)) }
        }
        return nil
    }

    /// The wait after failed try `attempt` when the endpoint does not say: 1, 2, 4… seconds (at most 30), ± 20 %.
    static func backoff(afterTry attempt: Int) -> Double {
        let base = min(llmMaxBackoffSeconds, pow(2, Double(max(0, attempt - 1))))
        return base * Double.random(in: 0.8...1.2)
    }
}
