import AgentryRuntime
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
/// 3. A body declares `application/json` (or, to register or check an agent, `application/yaml`): 415 otherwise. The
///    types a page may send cross-site without asking first (`text/plain`, forms) are refused.
/// 4. A request that changes state carries `Authorization: Bearer <token>`. Reads need it too off loopback; the
///    status WebSocket needs it (`?token=`) off loopback and from a browser. The page, the probes (`/healthz`,
///    `/readyz`, `/metrics`) and `/openapi.json` are open; `/readyz` gives details only with the token.
///
/// A webhook delivery, `POST /api/webhooks/<source>`, passes none of these: its signature, made with the source's
/// secret, is its credential (``WebhookReceiver``). Its sender (GitHub, GitLab, …) names the endpoint by its public
/// name, sends no `Origin`, and may send a form; a page that makes a browser send one cannot sign it.
struct AdminGuard<Context: RequestContext>: RouterMiddleware {
    let configuration: AdminConfiguration
    /// The key run tokens are checked with (read from the database once, then kept).
    let runTokenKey: @Sendable () async throws -> [UInt8]?

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
            let given = bearer(request)
            if let given, RunToken.isRunToken(given) {
                // A handler's run token: only the few calls its grants allow.
                let token = try await runToken(given)
                if let refusal = Self.refusal(of: token, method: request.method, path: path) {
                    throw AdminError(status: .forbidden, code: "outside_run_token_grants", message: refusal)
                }
                return try await AdminIdentity.$current.withValue(.run(token)) { try await next(request, context) }
            }
            let name = try check(given, how: "send Authorization: Bearer <admin token>")
            return try await AdminIdentity.$current.withValue(.admin(name)) { try await next(request, context) }
        }
        if let given = bearer(request), !RunToken.isRunToken(given), let name = tokenName(given) {
            return try await AdminIdentity.$current.withValue(.admin(name)) { try await next(request, context) }
        }
        return try await next(request, context)
    }

    /// A run token whose signature holds and that has not expired; 401 otherwise, saying why.
    private func runToken(_ text: String) async throws -> RunToken {
        guard let key = try await runTokenKey() else {
            throw AdminError(
                status: .unauthorized, code: "unauthorized", message: "this endpoint cannot check run tokens (its database has no run-token key)")
        }
        switch RunToken.verify(text, key: key) {
        case .success(let token): return token
        case .failure(let refusal):
            throw AdminError(
                status: .unauthorized, code: "unauthorized", message: refusal.description,
                headers: [.wwwAuthenticate: "Bearer realm=\"agentry\", error=\"invalid_token\""])
        }
    }

    /// Why a run token may not make this request, or nil when it may: publish events, invoke a subagent its definition
    /// names, report its own run's progress, and read.
    static func refusal(of token: RunToken, method: HTTPRequest.Method, path: String) -> String? {
        if method == .get || method == .head { return nil }
        let parts = path.split(separator: "/").map(String.init)
        if method == .post, path == "/api/events" { return nil }
        if method == .post, parts.count == 4, parts[0] == "api", parts[1] == "agents", parts[3] == "invoke" {
            return token.subagents.contains(parts[2])
                ? nil
                : "the run token of \(token.agentID) may invoke only the subagents its definition names (\(token.subagents.isEmpty ? "none" : token.subagents.joined(separator: ", "))), not \(parts[2])"
        }
        if method == .post, parts.count == 4, parts[0] == "api", parts[1] == "runs", parts[3] == "progress" || parts[3] == "approvals" {
            return parts[2].lowercased() == token.runID.uuidString.lowercased()
                ? nil : "a run token may report the progress of, and ask approvals for, its own run only"
        }
        return
            "a run token (of \(token.agentID)) may publish events, invoke its subagents, report its run's progress and ask approvals for it; \(method) \(path) needs an admin token"
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

    /// The name of the admin token `given` is (`admin`, or a name of `AGENTRY_ADMIN_TOKENS`), or nil.
    private func tokenName(_ given: String) -> String? {
        var found: String?
        // Every token is compared, so that the time taken does not tell which one matched.
        if Self.constantTimeEqual(given, configuration.token) { found = "admin" }
        for (name, token) in configuration.namedTokens where Self.constantTimeEqual(given, token) { found = name }
        return found
    }

    /// The name of the admin token the request carries; 401 when it carries none, or another.
    @discardableResult
    private func check(_ given: String?, how: String) throws -> String {
        guard let given, !given.isEmpty else {
            throw AdminError(
                status: .unauthorized, code: "unauthorized",
                message: "this request needs the admin token (AGENTRY_ADMIN_TOKEN, or the one printed at start): \(how)",
                headers: [.wwwAuthenticate: "Bearer realm=\"agentry\""])
        }
        guard let name = tokenName(given) else {
            throw AdminError(
                status: .unauthorized, code: "unauthorized", message: "the bearer token is not the admin token",
                headers: [.wwwAuthenticate: "Bearer realm=\"agentry\", error=\"invalid_token\""])
        }
        return name
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

    /// Why the request's body is refused for its declared type, or nil. Bodies are JSON; registering and checking an
    /// agent also take YAML.
    static func refusedContentType(_ request: Request, path: String) -> String? {
        let length = request.headers[.contentLength].flatMap(Int.init) ?? 0
        let chunked = request.headers[.transferEncoding] != nil
        guard length > 0 || chunked else { return nil }
        let declared = request.headers[.contentType]?.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        let yaml = path == "/api/agents/register" || path == "/api/agents/validate"
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
