public import AgentryBundles
public import AgentryCore
public import AgentryStore
import Foundation

/// What an installation did, for the CLI's text and `--json`, and the admin API.
public struct InstallReport: Sendable, Hashable {
    public enum Outcome: String, Sendable {
        /// Placed, registered and recorded now.
        case installed
        /// The version had been uninstalled; it is installed again.
        case reinstalled
        /// The same archive was installed already: nothing changed (publishing, when asked, was still done).
        case unchanged
    }

    /// One agent the bundle holds.
    public struct Agent: Sendable, Hashable {
        public var id: String
        public var version: String
        /// `created` (a new draft) or `unchanged` (registered already with this definition).
        public var registration: String
    }

    /// One agent version published by the installation.
    public struct Publication: Sendable, Hashable {
        public var agentID: String
        public var version: String
        public var previousVersion: String?
    }

    public var bundleID: String
    public var version: String
    public var sha256: String
    public var outcome: Outcome
    /// The trusted key that signed the bundle; nil when installed with `--allow-unsigned` without a trusted signature.
    public var signer: BundlePublicKey?
    public var description: String
    public var author: String
    public var license: String
    public var agents: [Agent]
    public var skills: [String]
    public var permissions: [String: [String]]
    public var approvals: [String]
    /// The absolute directory of this version's files.
    public var directory: String
    public var filesWritten: Int
    public var filesKept: Int
    /// The highest version of the bundle installed before this one, if any (an upgrade).
    public var previousVersion: String?
    public var published: [Publication]

    /// The report as lines of text.
    public var lines: [String] {
        var lines: [String] = []
        switch outcome {
        case .installed, .reinstalled:
            let upgrade = previousVersion.map { " (beside \($0), which stays installed)" } ?? ""
            lines.append("installed \(bundleID) \(version)\(upgrade)")
        case .unchanged:
            lines.append("\(bundleID) \(version) is installed already with the same content (sha256 \(sha256)); nothing changed")
        }
        if let signer {
            lines.append("  signed by   \(signer.fingerprint)\(signer.comment.isEmpty ? "" : " (\(signer.comment))"), a trusted key")
        } else {
            lines.append("  signed by   nobody trusted: installed with --allow-unsigned")
        }
        lines.append("  sha256      \(sha256)")
        lines.append("  files       \(directory) (\(filesWritten) written, \(filesKept) already there)")
        for agent in agents {
            lines.append(
                "  agent       \(agent.id) \(agent.version) (\(agent.registration == "created" ? "registered as a draft" : "registered already"))")
        }
        lines.append("  permissions \(Self.describe(permissions))")
        lines.append("  approvals   \(approvals.isEmpty ? "none" : approvals.joined(separator: ", "))")
        if !skills.isEmpty { lines.append("  skills      \(skills.joined(separator: ", "))") }
        if published.isEmpty {
            if outcome != .unchanged {
                lines.append("  not published: publish with `agentry agents publish ID --version V` or install again with --publish")
            }
        } else {
            for publication in published {
                let before = publication.previousVersion.map { " (was \($0))" } ?? ""
                lines.append("  published   \(publication.agentID) \(publication.version)\(before)")
            }
        }
        return lines
    }

    static func describe(_ permissions: [String: [String]]) -> String {
        permissions.isEmpty ? "none" : permissions.keys.sorted().map { "\($0): \(permissions[$0]!.joined(separator: ", "))" }.joined(separator: "; ")
    }

    public var jsonValue: JSONValue {
        [
            "bundle_id": .string(bundleID), "version": .string(version), "sha256": .string(sha256), "outcome": .string(outcome.rawValue),
            "signer": signer.map(Self.json) ?? .null, "description": .string(description), "author": .string(author),
            "license": .string(license),
            "agents": .array(agents.map { ["id": .string($0.id), "version": .string($0.version), "registration": .string($0.registration)] }),
            "skills": .array(skills.map(JSONValue.string)), "permissions": Self.json(permissions),
            "approvals": .array(approvals.map(JSONValue.string)), "directory": .string(directory),
            "files_written": .int(Int64(filesWritten)), "files_kept": .int(Int64(filesKept)),
            "previous_version": previousVersion.map(JSONValue.string) ?? .null,
            "published": .array(
                published.map {
                    [
                        "agent_id": .string($0.agentID), "version": .string($0.version),
                        "previous_version": $0.previousVersion.map(JSONValue.string) ?? .null,
                    ]
                }),
        ]
    }

    static func json(_ key: BundlePublicKey) -> JSONValue {
        ["fingerprint": .string(key.fingerprint), "comment": .string(key.comment), "key": .string(key.line)]
    }

    static func json(_ permissions: [String: [String]]) -> JSONValue {
        .object(permissions.mapValues { .array($0.map(JSONValue.string)) })
    }
}

/// One installed bundle version, as listed.
public struct InstalledBundle: Sendable, Hashable {
    public var record: InstalledBundleRecord
    public var manifest: BundleManifest
    /// The key that signed it (nil: installed unsigned).
    public var signer: BundlePublicKey?
    /// Whether its agents are the active versions (the version events reach).
    public var active: Bool

    public var jsonValue: JSONValue {
        [
            "bundle_id": .string(record.bundleID), "version": .string(record.version), "sha256": .string(record.sha256),
            "state": .string(record.state.rawValue), "active": .bool(active), "description": .string(manifest.description),
            "author": .string(manifest.author), "license": .string(manifest.license),
            "signer": signer.map(InstallReport.json) ?? .null, "directory": .string(record.directory),
            "installed_at": .string(Timestamp.format(record.installedAt)), "installed_by": .string(record.installedBy),
            "removed_at": record.removedAt.map { .string(Timestamp.format($0)) } ?? .null,
            "agents": .array(manifest.definitions.map { ["id": .string($0.id), "version": .string($0.version)] }),
            "dependencies": .array(manifest.dependencies.map { ["id": .string($0.id), "range": .string($0.range)] }),
            "skills": .array(manifest.skills.map(JSONValue.string)), "permissions": InstallReport.json(manifest.permissions),
            "approvals": .array(manifest.approvals.map(JSONValue.string)),
        ]
    }
}

/// What a rollback did.
public struct RollbackReport: Sendable, Hashable {
    public var bundleID: String
    /// The version that was active.
    public var from: String
    /// The version now active.
    public var to: String
    public var published: [InstallReport.Publication]
    /// Agents the active version had and `to` does not: left as they were.
    public var leftAsIs: [String]

    public var lines: [String] {
        ["rolled \(bundleID) back from \(from) to \(to)"]
            + published.map { "  published   \($0.agentID) \($0.version)\($0.previousVersion.map { " (was \($0))" } ?? "")" }
            + leftAsIs.map { "  left as is  \($0) (not in \(bundleID) \(to))" }
    }

    public var jsonValue: JSONValue {
        [
            "bundle_id": .string(bundleID), "from": .string(from), "to": .string(to),
            "published": .array(
                published.map {
                    [
                        "agent_id": .string($0.agentID), "version": .string($0.version),
                        "previous_version": $0.previousVersion.map(JSONValue.string) ?? .null,
                    ]
                }),
            "left_as_is": .array(leftAsIs.map(JSONValue.string)),
        ]
    }
}

/// What an uninstallation did.
public struct UninstallReport: Sendable, Hashable {
    public var bundleID: String
    /// The versions marked removed.
    public var versions: [String]
    /// The agents retired (uninstalling the whole bundle).
    public var retired: [String]
    public var filesRemoved: Int

    public var lines: [String] {
        ["uninstalled \(bundleID) \(versions.joined(separator: ", ")) (\(filesRemoved) file\(filesRemoved == 1 ? "" : "s") removed)"]
            + retired.map { "  retired     \($0)" }
    }

    public var jsonValue: JSONValue {
        [
            "bundle_id": .string(bundleID), "versions": .array(versions.map(JSONValue.string)),
            "retired": .array(retired.map(JSONValue.string)), "files_removed": .int(Int64(filesRemoved)),
        ]
    }
}
