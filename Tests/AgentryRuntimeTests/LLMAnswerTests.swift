import AgentryCore
import Foundation
import Testing

@testable import AgentryRuntime

/// How the llm handler reads what an endpoint answers: `Retry-After`, error bodies, chat completions.
@Suite("LLM answers")
struct LLMAnswerTests {
    let llm = LLMHandler(baseURL: "http://127.0.0.1:1/v1", model: "m", prompt: "Answer JSON", json: true)

    @Test("Retry-After in seconds or as an HTTP date; anything else is no wait")
    func retryAfter() {
        let now = Date(timeIntervalSince1970: 1_700_000_000)  // Tue, 14 Nov 2023 22:13:20 GMT
        #expect(HandlerRunner.retryAfter("1", now: now) == 1)
        #expect(HandlerRunner.retryAfter(" 2.5 ", now: now) == 2.5)
        #expect(HandlerRunner.retryAfter("Tue, 14 Nov 2023 22:13:23 GMT", now: now) == 3)
        #expect(HandlerRunner.retryAfter("Tue, 14 Nov 2023 22:13:00 GMT", now: now) == 0, "a date passed: no wait")
        #expect(HandlerRunner.retryAfter("soon", now: now) == nil)
        #expect(HandlerRunner.retryAfter(nil, now: now) == nil)
        let waits = (1...8).map { HandlerRunner.backoff(afterTry: $0) }
        #expect(waits[0] >= 0.8 && waits[0] <= 1.2 && waits[1] >= 1.6 && waits[1] <= 2.4, "\(waits)")
        #expect(waits.allSatisfy { $0 <= HandlerRunner.llmMaxBackoffSeconds * 1.2 }, "\(waits)")
    }

    @Test("the endpoint's own message comes out of OpenAI's, Ollama's, vLLM's and FastAPI's error shapes")
    func errorMessages() {
        let shapes = [
            #"{"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}"#,
            #"{"error": "Incorrect API key provided"}"#,
            #"{"object": "error", "message": "Incorrect API key provided"}"#,
            #"{"detail": "Incorrect API key provided"}"#,
            "Incorrect API key provided\n",
        ]
        for shape in shapes {
            #expect(HandlerRunner.endpointMessage(Array(shape.utf8)) == "Incorrect API key provided", "\(shape)")
        }
        #expect(HandlerRunner.endpointMessage([]) == nil)
    }

    @Test("a JSON answer is parsed (a code fence dropped); prose fails the run keeping the text and the usage; no choices fails it")
    func completions() {
        func answer(_ content: String, finish: String = "stop") -> [UInt8] {
            Array(
                JSON.serialize(
                    .object([
                        "model": "m-2024",
                        "choices": .array([.object(["message": .object(["content": .string(content)]), "finish_reason": .string(finish)])]),
                        "usage": .object(["prompt_tokens": .int(11), "completion_tokens": .int(7)]),
                    ])
                ).utf8)
        }
        let (parsed, text) = HandlerRunner.completion(answer("```json\n{\"a\": 1}\n```"), llm: llm, code: 200, outputLimit: 1000)
        #expect(parsed.status == .succeeded && parsed.result == .object(["a": .int(1)]) && text?.contains("```") == true)
        #expect(parsed.usage == RunUsage(inputTokens: 11, outputTokens: 7, model: "m-2024"))
        let (prose, _) = HandlerRunner.completion(answer("{\"a\": ", finish: "length"), llm: llm, code: 200, outputLimit: 1000)
        #expect(prose.status == .failed && prose.output == "{\"a\": " && prose.usage?.inputTokens == 11)
        #expect(prose.message?.contains("not JSON") == true && prose.message?.contains("cut off at max_tokens") == true, "\(prose.message ?? "")")
        var words = llm
        words.json = false
        let (plain, _) = HandlerRunner.completion(answer("Reboot."), llm: words, code: 200, outputLimit: 1000)
        #expect(plain.result == .object(["answer": "Reboot.", "finish_reason": "stop", "model": "m-2024"]))
        let (empty, _) = HandlerRunner.completion(Array(#"{"hello": 1}"#.utf8), llm: llm, code: 200, outputLimit: 1000)
        #expect(empty.status == .failed && empty.message?.contains("not a chat completion") == true)
        let request = HandlerRunner.chatRequest(llm, system: "s", prompt: "p")
        #expect(request[path: "response_format.type"] == "json_object" && request[path: "messages"]?.arrayValue?.count == 2)
        #expect(request[path: "temperature"] == nil && request[path: "max_tokens"] == nil)
    }
}
