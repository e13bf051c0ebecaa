import Foundation
import Testing

@testable import AgentryCore

@Suite("WebhookSource")
struct WebhookSourceTests {
    @Test("a webhooks.yaml reads with its defaults; an empty one, or one whose sources are all commented out, has none")
    func reads() throws {
        let sources = try WebhookSource.parseFile(
            yaml: """
                sources:
                  github:
                    scheme: github
                    secret_env: GH_SECRET
                    type: "github.{{header.X-GitHub-Event}}"
                  billing:
                    scheme: hmac-sha256
                    secret_env: BILLING_SECRET
                    type: billing.paid
                    priority: high
                    signature_header: X-Sig
                    max_body_kb: 64
                    payload: {amount: "{{payload.data.amount}}"}
                """)
        #expect(sources.map(\.name) == ["github", "billing"])
        #expect(sources[0].priority == .normal && sources[0].maxBodyKB == 1024 && sources[0].payload == nil)
        #expect(sources[1].signatureHeader == "X-Sig" && sources[1].timestampHeader == "X-Timestamp")
        #expect(sources[1].maxBodyBytes == 64 * 1024)
        #expect(try WebhookSource.parseFile(yaml: "").isEmpty)
        #expect(try WebhookSource.parseFile(yaml: "sources:\n#  github:\n#    scheme: github\n").isEmpty)
    }

    @Test("every problem is reported with file, line and column")
    func problems() throws {
        let yaml = """
            sources:
              Bad_Name: {scheme: github, secret_env: X, type: a}
              gh:
                scheme: githb
                secret_env: 1NOPE
                type: "github.{{headers.X-GitHub-Event}}"
                max_body_kb: 0
                sigature_header: X
              plain:
                scheme: gitlab
                secret_env: GL
                type: "not a type"
                signature_header: X-Sig
            """
        let error = #expect(throws: WebhookSourceError.self) { try WebhookSource.parseFile(yaml: yaml, file: "webhooks.yaml") }
        let lines = (error?.description ?? "").split(separator: "\n").map(String.init)
        #expect(lines.count == 8, "\(lines)")
        #expect(lines.first?.hasPrefix("webhooks.yaml:2:3: sources.Bad_Name: a source name is 1 to 63") == true, "\(lines)")
        #expect(
            lines.contains(
                "webhooks.yaml:4:13: sources.gh.scheme: expected one of github, gitlab, hmac-sha256; found 'githb'; did you mean 'github'?"))
        #expect(lines.contains { $0.hasPrefix("webhooks.yaml:5:17: sources.gh.secret_env: expected the name of an environment variable") })
        #expect(lines.contains { $0.hasPrefix("webhooks.yaml:6:19: sources.gh.type: template '{{headers.X-GitHub-Event}}'") }, "\(lines)")
        #expect(lines.contains { $0.hasPrefix("webhooks.yaml:7:18: sources.gh.max_body_kb: expected a positive whole number") })
        #expect(
            lines.contains {
                $0.hasPrefix("webhooks.yaml:8:5: sources.gh.sigature_header: unknown key") && $0.hasSuffix("did you mean 'signature_header'?")
            })
        #expect(lines.contains { $0.hasPrefix("webhooks.yaml:12:11: sources.plain.type: event type 'not a type' contains ' '") }, "\(lines)")
        #expect(lines.contains("webhooks.yaml:13:23: sources.plain.signature_header: 'signature_header' applies to scheme hmac-sha256 only"))
    }

    @Test("the mapping: a type from a header or the payload, the whole body or mapped fields, an id per delivery")
    func mapping() throws {
        let source = WebhookSource(
            name: "gl", secretEnv: "GL", scheme: .gitlab, type: "gitlab.{{payload.object_kind}}",
            payload: [
                "project": "{{payload.project.name}}", "size": "{{payload.size}}", "text": "by {{header.x-user}}", "missing": "{{payload.nope}}",
            ])
        let content = WebhookContent(headers: ["X-User": "ann"], body: ["object_kind": "push", "project": ["name": "tv"], "size": 3])
        let event = try source.event(for: content, deliveryID: "d1").get()
        #expect(event.type == "gitlab.push")
        #expect(event.source == "webhook:gl")
        #expect(event.payload == ["project": "tv", "size": 3, "text": "by ann", "missing": .null])
        #expect(event.id == WebhookSource.eventID(source: "gl", deliveryID: "d1"))
        #expect(event.id != WebhookSource.eventID(source: "gl", deliveryID: "d2"))
        #expect(event.id != WebhookSource.eventID(source: "gl2", deliveryID: "d1"))

        let whole = WebhookSource(name: "gh", secretEnv: "GH", scheme: .github, type: "github.{{header.X-GitHub-Event}}")
        let body: JSONValue = ["zen": "hi"]
        #expect(try whole.event(for: WebhookContent(headers: ["x-github-event": "ping"], body: body), deliveryID: "1").get().payload == ["zen": "hi"])
        guard case .failure(let noType) = whole.event(for: WebhookContent(headers: [:], body: body), deliveryID: "1") else {
            Issue.record("a type rendered empty must be refused")
            return
        }
        #expect(!noType.badBody)
        guard case .failure(let array) = whole.event(for: WebhookContent(headers: ["x-github-event": "push"], body: [1, 2]), deliveryID: "1") else {
            Issue.record("an array body without a payload mapping must be refused")
            return
        }
        #expect(array.badBody)
    }

    @Test("source names")
    func names() {
        #expect(WebhookSource.nameProblem("github") == nil)
        #expect(WebhookSource.nameProblem("a-b_c9") == nil)
        #expect(WebhookSource.nameProblem(String(repeating: "a", count: 63)) == nil)
        #expect(WebhookSource.nameProblem(String(repeating: "a", count: 64)) != nil)
        #expect(WebhookSource.nameProblem("-x") != nil)
        #expect(WebhookSource.nameProblem("GitHub") != nil)
        #expect(WebhookSource.nameProblem("deliveries") != nil)
        #expect(WebhookSource.nameProblem("") != nil)
    }
}
