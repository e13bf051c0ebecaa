import AgentryBus
import AgentryCore
import AgentryStore
import HTTPTypes
import Logging
import NIOCore

/// Webhook sources (those of webhooks.yaml, and those stored through the API) and the deliveries received. The
/// deliveries themselves arrive at a plain route (``WebhookReceiver``), which needs the raw bytes.
extension AdminAPI {
    func listWebhookSources(_ input: Operations.ListWebhookSources.Input) async throws -> Operations.ListWebhookSources.Output {
        let fromFile = dependencies.topology.webhookSources
        let names = Set(fromFile.map(\.name))
        let stored = try await webhooks.store.sources().filter { !names.contains($0.name) }
        let sources = fromFile.map { representation($0, origin: "file") } + stored.map { representation($0, origin: "api") }
        return .ok(.init(body: .json(.init(sources: sources, count: sources.count))))
    }

    func listWebhookDeliveries(_ input: Operations.ListWebhookDeliveries.Input) async throws -> Operations.ListWebhookDeliveries.Output {
        let deliveries = try await webhooks.store.recentDeliveries(limit: try limit(input.query.limit, default: 50))
        let shown = deliveries.map(Representation.webhookDelivery)
        return .ok(.init(body: .json(.init(deliveries: shown, count: shown.count))))
    }

    func putWebhookSource(_ input: Operations.PutWebhookSource.Input) async throws -> Operations.PutWebhookSource.Output {
        let name = input.path.source
        if let problem = WebhookSource.nameProblem(name) { throw AdminError.badRequest("source: \(problem)") }
        try refuseFileSource(name, "changed")
        // The text as sent: JSON is YAML, so the file's reader checks it, with line and column.
        let body = AdminRequest.current.body
        guard body.readableBytes > 0 else { throw AdminError.badRequest("the request body is empty: send the source's settings as a JSON object") }
        let source: WebhookSource
        do {
            source = try WebhookSource.parse(yaml: String(buffer: body), name: name, file: "request body")
        } catch {
            let problems: [JSONValue] = error.problems.map { problem in
                .object([
                    "path": .string(problem.path), "line": problem.line.map { .int(Int64($0)) } ?? .null,
                    "column": problem.column.map { .int(Int64($0)) } ?? .null, "message": .string(problem.message),
                    "suggestion": Representation.string(problem.suggestion),
                ])
            }
            throw AdminError(
                status: .unprocessableContent, code: "invalid_webhook_source",
                message: "the webhook source has \(error.problems.count) problem(s): \(error.problems.map(\.description).joined(separator: "; "))",
                extra: ["problems": .array(problems)])
        }
        let created = try await webhooks.store.put(source)
        logger.info(
            "webhook source \(created ? "added" : "replaced") through the API",
            metadata: ["agentry.webhook.source": "\(name)", "agentry.webhook.secret_env": "\(source.secretEnv)"])
        let shown = representation(source, origin: "api")
        return created ? .created(.init(body: .json(shown))) : .ok(.init(body: .json(shown)))
    }

    func deleteWebhookSource(_ input: Operations.DeleteWebhookSource.Input) async throws -> Operations.DeleteWebhookSource.Output {
        let name = input.path.source
        try refuseFileSource(name, "removed")
        guard try await webhooks.store.delete(named: name) else { throw AdminError.notFound("no webhook source '\(name)' was added through the API") }
        logger.info("webhook source removed through the API", metadata: ["agentry.webhook.source": "\(name)"])
        return .ok(.init(body: .json(.init(name: name, message: "Webhook source removed"))))
    }

    private func refuseFileSource(_ name: String, _ what: String) throws {
        guard dependencies.topology.webhookSources.contains(where: { $0.name == name }) else { return }
        throw AdminError.conflict(
            "webhook source '\(name)' is defined in webhooks.yaml (the topology directory) and cannot be \(what) through the API; edit the file and restart"
        )
    }

    /// A source as the API shows it: its settings, where it comes from, and whether its secret is set here (never
    /// the secret).
    func representation(_ source: WebhookSource, origin: String) -> JSONValue {
        var object = source.jsonValue().objectValue ?? [:]
        object["name"] = .string(source.name)
        object["origin"] = .string(origin)
        object["secret_present"] = .bool(webhooks.secret(of: source) != nil)
        object["url_path"] = .string("/api/webhooks/\(source.name)")
        return .object(object)
    }
}
