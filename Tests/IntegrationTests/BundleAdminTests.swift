import AgentryAdmin
import AgentryBundles
import AgentryCore
import AgentryRuntime
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

            // This server has no catalog configured: listing it and installing from it say how to configure one.
            let noCatalog = try await a.request(.GET, "/api/catalog")
            #expect(noCatalog.status == 404 && noCatalog.errorCode == "no_catalog", "\(noCatalog.text)")
            #expect(noCatalog.errorMessage.contains("AGENTRY_CATALOG"))
            let noInstall = try await a.request(.POST, "/api/bundles/install", body: #"{"id": "anything"}"#)
            #expect(noInstall.status == 404 && noInstall.errorCode == "no_catalog", "\(noInstall.text)")
        }
    }

    /// A catalog directory of signed bundles: `<tag>-main` 2.1.0 needs `<tag>-rebooter` ^1.2 (1.2.0, 1.4.0 and 2.0.0
    /// are there), `<tag>-picky` 1.0.0 needs `<tag>-rebooter` >=3 (none), `<tag>-stranger` 1.0.0 is signed by a key
    /// nobody trusts. Returns the directories and the trusted key.
    static func catalog(tag: String) throws -> (catalog: String, bundles: String, trustedKeys: String) {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.uniqueName("agentry-admin-catalog-")).path
        let catalog = base + "/catalog", bundles = base + "/bundles"
        for directory in [catalog, bundles] { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        let key = BundleSigningKey(comment: "tests@agentry"), stranger = BundleSigningKey(comment: "stranger")
        let trustedKeys = base + "/trusted-keys"
        try "\(key.publicKey.line)\n".write(toFile: trustedKeys, atomically: true, encoding: .utf8)
        let rebooter = "\(tag)-rebooter"
        var made: [(TestBundle, BundleSigningKey)] = ["1.2.0", "1.4.0", "2.0.0"].map {
            (TestBundle.scripted(id: rebooter, version: $0, trigger: "\(tag).reboot", tag: "rebooter \($0)"), key)
        }
        var main = TestBundle.scripted(id: "\(tag)-main", version: "2.1.0", trigger: "\(tag).alert", tag: "main")
        main.dependencies = [.init(id: rebooter, range: "^1.2", requiredBy: [main.id])]
        var picky = TestBundle.scripted(id: "\(tag)-picky", version: "1.0.0", trigger: "\(tag).picky", tag: "picky")
        picky.dependencies = [.init(id: rebooter, range: ">=3.0.0", requiredBy: [picky.id])]
        made += [(main, key), (picky, key)]
        made.append((TestBundle.scripted(id: "\(tag)-stranger", version: "1.0.0", trigger: "\(tag).stranger", tag: "stranger"), stranger))
        for (bundle, signer) in made {
            try bundle.archive(signedBy: signer).write(to: URL(fileURLWithPath: "\(catalog)/\(bundle.id)-\(bundle.version).agentry"))
        }
        try CatalogIndexer.write(directory: catalog)
        return (catalog, bundles, trustedKeys)
    }

    @Test(
        "install through the admin API needs the token; with it, a catalog bundle installs with the highest dependency that fits, and conflicts and untrusted bundles are refused with why"
    )
    func installFromCatalog() async throws {
        let tag = TestEnvironment.uniqueName("cat")
        let made = try Self.catalog(tag: tag)
        defer { try? FileManager.default.removeItem(atPath: (made.catalog as NSString).deletingLastPathComponent) }
        try await withAdminServer(
            configure: { $0.catalog = made.catalog },
            bundles: BundleSettings(directory: made.bundles, trustedKeyFiles: [made.trustedKeys])
        ) { a in
            let (main, rebooter) = ("\(tag)-main", "\(tag)-rebooter")
            // The catalog as the page lists it: every version, who signed it, whether that key is trusted here.
            let listed = try await a.request(.GET, "/api/catalog")
            #expect(listed.status == 200, "\(listed.text)")
            #expect(listed.json?[path: "catalog"] == .string(made.catalog))
            let entries = listed.json?[path: "bundles"]?.arrayValue ?? []
            #expect(entries.count == 6, "\(listed.text)")
            let entry = entries.first { $0[path: "id"] == .string(main) }
            #expect(entry?[path: "signer.trusted"] == .bool(true) && entry?[path: "signer.comment"] == "tests@agentry")
            #expect(entry?[path: "dependencies"]?.arrayValue?.first?[path: "range"] == "^1.2")
            #expect(entry?[path: "approvals"] == .array(["devices.reboot"]))
            #expect(entry?[path: "installed"] == .bool(false))
            let strangers = try await a.request(.GET, "/api/catalog?q=STRANGER").json?[path: "bundles"]?.arrayValue ?? []
            #expect(strangers.count == 1 && strangers.first?[path: "signer.trusted"] == .bool(false), "search, any case")

            // Without the token nothing is installed.
            let body = #"{"id": "\#(main)", "publish": true}"#
            let refused = try await a.request(.POST, "/api/bundles/install", body: body, authorized: false)
            #expect(refused.status == 401 && refused.errorCode == "unauthorized", "\(refused.text)")
            let wrong = try await a.request(.POST, "/api/bundles/install", body: body, token: "not-the-admin-token-at-all")
            #expect(wrong.status == 401, "\(wrong.text)")
            #expect(try await a.request(.GET, "/api/agents/\(main)").status == 404)
            #expect(!FileManager.default.fileExists(atPath: "\(made.bundles)/\(main)"), "no file placed")

            // With it: rebooter 1.4.0 (the highest of ^1.2), then main 2.1.0, both published.
            let installed = try await a.request(.POST, "/api/bundles/install", body: body)
            #expect(installed.status == 201, "\(installed.text)")
            let reports = installed.json?[path: "reports"]?.arrayValue ?? []
            #expect(
                reports.map { "\($0[path: "bundle_id"]?.stringValue ?? "") \($0[path: "version"]?.stringValue ?? "")" } == [
                    "\(rebooter) 1.4.0", "\(main) 2.1.0",
                ])
            #expect(installed.json?[path: "message"]?.stringValue?.contains("\(rebooter) 1.4.0") == true, "\(installed.text)")
            #expect(reports.last?[path: "signer.comment"] == "tests@agentry")
            #expect(reports.last?[path: "published"]?.arrayValue?.first?[path: "agent_id"] == .string(main))
            let script = "\(made.bundles)/\(main)/2.1.0/handlers/run.sh"
            #expect(FileManager.default.isExecutableFile(atPath: script), "the handler is placed, executable")
            let agent = try await a.request(.GET, "/api/agents/\(main)")
            #expect(agent.json?[path: "status"] == "published" && agent.json?[path: "version"] == "2.1.0", "\(agent.text)")
            let dependency = try await a.request(.GET, "/api/agents/\(rebooter)")
            #expect(dependency.json?[path: "version"] == "1.4.0", "\(dependency.text)")

            let bundles = try await a.request(.GET, "/api/bundles").json?[path: "bundles"]?.arrayValue ?? []
            let ours = bundles.filter { ($0[path: "bundle_id"]?.stringValue ?? "").hasPrefix(tag) }
            #expect(ours.map { $0[path: "bundle_id"]?.stringValue ?? "" }.sorted() == [main, rebooter].sorted())
            #expect(ours.allSatisfy { $0[path: "installed_by"]?.stringValue?.contains("token admin") == true }, "\(ours)")
            let again = try await a.request(.GET, "/api/catalog?q=\(main)").json?[path: "bundles"]?.arrayValue?.first
            #expect(again?[path: "installed"] == .bool(true))
            let twice = try await a.request(.POST, "/api/bundles/install", body: body)
            #expect(twice.status == 201 && twice.json?[path: "reports"]?.arrayValue?.last?[path: "outcome"] == "unchanged", "\(twice.text)")

            // A conflict names who needs what and what there is; an untrusted bundle is refused, saying so.
            let picky = try await a.request(.POST, "/api/bundles/install", body: #"{"id": "\#(tag)-picky"}"#)
            #expect(picky.status == 409 && picky.errorCode == "conflict", "\(picky.text)")
            #expect(picky.errorMessage.contains(">=3.0.0") && picky.errorMessage.contains("1.4.0"), "\(picky.errorMessage)")
            let stranger = try await a.request(.POST, "/api/bundles/install", body: #"{"id": "\#(tag)-stranger"}"#)
            #expect(stranger.status == 422 && stranger.errorCode == "bundle_refused", "\(stranger.text)")
            #expect(stranger.errorMessage.contains("trust"), "\(stranger.errorMessage)")
            #expect(try await a.request(.GET, "/api/agents/\(tag)-stranger").status == 404)
            let missing = try await a.request(.POST, "/api/bundles/install", body: #"{"id": "\#(tag)-nope"}"#)
            #expect(missing.status == 404 && missing.errorCode == "not_found", "\(missing.text)")
            let noVersion = try await a.request(.POST, "/api/bundles/install", body: #"{"id": "\#(main)", "version": "9.9.9"}"#)
            #expect(noVersion.status == 404 && noVersion.errorMessage.contains("2.1.0"), "\(noVersion.text)")
        }
    }
}
