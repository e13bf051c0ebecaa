import AgentryCore
import AgentryStore
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import OpenAPIHummingbird
import OpenAPIRuntime

/// The admin endpoint's router: every request passes ``AdminErrorMiddleware``, ``AdminGuard`` and
/// ``AdminRequestMiddleware``; then the API's routes, generated from openapi.yaml, and beside them the operations it tags
/// `direct`: the status page, its WebSocket, the document itself and the metrics.
enum AdminRoutes {
    typealias Context = AdminRequestContext

    static func router(api: AdminAPI) throws -> Router<Context> {
        let router = Router(context: Context.self)
        router.add(middleware: AdminErrorMiddleware(logger: api.logger))
        let dependencies = api.dependencies
        let keys = RunTokenKeyCache { try await SigningKeys(database: dependencies.database, logger: dependencies.logger).runTokenKey() }
        router.add(middleware: AdminGuard(configuration: api.configuration, runTokenKey: { try await keys.value() }))
        router.add(middleware: AdminRequestMiddleware(maxBodySize: api.configuration.maxBodySize))

        router.get("/") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/html; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: AdminDocuments.statusPage)))
        }
        router.get("/openapi.json") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: AdminDocuments.openAPIJSON)))
        }
        router.get("/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: await api.metrics.render(api.dependencies, hub: api.status))))
        }
        // Signed requests from outside: AdminGuard and AdminRequestMiddleware let them through as they came (no token,
        // any Host, the body unread), for the receiver checks the signature over the exact bytes, within the source's
        // own size limit.
        let webhooks = api.webhooks
        router.post("/api/webhooks/:source") { request, context in
            let name = try context.parameters.require("source")
            return try await webhooks.receive(request, name: name, remote: context.remoteAddress?.ipAddress)
        }
        // AdminGuard checked Host, Origin and the token; the hub tells clients over its limit so, and closes.
        let status = api.status, limit = api.configuration.maxWebSocketClients
        router.ws(
            RouterPath(AdminGuard<Context>.statusWebSocketPath),
            shouldUpgrade: { request, _ in
                guard request.headers[.upgrade]?.lowercased() == "websocket" else {
                    throw AdminError(
                        status: .init(code: 426, reasonPhrase: "Upgrade Required"), code: "upgrade_required",
                        message: "this is the status WebSocket: open it with a WebSocket client (Upgrade: websocket)",
                        headers: [.upgrade: "websocket"])
                }
                return .upgrade([:])
            },
            onUpgrade: { inbound, outbound, _ in
                await status.serve(inbound: inbound, outbound: outbound, limit: limit)
            })

        // Compact JSON, as the other answers.
        try api.registerHandlers(
            on: router,
            configuration: Configuration(dateTranscoder: TimestampTranscoder(), jsonEncodingOptions: [.sortedKeys, .withoutEscapingSlashes]),
            middlewares: [AdminOperationMiddleware()])
        return router
    }
}

/// Every error becomes `{"error": {"code", "message"}}` with its status.
struct AdminErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let answer = AdminError.from(error)
            if answer.status.code >= 500 {
                logger.error("admin request failed", metadata: ["http.path": "\(request.uri.path)", "error": "\(answer.message)"])
            }
            return answer.response
        }
    }
}
