import AgentryCore
import Foundation
import NIOHTTP1
import Testing

@Suite("Admin API: checking definitions, the catalog and bundles", .serialized)
struct BundleAdminTests {
    @Test("validate checks a definition as register does, registers nothing, says what registering would do, and needs the token")
    func validate() async throws {
        try await withAdminServer { a in
            let id = TestEnvironment.uniqueName("val-")
            let broken = AddAgentBrowserTests.definition(id: id, priority: "urgent")
            let unauthorized = try await a.request(.POST, "/api/agents/validate", body: broken, contentType: "application/yaml", authorized: false)
            #expect(unauthorized.status == 401, "\(unauthorized.text)")

            let refused = try await a.request(.POST, "/api/agents/validate", body: broken, contentType: "application/yaml")
            #expect(refused.status == 422, "\(refused.text)")
            #expect(refused.errorCode == "invalid_agent")
            let problems = refused.json?[path: "error.problems"]?.arrayValue ?? []
            #expect(problems.count == 1, "\(refused.text)")
            #expect(problems.first?[path: "line"] == .int(7))
            #expect(problems.first?[path: "path"] == "triggers[0].priority")
            #expect(problems.first?[path: "message"]?.stringValue?.contains("urgent") == true, "\(refused.text)")
            #expect(try await a.request(.GET, "/api/agents/\(id)").status == 404, "nothing registered")

            let valid = AddAgentBrowserTests.definition(id: id, priority: "high")
            let checked = try await a.request(.POST, "/api/agents/validate", body: valid, contentType: "application/yaml")
            #expect(checked.status == 200, "\(checked.text)")
            #expect(checked.json?[path: "agent_id"] == .string(id))
            #expect(checked.json?[path: "version"] == "1.0.0")
            #expect(checked.json?[path: "name"] == "Added from the page")
            #expect(checked.json?[path: "outcome"] == "created")
            #expect(try await a.request(.GET, "/api/agents/\(id)").status == 404, "a valid definition is not registered either")
            let plain = try await a.request(.POST, "/api/agents/validate", body: valid, contentType: "text/plain")
            #expect(plain.status == 415, "\(plain.text)")

            // Registered: the same text would change nothing; another text replaces the draft; once published, refused.
            #expect(try await a.request(.POST, "/api/agents/register", body: valid, contentType: "application/yaml").status == 201)
            let outcome: @Sendable (String) async throws -> JSONValue? = { text in
                try await a.request(.POST, "/api/agents/validate", body: text, contentType: "application/yaml").json?[path: "outcome"]
            }
            #expect(try await outcome(valid) == "unchanged")
            let other = AddAgentBrowserTests.definition(id: id, priority: "low")
            #expect(try await outcome(other) == "replaced")
            #expect(try await a.request(.POST, "/api/agents/\(id)/publish").status == 200)
            let conflict = try await a.request(.POST, "/api/agents/validate", body: other, contentType: "application/yaml")
            #expect(conflict.status == 200 && conflict.json?[path: "outcome"] == "conflict", "\(conflict.text)")
            #expect(conflict.json?[path: "message"]?.stringValue?.contains("raise the version") == true, "\(conflict.text)")
        }
    }
}
