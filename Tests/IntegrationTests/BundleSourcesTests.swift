import AgentryBundles
import AgentryCore
import AgentryRuntime
import AgentryStore
import Foundation
import Hummingbird
import NIOCore
import Testing

/// Where bundles come from and what vouches for them, beyond a signed file: a URL, `--allow-unsigned` on a loopback
/// setup, and an agent version registered from elsewhere.
@Suite("Bundle sources and trust", .serialized)
struct BundleSourcesTests {
    @Test("install from a URL downloads the bundle; a missing one fails with the server's status")
    func fromURL() async throws {
        try await withBundleHarness { h in
            let id = TestEnvironment.uniqueName("fetched-")
            let data = TestBundle.scripted(id: id, version: "1.0.0", trigger: "work.\(id)", tag: "v1").archive(signedBy: h.key)
            let router = Router()
            router.get("bundles/\(id).agentry") { _, _ in Response(status: .ok, body: .init(byteBuffer: ByteBuffer(bytes: data))) }
            let (server, port) = try await StandInServer.serve(router)
            defer { server.cancel() }

            let missing = try h.cli(["bundle", "install", "http://127.0.0.1:\(port)/bundles/nothing.agentry"])
            #expect(missing.status != 0)
            #expect(
                missing.output.contains("cannot download http://127.0.0.1:\(port)/bundles/nothing.agentry: the server answered 404"),
                "\(missing.output)")

            let result = try h.cli(["bundle", "install", "http://127.0.0.1:\(port)/bundles/\(id).agentry", "--json"])
            #expect(result.status == 0, "\(result.output)")
            let report = try JSON.parse(Array(result.output.utf8))
            #expect(report[path: "outcome"]?.stringValue == "installed")
            #expect(report[path: "sha256"]?.stringValue == BundleArchive.sha256(data))
            #expect(report[path: "signer.fingerprint"]?.stringValue == h.key.publicKey.fingerprint)
            #expect(report[path: "approvals"] == .array(["devices.reboot"]))
            #expect(FileManager.default.fileExists(atPath: "\(h.bundlesDirectory)/\(id)/1.0.0/handlers/run.sh"))
        }
    }

    @Test("--allow-unsigned on a loopback setup installs an unsigned bundle, listed as unsigned, but never a changed one")
    func allowUnsigned() async throws {
        try await withBundleHarness { h in
            let id = TestEnvironment.uniqueName("unsigned-")
            let bundle = TestBundle.scripted(id: id, version: "1.0.0", trigger: "work.\(id)", tag: "v1")

            var contents = bundle.contents
            contents["handlers/run.sh"] = Data("#!/bin/sh\necho changed\n".utf8)
            let changed = BundleWriter.archive(
                manifestData: bundle.manifest.encoded(), signature: nil, contents: contents, executable: ["handlers/run.sh"])
            let refused = try h.cli(["bundle", "install", try h.file(changed, "changed"), "--allow-unsigned"])
            #expect(refused.status != 0 && refused.output.contains("'handlers/run.sh' was changed"), "\(refused.output)")

            let result = try h.cli(["bundle", "install", try h.file(bundle.archive(signedBy: nil), "unsigned"), "--allow-unsigned"])
            #expect(result.status == 0, "\(result.output)")
            #expect(result.output.contains("signed by   nobody trusted: installed with --allow-unsigned"), "\(result.output)")
            let listed = try h.cli(["bundle", "list"])
            #expect(listed.output.contains("\(id) 1.0.0  installed") && listed.output.contains("signed by unsigned"), "\(listed.output)")
            #expect(try await h.installer.installed(id).first?.record.signer == nil)
        }
    }

    @Test("an agent version registered from elsewhere with another definition is refused, naming the agent")
    func registeredElsewhere() async throws {
        try await withBundleHarness { h in
            let id = TestEnvironment.uniqueName("taken-")
            let bundle = TestBundle.scripted(id: id, version: "1.0.0", trigger: "work.\(id)", tag: "v1")
            let other = bundle.definitions[0].yaml.replacingOccurrences(of: "A bundled agent.", with: "Someone else's agent.")
            _ = try await h.registry.register(try AgentDefinition.parse(yaml: other))

            let result = try h.cli(["bundle", "install", try h.file(bundle.archive(signedBy: h.key), "taken")])
            #expect(result.status != 0)
            #expect(
                result.output.contains("agent \(id) 1.0.0 is registered already (draft) with another definition"), "\(result.output)")
            #expect(h.placedFiles().isEmpty)
            let stored = try #require(try await h.agents.version("1.0.0", of: id))
            #expect(stored.definition.contains("Someone else's agent."), "the other definition stays")
        }
    }
}
