import AgentryCore
import Foundation
import Hummingbird
import NIOCore
import Testing

/// An OpenAI-compatible chat-completion endpoint for llm handlers to call, on 127.0.0.1 and a port of its own, served
/// by Hummingbird in this process: `POST /v1/chat/completions`. What it answers is set by the user message, which the
/// tests' prompts fill from the event:
/// - `MODE:429` anywhere: the first request with that message gets 429 with `Retry-After: 1`, the next ones a success;
/// - `MODE:400`: 400 with OpenAI's error shape, whose message is ``badRequestMessage``;
/// - otherwise 200: the answer is the text after `ANSWER:` (to the end of the message), the model ``model``, the usage
///   ``promptTokens`` and ``completionTokens``.
///
/// It keeps every request it received, with the moment it received it.
final class ChatCompletionServer: Sendable {
    static let model = "gpt-test-2024-11-20"
    static let promptTokens = 100
    static let completionTokens = 20
    static let badRequestMessage = "This model's maximum context length is 8192 tokens."

    struct Received: Sendable {
        var at: Date
        var authorization: String?
        var body: JSONValue
        /// The user message.
        var prompt: String { body[path: "messages"]?.arrayValue?.last?[path: "content"]?.stringValue ?? "" }
    }

    let port: Int
    let received = Collector<Received>()
    private let task: Task<Void, any Error>
    var baseURL: String { "http://127.0.0.1:\(port)/v1" }

    init() async throws {
        let router = Router()
        let received = self.received
        router.post("v1/chat/completions") { request, _ -> Response in
            let at = Date()
            let bytes = try await request.body.collect(upTo: 1 << 20)
            let body = try JSON.parse(Array(buffer: bytes))
            let entry = Received(at: at, authorization: request.headers[.authorization], body: body)
            let earlier = await received.values.filter { $0.prompt == entry.prompt }.count
            await received.append(entry)
            let prompt = entry.prompt
            if prompt.contains("MODE:429"), earlier == 0 {
                return StandInServer.json(
                    .object(["error": .object(["message": "Rate limit reached", "type": "requests"])]), status: .tooManyRequests,
                    extra: [.retryAfter: "1"])
            }
            if prompt.contains("MODE:400") {
                return StandInServer.json(
                    .object(["error": .object(["message": .string(Self.badRequestMessage), "type": "invalid_request_error"])]),
                    status: .badRequest)
            }
            let answer = prompt.range(of: "ANSWER:").map { String(prompt[$0.upperBound...]) } ?? "ok"
            return StandInServer.json(
                .object([
                    "id": "chatcmpl-test", "object": "chat.completion", "model": .string(Self.model),
                    "choices": .array([
                        .object(["index": .int(0), "message": .object(["role": "assistant", "content": .string(answer)]), "finish_reason": "stop"])
                    ]),
                    "usage": .object([
                        "prompt_tokens": .int(Int64(Self.promptTokens)), "completion_tokens": .int(Int64(Self.completionTokens)),
                        "total_tokens": .int(Int64(Self.promptTokens + Self.completionTokens)),
                    ]),
                ]), status: .ok)
        }
        let (task, bound) = try await StandInServer.serve(router)
        self.task = task
        port = bound
    }

    func stop() { task.cancel() }

    /// The requests whose user message contains `marker`, in the order received.
    func requests(containing marker: String) async -> [Received] {
        await received.values.filter { $0.prompt.contains(marker) }
    }

}
