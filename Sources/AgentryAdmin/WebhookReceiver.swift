import AgentryBus
import AgentryCore
import AgentryStore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore

/// `POST /api/webhooks/{source}`: a signed request from outside becomes an event. The signature is checked over the
/// exact bytes received before anything parses them; every request, accepted or refused, is recorded in
/// `webhook_deliveries` and counted; a delivery id already accepted publishes nothing again (docs/webhooks.md).
final class WebhookReceiver: Sendable {
    let dependencies: AdminDependencies
    /// Where secrets are looked up by their variable's name (``AdminConfiguration/webhookSecrets``).
    let secrets: [String: String]
    private let state = NIOLockedValueBox(State())

    private struct State {
        var lastPrune: ContinuousClock.Instant?
        /// Sources whose secret was found missing, told in the log once.
        var warnedNoSecret: Set<String> = []
    }

    init(dependencies: AdminDependencies, secrets: [String: String]) {
        self.dependencies = dependencies
        self.secrets = secrets
    }

    var logger: Logger { dependencies.logger }
    var store: WebhookStore { WebhookStore(database: dependencies.database, logger: logger) }

    /// The path of a delivery: `POST /api/webhooks/<one segment>`.
    static func isDelivery(method: HTTPRequest.Method, path: String) -> Bool {
        guard method == .post, path.hasPrefix("/api/webhooks/") else { return false }
        let rest = path.dropFirst("/api/webhooks/".count)
        return !rest.isEmpty && !rest.contains("/")
    }

    /// A source by name: the file's (`webhooks.yaml`) first, then those stored through the API.
    func source(named name: String) async throws -> (source: WebhookSource, fromFile: Bool)? {
        if let source = dependencies.topology.webhookSources.first(where: { $0.name == name }) { return (source, true) }
        guard WebhookSource.nameProblem(name) == nil else { return nil }
        return try await store.source(named: name).map { ($0, false) }
    }

    /// The source's secret, when its variable is set and not empty.
    func secret(of source: WebhookSource) -> String? {
        guard let value = secrets[source.secretEnv], !value.isEmpty else { return nil }
        return value
    }

    func receive(_ request: Request, name: String, remote: String?) async throws -> Response {
        var logger = self.logger
        logger[metadataKey: "agentry.webhook.source"] = "\(name)"
        logger[metadataKey: "http.remote"] = "\(remote ?? "-")"
        let claimedID = Self.claimedDeliveryID(request.headers)
        func refuse(_ status: HTTPResponse.Status, _ refusal: WebhookRefusal, source: String?, code: String) async -> AdminError {
            logger.warning("webhook refused", metadata: ["agentry.webhook.reason": "\(refusal.reason.rawValue)", "reason": "\(refusal.message)"])
            Counter(label: "agentry_webhooks_refused_total", dimensions: [("source", source ?? "(unknown)"), ("reason", refusal.reason.rawValue)])
                .increment()
            await record(
                .init(
                    source: source ?? String(name.prefix(63)), deliveryID: claimedID, eventID: nil, outcome: .refused,
                    reason: refusal.reason.rawValue, detail: refusal.message, remote: remote), logger: logger)
            return AdminError(status: status, code: code, message: refusal.message)
        }

        guard let found = try await self.source(named: name) else {
            throw await refuse(
                .notFound, WebhookRefusal(reason: .unknownSource, message: "no webhook source is named '\(name)'"), source: nil, code: "not_found")
        }
        let source = found.source
        let limit = source.maxBodyBytes
        let tooLarge = WebhookRefusal(reason: .tooLarge, message: "the body is larger than this source's limit of \(limit) bytes (max_body_kb)")
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
            throw await refuse(.contentTooLarge, tooLarge, source: name, code: "payload_too_large")
        }
        var request = request
        let bytes: [UInt8]
        do {
            bytes = Array(buffer: try await request.collectBody(upTo: limit))
        } catch {
            throw await refuse(.contentTooLarge, tooLarge, source: name, code: "payload_too_large")
        }
        guard let secret = secret(of: source) else {
            let first = state.withLockedValue { $0.warnedNoSecret.insert(name).inserted }
            if first {
                logger.error(
                    "webhook source '\(name)' has no secret: its environment variable \(source.secretEnv) is unset or empty in this process; every request to it is refused (401) until it is set and the process restarted"
                )
            }
            throw await refuse(
                .unauthorized,
                WebhookRefusal(reason: .noSecret, message: "this source's secret is not configured on the server; nothing is accepted"),
                source: name, code: "no_secret")
        }
        let headers = request.headers
        let verified = WebhookSignature.verify(
            source, secret: secret, header: { HTTPField.Name($0).flatMap { headers[$0] } }, body: bytes)
        let deliveryID: String
        switch verified {
        case .success(let id): deliveryID = String(id.prefix(255))
        case .failure(let refusal): throw await refuse(.unauthorized, refusal, source: name, code: refusal.reason.rawValue)
        }
        logger[metadataKey: "agentry.webhook.delivery"] = "\(deliveryID)"

        let body: JSONValue
        switch Self.body(bytes, contentType: headers[.contentType], scheme: source.scheme) {
        case .success(let value): body = value
        case .failure(let problem):
            throw await refuse(problem.status, WebhookRefusal(reason: .badBody, message: problem.message), source: name, code: problem.code)
        }
        var fields: [String: String] = [:]
        for field in headers where fields[field.name.canonicalName] == nil { fields[field.name.canonicalName] = field.value }
        let event: Event
        switch source.event(for: WebhookContent(headers: fields, body: body), deliveryID: deliveryID) {
        case .success(let value): event = value
        case .failure(let problem):
            throw await refuse(
                problem.badBody ? .badRequest : .unprocessableContent,
                WebhookRefusal(reason: problem.badBody ? .badBody : .badEvent, message: problem.message), source: name,
                code: problem.badBody ? "bad_request" : "invalid_event")
        }

        // A delivery id accepted before publishes nothing again. Two copies arriving at once may both publish; they
        // carry the same event id (derived from source and delivery id), which the event log and the claims hold once.
        if let first = try await store.acceptedEvent(source: name, deliveryID: deliveryID) {
            logger.info("webhook delivery already accepted: nothing published", metadata: ["agentry.event.id": "\(first)"])
            Counter(label: "agentry_webhooks_refused_total", dimensions: [("source", name), ("reason", WebhookRefusal.Reason.duplicate.rawValue)])
                .increment()
            await record(.init(source: name, deliveryID: deliveryID, eventID: first, outcome: .duplicate, remote: remote), logger: logger)
            return JSONResponse.make(
                .object(["duplicate": true, "event_id": .string(first), "message": "delivery already accepted; nothing published"]))
        }
        do {
            try await dependencies.bus.publish(event)
        } catch {
            // Not recorded: the sender retries, and that delivery is then accepted.
            throw AdminError.unavailable("RabbitMQ did not take the event: \(error)")
        }
        Counter(label: "agentry_webhooks_accepted_total", dimensions: [("source", name)]).increment()
        logger.info("webhook accepted", metadata: ["agentry.event.id": "\(event.id)", "agentry.event.type": "\(event.type)"])
        await record(.init(source: name, deliveryID: deliveryID, eventID: event.id.rawValue, outcome: .accepted, remote: remote), logger: logger)
        return JSONResponse.make(
            .object([
                "duplicate": false, "event_id": .string(event.id.rawValue), "type": .string(event.type), "message": "Event published",
            ]), status: .accepted)
    }

    /// Records a delivery, and prunes old ones at most once a minute. A failure is logged: the answer stands (the
    /// event, if any, is published).
    private func record(_ delivery: WebhookStore.Delivery, logger: Logger) async {
        do {
            try await store.record(delivery)
            let now = ContinuousClock.now
            let due = state.withLockedValue { state in
                guard state.lastPrune.map({ now - $0 >= .seconds(60) }) ?? true else { return false }
                state.lastPrune = now
                return true
            }
            if due { try await store.prune() }
        } catch {
            logger.warning("cannot record a webhook delivery", metadata: ["error": "\(error)"])
        }
    }

    /// The delivery id a request claims, before it is verified (for the record of a refusal only).
    static func claimedDeliveryID(_ headers: HTTPFields) -> String? {
        for name in ["X-GitHub-Delivery", "X-Gitlab-Event-UUID", "Idempotency-Key", "X-Delivery-Id"] {
            if let field = HTTPField.Name(name), let value = headers[field], !value.isEmpty { return String(value.prefix(255)) }
        }
        return nil
    }

    struct BodyProblem: Error {
        var status: HTTPResponse.Status
        var code: String
        var message: String
    }

    /// The body as JSON: `application/json` (or any `+json`), or for GitHub `application/x-www-form-urlencoded` with
    /// the JSON in its `payload` field.
    static func body(_ bytes: [UInt8], contentType: String?, scheme: WebhookSource.Scheme) -> Result<JSONValue, BodyProblem> {
        let type = contentType?.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        var json = bytes
        if type == "application/x-www-form-urlencoded" && scheme == .github {
            guard let payload = form(bytes)["payload"] else {
                return .failure(
                    .init(status: .badRequest, code: "bad_request", message: "the form has no 'payload' field (GitHub puts the JSON there)"))
            }
            json = Array(payload.utf8)
        } else if !(type == "application/json" || (type.hasPrefix("application/") && type.hasSuffix("+json"))) {
            let form = scheme == .github ? " or application/x-www-form-urlencoded with a payload field" : ""
            return .failure(
                .init(
                    status: .unsupportedMediaType, code: "unsupported_media_type",
                    message:
                        "\(type.isEmpty ? "a body without Content-Type" : "Content-Type \(type)") is not taken here: send application/json\(form)"))
        }
        do {
            return .success(try JSON.parse(json))
        } catch {
            return .failure(.init(status: .badRequest, code: "bad_request", message: "the body is not JSON: \(error)"))
        }
    }

    /// The fields of an `application/x-www-form-urlencoded` body (the first value of each).
    static func form(_ bytes: [UInt8]) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in String(decoding: bytes, as: UTF8.self).split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ text: Substring) -> String? { text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding }
            guard let key = decode(parts[0]), fields[key] == nil else { continue }
            fields[key] = parts.count > 1 ? decode(parts[1]) ?? "" : ""
        }
        return fields
    }
}
