import AgentryBundles
import Foundation

/// Bundles and catalog directories for the catalog's tests, built in memory (no packer needed).
enum CatalogFixture {
    /// A valid bundle: one definition, one handler script, `needs` as dependencies; signed with `key` when given.
    /// `note` changes the script's bytes (and so the archive's hash) without changing id or version.
    static func bundle(
        _ id: String, _ version: String, needs: [(String, String)] = [], key: BundleSigningKey? = nil, note: String = ""
    ) -> Data {
        let definition = Data("metadata:\n  id: \(id)\n  version: \(version)\n".utf8)
        let script = Data("#!/bin/sh\necho \(id) \(note)\n".utf8)
        let manifest = BundleManifest(
            id: id, version: version, description: "Reboots or checks devices: \(id)", author: "qa-team",
            license: "Apache-2.0", minAgentryVersion: "0.1.0",
            definitions: [.init(path: "agents/\(id).yaml", id: id, version: version, sha256: BundleArchive.sha256(definition))],
            files: [
                .init(
                    path: "handlers/run.sh", sha256: BundleArchive.sha256(script), size: script.count, executable: true,
                    usedBy: [id])
            ],
            dependencies: needs.map { .init(id: $0.0, range: $0.1, requiredBy: [id]) }, skills: ["screenshot"],
            permissions: ["devices": ["read", "reboot"]], approvals: ["devices.reboot"])
        let manifestData = manifest.encoded()
        return BundleWriter.archive(
            manifestData: manifestData, signature: key?.signature(of: manifestData),
            contents: ["agents/\(id).yaml": definition, "handlers/run.sh": script], executable: ["handlers/run.sh"])
    }

    /// A fresh directory holding `bundles` (file name → bytes), not yet indexed; remove it when done.
    static func directory(_ bundles: [String: Data]) throws -> String {
        let path = NSTemporaryDirectory() + "agentry-catalog-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        for (name, data) in bundles { try data.write(to: URL(fileURLWithPath: "\(path)/\(name)")) }
        return path
    }

    /// The example catalog of these tests: device-check 1.0.0 and 1.1.0 needing device-rebooter ^1.2, and
    /// device-rebooter 1.2.0 and 1.3.0, all signed with `key`.
    static func devices(key: BundleSigningKey) throws -> String {
        try directory([
            "device-check-1.0.0.agentry": bundle("device-check", "1.0.0", needs: [("device-rebooter", "^1.2")], key: key),
            "device-check-1.1.0.agentry": bundle("device-check", "1.1.0", needs: [("device-rebooter", "^1.2")], key: key),
            "device-rebooter-1.2.0.agentry": bundle("device-rebooter", "1.2.0", key: key),
            "device-rebooter-1.3.0.agentry": bundle("device-rebooter", "1.3.0", key: key),
        ])
    }
}
