import AgentryCore
import Foundation
import Hummingbird
import NIOCore
import Testing

/// An HTTP server for http handlers to call, on 127.0.0.1 and a port of its own, served by Hummingbird in this
/// process:
/// - `POST /ok`: 200 with `{"received_id": <the envelope's id>, "header": <X-Test>, "events": [{"type":
///   "answered.ok", "payload": {"id": …}}]}`;
/// - `GET /ok`: 200 with `{"reached": "ok"}`;
/// - `/redirect`: 302 to `http://127.0.0.1:<port>/ok`;
/// - `/big`: 200 with 2 MiB;
/// - any other path: 500 with `{"error": "no"}`.
final class HTTPTestServer: Sendable {
    let port: Int
    private let task: Task<Void, any Error>

    init() async throws {
        let router = Router()
        let port = NIOLockedPort()
        router.post("ok") { request, context -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            let envelope = try JSON.parse(Array(buffer: body))
            let id = envelope[path: "id"] ?? .null
            let answer: JSONValue = .object([
                "received_id": id, "header": request.headers[.init("X-Test")!].map(JSONValue.string) ?? .null,
                "events": .array([.object(["type": "answered.ok", "payload": .object(["id": id])])]),
            ])
            return StandInServer.json(answer, status: .ok)
        }
        router.get("ok") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: #"{"reached": "ok"}"#)))
        }
        router.on("redirect", method: .post) { _, _ in Self.redirect(port: port.value) }
        router.on("redirect", method: .get) { _, _ in Self.redirect(port: port.value) }
        router.on("big", method: .post) { _, _ in
            Response(status: .ok, body: .init(byteBuffer: ByteBuffer(repeating: UInt8(ascii: "x"), count: 2 << 20)))
        }
        router.on("big", method: .get) { _, _ in
            Response(status: .ok, body: .init(byteBuffer: ByteBuffer(repeating: UInt8(ascii: "x"), count: 2 << 20)))
        }
        router.post("**") { _, _ in StandInServer.json(.object(["error": "no"]), status: .internalServerError) }
        let (task, bound) = try await StandInServer.serve(router)
        self.task = task
        port.value = bound
        self.port = bound
    }

    func stop() { task.cancel() }

    private static func redirect(port: Int) -> Response {
        Response(status: .found, headers: [.location: "http://127.0.0.1:\(port)/ok", .contentLength: "0"])
    }

    struct TestServerError: Error, CustomStringConvertible {
        var description: String { "the test HTTP server did not start" }
    }
}

/// The port, known once the server listens, for the redirect route made before.
private final class NIOLockedPort: @unchecked Sendable {
    // @unchecked: written once before the first request can arrive, read by requests after.
    private let lock = NSLock()
    private var port = 0
    var value: Int {
        get { lock.withLock { port } }
        set { lock.withLock { port = newValue } }
    }
}
