import AMQP
import AgentryBundles
import AgentryBus
import AgentryCore
import AgentryRuntime
import AgentryStore
import Foundation
import Logging

/// Bundles made for tests: a manifest listing the given definitions and files with their real hashes, written with
/// ``BundleWriter`` and signed with the given key, as `agentry bundle pack` and `sign` make them.
struct TestBundle {
    var id: String
    var version: String
    /// (path, agent id, agent version, YAML).
    var definitions: [(path: String, id: String, version: String, yaml: String)]
    /// (path, bytes, executable).
    var files: [(path: String, bytes: Data, executable: Bool)] = []
    var dependencies: [BundleManifest.Dependency] = []
    var minAgentryVersion = "0.1.0"
    var permissions: [String: [String]] = ["devices": ["read", "reboot"]]
    var approvals: [String] = ["devices.reboot"]

    var manifest: BundleManifest {
        BundleManifest(
            id: id, version: version, description: "Test bundle \(id).", author: "tests", license: "Apache-2.0",
            minAgentryVersion: minAgentryVersion,
            definitions: definitions.map {
                .init(path: $0.path, id: $0.id, version: $0.version, sha256: BundleArchive.sha256(Data($0.yaml.utf8)))
            },
            files: files.map {
                .init(
                    path: $0.path, sha256: BundleArchive.sha256($0.bytes), size: $0.bytes.count, executable: $0.executable,
                    usedBy: definitions.map(\.id))
            },
            dependencies: dependencies, skills: [], permissions: permissions, approvals: approvals)
    }

    var contents: [String: Data] {
        var contents: [String: Data] = [:]
        for definition in definitions { contents[definition.path] = Data(definition.yaml.utf8) }
        for file in files { contents[file.path] = file.bytes }
        return contents
    }

    /// The archive, signed by `key` (unsigned when nil).
    func archive(signedBy key: BundleSigningKey?) -> Data {
        let manifestData = manifest.encoded()
        return BundleWriter.archive(
            manifestData: manifestData, signature: key?.signature(of: manifestData), contents: contents,
            executable: Set(files.filter(\.executable).map(\.path)))
    }

    /// A bundle of one agent whose exec handler is the bundle's shell script `handlers/run.sh`, which prints where it
    /// runs from and `tag`.
    static func scripted(id: String, version: String, trigger: String, tag: String, workingDirectory: String? = nil) -> TestBundle {
        let script = "#!/bin/sh\ncat > /dev/null\necho \"ran \(tag) from $(pwd) as $0\"\n"
        var handler = "  exec:\n    command: [handlers/run.sh]\n"
        if let workingDirectory { handler += "    working_directory: \(workingDirectory)\n" }
        let yaml = """
            metadata: {id: \(id), name: Bundled \(id), version: \(version), author: tests, description: A bundled agent.}
            goal: {type: continuous, description: Run the bundle's script.}
            triggers:
              - type: \(trigger)
                priority: normal
            permissions: {devices: [read, reboot]}
            config: {approval_required_for: [devices.reboot]}
            handler:
            \(handler)
            """
        return TestBundle(
            id: id, version: version, definitions: [("agents/\(id).yaml", id, version, yaml)],
            files: [("handlers/run.sh", Data(script.utf8), true), ("handlers/data/notes.txt", Data("notes \(tag)\n".utf8), false)])
    }
}

/// What a bundle test needs: an installer on its own fresh database and vhost (so that its events never reach the
/// shared test database's event log), a bundles directory of its own, a signing key and a trusted keys file listing it.
struct BundleHarness: Sendable {
    let installer: BundleInstaller
    let registry: AgentRegistry
    let agents: AgentRegistryStore
    let bus: EventBus
    let connection: AMQPConnection
    let runtime: RuntimeStore
    /// The fresh database's URL, for the CLI and workers.
    let databaseURL: String
    /// The vhost's URL, for the CLI and workers.
    let amqpURL: String
    let bundlesDirectory: String
    let trustedKeysFile: String
    let key: BundleSigningKey

    /// The environment of an `agentry` process (CLI or worker) on this harness's database and bundles directory.
    var environment: [String: String] {
        [
            "AGENTRY_DATABASE_URL": databaseURL, "AGENTRY_AMQP_URL": amqpURL, "AGENTRY_BUNDLES_DIR": bundlesDirectory,
            "AGENTRY_TRUSTED_KEYS": trustedKeysFile,
        ]
    }

    /// Every regular file under the bundles directory, relative to it.
    func placedFiles() -> [String] {
        let enumerator = FileManager.default.enumerator(atPath: bundlesDirectory)
        var files: [String] = []
        while let path = enumerator?.nextObject() as? String {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: bundlesDirectory + "/" + path, isDirectory: &isDirectory), !isDirectory.boolValue {
                files.append(path)
            }
        }
        return files.sorted()
    }

    /// Runs `agentry ARGS` on this harness's database and bundles directory.
    func cli(_ arguments: [String], environment extra: [String: String] = [:]) throws -> (status: Int32, output: String) {
        try TestEnvironment.run(TestEnvironment.agentryExecutable, arguments, environment: environment.merging(extra) { $1 })
    }

    /// Writes `data` to a temporary `.agentry` file and returns its path.
    func file(_ data: Data, _ name: String) throws -> String {
        let path = bundlesDirectory + "-in/" + name + ".agentry"
        try FileManager.default.createDirectory(atPath: bundlesDirectory + "-in", withIntermediateDirectories: true)
        try data.write(to: URL(fileURLWithPath: path))
        return path
    }
}

func withBundleHarness(_ body: @Sendable (BundleHarness) async throws -> Void) async throws {
    try await TestEnvironment.withFreshDatabase("bundles") { database, url in
        let logger = TestEnvironment.logger
        let vhost = try TestEnvironment.makeVhost()
        defer { TestEnvironment.deleteVhost(vhost) }
        let amqp = TestEnvironment.configuration.amqp
        let amqpURL = "amqp://\(amqp.user):\(amqp.password)@\(amqp.host):\(amqp.port)/\(vhost)"
        let connection = try await TestEnvironment.connect(vhost: vhost)
        let topology = try TestEnvironment.topology()
        _ = try await topology.apply(on: connection)
        let base = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.uniqueName("agentry-bundles-")).path
        let directory = base + "/bundles"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let key = BundleSigningKey(comment: "tests@agentry")
        let trusted = base + "/trusted-keys"
        try "# the tests' key\n\(key.publicKey.line)\n".write(toFile: trusted, atomically: true, encoding: .utf8)
        do {
            let bus = try await EventBus(connection: connection, logger: logger)
            let agents = AgentRegistryStore(database: database, logger: logger)
            let registry = AgentRegistry(store: agents, bus: bus, topology: topology, logger: logger)
            let installer = try BundleInstaller(
                registry: registry, settings: BundleSettings(directory: directory, trustedKeyFiles: [trusted]), logger: logger)
            try await body(
                BundleHarness(
                    installer: installer, registry: registry, agents: agents, bus: bus, connection: connection,
                    runtime: RuntimeStore(database: database, logger: logger), databaseURL: url, amqpURL: amqpURL,
                    bundlesDirectory: directory,
                    trustedKeysFile: trusted, key: key))
        } catch {
            await connection.close()
            try? FileManager.default.removeItem(atPath: base)
            throw error
        }
        await connection.close()
        try? FileManager.default.removeItem(atPath: base)
    }
}
