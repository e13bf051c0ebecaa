import HTTPTypes
import Hummingbird
import NIOCore
import OpenAPIRuntime

/// The request an admin handler answers, as the generated handlers cannot see it: who sent it (`Host`, the token) and
/// its body as received (registering an agent reports problems by line and column of the text sent).
struct AdminRequest: Sendable {
    var head: HTTPRequest
    var body: ByteBuffer

    @TaskLocal static var current = AdminRequest(head: HTTPRequest(method: .get, scheme: nil, authority: nil, path: "/"), body: ByteBuffer())

    /// Whether the request carries the admin token.
    func authorized(token: String) -> Bool {
        guard let header = head.headerFields[.authorization], header.hasPrefix("Bearer ") else { return false }
        return AdminGuard<BasicRequestContext>.constantTimeEqual(String(header.dropFirst(7)), token)
    }
}

/// Reads a request's body, up to the limit (413 past it), and makes the request the handlers' ``AdminRequest/current``.
/// AdminGuard has checked the body's type.
struct AdminRequestMiddleware<Context: RequestContext>: RouterMiddleware {
    let maxBodySize: Int

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // A webhook delivery's body is read by its receiver, within the source's own limit.
        if WebhookReceiver.isDelivery(method: request.method, path: request.uri.path) { return try await next(request, context) }
        var request = request
        // One name for YAML, the one openapi.yaml gives.
        if let type = request.headers[.contentType], type.lowercased().hasPrefix("application/x-yaml") {
            var head = request.head
            head.headerFields[.contentType] = "application/yaml" + type.dropFirst("application/x-yaml".count)
            request = Request(head: head, body: request.body)
        }
        if let length = request.headers[.contentLength].flatMap(Int.init), length > maxBodySize {
            throw AdminError.tooLarge(maxBodySize)
        }
        var body = ByteBuffer()
        // Requests without a body (reads, WebSocket upgrades) go through as they came.
        if request.headers[.contentLength].flatMap(Int.init) ?? 0 > 0 || request.headers[.transferEncoding] != nil {
            body = try await collect(&request)
        }
        return try await AdminRequest.$current.withValue(AdminRequest(head: request.head, body: body)) {
            do {
                return try await next(request, context)
            } catch let error as ServerError {
                // While the request is at hand: a refusal by the generated code names what does not match.
                throw AdminError.from(error)
            }
        }
    }

    private func collect(_ request: inout Request) async throws -> ByteBuffer {
        do {
            return try await request.collectBody(upTo: maxBodySize)
        } catch {
            if "\(type(of: error))".contains("TooMany") || (error as? HTTPError)?.status == .contentTooLarge {
                throw AdminError.tooLarge(maxBodySize)
            }
            throw error
        }
    }
}

/// Hands the generated code the body ``AdminRequestMiddleware`` read, and no body when the request had none (the
/// transport gives it an empty one, which the code would try to decode). The answers are JSON whatever `Accept` says,
/// so the code does not see it.
struct AdminOperationMiddleware: ServerMiddleware {
    func intercept(
        _ request: HTTPRequest, body: HTTPBody?, metadata: ServerRequestMetadata, operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?)
    )
        async throws -> (HTTPResponse, HTTPBody?)
    {
        var request = request
        request.headerFields[.accept] = nil
        let read = AdminRequest.current.body
        return try await next(request, read.readableBytes == 0 ? nil : HTTPBody(Array(buffer: read)), metadata)
    }
}
