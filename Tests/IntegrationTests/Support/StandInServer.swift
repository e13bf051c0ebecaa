import AgentryCore
import Foundation
import Hummingbird
import NIOCore

/// What the tests' stand-in HTTP servers share: serving a router on 127.0.0.1 and a free port, and JSON answers.
enum StandInServer {
    /// Serves `router` on 127.0.0.1 and a port of its own; returns the serving task (cancel it to stop) and the port.
    static func serve(_ router: Router<BasicRequestContext>) async throws -> (task: Task<Void, any Error>, port: Int) {
        let (ports, portSink) = AsyncStream<Int>.makeStream()
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in portSink.yield(channel.localAddress?.port ?? 0) },
            logger: TestEnvironment.logger)
        let task = Task { try await app.run() }
        var iterator = ports.makeAsyncIterator()
        guard let bound = await iterator.next(), bound > 0 else {
            task.cancel()
            throw HTTPTestServer.TestServerError()
        }
        return (task, bound)
    }

    /// A JSON answer, with `extra` headers.
    static func json(_ value: JSONValue, status: HTTPResponse.Status, extra: HTTPFields = [:]) -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        headers.append(contentsOf: extra)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: JSON.serialize(value).utf8)))
    }
}
