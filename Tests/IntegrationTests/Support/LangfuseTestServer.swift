import AgentryCore
import Foundation
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore

/// A stand-in for Langfuse's ingestion endpoint, on 127.0.0.1 and a port of its own, served by Hummingbird in this
/// process. It keeps every `POST /api/public/ingestion` it receives (its `Authorization` header and its JSON body) and
/// answers as Langfuse does: 207 with `{"successes": […], "errors": […]}`, an event in `errors` (status 400) when its
/// body's `model` is ``refusedModel``. ``failNext(_:)`` makes the next requests answer 500 first.
final class LangfuseTestServer: Sendable {
    /// A received request.
    struct Request: Sendable {
        var authorization: String?
        var body: JSONValue
        /// The batch's events.
        var events: [JSONValue] { body[path: "batch"]?.arrayValue ?? [] }
    }

    /// Generations with this model are refused in the 207 answer.
    static let refusedModel = "refused-model"

    let port: Int
    private let task: Task<Void, any Error>
    private let state: NIOLockedValueBox<(requests: [Request], failures: Int)>

    var url: String { "http://127.0.0.1:\(port)" }

    var requests: [Request] { state.withLockedValue { $0.requests } }

    /// Every event received, in order.
    var events: [JSONValue] { requests.flatMap(\.events) }

    /// The bodies of the received events of this type (`trace-create`, `generation-create`).
    func bodies(_ type: String) -> [JSONValue] {
        events.filter { $0[path: "type"]?.stringValue == type }.compactMap { $0[path: "body"] }
    }

    /// The next `count` requests are answered 500 (and kept).
    func failNext(_ count: Int) { state.withLockedValue { $0.failures = count } }

    init() async throws {
        let router = Router()
        let state = NIOLockedValueBox<(requests: [Request], failures: Int)>(([], 0))
        self.state = state
        router.post("api/public/ingestion") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 8 << 20)
            let json = try JSON.parse(Array(buffer: body))
            let failing = state.withLockedValue { s -> Bool in
                s.requests.append(Request(authorization: request.headers[.authorization], body: json))
                guard s.failures > 0 else { return false }
                s.failures -= 1
                return true
            }
            if failing {
                return StandInServer.json(["message": "Internal Server Error"], status: .internalServerError)
            }
            var successes: [JSONValue] = []
            var errors: [JSONValue] = []
            for event in json[path: "batch"]?.arrayValue ?? [] {
                let id = event[path: "id"] ?? .null
                if event[path: "body.model"]?.stringValue == Self.refusedModel {
                    errors.append(["id": id, "status": 400, "message": "Invalid request data", "error": "model is not allowed"])
                } else {
                    successes.append(["id": id, "status": 201])
                }
            }
            return StandInServer.json(
                ["successes": .array(successes), "errors": .array(errors)], status: .init(code: 207, reasonPhrase: "Multi-Status"))
        }
        let (task, bound) = try await StandInServer.serve(router)
        self.task = task
        self.port = bound
    }

    func stop() { task.cancel() }

}
