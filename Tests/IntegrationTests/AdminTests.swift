import AMQP
import AgentryAdmin
import AgentryBus
import AgentryCore
import AgentryRuntime
import AgentryStore
import AsyncHTTPClient
import Foundation
import HummingbirdWSClient
import Logging
import NIOCore
import NIOHTTP1
import PostgresNIO
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// An admin server running in this process on a free port, over the real broker and database.
struct AdminHarness: Sendable {
    let port: Int
    let token: String?
    let worker: WorkerHarness
    var base: String { "http://127.0.0.1:\(port)" }

    struct Answer: Sendable {
        var status: Int
        var headers: HTTPHeaders
        var text: String
        var json: JSONValue? { try? JSON.parse(Array(text.utf8)) }
        var errorCode: String? { json?[path: "error.code"]?.stringValue }
        var errorMessage: String { json?[path: "error.message"]?.stringValue ?? text }
    }

    /// A request; POSTs carry the harness's token unless `authorized` is false.
    func request(
        _ method: HTTPMethod, _ path: String, body: String? = nil, contentType: String = "application/json",
        authorized: Bool = true, token: String? = nil
    ) async throws -> Answer {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        if let body {
            request.body = .bytes(ByteBuffer(string: body))
            request.headers.add(name: "Content-Type", value: contentType)
        }
        if authorized, let token = token ?? self.token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(15))
        let bytes = try await response.body.collect(upTo: 32 << 20)
        return Answer(status: Int(response.status.code), headers: response.headers, text: String(buffer: bytes))
    }

    /// Registers and publishes, through the API, an agent that sleeps `seconds` for each `alert.blackscreen` of
    /// device `tv-<id>`; returns the two answers' statuses.
    func publishSleepingAlertAgent(_ id: String, seconds: Int) async throws -> (registered: Int, published: Int) {
        let yaml = agentYAML(
            id: id, trigger: "alert.blackscreen", filters: "{device_id: tv-\(id)}",
            handler: """
                exec:
                  command: [/bin/sleep, "\(seconds)"]
                """)
        let registered = try await request(.POST, "/api/agents/register", body: yaml, contentType: "application/yaml").status
        return (registered, try await request(.POST, "/api/agents/\(id)/publish").status)
    }

    /// The value of one Prometheus sample line (`name{labels}`), or 0.
    func metric(_ sample: String) async throws -> Double {
        let text = try await request(.GET, "/metrics").text
        for line in text.split(separator: "\n") where line.hasPrefix(sample + " ") {
            return Double(line.split(separator: " ").last ?? "") ?? 0
        }
        return 0
    }
}

let adminToken = "test-admin-token-0123456789"

/// An admin server over the real broker and database; `token` nil: the server makes one (as without
/// AGENTRY_ADMIN_TOKEN), and the harness sends that one. `bundles`: where it installs bundles and the keys it trusts.
func withAdminServer(
    token: String? = adminToken,
    managementURL: String = "http://guest:guest@localhost:15672/api/queues/\(TestEnvironment.configuration.amqp.virtualHostPathSegment)",
    configure: @Sendable (inout AdminConfiguration) -> Void = { _ in },
    topology given: Topology? = nil,
    bundles: BundleSettings = BundleSettings(),
    _ body: @Sendable (AdminHarness) async throws -> Void
) async throws {
    try await withWorkerHarness { h in
        let topology = try given ?? TestEnvironment.topology()
        let expected = try Migration.load(directory: TestEnvironment.configuration.migrationsDirectory).map(\.version).max() ?? 0
        let dependencies = AdminDependencies(
            database: h.database, connection: h.connection, bus: h.bus, topology: topology,
            expectedSchemaVersion: expected, logger: TestEnvironment.logger, bundles: bundles)
        let (ports, portSink) = AsyncStream<Int>.makeStream()
        var configuration = AdminConfiguration(host: "127.0.0.1", port: 0, token: token)
        configure(&configuration)
        let server = AdminServer(
            configuration: configuration,
            dependencies: dependencies, managementURL: managementURL,
            logger: TestEnvironment.logger
        ) { port in portSink.yield(port) }
        let running = Task { try await server.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else {
            Issue.record("the admin server did not start")
            return
        }
        do {
            try await body(AdminHarness(port: port, token: configuration.token, worker: h))
        } catch {
            running.cancel()
            _ = try? await running.value
            throw error
        }
        running.cancel()
        _ = try? await running.value
    }
}

/// Collects the messages a WebSocket client receives.
final class StatusListener: Sendable {
    let messages = Collector<JSONValue>()
    let task: Task<Void, Never>

    init(port: Int) {
        let messages = self.messages
        task = Task {
            _ = try? await WebSocketClient.connect(
                url: "ws://127.0.0.1:\(port)/api/runtime/instances/status",
                configuration: .init(maxFrameSize: 1 << 24), logger: TestEnvironment.logger
            ) { inbound, _, _ in
                for try await message in inbound.messages(maxSize: 16 << 20) {
                    if case .text(let text) = message, let json = try? JSON.parse(Array(text.utf8)) { await messages.append(json) }
                }
            }
        }
    }

    /// Waits until a message satisfies `condition`; returns it.
    func first(within timeout: Duration, _ condition: @Sendable (JSONValue) -> Bool) async -> JSONValue? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let found = await messages.values.first(where: condition) { return found }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return await messages.values.first(where: condition)
    }

    func stop() { task.cancel() }
}

@Suite("Admin endpoint", .serialized)
struct AdminTests {
    @Test("status triggers notify agentry_status only while a status hub is registered (and its registration is current)")
    func statusNotificationsOnlyWhileWatched() async throws {
        try await TestEnvironment.withFreshDatabase("s") { db, _ in
            let logger = TestEnvironment.logger
            let store = RuntimeStore(database: db, logger: logger)
            let received = Collector<String>()
            let connection = try await PostgresConnection.connect(configuration: db.configuration.connectionConfiguration, id: 9_100, logger: logger)
            do {
                try await connection.listen(on: "agentry_status") { notifications in
                    let reader = Task { do { for try await n in notifications { await received.append(n.payload) } } catch {} }
                    // A statement-level trigger fires even when no row changes.
                    let touch = { _ = try await db.client.query("UPDATE task_runs SET state = state WHERE false", logger: logger) }
                    try await touch()
                    try await Task.sleep(for: .milliseconds(300))
                    #expect(await received.count == 0, "nobody watches: no notification")

                    try await store.watchStatus(hubID: "test-hub", expiry: .seconds(30))
                    try await touch()
                    #expect(
                        try await TestEnvironment.eventually(timeout: .seconds(5)) { await received.values.contains("task_runs") },
                        "a hub is registered: the change notifies")

                    try await store.unwatchStatus(hubID: "test-hub")
                    let afterUnwatch = await received.count
                    try await touch()
                    try await Task.sleep(for: .milliseconds(300))
                    #expect(await received.count == afterUnwatch, "the hub unregistered: no notification")

                    try await store.watchStatus(hubID: "test-hub", expiry: .seconds(-1))
                    try await touch()
                    try await Task.sleep(for: .milliseconds(300))
                    #expect(await received.count == afterUnwatch, "an expired registration counts for nothing")
                    reader.cancel()
                }
            } catch {
                try? await connection.close()
                throw error
            }
            try await connection.close()
        }
    }

    @Test("a status hub registers for database notifications while it has a WebSocket client, and not after")
    func hubRegistersWhileWatched() async throws {
        try await withAdminServer { a in
            let db = a.worker.database
            let current: @Sendable () async throws -> Int = {
                var count = 0
                for try await n in try await db.client.query(
                    "SELECT count(*)::int8 FROM status_watchers WHERE expires_at > now()",
                    logger: TestEnvironment.logger
                ).decode(Int64.self) {
                    count = Int(n)
                }
                return count
            }
            let before = try await current()
            let listener = StatusListener(port: a.port)
            let snapshot = await listener.first(within: .seconds(10)) { $0[path: "type"]?.stringValue == "snapshot" }
            #expect(snapshot != nil, "the client gets its snapshot")
            #expect(try await current() == before + 1, "registered before the snapshot was read")
            listener.stop()
            #expect(try await TestEnvironment.eventually { try await current() == before }, "unregistered once the client left")
        }
    }

    @Test(
        "while PostgreSQL cannot be reached, API requests fail at once with 503 and the reason, and /readyz says why",
        .timeLimit(.minutes(1)))
    func databaseUnreachable() async throws {
        try await withWorkerHarness { h in
            var configuration = TestEnvironment.configuration.database
            configuration.port = 1
            let database = AdminServer.database(for: configuration, logger: TestEnvironment.logger)
            let pool = Task { await database.run() }
            let dependencies = AdminDependencies(
                database: database, connection: h.connection, bus: h.bus, topology: try TestEnvironment.topology(),
                expectedSchemaVersion: 1, logger: TestEnvironment.logger)
            let (ports, portSink) = AsyncStream<Int>.makeStream()
            let server = AdminServer(
                configuration: AdminConfiguration(host: "127.0.0.1", port: 0, token: adminToken),
                dependencies: dependencies, managementURL: nil, logger: TestEnvironment.logger
            ) { port in portSink.yield(port) }
            let running = Task { try await server.run() }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            let a = AdminHarness(port: port, token: adminToken, worker: h)
            for path in ["/api/agents", "/api/runtime/instances", "/api/locks"] {
                let started = ContinuousClock.now
                let answer = try await a.request(.GET, path)
                let took = ContinuousClock.now - started
                #expect(answer.status == 503, "\(path): \(answer.status) \(answer.text)")
                #expect(answer.errorCode == "unavailable", "\(path): \(answer.text)")
                #expect(
                    answer.errorMessage.contains("PostgreSQL at postgres://\(configuration.user)@\(configuration.host):1/")
                        && answer.errorMessage.contains("Connection refused"), "\(path): \(answer.errorMessage)")
                #expect(took < AdminServer.statementDeadline, "\(path) took \(took): the reason is known after a second")
            }
            let ready = try await a.request(.GET, "/readyz")
            #expect(ready.status == 503)
            #expect(ready.json?[path: "checks.database"]?.stringValue?.contains("Connection refused") == true, "\(ready.text)")
            // Without the token, /readyz says what is not ready but names no server, user or database.
            let anonymous = try await a.request(.GET, "/readyz", authorized: false)
            #expect(anonymous.status == 503)
            #expect(
                !anonymous.text.contains("postgres://") && !anonymous.text.contains(configuration.user)
                    && !anonymous.text.contains("Connection refused"), "\(anonymous.text)")
            running.cancel()
            _ = try? await running.value
            pool.cancel()
            await pool.value
        }
    }

    @Test("every route answers success, not found, bad input and unauthorized as documented, with JSON errors")
    func routes() async throws {
        try await withAdminServer { a in
            let id = TestEnvironment.uniqueName("api-")
            let yaml = agentYAML(id: id, trigger: "api.\(id)", handler: "builtin: noop")
            // Probes, page, document.
            #expect(try await a.request(.GET, "/healthz").json?[path: "status"] == "ok")
            let ready = try await a.request(.GET, "/readyz")
            #expect(
                ready.status == 200 && ready.json?[path: "checks.migrations"] == "ok" && ready.json?[path: "checks.broker"] == "ok", "\(ready.text)")
            let page = try await a.request(.GET, "/")
            #expect(page.status == 200 && page.text.contains("agent-select") && page.headers["Content-Type"].first?.hasPrefix("text/html") == true)
            #expect(try await a.request(.GET, "/openapi.json").json?[path: "openapi"] == "3.0.3")
            let missing = try await a.request(.GET, "/api/nope")
            #expect(missing.status == 404 && missing.errorCode == "not_found")

            // Register: unauthorized, wrong type, empty, invalid (with line and column), created, unchanged.
            let anonymous = try await a.request(.POST, "/api/agents/register", body: yaml, contentType: "application/yaml", authorized: false)
            #expect(anonymous.status == 401 && anonymous.errorCode == "unauthorized")
            #expect(anonymous.headers["WWW-Authenticate"].first?.hasPrefix("Bearer") == true)
            let wrongToken = try await a.request(
                .POST, "/api/agents/register", body: yaml, contentType: "application/yaml", token: "not-the-token-at-all")
            #expect(wrongToken.status == 401 && wrongToken.errorMessage == "the bearer token is not the admin token")
            #expect(try await a.request(.POST, "/api/agents/register", body: "<html/>", contentType: "text/html").status == 415)
            #expect(try await a.request(.POST, "/api/agents/register", body: "", contentType: "application/yaml").status == 400)
            let invalid = try await a.request(
                .POST, "/api/agents/register", body: yaml.replacingOccurrences(of: "priority: normal", with: "priority: urgent"),
                contentType: "application/yaml")
            #expect(invalid.status == 422 && invalid.errorCode == "invalid_agent", "\(invalid.text)")
            let problem = invalid.json?[path: "error.problems"]?.arrayValue?.first
            #expect(problem?[path: "path"] == "triggers[0].priority")
            #expect(problem?[path: "line"] == .int(5))
            #expect(problem?[path: "column"]?.intValue ?? 0 > 0)
            let created = try await a.request(.POST, "/api/agents/register", body: yaml, contentType: "application/yaml")
            #expect(
                created.status == 201 && created.json?[path: "agent_id"]?.stringValue == id
                    && created.json?[path: "message"] == "Agent registered successfully", "\(created.text)")
            #expect(try await a.request(.POST, "/api/agents/register", body: yaml, contentType: "application/yaml").status == 200)
            // JSON bodies are accepted too.
            let jsonID = TestEnvironment.uniqueName("apijson-")
            let jsonBody = JSON.serialize(
                try JSON.parse(
                    Array(try AgentDefinition.parse(yaml: agentYAML(id: jsonID, trigger: "api.\(jsonID)", handler: "builtin: noop")).jsonData())))
            #expect(try await a.request(.POST, "/api/agents/register", body: jsonBody).status == 201)

            // Agents: get, list, publish, control.
            let detail = try await a.request(.GET, "/api/agents/\(id)")
            #expect(
                detail.status == 200 && detail.json?[path: "status"] == "draft" && detail.json?[path: "definition.metadata.id"]?.stringValue == id,
                "\(detail.text)")
            #expect(try await a.request(.GET, "/api/agents/\(id)?version=9.9.9").status == 404)
            #expect(try await a.request(.GET, "/api/agents/\(id)?version=banana").status == 400)
            #expect(try await a.request(.GET, "/api/agents/nope-\(id)").errorCode == "not_found")
            let list = try await a.request(.GET, "/api/agents/")
            #expect(list.json?[path: "agents"]?.arrayValue?.contains { $0[path: "agent_id"]?.stringValue == id } == true)
            #expect(list.json?[path: "count"]?.intValue == Int64(list.json?[path: "agents"]?.arrayValue?.count ?? -1))
            #expect(try await a.request(.POST, "/api/agents/nope-\(id)/publish").status == 404)
            let published = try await a.request(.POST, "/api/agents/\(id)/publish")
            #expect(published.status == 200 && published.json?[path: "version"] == "1.0.0", "\(published.text)")
            let paused = try await a.request(.POST, "/api/agents/\(id)/pause")
            #expect(paused.json?[path: "desired_state"] == "paused", "\(paused.text)")
            #expect(try await a.request(.POST, "/api/agents/\(id)/resume").json?[path: "desired_state"] == "running")
            #expect(try await a.request(.POST, "/api/agents/nope-\(id)/pause").status == 404)

            // Runtime.
            #expect(try await a.request(.GET, "/api/runtime/instances").json?[path: "instances"]?.arrayValue != nil)
            #expect(try await a.request(.GET, "/api/runtime/instances/\(UUID().uuidString)").status == 404)
            #expect(try await a.request(.GET, "/api/runtime/instances/not-a-uuid").status == 400)
            #expect(try await a.request(.POST, "/api/runtime/instances/start").status == 400)
            #expect(try await a.request(.POST, "/api/runtime/instances/start?agent_id=nope-\(id)").status == 404)
            #expect(try await a.request(.POST, "/api/runtime/instances/\(UUID().uuidString)/stop").status == 404)

            // Events.
            let alert = try await a.request(.POST, "/api/events/alerts/blackscreen?device_id=tv-\(id)")
            #expect(
                alert.status == 202 && alert.json?[path: "message"] == "Alert published" && alert.json?[path: "priority"] == "CRITICAL",
                "\(alert.text)")
            #expect(try await a.request(.POST, "/api/events/alerts/blackscreen").status == 400)
            let offline = try await a.request(.POST, "/api/events/alerts/device-offline", body: #"{"device_id": "stb-1", "duration": 120}"#)
            #expect(offline.status == 202 && offline.json?[path: "priority"] == "HIGH", "\(offline.text)")
            let badDuration = try await a.request(.POST, "/api/events/alerts/device-offline?device_id=x&duration=long")
            #expect(badDuration.status == 400 && badDuration.errorMessage.contains("duration"))
            #expect(try await a.request(.POST, "/api/events", body: #"{"type": "Bad Type!"}"#).status == 400)
            #expect(try await a.request(.POST, "/api/events", body: "not json").errorMessage.hasPrefix("the request body is not JSON"))
            #expect(try await a.request(.POST, "/api/events", body: #"{"type": "x.y", "priority": "urgent"}"#).errorMessage.contains("priority"))
            #expect(try await a.request(.POST, "/api/events", body: #"{"type": "x.y", "payload": [1]}"#).status == 400)
            let event = try await a.request(.POST, "/api/events", body: #"{"type": "api.\#(id)", "payload": {"n": 1}, "priority": "low"}"#)
            #expect(event.status == 202 && event.json?[path: "priority"] == "LOW", "\(event.text)")
            let tooBig = try await a.request(
                .POST, "/api/events", body: #"{"type": "x.y", "payload": {"s": ""# + String(repeating: "x", count: 2 << 20) + #""}}"#)
            #expect(tooBig.status == 413 && tooBig.errorCode == "payload_too_large", "\(tooBig.status) \(tooBig.text.prefix(200))")

            // Runs, locks, dead letters, queues, workers.
            #expect(try await a.request(.GET, "/api/runs?state=nope").status == 400)
            #expect(try await a.request(.GET, "/api/runs?limit=0").status == 400)
            #expect(try await a.request(.GET, "/api/runs?agent_id=\(id)").json?[path: "count"] != nil)
            #expect(try await a.request(.GET, "/api/runs/\(UUID().uuidString)").status == 404)
            #expect(try await a.request(.POST, "/api/runs/\(UUID().uuidString)/cancel").status == 404)
            #expect(try await a.request(.GET, "/api/locks").json?[path: "locks"]?.arrayValue != nil)
            #expect(try await a.request(.GET, "/api/locks/tv-1").status == 400)
            #expect(try await a.request(.GET, "/api/locks/device:free-\(id)").json?[path: "status"] == "available")
            #expect(try await a.request(.POST, "/api/locks/device:free-\(id)/release").status == 404)
            #expect(try await a.request(.GET, "/api/dead").json?[path: "messages"]?.arrayValue != nil)
            #expect(try await a.request(.POST, "/api/dead/replay", body: "{}").status == 400)
            let queues = try await a.request(.GET, "/api/queues")
            #expect(
                queues.json?[path: "queues"]?.arrayValue?.contains { $0[path: "agent_id"]?.stringValue == id } == true, "\(queues.text.prefix(300))")
            #expect(try await a.request(.GET, "/api/workers").json?[path: "workers"]?.arrayValue != nil)
            await a.worker.cleanup(id)
            await a.worker.cleanup(jsonID)
        }
    }

    @Test("without AGENTRY_ADMIN_TOKEN the server makes a token: changes need it (401), reads on loopback stay open, a short token is refused")
    func authenticationModes() async throws {
        try await withAdminServer(token: nil) { a in
            let token = try #require(a.token)
            #expect(token.count == 64, "a generated token of 32 random bytes in hex: \(token)")
            let refused = try await a.request(.POST, "/api/events", body: #"{"type": "x.y"}"#, authorized: false)
            #expect(refused.status == 401 && refused.errorCode == "unauthorized", "\(refused.status) \(refused.text)")
            #expect(refused.errorMessage.contains("printed at start"))
            let wrong = try await a.request(.POST, "/api/events", body: #"{"type": "x.y"}"#, token: adminToken)
            #expect(wrong.status == 401)
            #expect(try await a.request(.POST, "/api/events", body: #"{"type": "generated.token"}"#).status == 202)
            #expect(try await a.request(.GET, "/api/agents/", authorized: false).status == 200)
        }
        let short = #expect(throws: AdminConfigurationError.self) { try AdminConfiguration(host: "0.0.0.0", port: 8000, token: "short").validate() }
        #expect(short?.description.contains("at least 16") == true)
        #expect(throws: Never.self) { try AdminConfiguration(host: "0.0.0.0", token: adminToken).validate() }
        #expect(AdminConfiguration(token: nil).statusPageURL(port: 8000).hasPrefix("http://127.0.0.1:8000/?token="))
    }

    @Test("register, publish, an alert through the API: the run shows in /api/runtime/instances and on the WebSocket within a second; /metrics moves")
    func endToEnd() async throws {
        try await withAdminServer { a in
            let id = TestEnvironment.uniqueName("e2e-admin-")
            let answers = try await a.publishSleepingAlertAgent(id, seconds: 2)
            #expect(answers.registered == 201)
            #expect(answers.published == 200)
            let worker = try WorkerProcess(agents: [id])
            defer { Task { await worker.stop() } }
            _ = try await TestEnvironment.eventually(timeout: .seconds(15)) {
                try await a.request(.GET, "/api/runtime/instances?agent_id=\(id)").json?[path: "instances"]?.arrayValue?.first?[path: "state"]
                    == "idle"
            }
            let listener = StatusListener(port: a.port)
            defer { listener.stop() }
            let snapshot = await listener.first(within: .seconds(5)) { $0[path: "type"] == "snapshot" }
            #expect(snapshot?[path: "instances"]?.arrayValue?.contains { $0[path: "agent_id"]?.stringValue == id } == true)
            let published = try await a.metric(#"agentry_events_published_total{type_class="alert",priority="CRITICAL"}"#)

            let sent = ContinuousClock.now
            let alert = try await a.request(.POST, "/api/events/alerts/blackscreen?device_id=tv-\(id)")
            #expect(alert.status == 202)
            let running = await listener.first(within: .seconds(1)) { message in
                message[path: "type"] == "instances"
                    && message[path: "instances"]?.arrayValue?.contains {
                        $0[path: "agent_id"]?.stringValue == id && $0[path: "state"] == "running" && $0[path: "current_task"]?.stringValue != nil
                    } == true
            }
            #expect(running != nil, "the WebSocket should show the instance running within a second")
            let overHTTP = try await a.request(.GET, "/api/runtime/instances?agent_id=\(id)").json?[path: "instances"]?.arrayValue?.first
            #expect(overHTTP?[path: "state"] == "running", "\(String(describing: overHTTP))")
            #expect(ContinuousClock.now - sent < .seconds(2))
            let started = await listener.first(within: .seconds(2)) {
                $0[path: "type"] == "events"
                    && $0[path: "events"]?.arrayValue?.contains {
                        $0[path: "type"] == "agent.task.started" && $0[path: "payload.agent_id"]?.stringValue == id
                    } == true
            }
            #expect(started != nil)
            // The run finishes; the runs list and the counters follow.
            let finished = await listener.first(within: .seconds(8)) { message in
                message[path: "type"] == "runs"
                    && message[path: "runs"]?.arrayValue?.contains {
                        $0[path: "agent_id"]?.stringValue == id && $0[path: "state"] == "succeeded"
                    } == true
            }
            #expect(finished != nil)
            #expect(try await a.metric(#"agentry_events_published_total{type_class="alert",priority="CRITICAL"}"#) == published + 1)
            await worker.stop()
            await a.worker.cleanup(id)
        }
    }

    @Test("a WebSocket client that never reads is dropped and does not stall another client")
    func slowClient() async throws {
        try await withAdminServer { a in
            // A client that upgrades and then does not read a byte (small receive buffer, so it fills quickly) until
            // told to; then it reads what is left and says whether the server had closed the connection.
            let signal = FileManager.default.temporaryDirectory.appendingPathComponent("agentry-slow-\(UUID().uuidString.prefix(8))").path
            let slow = Process()
            let output = Pipe()
            slow.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            slow.standardOutput = output
            slow.arguments = [
                "python3", "-c",
                """
                import os, socket, time
                s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.connect(("127.0.0.1", \(a.port)))
                s.send(b"GET /api/runtime/instances/status HTTP/1.1\\r\\nHost: 127.0.0.1:\(a.port)\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\nSec-WebSocket-Version: 13\\r\\n\\r\\n")
                deadline = time.time() + 60
                while not os.path.exists("\(signal)") and time.time() < deadline: time.sleep(0.05)
                s.settimeout(3)
                try:
                    while s.recv(1 << 20): pass
                    print("closed")
                except socket.timeout:
                    print("open")
                """,
            ]
            try slow.run()
            defer {
                if slow.isRunning { kill(slow.processIdentifier, SIGKILL) }
                slow.waitUntilExit()
                try? FileManager.default.removeItem(atPath: signal)
            }
            let listener = StatusListener(port: a.port)
            defer { listener.stop() }
            _ = await listener.first(within: .seconds(5)) { $0[path: "type"] == "snapshot" }
            #expect(try await TestEnvironment.eventually { try await a.metric("agentry_status_clients") >= 2 }, "both clients should be connected")
            // Many large events: the slow client's socket and outbox fill up.
            let marker = TestEnvironment.uniqueName("last-")
            let filler = String(repeating: "x", count: 32_000)
            // Events go out in batches of 1 MiB at most every 100 ms: publish until the stuck client is dropped (its
            // outbox past 4 MiB), 2,000 events at most.
            for n in 0..<2000 {
                try await a.worker.bus.publish(
                    Event(type: "alert.flood", payload: ["n": .int(Int64(n)), "filler": .string(filler)], priority: .low, source: "test"))
                if n % 50 == 49, try await a.metric("agentry_status_clients") < 2 { break }
            }
            try await a.worker.bus.publish(Event(type: "alert.flood", payload: ["marker": .string(marker)], priority: .low, source: "test"))
            let last = await listener.first(within: .seconds(10)) { message in
                message[path: "events"]?.arrayValue?.contains { $0[path: "payload.marker"]?.stringValue == marker } == true
            }
            #expect(last != nil, "the reading client must get the events while the other one is stuck")
            // The stuck client was dropped: once it reads, it finds the connection closed by the server.
            _ = FileManager.default.createFile(atPath: signal, contents: nil)
            let deadline = ContinuousClock.now + .seconds(30)
            while slow.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
            let verdict = String(decoding: output.fileHandleForReading.availableData, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(verdict == "closed", "the client that never read should have been dropped, found the connection \(verdict)")
        }
    }
}

extension AgentDefinition {
    func jsonData() throws -> [UInt8] {
        Array(JSON.serialize(jsonValue()).utf8)
    }
}
