import AgentryCore
import Foundation

/// Langfuse's batch ingestion format (`POST /api/public/ingestion`, `IngestionRequest` in Langfuse's API definition):
/// `{"batch": [event, …]}`, each event an envelope `{id, timestamp, type, body}` whose `id` (a UUID v4) Langfuse
/// deduplicates on and names in its answer. A generation becomes two events: a `trace-create` whose body's id is the
/// run's id (an upsert: every attempt of a run sends it again, and the trace keeps one id) and a `generation-create`
/// in that trace. Langfuse answers 207 with `{"successes": [{id, status}], "errors": [{id, status, message, error}]}`:
/// input errors are reported per event there, not as a 4xx.
enum LangfuseIngestion {
    /// One generation's two events as JSON text (`{…},{…}`), and their envelope ids.
    struct Encoded: Sendable {
        var eventIDs: [String]
        var text: String
    }

    /// An event Langfuse did not take, from a 207 answer.
    struct EventError: Sendable, Equatable {
        var id: String
        var status: Int?
        var message: String
    }

    static func encode(_ generation: LangfuseGeneration, maxTextBytes: Int, now: Date = Date()) -> Encoded {
        let g = generation
        let traceID = g.runID.uuidString.lowercased()
        let timestamp = JSONValue.string(Timestamp.format(now))
        func text(_ value: String) -> JSONValue { .string(cut(value, to: maxTextBytes)) }
        var messages: [JSONValue] = []
        if let system = g.system { messages.append(["role": "system", "content": text(system)]) }
        messages.append(["role": "user", "content": text(g.prompt)])
        let input = JSONValue.array(messages)
        let output = g.output.map(text) ?? .null

        var trace: [String: JSONValue] = [
            "id": .string(traceID), "timestamp": .string(Timestamp.format(g.startedAt)), "name": .string(g.agentID),
            "version": .string(g.agentVersion), "input": input, "output": output, "tags": ["agentry"],
            "metadata": [
                "agent_id": .string(g.agentID), "agent_version": .string(g.agentVersion), "event_id": .string(g.eventID),
                "event_type": .string(g.eventType),
            ],
        ]
        if output == .null { trace["output"] = nil }

        var usage: [String: JSONValue] = [:]
        if let tokens = g.inputTokens { usage["input"] = .int(Int64(tokens)) }
        if let tokens = g.outputTokens { usage["output"] = .int(Int64(tokens)) }
        if let input = g.inputTokens, let output = g.outputTokens { usage["total"] = .int(Int64(input + output)) }
        var metadata: [String: JSONValue] = [
            "agent_id": .string(g.agentID), "event_id": .string(g.eventID), "event_type": .string(g.eventType),
            "attempts": .int(Int64(g.attempts)),
        ]
        let currency = g.currency?.uppercased() ?? "USD"
        if let cost = g.cost {
            metadata["cost"] = .double(cost)
            metadata["currency"] = .string(currency)
        }
        var body: [String: JSONValue] = [
            "id": .string(UUID().uuidString.lowercased()), "traceId": .string(traceID), "name": .string(g.agentID),
            "startTime": .string(Timestamp.format(g.startedAt)), "endTime": .string(Timestamp.format(g.endedAt)),
            "model": .string(g.model), "input": input, "version": .string(g.agentVersion), "metadata": .object(metadata),
            "level": .string(g.error == nil ? "DEFAULT" : "ERROR"),
        ]
        if output != .null { body["output"] = output }
        if !g.modelParameters.isEmpty { body["modelParameters"] = .object(g.modelParameters) }
        if !usage.isEmpty { body["usageDetails"] = .object(usage) }
        // Langfuse's costs are in USD; another currency stays in the metadata only.
        if let cost = g.cost, currency == "USD" { body["costDetails"] = ["total": .double(cost)] }
        if let error = g.error { body["statusMessage"] = text(error) }

        let traceEvent = UUID().uuidString.lowercased()
        let generationEvent = UUID().uuidString.lowercased()
        let events: [JSONValue] = [
            ["id": .string(traceEvent), "timestamp": timestamp, "type": "trace-create", "body": .object(trace)],
            ["id": .string(generationEvent), "timestamp": timestamp, "type": "generation-create", "body": .object(body)],
        ]
        return Encoded(eventIDs: [traceEvent, generationEvent], text: events.map(JSON.serialize).joined(separator: ","))
    }

    /// The request body for these generations.
    static func body(_ items: [Encoded]) -> String {
        "{\"batch\":[" + items.map(\.text).joined(separator: ",") + "]}"
    }

    /// The `errors` of a 200/207 answer; empty when the answer has none or is not the expected JSON.
    static func errors(in answer: [UInt8]) -> [EventError] {
        guard let json = try? JSON.parse(answer), let errors = json[path: "errors"]?.arrayValue else { return [] }
        return errors.compactMap { error in
            guard let id = error[path: "id"]?.stringValue else { return nil }
            let detail = error[path: "error"].map { $0.stringValue ?? JSON.serialize($0) }
            let message = [error[path: "message"]?.stringValue, detail].compactMap { $0 }.joined(separator: ": ")
            return EventError(id: id, status: error[path: "status"]?.intValue.map { Int($0) }, message: message)
        }
    }

    /// `text` cut to at most `limit` UTF-8 bytes (at a character boundary), marked when cut.
    static func cut(_ text: String, to limit: Int) -> String {
        guard text.utf8.count > limit else { return text }
        let marker = " […cut by agentry: \(text.utf8.count) bytes]"
        let budget = max(0, limit - marker.utf8.count)
        var end = text.startIndex
        var bytes = 0
        while end < text.endIndex {
            let size = text[end].utf8.count
            if bytes + size > budget { break }
            bytes += size
            end = text.index(after: end)
        }
        return String(text[..<end]) + marker
    }
}
