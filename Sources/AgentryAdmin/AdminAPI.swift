public import AMQP
public import AgentryBus
import AgentryCore
import AgentryRuntime
public import AgentryStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
public import Logging
import NIOCore

/// What the admin API works with: the cluster's database and broker.
public struct AdminDependencies: Sendable {
    public let database: Database
    public let connection: AMQPConnection
    public let bus: EventBus
    public let topology: Topology
    /// The schema version this binary needs (for `/readyz`).
    public let expectedSchemaVersion: Int
    public let logger: Logger

    public init(database: Database, connection: AMQPConnection, bus: EventBus, topology: Topology, expectedSchemaVersion: Int, logger: Logger) {
        self.database = database
        self.connection = connection
        self.bus = bus
        self.topology = topology
        self.expectedSchemaVersion = expectedSchemaVersion
        self.logger = logger
    }

    var registry: AgentRegistry {
        AgentRegistry(store: AgentRegistryStore(database: database, logger: logger), bus: bus, topology: topology, logger: logger)
    }
    var runtime: RuntimeStore { RuntimeStore(database: database, logger: logger) }
    var locks: LockStore { LockStore(database: database, logger: logger) }
    var eventLog: EventLogStore { EventLogStore(database: database, logger: logger) }
    var control: AgentControl { AgentControl(store: runtime, connection: connection) }
}

/// The routes of docs/admin-api.md.
struct AdminAPI: Sendable {
    typealias Context = BasicWebSocketRequestContext
    let configuration: AdminConfiguration
    let dependencies: AdminDependencies
    let status: StatusHub
    let metrics: AdminMetrics

    var logger: Logger { dependencies.logger }

    func addRoutes(to router: Router<Context>) {
        router.add(middleware: ErrorMiddleware(logger: logger))
        router.add(middleware: AdminGuard(configuration: configuration))

        router.get("/") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: StatusPage.html)))
        }
        router.get("/healthz") { _, _ in JSONResponse.make(["status": "ok"]) }
        router.get("/readyz") { request, _ in
            await self.readiness(detailed: AdminGuard<Context>.authorized(request, token: self.configuration.token))
        }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(string: await self.metrics.render(self.dependencies, hub: self.status))))
        }
        router.get("/openapi.json") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: OpenAPIDocument.json)))
        }

        // Agents (seed Step 1.3's routes, plus publish and control).
        router.post("/api/agents/register") { request, _ in try await self.register(request) }
        // Also answers `/api/agents/` (the seed's path): the router ignores a trailing slash.
        router.get("/api/agents") { _, _ in try await self.agents() }
        router.get("/api/agents/{agent_id}") { request, context in
            try await self.agent(try context.parameters.require("agent_id"), version: request.uri.queryParameters.get("version"),
                                 revealSecrets: AdminGuard<Context>.authorized(request, token: self.configuration.token))
        }
        router.post("/api/agents/{agent_id}/publish") { request, context in
            var request = request
            let body = try await self.jsonBody(&request, required: false)
            let id = try context.parameters.require("agent_id")
            let publication = try await self.dependencies.registry.publish(agentID: id, version: body["version"]?.stringValue)
            return JSONResponse.make(["agent_id": .string(id), "version": .string(publication.version), "message": "Agent published"])
        }
        for (action, state) in [("pause", DesiredState.paused), ("resume", .running), ("stop", .stopped), ("start", .running)] {
            router.post("/api/agents/{agent_id}/\(action)") { _, context in
                let id = try context.parameters.require("agent_id")
                try await self.dependencies.control.set(state, agentID: id)
                return JSONResponse.make(["agent_id": .string(id), "desired_state": .string(state.rawValue),
                                          "message": .string("Agent \(id): \(action) sent to every worker")])
            }
        }

        // Runtime (seed Step 3.1).
        router.get("/api/runtime/instances") { request, _ in
            let instances = try await self.dependencies.runtime.instances(agentID: request.uri.queryParameters.get("agent_id"))
            return JSONResponse.make(["instances": .array(instances.map(Representation.instance))])
        }
        router.get("/api/runtime/instances/{instance_id}") { _, context in
            let id = try self.uuid(context.parameters.require("instance_id"), "instance_id")
            guard let instance = try await self.dependencies.runtime.instances().first(where: { $0.instanceID == id }) else {
                throw AdminError.notFound("Instance not found: no instance \(id.uuidString.lowercased())")
            }
            return JSONResponse.make(Representation.instance(instance))
        }
        router.post("/api/runtime/instances/start") { request, _ in try await self.startInstance(request) }
        router.post("/api/runtime/instances/{instance_id}/stop") { _, context in
            let id = try self.uuid(context.parameters.require("instance_id"), "instance_id")
            guard let instance = try await self.dependencies.runtime.instances().first(where: { $0.instanceID == id }) else {
                throw AdminError.notFound("Instance not found: no instance \(id.uuidString.lowercased())")
            }
            try await self.dependencies.control.set(.stopped, agentID: instance.agentID)
            return JSONResponse.make(["agent_id": .string(instance.agentID), "instance_id": .string(id.uuidString.lowercased()),
                                      "message": "Agent stopped"])
        }

        // Events (seed Step 4.1, and any event).
        router.post("/api/events/alerts/blackscreen") { request, _ in
            var request = request
            let body = try await self.jsonBody(&request, required: false)
            let device = try self.field("device_id", request: request, body: body)
            return try await self.publish(Event(type: "alert.blackscreen", payload: ["device_id": .string(device), "severity": "critical"],
                                                priority: .critical, source: "agentry.admin"), message: "Alert published")
        }
        router.post("/api/events/alerts/device-offline") { request, _ in
            var request = request
            let body = try await self.jsonBody(&request, required: false)
            let device = try self.field("device_id", request: request, body: body)
            let durationText = try self.field("duration", request: request, body: body)
            guard let duration = Int(durationText), duration >= 0 else {
                throw AdminError.badRequest("duration must be a whole number of seconds (0 or more), not '\(durationText)'")
            }
            return try await self.publish(Event(type: "alert.device_offline",
                                                payload: ["device_id": .string(device), "duration_seconds": .int(Int64(duration)), "severity": "high"],
                                                priority: .high, source: "agentry.admin"), message: "Alert published")
        }
        router.post("/api/events") { request, _ in try await self.publishEvent(request) }

        // Runs.
        router.get("/api/runs") { request, _ in try await self.runs(request) }
        router.get("/api/runs/{run_id}") { _, context in
            let id = try self.uuid(context.parameters.require("run_id"), "run_id")
            guard let run = try await self.dependencies.runtime.run(id: id) else { throw AdminError.notFound("no run \(id.uuidString.lowercased())") }
            return JSONResponse.make(Representation.run(run))
        }
        router.post("/api/runs/{run_id}/cancel") { request, context in
            let id = try self.uuid(context.parameters.require("run_id"), "run_id")
            let run = try await self.dependencies.control.cancel(runID: id, by: "admin API (\(request.head.authority ?? "local"))")
            let what = run.state == .running ? "cancelling the running task" : "dropping the retry it waits for"
            return JSONResponse.make(["run_id": .string(id.uuidString.lowercased()), "message": .string("Run cancelled: \(what)")])
        }

        // Locks.
        router.get("/api/locks") { _, _ in
            let locks = try await self.dependencies.locks.list()
            return JSONResponse.make(["locks": .array(locks.map(Representation.lock)), "count": .int(Int64(locks.count))])
        }
        router.get("/api/locks/{resource}") { _, context in
            JSONResponse.make(Representation.lock(try await self.dependencies.locks.status(try self.resource(context))))
        }
        router.post("/api/locks/{resource}/release") { _, context in
            let key = try self.resource(context)
            guard let released = try await self.dependencies.locks.forceRelease(key) else {
                throw AdminError.notFound("\(key) is not locked")
            }
            try? await self.dependencies.bus.publish(Event(type: "resource.released", payload: [
                "resource_id": .string(key.id), "resource_type": .string(key.type), "resource": .string(key.description),
                "owner_id": .string(released.owner.id), "owner_type": .string(released.owner.kind.rawValue),
                "fencing_token": released.fencingToken.map { .int($0) } ?? .null, "run_id": Representation.id(released.runID),
                "forced": true, "by": "admin API",
            ], priority: .normal, source: "agentry.locks"))
            return JSONResponse.make(["resource": .string(key.description), "owner": .string(released.owner.id),
                                      "owner_type": .string(released.owner.kind.rawValue), "run_id": Representation.id(released.runID),
                                      "message": .string("released \(key): took it from \(released.owner); its worker stops the task")])
        }

        // Dead letters, queues, workers.
        router.get("/api/dead") { request, _ in
            let limit = try self.limit(request, default: 100)
            let parked = try await DeadLetters.list(on: self.dependencies.connection, limit: limit)
            return JSONResponse.make(["messages": .array(parked.map(Representation.parked)), "count": .int(Int64(parked.count))])
        }
        router.post("/api/dead/replay") { request, _ in
            var request = request
            let body = try await self.jsonBody(&request, required: true)
            var ids: Set<String>?
            if body["all"] == .bool(true) {
                ids = nil
            } else if case .array(let items)? = body["ids"], !items.isEmpty, items.allSatisfy({ $0.stringValue != nil }) {
                ids = Set(items.compactMap(\.stringValue))
            } else {
                throw AdminError.badRequest("give the messages to replay as {\"ids\": [\"…\"]} or {\"all\": true}")
            }
            let channel = try await self.dependencies.connection.openChannel(confirms: true)
            defer { channel.close() }
            let report = try await DeadLetters(channel: channel).replayReport(on: self.dependencies.connection, ids: ids)
            return JSONResponse.make([
                "replayed": .int(Int64(report.replayed.count)), "ids": .array(report.replayed.map { .string($0.id) }),
                "refused": .array(report.refused.map { .object(["id": .string($0.message.id), "reason": .string($0.reason)]) }),
            ])
        }
        router.get("/api/queues") { _, _ in JSONResponse.make(["queues": .array(try await self.status.queues())]) }
        router.get("/api/workers") { _, _ in
            JSONResponse.make(["workers": .array(try await self.dependencies.runtime.workers().map(Representation.worker))])
        }

        // AdminGuard checked Host, Origin and the token; the hub tells clients over its limit so, and closes.
        router.ws("/api/runtime/instances/status") { inbound, outbound, _ in
            await self.status.serve(inbound: inbound, outbound: outbound, limit: self.configuration.maxWebSocketClients)
        }
    }

    // MARK: Handlers

    /// What is ready; the reasons for what is not name servers, users and databases only to callers with the token.
    func readiness(detailed: Bool) async -> Response {
        var checks: JSONObject = [:]
        var ready = true
        do {
            try await dependencies.database.ping()
            checks["database"] = "ok"
            let version = try await Migrator.currentVersion(database: dependencies.database, logger: logger) ?? 0
            if version >= dependencies.expectedSchemaVersion {
                checks["migrations"] = "ok"
            } else {
                ready = false
                checks["migrations"] = .string("the schema is at version \(version), this binary needs \(dependencies.expectedSchemaVersion): run `agentry migrate`")
            }
        } catch {
            ready = false
            checks["database"] = .string(detailed ? "\(error)" : "PostgreSQL does not answer (details with the admin token)")
            checks["migrations"] = "unknown (the database does not answer)"
        }
        do {
            _ = try await dependencies.connection.queueStatus(Topology.deadQueue)
            if let reason = dependencies.connection.blockedReason {
                // A memory or disk alarm: publishes wait (consumers still ack, on a connection of their own).
                ready = false
                checks["broker"] = .string("RabbitMQ has blocked publishing (\(reason)): events, follow-ups and retries wait until the alarm clears")
            } else {
                checks["broker"] = "ok"
            }
        } catch {
            ready = false
            checks["broker"] = .string(detailed ? "RabbitMQ does not answer: \(error)" : "RabbitMQ does not answer (details with the admin token)")
        }
        return JSONResponse.make(["status": .string(ready ? "ready" : "not_ready"), "checks": .object(checks)],
                                 status: ready ? .ok : .serviceUnavailable)
    }

    func register(_ request: Request) async throws -> Response {
        var request = request
        // AdminGuard let through only application/yaml or application/json.
        let body = try await collect(&request)
        guard body.readableBytes > 0 else { throw AdminError.badRequest("the request body is empty: send an agent definition (YAML or JSON)") }
        // JSON is YAML: one parser gives both the same validation, with line and column.
        let parsed = Result { () throws(AgentDefinitionError) -> AgentDefinition in
            try AgentDefinition.parse(yaml: String(buffer: body), file: "request body")
        }
        let definition = try Self.definition(parsed)
        let outcome = try await dependencies.registry.register(definition)
        let message: String
        switch outcome {
        case .created: message = "Agent registered successfully"
        case .replaced: message = "Agent registered successfully (the draft was replaced)"
        case .unchanged: message = "Agent already registered with this definition; nothing changed"
        }
        return JSONResponse.make(["agent_id": .string(definition.metadata.id), "version": .string(definition.metadata.version),
                                  "status": "draft", "outcome": .string(outcome.rawValue), "message": .string(message)],
                                 status: outcome == .unchanged ? .ok : .created)
    }

    static func definition(_ parsed: Result<AgentDefinition, AgentDefinitionError>) throws -> AgentDefinition {
        switch parsed {
        case .success(let definition):
            return definition
        case .failure(let error):
            let problems: [JSONValue] = error.problems.map { problem in
                .object([
                    "path": .string(problem.path), "line": problem.line.map { .int(Int64($0)) } ?? .null,
                    "column": problem.column.map { .int(Int64($0)) } ?? .null, "message": .string(problem.message),
                    "suggestion": Representation.string(problem.suggestion),
                ])
            }
            let summary = error.problems.map(\.description).joined(separator: "; ")
            throw AdminError(status: .unprocessableContent, code: "invalid_agent",
                             message: "the agent definition has \(error.problems.count) problem(s): \(summary)",
                             extra: ["problems": .array(problems)])
        }
    }

    func agents() async throws -> Response {
        let agents = try await status.agents()
        return JSONResponse.make(["agents": .array(agents), "count": .int(Int64(agents.count))])
    }

    /// One agent's definition; the values of `exec.env` and `http.headers` (and a password in `http.url`) only to
    /// callers with the token.
    func agent(_ id: String, version: String?, revealSecrets: Bool) async throws -> Response {
        if let version {
            do {
                _ = try SemanticVersion(validating: version)
            } catch {
                throw AdminError.badRequest("version '\(version)' is not a semantic version (e.g. 1.2.0): \(error)")
            }
        }
        let registry = dependencies.registry
        var found = try await registry.definition(agentID: id, version: version)
        if found == nil, version == nil, let latest = try await registry.list().first(where: { $0.agentID == id })?.versions.last {
            found = try await registry.definition(agentID: id, version: latest.version)
        }
        guard let (stored, definition) = found else {
            throw AdminError.notFound("Agent not found: no agent '\(id)'\(version.map { " version \($0)" } ?? "")")
        }
        let shown = revealSecrets ? definition : definition.redactingSecrets()
        let json = revealSecrets ? try JSON.parse(Array(stored.definition.utf8)) : shown.jsonValue()
        return JSONResponse.make(["agent_id": .string(id), "version": .string(stored.version), "status": .string(stored.status.rawValue),
                                  "definition": json, "yaml": .string(shown.yaml()), "secrets_redacted": .bool(!revealSecrets && shown != definition)])
    }

    func startInstance(_ request: Request) async throws -> Response {
        var request = request
        let body = try await jsonBody(&request, required: false)
        let id = try field("agent_id", request: request, body: body)
        let version = request.uri.queryParameters.get("version") ?? body["version"]?.stringValue
        let registry = dependencies.registry
        let active = try await registry.list().first { $0.agentID == id }
        guard let active else { throw AdminError.notFound("no agent '\(id)' is registered") }
        if let version, active.activeVersion != version {
            _ = try await registry.publish(agentID: id, version: version)
        } else if active.activeVersion == nil {
            _ = try await registry.publish(agentID: id)
        }
        try await dependencies.control.set(.running, agentID: id)
        // Workers apply it at once; give them a moment so that the answer can name an instance.
        var instance: InstanceRecord?
        let deadline = ContinuousClock.now + .seconds(2)
        while ContinuousClock.now < deadline {
            instance = try await dependencies.runtime.instances(agentID: id).first { $0.state == .idle || $0.state == .running }
            if instance != nil { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        return JSONResponse.make(["agent_id": .string(id), "instance_id": Representation.id(instance?.instanceID),
                                  "message": "Agent started"], status: .accepted)
    }

    func publishEvent(_ request: Request) async throws -> Response {
        var request = request
        let body = try await jsonBody(&request, required: true)
        guard let type = body["type"]?.stringValue else { throw AdminError.badRequest("'type' is required: the event type, e.g. build.deployed") }
        if let problem = EventType.problem(with: type) { throw AdminError.badRequest("type: \(problem)") }
        var payload: JSONObject = [:]
        if let value = body["payload"] {
            guard case .object(let object) = value else { throw AdminError.badRequest("'payload' must be a JSON object, not \(value.kindName)") }
            payload = object
        }
        var priority = Priority.normal
        if let value = body["priority"] {
            guard let name = value.stringValue, let p = Priority(name: name) else {
                throw AdminError.badRequest("'priority' must be one of critical, high, normal, low, not \(JSON.serialize(value))")
            }
            priority = p
        }
        let event = Event(type: type, payload: payload, priority: priority, source: body["source"]?.stringValue ?? "agentry.admin",
                          correlationID: body["correlation_id"]?.stringValue, causationID: body["causation_id"]?.stringValue)
        if EventWireFormat.encode(event).count > EventWireFormat.defaultMaxBodySize {
            throw AdminError.tooLarge(EventWireFormat.defaultMaxBodySize)
        }
        return try await publish(event, message: "Event published")
    }

    func publish(_ event: Event, message: String) async throws -> Response {
        do {
            try await dependencies.bus.publish(event)
        } catch {
            throw AdminError.unavailable("RabbitMQ did not take the event: \(error)")
        }
        return JSONResponse.make(["event_id": .string(event.id.rawValue), "type": .string(event.type), "priority": .string(event.priority.name),
                                  "message": .string(message)], status: .accepted)
    }

    func runs(_ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        var state: TaskRun.State?
        if let text = query.get("state") {
            guard let s = TaskRun.State(rawValue: text) else {
                throw AdminError.badRequest("state '\(text)' is not one of \(TaskRun.State.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            state = s
        }
        let event = query.get("event_id")
        if let event, EventID(event) == nil { throw AdminError.badRequest("event_id '\(event)' is not an event id (1 to 255 bytes)") }
        let runs = try await dependencies.runtime.runs(agentID: query.get("agent_id"), eventID: event, state: state,
                                                       limit: try limit(request, default: 50))
        return JSONResponse.make(["runs": .array(runs.map(Representation.run)), "count": .int(Int64(runs.count))])
    }

    // MARK: Helpers

    func collect(_ request: inout Request) async throws -> ByteBuffer {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > configuration.maxBodySize {
            throw AdminError.tooLarge(configuration.maxBodySize)
        }
        do {
            return try await request.collectBody(upTo: configuration.maxBodySize)
        } catch {
            if "\(type(of: error))".contains("TooMany") || (error as? HTTPError)?.status == .contentTooLarge {
                throw AdminError.tooLarge(configuration.maxBodySize)
            }
            throw error
        }
    }

    /// The request's JSON object body (an empty object when there is none and none is required).
    func jsonBody(_ request: inout Request, required: Bool) async throws -> JSONObject {
        let body = try await collect(&request)
        if body.readableBytes == 0 {
            if required { throw AdminError.badRequest("the request body is empty: send a JSON object") }
            return [:]
        }
        let value: JSONValue
        do {
            value = try JSON.parse(Array(buffer: body))
        } catch {
            throw AdminError.badRequest("the request body is not JSON: \(error)")
        }
        guard case .object(let object) = value else { throw AdminError.badRequest("the request body must be a JSON object, not \(value.kindName)") }
        return object
    }

    /// A field from the query string or the JSON body (the seed's routes take query parameters).
    func field(_ name: String, request: Request, body: JSONObject) throws -> String {
        if let value = request.uri.queryParameters.get(name), !value.isEmpty { return value }
        switch body[name] {
        case .string(let s)? where !s.isEmpty: return s
        case .int(let i)?: return String(i)
        default: throw AdminError.badRequest("'\(name)' is required (as a query parameter or in a JSON body)")
        }
    }

    func uuid(_ text: String, _ name: String) throws -> UUID {
        guard let id = UUID(uuidString: text) else { throw AdminError.badRequest("\(name) '\(text)' is not a UUID") }
        return id
    }

    func resource(_ context: Context) throws -> ResourceKey {
        let text = try context.parameters.require("resource").removingPercentEncoding ?? ""
        switch ResourceKey.parse(naming: text) {
        case .success(let key): return key
        case .failure(let problem): throw AdminError.badRequest(problem.description)
        }
    }

    func limit(_ request: Request, default value: Int) throws -> Int {
        guard let text = request.uri.queryParameters.get("limit") else { return value }
        guard let n = Int(text), n > 0, n <= 10_000 else { throw AdminError.badRequest("limit must be a number from 1 to 10000, not '\(text)'") }
        return n
    }
}

extension Array where Element == UInt8 {
    init(buffer: ByteBuffer) { self = buffer.getBytes(at: buffer.readerIndex, length: buffer.readableBytes) ?? [] }
}

/// Every error becomes `{"error": {"code", "message"}}` with its status.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
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
