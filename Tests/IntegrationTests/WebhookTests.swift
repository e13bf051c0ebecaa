import AgentryAdmin
import AgentryBus
import AgentryCore
import AgentryStore
import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// An admin server with webhook sources of the test's own (`webhooks.yaml` text, given the name of a variable made
/// for the test and set to `secret` in the server's environment), beside the event log service.
private struct WebhookHarness: Sendable {
    let admin: AdminHarness
    let log: EventLogStore
    let secretEnv: String

    /// A delivery, without the admin token.
    func post(
        _ source: String, body: String, headers: [(String, String)], contentType: String = "application/json"
    ) async throws -> AdminHarness.Answer {
        var request = HTTPClientRequest(url: admin.base + "/api/webhooks/\(source)")
        request.method = .POST
        request.body = .bytes(ByteBuffer(string: body))
        request.headers.add(name: "Content-Type", value: contentType)
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(15))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        return AdminHarness.Answer(status: Int(response.status.code), headers: response.headers, text: String(buffer: bytes))
    }

    /// The event an accepted delivery's answer names, once the event log has it.
    func event(answered answer: AdminHarness.Answer) async throws -> Event {
        let id = try #require(answer.json?[path: "event_id"]?.stringValue, "\(answer.text)")
        let event = try await logged(id)
        return try #require(event, "event \(id) should reach event_log")
    }

    /// The logged event with this id, once the event log has it (nil after 10 s).
    func logged(_ id: String) async throws -> Event? {
        let eventID = try #require(EventID(id))
        var found: Event?
        _ = try await TestEnvironment.eventually {
            found = try await log.entry(eventID)?.event
            return found != nil
        }
        return found
    }
}

private func withWebhooks(
    secret: String = "s3cret-\(UUID().uuidString)", _ yaml: @Sendable (String) -> String,
    _ body: @Sendable (WebhookHarness, String) async throws -> Void
) async throws {
    let secretEnv = "AGENTRY_TEST_WEBHOOK_\(UUID().uuidString.prefix(8).uppercased())"
    var topology = try TestEnvironment.topology()
    topology.webhookSources = try WebhookSource.parseFile(yaml: yaml(secretEnv), file: "webhooks.yaml")
    let given = topology
    try await withEventLog { _, log, _ in
        // The server's environment, as the process's would be (no setenv: other tests run beside this one).
        try await withAdminServer(configure: { $0.webhookSecrets = [secretEnv: secret] }, topology: given) { admin in
            try await body(WebhookHarness(admin: admin, log: log, secretEnv: secretEnv), secret)
        }
    }
}

private func hmacHex(_ secret: String, _ data: [UInt8]) -> String {
    HMAC<SHA256>.authenticationCode(for: data, using: SymmetricKey(data: Array(secret.utf8))).map { String(format: "%02x", $0) }.joined()
}

private func github(_ secret: String, _ body: String, delivery: String, event: String = "push") -> [(String, String)] {
    [("X-Hub-Signature-256", "sha256=" + hmacHex(secret, Array(body.utf8))), ("X-GitHub-Delivery", delivery), ("X-GitHub-Event", event)]
}

@Suite("Webhooks", .serialized)
struct WebhookTests {
    @Test("a GitHub-signed delivery becomes an event with the mapped type, payload and source; a replay publishes nothing")
    func githubDelivery() async throws {
        let name = TestEnvironment.uniqueName("gh")
        try await withWebhooks({ env in
            """
            sources:
              \(name):
                scheme: github
                secret_env: \(env)
                type: "github.{{header.X-GitHub-Event}}"
            """
        }) { w, secret in
            let body = #"{"ref": "refs/heads/main", "repository": {"full_name": "acme/tv"}}"#
            let delivery = UUID().uuidString
            let answer = try await w.post(name, body: body, headers: github(secret, body, delivery: delivery))
            #expect(answer.status == 202, "\(answer.text)")
            let id = try #require(answer.json?[path: "event_id"]?.stringValue)
            #expect(id == WebhookSource.eventID(source: name, deliveryID: delivery).rawValue)
            let event = try #require(try await w.logged(id), "the event should reach event_log")
            #expect(event.type == "github.push")
            #expect(event.source == "webhook:\(name)")
            #expect(JSONValue.object(event.payload) == (try JSON.parse(body)))

            let replay = try await w.post(name, body: body, headers: github(secret, body, delivery: delivery))
            #expect(replay.status == 200, "\(replay.text)")
            #expect(replay.json?[path: "duplicate"] == .bool(true))
            #expect(replay.json?[path: "event_id"]?.stringValue == id)
            let count = try await w.log.count(eventID: try #require(EventID(id)))
            #expect(count == 1)

            let deliveries = try await w.admin.request(.GET, "/api/webhooks/deliveries?limit=5")
            let outcomes = (deliveries.json?[path: "deliveries"]?.arrayValue ?? []).filter { $0[path: "source"]?.stringValue == name }
                .compactMap { $0[path: "outcome"]?.stringValue }
            #expect(outcomes == ["duplicate", "accepted"], "\(deliveries.text)")
        }
    }

    @Test("a wrongly signed or unsigned delivery answers 401, publishes nothing, and is counted; GitHub's form body is taken")
    func githubRefusals() async throws {
        let name = TestEnvironment.uniqueName("gh")
        try await withWebhooks({ env in "sources: {\(name): {scheme: github, secret_env: \(env), type: 'github.{{header.X-GitHub-Event}}'}}" }) {
            w, secret in
            let metric = #"agentry_webhooks_refused_total{source="\#(name)",reason="bad_signature"}"#
            let before = try await w.admin.metric(metric)
            let body = #"{"zen": "Keep it logically awesome."}"#
            let bad = UUID().uuidString
            let wrong = try await w.post(name, body: body, headers: github("not-the-secret", body, delivery: bad))
            #expect(wrong.status == 401 && wrong.errorCode == "bad_signature", "\(wrong.text)")
            #expect(!wrong.text.contains(hmacHex(secret, Array(body.utf8))))
            let unsigned = try await w.post(name, body: body, headers: [("X-GitHub-Delivery", UUID().uuidString)])
            #expect(unsigned.status == 401 && unsigned.errorCode == "missing_signature", "\(unsigned.text)")
            #expect(unsigned.errorMessage.contains("X-Hub-Signature-256"))
            let after = try await w.admin.metric(metric)
            #expect(after == before + 1)

            // GitHub's form content type, signed over the form's bytes; once its event is logged, the refused one
            // (sent before it) would have been too.
            let form = "payload=" + (body.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")
            let good = try await w.post(
                name, body: form, headers: github(secret, form, delivery: UUID().uuidString, event: "ping"),
                contentType: "application/x-www-form-urlencoded")
            #expect(good.status == 202, "\(good.text)")
            let event = try await w.event(answered: good)
            #expect(event.type == "github.ping")
            #expect(event.payload["zen"] == "Keep it logically awesome.")
            let refusedID = WebhookSource.eventID(source: name, deliveryID: bad)
            let refusedCount = try await w.log.count(eventID: refusedID)
            #expect(refusedCount == 0)
            let refused = try await w.admin.request(.GET, "/api/webhooks/deliveries?limit=10")
            let reasons = (refused.json?[path: "deliveries"]?.arrayValue ?? []).filter { $0[path: "source"]?.stringValue == name }
                .compactMap { $0[path: "reason"]?.stringValue }
            #expect(reasons == ["missing_signature", "bad_signature"], "\(refused.text)")
        }
    }

    @Test("a delivery passes the Host, Origin and content-type checks (its sender names the endpoint its own way); its sources' routes do not")
    func browserChecks() async throws {
        let name = TestEnvironment.uniqueName("gh")
        try await withWebhooks({ env in "sources: {\(name): {scheme: github, secret_env: \(env), type: github.push}}" }) { w, secret in
            let body = #"{"ref": "refs/heads/main"}"#
            let foreign = [("Host", "hooks.example.com"), ("Origin", "https://elsewhere.example")]
            let delivered = try await w.post(name, body: body, headers: github(secret, body, delivery: UUID().uuidString) + foreign)
            #expect(delivered.status == 202, "\(delivered.text)")
            let unsigned = try await w.post(name, body: "a=b", headers: foreign, contentType: "text/plain")
            #expect(unsigned.status == 401 && unsigned.errorCode == "missing_signature", "\(unsigned.text)")
            var request = HTTPClientRequest(url: w.admin.base + "/api/webhooks/\(name)")
            request.method = .PUT
            request.headers.add(name: "Host", value: "hooks.example.com")
            request.headers.add(name: "Authorization", value: "Bearer \(w.admin.token ?? "")")
            let put = try await HTTPClient.shared.execute(request, timeout: .seconds(15))
            #expect(put.status.code == 403)
        }
    }

    @Test("copies of one delivery sent at once publish one event id: the event log holds it once")
    func concurrentCopies() async throws {
        let name = TestEnvironment.uniqueName("gh")
        try await withWebhooks({ env in "sources: {\(name): {scheme: github, secret_env: \(env), type: github.push}}" }) { w, secret in
            let body = #"{"ref": "refs/heads/main"}"#
            let headers = github(secret, body, delivery: UUID().uuidString)
            let answers = try await withThrowingTaskGroup(of: AdminHarness.Answer.self) { group in
                for _ in 0..<6 { group.addTask { try await w.post(name, body: body, headers: headers) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(answers.allSatisfy { $0.status == 202 || $0.status == 200 }, "\(answers.map(\.text))")
            #expect(answers.contains { $0.status == 202 })
            let ids = Set(answers.compactMap { $0.json?[path: "event_id"]?.stringValue })
            #expect(ids.count == 1)
            let accepted = try #require(answers.first { $0.status == 202 })
            let event = try await w.event(answered: accepted)
            let count = try await w.log.count(eventID: event.id)
            #expect(count == 1)
        }
    }

    @Test("GitLab: the right token is accepted (payload mapped), a wrong one refused")
    func gitlab() async throws {
        let name = TestEnvironment.uniqueName("gl")
        try await withWebhooks({ env in
            """
            sources:
              \(name):
                scheme: gitlab
                secret_env: \(env)
                type: "gitlab.{{payload.object_kind}}"
                priority: high
                payload:
                  project: "{{payload.project.path_with_namespace}}"
                  event: "{{header.X-Gitlab-Event}}"
                  fixed: 42
            """
        }) { w, secret in
            let body = #"{"object_kind": "push", "project": {"path_with_namespace": "acme/tv"}}"#
            let wrong = try await w.post(name, body: body, headers: [("X-Gitlab-Token", "nope"), ("X-Gitlab-Event-UUID", UUID().uuidString)])
            #expect(wrong.status == 401 && wrong.errorCode == "bad_signature", "\(wrong.text)")
            let right = try await w.post(
                name, body: body, headers: [("X-Gitlab-Token", secret), ("X-Gitlab-Event-UUID", UUID().uuidString), ("X-Gitlab-Event", "Push Hook")])
            #expect(right.status == 202, "\(right.text)")
            let event = try await w.event(answered: right)
            #expect(event.type == "gitlab.push")
            #expect(event.priority == .high)
            #expect(event.payload == ["project": "acme/tv", "event": "Push Hook", "fixed": 42])
        }
    }

    @Test("hmac-sha256: a fresh signed timestamp is accepted, a stale one refused; a mapped type that is no event type is 422")
    func hmacSHA256() async throws {
        let name = TestEnvironment.uniqueName("hm")
        try await withWebhooks({ env in
            """
            sources:
              \(name):
                scheme: hmac-sha256
                secret_env: \(env)
                type: "billing.{{payload.kind}}"
                signature_header: X-Billing-Signature
            """
        }) { w, secret in
            func signed(_ body: String, at time: Int) -> [(String, String)] {
                let stamp = String(time)
                return [("X-Billing-Signature", "v1=" + hmacHex(secret, Array("\(stamp).\(body)".utf8))), ("X-Timestamp", stamp)]
            }
            let now = Int(Date().timeIntervalSince1970)
            let body = #"{"kind": "invoice_paid", "amount": 12}"#
            let stale = try await w.post(name, body: body, headers: signed(body, at: now - 600))
            #expect(stale.status == 401 && stale.errorCode == "stale_timestamp", "\(stale.text)")
            let fresh = try await w.post(name, body: body, headers: signed(body, at: now) + [("X-Delivery-Id", UUID().uuidString)])
            #expect(fresh.status == 202, "\(fresh.text)")
            let event = try await w.event(answered: fresh)
            #expect(event.type == "billing.invoice_paid")
            let badType = #"{"kind": "no spaces allowed"}"#
            let unmappable = try await w.post(name, body: badType, headers: signed(badType, at: now))
            #expect(unmappable.status == 422 && unmappable.errorCode == "invalid_event", "\(unmappable.text)")
        }
    }

    @Test("an oversize body is 413, an unknown source 404, a source without its secret 401 (and shown so), without the admin token")
    func limitsAndUnknowns() async throws {
        let small = TestEnvironment.uniqueName("sm"), unset = TestEnvironment.uniqueName("un")
        try await withWebhooks({ env in
            """
            sources:
              \(small): {scheme: github, secret_env: \(env), type: fixed.type, max_body_kb: 1}
              \(unset): {scheme: github, secret_env: AGENTRY_TEST_WEBHOOK_NEVER_SET, type: fixed.type}
            """
        }) { w, secret in
            let big = "{\"padding\": \"" + String(repeating: "x", count: 4096) + "\"}"
            let tooLarge = try await w.post(small, body: big, headers: github(secret, big, delivery: UUID().uuidString))
            #expect(tooLarge.status == 413 && tooLarge.errorCode == "payload_too_large", "\(tooLarge.text)")
            let unknown = try await w.post(TestEnvironment.uniqueName("no"), body: "{}", headers: github(secret, "{}", delivery: "x"))
            #expect(unknown.status == 404, "\(unknown.text)")
            let noSecret = try await w.post(unset, body: "{}", headers: github(secret, "{}", delivery: "y"))
            #expect(noSecret.status == 401 && noSecret.errorCode == "no_secret", "\(noSecret.text)")
            let list = try await w.admin.request(.GET, "/api/webhooks")
            let shown = (list.json?[path: "sources"]?.arrayValue ?? [])
            #expect(shown.first { $0[path: "name"]?.stringValue == unset }?[path: "secret_present"] == .bool(false))
            #expect(shown.first { $0[path: "name"]?.stringValue == small }?[path: "secret_present"] == .bool(true))
            #expect(!list.text.contains(secret))
        }
    }

    @Test("a source added through the API (with the token) works end to end; file sources answer 409; removal needs the token")
    func sourcesThroughTheAPI() async throws {
        let fileSource = TestEnvironment.uniqueName("fs"), name = TestEnvironment.uniqueName("api")
        try await withWebhooks({ env in "sources: {\(fileSource): {scheme: github, secret_env: \(env), type: a.b}}" }) { w, secret in
            let settings = #"{"scheme": "github", "secret_env": "\#(w.secretEnv)", "type": "api.{{header.X-GitHub-Event}}"}"#
            let anonymous = try await w.admin.request(.PUT, "/api/webhooks/\(name)", body: settings, authorized: false)
            #expect(anonymous.status == 401, "\(anonymous.text)")
            let created = try await w.admin.request(.PUT, "/api/webhooks/\(name)", body: settings)
            #expect(created.status == 201, "\(created.text)")
            #expect(created.json?[path: "origin"] == "api")
            let replaced = try await w.admin.request(.PUT, "/api/webhooks/\(name)", body: settings)
            #expect(replaced.status == 200, "\(replaced.text)")
            let invalid = try await w.admin.request(
                .PUT, "/api/webhooks/\(name)", body: "{\"scheme\": \"githbu\",\n \"secret_env\": \"X\", \"type\": \"a\"}")
            #expect(invalid.status == 422 && invalid.errorCode == "invalid_webhook_source", "\(invalid.text)")
            #expect(invalid.json?[path: "error.problems.0.line"] == .int(1))
            let conflict = try await w.admin.request(.PUT, "/api/webhooks/\(fileSource)", body: settings)
            #expect(conflict.status == 409, "\(conflict.text)")

            let body = #"{"action": "opened"}"#
            let delivered = try await w.post(name, body: body, headers: github(secret, body, delivery: UUID().uuidString, event: "issues"))
            #expect(delivered.status == 202, "\(delivered.text)")
            let event = try await w.event(answered: delivered)
            #expect(event.type == "api.issues")

            let anonymousDelete = try await w.admin.request(.DELETE, "/api/webhooks/\(name)", authorized: false)
            #expect(anonymousDelete.status == 401)
            let deleted = try await w.admin.request(.DELETE, "/api/webhooks/\(name)")
            #expect(deleted.status == 200, "\(deleted.text)")
            let gone = try await w.post(name, body: body, headers: github(secret, body, delivery: UUID().uuidString))
            #expect(gone.status == 404)
            let fileDelete = try await w.admin.request(.DELETE, "/api/webhooks/\(fileSource)")
            #expect(fileDelete.status == 409)
        }
    }

    @Test("a bad webhooks.yaml in the topology directory stops loading, and agentry admin, with file:line:column")
    func badFile() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("agentry-webhooks-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let builtIn = TestEnvironment.repositoryRoot.appendingPathComponent("Sources/AgentryBus/Topology")
        for file in ["agentry.yaml", "event-pools.yaml", "skills.yaml"] {
            try FileManager.default.copyItem(at: builtIn.appendingPathComponent(file), to: directory.appendingPathComponent(file))
        }
        try "sources:\n  github:\n    scheme: githab\n    secret_env: GH_SECRET\n    type: github.push\n".write(
            to: directory.appendingPathComponent("webhooks.yaml"), atomically: true, encoding: .utf8)
        let error = #expect(throws: TopologyError.self) { try Topology.load(directory: directory.path) }
        let message = error?.description ?? ""
        #expect(message.contains("\(directory.path)/webhooks.yaml:3:13: sources.github.scheme"), "\(message)")
        #expect(message.contains("did you mean 'github'?"), "\(message)")

        // `agentry admin` stops at start with that message (before it connects to anything).
        let admin = try TestEnvironment.run(
            TestEnvironment.agentryExecutable, ["admin", "--topology", directory.path, "--admin-addr", "127.0.0.1:0"])
        #expect(admin.status != 0)
        #expect(admin.output.contains("\(directory.path)/webhooks.yaml:3:13: sources.github.scheme"), "\(admin.output)")
    }
}
