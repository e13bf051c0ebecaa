import Foundation
import HTTPTypes
import Hummingbird

/// What every admin request passes before its route: the checks that keep web pages the user happens to open, and
/// DNS names rebound to this address, from reaching the endpoint through the user's browser.
///
/// 1. `Host` names the endpoint: its bound address, `localhost` when it listens on loopback, an IP address when it
///    listens on every address, or a name given with `--admin-allowed-host`. A rebound name (`evil.example` resolving
///    to 127.0.0.1) is refused, so a foreign page reads nothing either.
/// 2. A request that changes state, and every WebSocket upgrade, that carries `Origin` comes from the endpoint's own
///    origin (the scheme and the `Host` it was sent to). Browsers always send `Origin` on these; other clients don't.
/// 3. A body declares `application/json` (or, to register an agent, `application/yaml`): 415 otherwise. The types a
///    page may send cross-site without asking first (`text/plain`, forms) are refused.
/// 4. A request that changes state carries `Authorization: Bearer <token>`. Reads need it too off loopback; the
///    status WebSocket needs it (`?token=`) off loopback and from a browser. The page, the probes (`/healthz`,
///    `/readyz`, `/metrics`) and `/openapi.json` are open; `/readyz` gives details only with the token.
///
/// A webhook delivery, `POST /api/webhooks/<source>`, passes none of these: its signature, made with the source's
/// secret, is its credential (``WebhookReceiver``). Its sender (GitHub, GitLab, …) names the endpoint by its public
/// name, sends no `Origin`, and may send a form; a page that makes a browser send one cannot sign it.
struct AdminGuard<Context: RequestContext>: RouterMiddleware {
    let configuration: AdminConfiguration

    static var statusWebSocketPath: String { "/api/runtime/instances/status" }
    /// Paths anyone who reaches the endpoint may read.
    static var openPaths: Set<String> { ["/", "/healthz", "/readyz", "/metrics", "/openapi.json"] }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if WebhookReceiver.isDelivery(method: request.method, path: request.uri.path) { return try await next(request, context) }
        let authority = request.head.authority ?? ""
        guard let host = Self.hostName(authority), hostAllowed(host) else {
            throw AdminError(
                status: .forbidden, code: "host_not_allowed",
                message:
                    "Host '\(authority)' does not name this endpoint (\(configuration.host)); to reach it by that name, start it with --admin-allowed-host \(Self.hostName(authority) ?? "NAME")"
            )
        }
        let changes = request.method != .get && request.method != .head && request.method != .options
        let path = request.uri.path
        let webSocket = path == Self.statusWebSocketPath && request.headers[.upgrade]?.lowercased() == "websocket"
        // The origins of web pages (http, https, or "null" for sandboxed and file pages): what browsers send. Other
        // clients may send other values (a WebSocket library sends ws://host); they are no browser, and no threat here.
        let pageOrigins = request.headers[values: .origin].flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            .filter { $0 == "null" || $0.hasPrefix("http://") || $0.hasPrefix("https://") }
        let own = "\(configuration.scheme)://\(authority.lowercased())"
        if changes || webSocket, let foreign = pageOrigins.first(where: { $0 != own }) {
            throw AdminError(
                status: .forbidden, code: "origin_not_allowed",
                message:
                    "a request from the page at \(foreign) may not change anything here or open the status stream; only this endpoint's own page (\(own)) may"
            )
        }
        let browser = !pageOrigins.isEmpty
        if let type = Self.refusedContentType(request, path: path) {
            throw AdminError(status: .unsupportedMediaType, code: "unsupported_media_type", message: type)
        }
        if webSocket {
            if browser || configuration.readsNeedToken {
                let given = request.uri.queryParameters.get("token") ?? bearer(request)
                try check(given, how: "open the status stream with ?token=<admin token>")
            }
        } else if changes || (configuration.readsNeedToken && !Self.openPaths.contains(path)) {
            try check(bearer(request), how: "send Authorization: Bearer <admin token>")
        }
        return try await next(request, context)
    }

    /// Whether the request carries the admin token (for answers that say more to those who hold it).
    static func authorized(_ request: Request, token: String) -> Bool {
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer ") else { return false }
        return constantTimeEqual(String(header.dropFirst(7)), token)
    }

    private func bearer(_ request: Request) -> String? {
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer ") else { return nil }
        return String(header.dropFirst(7))
    }

    private func check(_ given: String?, how: String) throws {
        guard let given, !given.isEmpty else {
            throw AdminError(
                status: .unauthorized, code: "unauthorized",
                message: "this request needs the admin token (AGENTRY_ADMIN_TOKEN, or the one printed at start): \(how)",
                headers: [.wwwAuthenticate: "Bearer realm=\"agentry\""])
        }
        guard Self.constantTimeEqual(given, configuration.token) else {
            throw AdminError(
                status: .unauthorized, code: "unauthorized", message: "the bearer token is not the admin token",
                headers: [.wwwAuthenticate: "Bearer realm=\"agentry\", error=\"invalid_token\""])
        }
    }

    /// The host part of a `Host` value (`name`, `name:port`, `[v6]:port`), lower case; nil when malformed.
    static func hostName(_ authority: String) -> String? {
        let authority = authority.lowercased()
        if authority.hasPrefix("[") {
            guard let end = authority.firstIndex(of: "]") else { return nil }
            let rest = authority[authority.index(after: end)...]
            guard rest.isEmpty || (rest.hasPrefix(":") && rest.dropFirst().allSatisfy(\.isNumber)) else { return nil }
            return String(authority[authority.index(after: authority.startIndex)..<end])
        }
        let parts = authority.split(separator: ":", omittingEmptySubsequences: false)
        guard let name = parts.first, !name.isEmpty, parts.count <= 2 else { return nil }
        if parts.count == 2, parts[1].isEmpty || !parts[1].allSatisfy(\.isNumber) { return nil }
        return String(name)
    }

    func hostAllowed(_ host: String) -> Bool {
        let bound = configuration.host.lowercased().trimmingCharacters(in: ["[", "]"])
        if host == bound || configuration.allowedHosts.contains(host) { return true }
        if configuration.isLoopback, host == "localhost" || AdminConfiguration.isLoopback(host) { return true }
        // On every address, any of this machine's addresses: an IP literal cannot be rebound to another address.
        if configuration.isWildcard, AdminConfiguration.ipv4(host) != nil || host.contains(":") { return true }
        return false
    }

    /// Why the request's body is refused for its declared type, or nil. Bodies are JSON; registering an agent also
    /// takes YAML.
    static func refusedContentType(_ request: Request, path: String) -> String? {
        let length = request.headers[.contentLength].flatMap(Int.init) ?? 0
        let chunked = request.headers[.transferEncoding] != nil
        guard length > 0 || chunked else { return nil }
        let declared = request.headers[.contentType]?.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        let yaml = path == "/api/agents/register"
        let accepted = yaml ? ["application/json", "application/yaml", "application/x-yaml"] : ["application/json"]
        if accepted.contains(declared) { return nil }
        let what = declared.isEmpty ? "a body without Content-Type" : "Content-Type \(declared)"
        return "\(what) is not accepted here: send \(yaml ? "application/yaml or application/json" : "application/json")"
    }

    /// Compares without leaking, through timing, how much of the token matched (only the length may show).
    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var difference = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<max(x.count, y.count) {
            difference |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
        }
        return difference == 0
    }
}
