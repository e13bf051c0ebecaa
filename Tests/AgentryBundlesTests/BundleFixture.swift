import Foundation

@testable import AgentryBundles

/// A bundle source directory in a temporary folder: bundle.yaml, one exec agent whose handler is a script of the
/// bundle, and a data file.
struct BundleFixture {
    let root: String

    init(id: String = "device-check", version: String = "1.0.0", extraYAML: String = "") throws {
        root = NSTemporaryDirectory() + "bundle-\(UUID().uuidString)"
        try write(
            "bundle.yaml",
            """
            id: \(id)
            version: \(version)
            description: Looks at a device's picture.
            author: qa-team
            license: Apache-2.0
            """)
        try write(
            "agents/\(id).yaml",
            """
            metadata:
              id: \(id)
              name: Device check
              version: \(version)
              author: qa-team
              description: Checks a device.
            goal:
              type: continuous
              description: Know whether a black screen is real.
            triggers:
              - type: alert.blackscreen
                priority: critical
            permissions:
              devices: [read, reboot]
            config:
              approval_required_for: [devices.reboot]
            handler:
              exec:
                command: [handlers/check.sh, --fast]
            \(extraYAML)
            """)
        try write("handlers/check.sh", "#!/bin/sh\necho '{\"ok\": true}'\n", mode: 0o755)
        try write("handlers/data.txt", "thresholds\n")
    }

    func write(_ path: String, _ text: String, mode: Int = 0o644) throws {
        let full = "\(root)/\(path)"
        try FileManager.default.createDirectory(
            atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: full))
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: full)
    }

    func pack(key: BundleSigningKey? = nil) throws -> (manifest: BundleManifest, data: Data) {
        try BundlePacker.pack(directory: root, signingKey: key, defaultMinAgentryVersion: "0.4.0")
    }

    func remove() { try? FileManager.default.removeItem(atPath: root) }
}
