import AgentryCore
import AgentryStore
import Foundation
import Logging

/// The admin API's operations (openapi.yaml). The code generated from the document routes requests to them, and
/// checks their parameters and bodies against it before they run; they check what the document cannot say.
struct AdminAPI: APIProtocol {
    let configuration: AdminConfiguration
    let dependencies: AdminDependencies
    let status: StatusHub
    let metrics: AdminMetrics
    let webhooks: WebhookReceiver

    var logger: Logger { dependencies.logger }

    /// Whether the request carries the admin token (answers that say more to those who hold it).
    var callerHasToken: Bool { AdminRequest.current.authorized(token: configuration.token) }

    /// The first value given (the seed's routes take a query parameter, a JSON body may carry the same field).
    func required(_ name: String, _ values: String?...) throws -> String {
        guard let value = values.lazy.compactMap({ $0 }).first(where: { !$0.isEmpty }) else {
            throw AdminError.badRequest("'\(name)' is required (as a query parameter or in a JSON body)")
        }
        return value
    }

    func uuid(_ text: String, _ name: String) throws -> UUID {
        guard let id = UUID(uuidString: text) else { throw AdminError.badRequest("\(name) '\(text)' is not a UUID") }
        return id
    }

    func resource(_ text: String) throws -> ResourceKey {
        switch ResourceKey.parse(naming: text) {
        case .success(let key): return key
        case .failure(let problem): throw AdminError.badRequest(problem.description)
        }
    }

    /// A body's `payload`: a JSON object, `{}` when absent.
    func payloadObject(_ value: JSONValue?) throws -> JSONObject {
        guard let value else { return [:] }
        guard case .object(let object) = value else { throw AdminError.badRequest("'payload' must be a JSON object, not \(value.kindName)") }
        return object
    }

    /// A body's `priority` by name, in any case; NORMAL when absent.
    func priorityLevel(_ name: String?) throws -> Priority {
        guard let name else { return .normal }
        guard let level = Priority(name: name) else {
            throw AdminError.badRequest("'priority' must be one of critical, high, normal, low, not \(JSON.serialize(.string(name)))")
        }
        return level
    }

    func limit(_ value: Int?, default fallback: Int) throws -> Int {
        guard let value else { return fallback }
        guard value > 0, value <= 10_000 else { throw AdminError.badRequest("limit must be a number from 1 to 10000, not '\(value)'") }
        return value
    }
}
