import AMQP
import AgentryAdmin
import AgentryCore
import AgentryRuntime
import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWSClient
import HummingbirdWebSocket
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Testing

/// The admin endpoint against web pages the user happens to open, DNS names rebound to it, and anonymous callers.
@Suite("Admin endpoint security", .serialized)
struct AdminSecurityTests {
    /// A request with headers of the test's choosing (Host, Origin, Content-Type, Authorization).
    static func send(_ method: HTTPMethod, _ url: String, body: String? = nil, headers: [(String, String)]) async throws -> AdminHarness.Answer {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(15))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        return AdminHarness.Answer(status: Int(response.status.code), headers: response.headers, text: String(buffer: bytes))
    }

    /// Opens the status WebSocket; returns the first message, or the error that refused the upgrade.
    static func openStatus(port: Int, query: String = "", origin: String?) async -> Result<String, any Error> {
        var headers: HTTPFields = [:]
        if let origin { headers[.origin] = origin }
        let first = Collector<String>()
        do {
            _ = try await WebSocketClient.connect(
                url: "ws://127.0.0.1:\(port)/api/runtime/instances/status\(query)",
                configuration: .init(maxFrameSize: 1 << 24, additionalHeaders: headers),
                logger: TestEnvironment.logger
            ) { inbound, outbound, _ in
                for try await message in inbound.messages(maxSize: 16 << 20) {
                    if case .text(let text) = message { await first.append(text) }
                    break
                }
            }
        } catch {
            return .failure(error)
        }
        return await first.values.first.map { .success($0) } ?? .failure(BrowserlessError("the stream closed without a message"))
    }

    /// Sends `bytes` on a new connection and reads until the server closes it (true then); the caller's time limit
    /// stands for "never".
    static func closedByServer(port: Int, after bytes: String) async throws -> Bool {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: bytes))
            for try await _ in inbound {}
            return true
        }
    }

    struct BrowserlessError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    @Test("a foreign page's cross-site POSTs (text/plain, Origin evil.example) register, publish and run nothing, even with the token")
    func crossSitePostRefused() async throws {
        try await withAdminServer { a in
            let id = TestEnvironment.uniqueName("csrf-")
            let marker = FileManager.default.temporaryDirectory.appendingPathComponent("agentry-csrf-\(id)").path
            let yaml = agentYAML(id: id, trigger: "csrf.\(id)", handler: "exec:\n  command: [/bin/touch, \(marker)]")
            let evil = [("Origin", "http://evil.example"), ("Content-Type", "text/plain")]
            // As the page sends them: no token, a "simple" content type, a foreign origin.
            let register = try await Self.send(.POST, a.base + "/api/agents/register", body: yaml, headers: evil)
            #expect(register.status == 403 && register.errorCode == "origin_not_allowed", "\(register.status) \(register.text)")
            // Each defence on its own: the origin, with the token and JSON.
            let foreign = try await Self.send(
                .POST, a.base + "/api/events", body: #"{"type": "csrf.\#(id)"}"#,
                headers: [
                    ("Origin", "http://evil.example"), ("Content-Type", "application/json"),
                    ("Authorization", "Bearer \(adminToken)"),
                ])
            #expect(foreign.status == 403 && foreign.errorCode == "origin_not_allowed", "\(foreign.text)")
            // The content type, with the token and no origin.
            let plain = try await Self.send(
                .POST, a.base + "/api/agents/register", body: yaml,
                headers: [("Content-Type", "text/plain"), ("Authorization", "Bearer \(adminToken)")])
            #expect(plain.status == 415 && plain.errorCode == "unsupported_media_type", "\(plain.text)")
            let form = try await Self.send(
                .POST, a.base + "/api/events", body: "type=x.y",
                headers: [("Content-Type", "application/x-www-form-urlencoded"), ("Authorization", "Bearer \(adminToken)")])
            #expect(form.status == 415)
            // The token, with JSON and no origin.
            let anonymous = try await Self.send(
                .POST, a.base + "/api/events", body: #"{"type": "csrf.\#(id)"}"#,
                headers: [("Content-Type", "application/json")])
            #expect(anonymous.status == 401)
            #expect(try await a.request(.GET, "/api/agents/\(id)").status == 404, "nothing was registered")
            // The endpoint's own page (same origin, the token, JSON) may.
            let own = try await Self.send(
                .POST, a.base + "/api/events", body: #"{"type": "csrf.\#(id)"}"#,
                headers: [("Origin", a.base), ("Content-Type", "application/json"), ("Authorization", "Bearer \(adminToken)")])
            #expect(own.status == 202, "\(own.text)")
            #expect(!FileManager.default.fileExists(atPath: marker))
        }
    }

    @Test("a name rebound to 127.0.0.1 (Host evil.example) reads nothing; localhost and configured names do")
    func dnsRebindingRefused() async throws {
        try await withAdminServer(configure: { $0.allowedHosts = ["agentry.internal"] }) { a in
            let rebound = try await Self.send(.GET, a.base + "/api/agents", headers: [("Host", "evil.example:\(a.port)")])
            #expect(rebound.status == 403 && rebound.errorCode == "host_not_allowed", "\(rebound.status) \(rebound.text)")
            #expect(rebound.errorMessage.contains("--admin-allowed-host evil.example"))
            #expect(try await Self.send(.GET, a.base + "/", headers: [("Host", "evil.example:\(a.port)")]).status == 403)
            #expect(try await Self.send(.GET, a.base + "/api/agents", headers: [("Host", "127.example.com:\(a.port)")]).status == 403)
            #expect(try await Self.send(.GET, a.base + "/api/agents", headers: [("Host", "localhost:\(a.port)")]).status == 200)
            #expect(try await Self.send(.GET, a.base + "/api/agents", headers: [("Host", "agentry.internal")]).status == 200)
            #expect(try await a.request(.GET, "/api/agents").status == 200)
        }
    }

    @Test("the status WebSocket refuses a foreign Origin, and a browser without the token; with ?token= it streams")
    func webSocketOriginAndToken() async throws {
        try await withAdminServer { a in
            let foreign = await Self.openStatus(port: a.port, query: "?token=\(adminToken)", origin: "http://evil.example")
            #expect(throws: (any Error).self, "a foreign page must not open the stream") { try foreign.get() }
            let noToken = await Self.openStatus(port: a.port, origin: a.base)
            #expect(throws: (any Error).self, "a browser needs the token") { try noToken.get() }
            let wrongToken = await Self.openStatus(port: a.port, query: "?token=not-the-token-at-all", origin: a.base)
            #expect(throws: (any Error).self) { try wrongToken.get() }
            let own = try await Self.openStatus(port: a.port, query: "?token=\(adminToken)", origin: a.base).get()
            #expect(own.contains("\"snapshot\""), "\(own.prefix(200))")
            // A client that is not a browser (no Origin) on loopback reads without the token, like GET requests.
            let tool = try await Self.openStatus(port: a.port, origin: nil).get()
            #expect(tool.contains("\"snapshot\""))
            // A browser's upgrade from a foreign page is not switched to the WebSocket protocol.
            let answer = try await Self.send(
                .GET, a.base + "/api/runtime/instances/status",
                headers: [
                    ("Origin", "http://evil.example"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
                    ("Sec-WebSocket-Version", "13"), ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ])
            #expect(answer.status != 101 && answer.status >= 400, "\(answer.status) \(answer.text)")
        }
    }

    @Test("the status WebSocket serves at most its limit of clients; the next is refused with 503")
    func webSocketClientCap() async throws {
        try await withAdminServer(configure: { $0.maxWebSocketClients = 1 }) { a in
            let listener = StatusListener(port: a.port)
            defer { listener.task.cancel() }
            #expect(await listener.first(within: .seconds(10)) { $0[path: "type"] == "snapshot" } != nil)
            // The next client is told why, and closed.
            let second = try await Self.openStatus(port: a.port, origin: nil).get()
            #expect(second.contains("too_many_clients") && !second.contains("snapshot"), "\(second)")
        }
    }

    @Test("exec.env and http.headers values are shown only to callers with the token")
    func secretsRedacted() async throws {
        try await withAdminServer { a in
            let id = TestEnvironment.uniqueName("secret-")
            let yaml = agentYAML(
                id: id, trigger: "secret.\(id)",
                handler: """
                    exec:
                      command: [/bin/true]
                      env: {API_KEY: s3cret-value-\(id)}
                    """)
            #expect(try await a.request(.POST, "/api/agents/register", body: yaml, contentType: "application/yaml").status == 201)
            let anonymous = try await a.request(.GET, "/api/agents/\(id)", authorized: false)
            #expect(anonymous.status == 200)
            #expect(!anonymous.text.contains("s3cret-value"), "\(anonymous.text)")
            #expect(anonymous.json?[path: "definition.handler.exec.env.API_KEY"] == .string(AgentDefinition.redacted), "\(anonymous.text)")
            #expect(anonymous.json?[path: "secrets_redacted"] == .bool(true))
            #expect(anonymous.json?[path: "yaml"]?.stringValue?.contains("API_KEY") == true)
            let holder = try await a.request(.GET, "/api/agents/\(id)")
            #expect(holder.json?[path: "definition.handler.exec.env.API_KEY"] == .string("s3cret-value-\(id)"), "\(holder.text)")
            await a.worker.cleanup(id)
        }
    }

    @Test("a connection that sends no request head, or one the parser refuses, is closed after its timeout", .timeLimit(.minutes(1)))
    func headerTimeout() async throws {
        try await withAdminServer(configure: { $0.headerTimeout = .seconds(1) }) { a in
            // Half a request line, then nothing: the server must close the connection by itself.
            let closed = try await Self.closedByServer(port: a.port, after: "GET /api/agents HT")
            #expect(closed)
        }
        // A head the HTTP parser refuses (a header line without a colon) gets no answer: the connection is closed.
        try await withAdminServer(configure: { $0.firstAnswerTimeout = .seconds(1) }) { a in
            let closed = try await Self.closedByServer(port: a.port, after: "GET /api/agents HTTP/1.1\r\nHost: 127.0.0.1\r\nno colon here\r\n\r\n")
            #expect(closed)
        }
        // A well-formed request on a fresh connection is answered as usual.
        try await withAdminServer(configure: {
            $0.headerTimeout = .seconds(1)
            $0.firstAnswerTimeout = .seconds(1)
        }) { a in
            let answer = try await a.request(.GET, "/healthz")
            #expect(answer.status == 200)
        }
    }

    @Test("TLS: the endpoint serves https with the given PEM certificate and key")
    func tls() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("agentry-admin-tls-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let cert = directory.appendingPathComponent("cert.pem").path, key = directory.appendingPathComponent("key.pem").path
        let made = try TestEnvironment.run(
            "openssl",
            [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            ])
        try #require(made.status == 0, "openssl: \(made.output)")
        try await withAdminServer(configure: { $0.tls = .init(certificateChain: cert, privateKey: key) }) { a in
            var tlsConfiguration = TLSConfiguration.makeClientConfiguration()
            tlsConfiguration.trustRoots = .file(cert)
            let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: tlsConfiguration))
            do {
                var request = HTTPClientRequest(url: "https://127.0.0.1:\(a.port)/api/agents")
                request.headers.add(name: "Authorization", value: "Bearer \(adminToken)")
                let response = try await client.execute(request, timeout: .seconds(15))
                #expect(response.status == .ok)
                #expect(response.headers.first(name: "content-type")?.hasPrefix("application/json") == true)
                await #expect(throws: (any Error).self, "plain HTTP to the TLS port fails") {
                    _ = try await HTTPClient.shared.execute(HTTPClientRequest(url: a.base + "/api/agents"), timeout: .seconds(5))
                        .body.collect(upTo: 1 << 20)
                }
            } catch {
                try await client.shutdown()
                throw error
            }
            try await client.shutdown()
        }
        let missing = #expect(throws: AdminConfigurationError.self) {
            try AdminConfiguration(token: adminToken, tls: .init(certificateChain: "/nonexistent.pem", privateKey: key)).validate()
        }
        #expect(missing?.description.contains("/nonexistent.pem") == true)
    }

    @Test("a burst of /metrics scrapes asks the management API once per second, not once per scrape")
    func scrapesShareReadings() async throws {
        // A stand-in for RabbitMQ's management API that counts the queue lists it is asked for.
        let asked = Collector<Int>()
        let router = Router()
        router.get("/api/queues/{vhost}") { _, _ in
            await asked.append(1)
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: "[]")))
        }
        let (ports, portSink) = AsyncStream<Int>.makeStream()
        let management = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in portSink.yield(channel.localAddress?.port ?? 0) },
            logger: TestEnvironment.logger)
        let serving = Task { try await management.run() }
        defer { serving.cancel() }
        var iterator = ports.makeAsyncIterator()
        let port = try #require(await iterator.next())
        try await withAdminServer(managementURL: "http://guest:guest@127.0.0.1:\(port)/api/queues/x") { a in
            let started = ContinuousClock.now
            var statuses: [Int] = []
            for _ in 0..<20 { statuses.append(try await a.request(.GET, "/metrics").status) }
            #expect(statuses.allSatisfy { $0 == 200 }, "\(statuses)")
            let seconds = Double((ContinuousClock.now - started).components.seconds) + 1
            let count = await asked.count
            #expect(count >= 1, "the scrapes read the queues through the stand-in")
            #expect(count <= Int(seconds) + 1, "\(count) management requests for 20 scrapes in under \(seconds) s")
        }
    }

    @Test("isLoopback: 127.0.0.0/8, ::1 and localhost are; 127.example.com and other addresses are not")
    func loopback() {
        for host in ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"] {
            #expect(AdminConfiguration.isLoopback(host), "\(host)")
        }
        for host in ["127.example.com", "127.0.0", "127.0.0.256", "0.0.0.0", "10.0.0.1", "example.com", "::", "1270.0.0.1"] {
            #expect(!AdminConfiguration.isLoopback(host), "\(host)")
        }
    }
}

@Suite("Admin token printed at start", .serialized)
struct AdminTokenURLTests {
    @Test("`agentry admin` without AGENTRY_ADMIN_TOKEN prints the status page's URL with a token that changes things; none works without it")
    func printedTokenURL() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestEnvironment.agentryExecutable)
        process.arguments = ["admin", "--admin-addr", "127.0.0.1:0"]
        var environment = ProcessInfo.processInfo.environment
        environment["AGENTRY_ADMIN_TOKEN"] = nil
        process.environment = environment
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        defer {
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
        }
        // Read stderr until the URL line (the process prints it once it listens).
        let printed = Collector<String>()
        let reader = Task.detached {
            var text = ""
            while true {
                let chunk = errors.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                text += String(decoding: chunk, as: UTF8.self)
                if let line = text.split(separator: "\n").first(where: { $0.contains("?token=") }) {
                    await printed.append(line.trimmingCharacters(in: .whitespaces))
                    break
                }
            }
        }
        #expect(try await TestEnvironment.eventually(timeout: .seconds(30)) { await printed.count > 0 }, "the URL is printed on stderr")
        reader.cancel()
        let url = try #require(await printed.values.first)
        #expect(url.hasPrefix("http://127.0.0.1:"), "\(url)")
        let token = String(try #require(url.split(separator: "?token=").last))
        let base = String(try #require(url.split(separator: "/?token=").first))
        #expect(token.count == 64)
        let page = try await AdminSecurityTests.send(.GET, url, headers: [])
        #expect(page.status == 200 && page.text.contains("<html"))
        let refused = try await AdminSecurityTests.send(
            .POST, base + "/api/events", body: #"{"type": "token.url"}"#,
            headers: [("Content-Type", "application/json")])
        #expect(refused.status == 401)
        let accepted = try await AdminSecurityTests.send(
            .POST, base + "/api/events", body: #"{"type": "token.url"}"#,
            headers: [("Content-Type", "application/json"), ("Authorization", "Bearer \(token)")])
        #expect(accepted.status == 202, "\(accepted.text)")
    }
}
