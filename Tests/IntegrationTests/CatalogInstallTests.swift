import AgentryBundles
import AgentryCore
import AgentryStore
import Foundation
import Testing

/// Installing by id from a catalog through `agentry bundle install ID`, as the quick start does: the subagents come
/// along at the highest fitting versions, and a conflict is explained before anything is installed.
@Suite("Installing from a catalog", .serialized)
struct CatalogInstallTests {
    static let exampleCatalog = TestEnvironment.repositoryRoot.appendingPathComponent("examples/catalog").path

    @Test("the example catalog installs screen-triage with its subagent lab-rebooter, both published, on a clean database")
    func exampleCatalog() async throws {
        try await withBundleHarness { h in
            let environment = [
                "AGENTRY_CATALOG": Self.exampleCatalog,
                "AGENTRY_TRUSTED_KEYS": Self.exampleCatalog + "/agentry-examples.pub",
            ]
            let result = try h.cli(["bundle", "install", "screen-triage", "--publish"], environment: environment)
            #expect(result.status == 0, "\(result.output)")
            #expect(result.output.contains("Installed screen-triage 1.1.0 and 1 dependency (lab-rebooter 1.0.0)"), "\(result.output)")
            let published = try await h.agents.states().filter { $0.activeVersion != nil }.map(\.agentID).sorted()
            #expect(published == ["lab-rebooter", "screen-triage"])
            #expect(FileManager.default.isExecutableFile(atPath: h.bundlesDirectory + "/screen-triage/1.1.0/handlers/triage.sh"))

            // Again: nothing changes, and it says so.
            let again = try h.cli(["bundle", "install", "screen-triage"], environment: environment)
            #expect(again.status == 0 && again.output.contains("installed already with the same content"), "\(again.output)")

            let missing = try h.cli(["bundle", "install", "no-such-agent"], environment: environment)
            #expect(missing.status != 0 && missing.output.contains("the catalog has no bundle no-such-agent"), "\(missing.output)")
        }
    }

    @Test("a diamond installs the highest version every range allows; a conflict names each requirer and what is available, installing nothing")
    func diamondAndConflict() async throws {
        try await withBundleHarness { h in
            let catalog = h.bundlesDirectory + "-catalog"
            try FileManager.default.createDirectory(atPath: catalog, withIntermediateDirectories: true)
            // d: 1.2.0, 1.5.0, 2.0.1. b needs d >=1.2 <2, c needs d ^1.4; a needs b and c: d 1.5.0 fits both.
            // x needs d ^2.0 beside b: no d fits both (one version per agent in a plan; versions installed earlier stay).
            let bundles: [(String, String, [(String, String)])] = [
                ("d", "1.2.0", []), ("d", "1.5.0", []), ("d", "2.0.1", []),
                ("b", "1.0.0", [("d", ">=1.2 <2")]), ("c", "1.0.0", [("d", "^1.4")]),
                ("a", "1.0.0", [("b", "^1.0.0"), ("c", "^1.0.0")]),
                ("x", "1.0.0", [("b", "^1.0.0"), ("d", "^2.0")]),
            ]
            for (name, version, needs) in bundles {
                let id = "\(name)-agent"
                let source = "\(catalog)-src/\(id)-\(version)"
                try FileManager.default.createDirectory(atPath: source + "/agents", withIntermediateDirectories: true)
                try "id: \(id)\nversion: \(version)\ndescription: \(name)\nauthor: tests\nlicense: MIT\n".write(
                    toFile: source + "/bundle.yaml", atomically: true, encoding: .utf8)
                let subagents =
                    needs.isEmpty
                    ? ""
                    : "subagents:\n"
                        + needs.map { "  - {id: \($0.0)-agent, version: \"\($0.1)\", delegate_for: [task_\($0.0)]}\n" }.joined()
                let yaml = """
                    metadata: {id: \(id), name: \(name), version: \(version), author: tests, description: \(name)}
                    goal: {type: on-demand, description: Test.}
                    triggers: [{type: test.\(id), priority: normal}]
                    handler: {builtin: noop}

                    """
                try (yaml + subagents).write(toFile: source + "/agents/\(id).yaml", atomically: true, encoding: .utf8)
                let (_, data) = try BundlePacker.pack(directory: source, signingKey: h.key, defaultMinAgentryVersion: "0.1.0")
                try data.write(to: URL(fileURLWithPath: "\(catalog)/\(id)-\(version).agentry"))
            }
            let index = try h.cli(["catalog", "index", catalog])
            #expect(index.status == 0, "\(index.output)")

            let conflict = try h.cli(["bundle", "install", "x-agent", "--catalog", catalog])
            #expect(conflict.status != 0)
            #expect(
                conflict.output.contains("d-agent: x-agent 1.0.0 needs ^2.0, b-agent 1.0.0 needs >=1.2 <2; available 1.2.0, 1.5.0, 2.0.1"),
                "\(conflict.output)")
            #expect(try await h.agents.allVersions().isEmpty, "a conflict installs nothing")

            let diamond = try h.cli(["bundle", "install", "a-agent", "--catalog", catalog])
            #expect(diamond.status == 0, "\(diamond.output)")
            let versions = try await h.agents.allVersions().map { "\($0.agentID) \($0.version)" }.sorted()
            #expect(versions == ["a-agent 1.0.0", "b-agent 1.0.0", "c-agent 1.0.0", "d-agent 1.5.0"])
        }
    }
}
