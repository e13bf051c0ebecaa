public import AgentryCore
public import Foundation

/// What a bundle holds and asks for: `manifest.json` at the root of a `.agentry` archive.
///
/// Every other file of the archive is listed here with its SHA-256, so the manifest's signature (`manifest.sig`,
/// ``BundleSignature``) covers the whole bundle: changing any file breaks its hash, changing the manifest breaks
/// the signature. The JSON uses snake_case keys; `format` is 1.
///
/// ```json
/// {"format": 1, "id": "blackscreen-recovery", "version": "2.1.0", "description": "…", "author": "qa-team",
///  "license": "Apache-2.0", "min_agentry_version": "0.4.0",
///  "definitions": [{"path": "agents/blackscreen.yaml", "id": "blackscreen-exec", "version": "2.1.0", "sha256": "…"}],
///  "files": [{"path": "handlers/recover.sh", "sha256": "…", "size": 812, "executable": true,
///             "used_by": ["blackscreen-exec"]}],
///  "dependencies": [{"id": "device-rebooter", "range": ">=1.2.0 <2.0.0", "required_by": ["blackscreen-exec"]}],
///  "skills": ["screenshot"], "permissions": {"devices": ["read", "reboot"]},
///  "approvals": ["devices.reboot"]}
/// ```
public struct BundleManifest: Codable, Sendable, Hashable {
    /// The manifest format this build reads and writes.
    public static let currentFormat = 1

    public var format: Int
    /// The bundle's name: lowercase letters, digits and `-` (as agent ids); usually its main agent's id.
    public var id: String
    /// The bundle's semantic version; a catalog holds one bundle per (id, version).
    public var version: String
    public var description: String
    public var author: String
    /// An SPDX identifier (`Apache-2.0`) or a short text.
    public var license: String
    /// The lowest Agentry version that runs the bundle's definitions.
    public var minAgentryVersion: String
    /// The agent definitions it holds (YAML files in the archive).
    public var definitions: [Definition]
    /// Every other file: handler programs and scripts, their data.
    public var files: [File]
    /// Subagents its definitions delegate to that the bundle does not hold itself: one entry per (id, range); every
    /// entry must be satisfied.
    public var dependencies: [Dependency]
    /// The skills its definitions declare (union, sorted).
    public var skills: [String]
    /// The permissions its definitions ask for, by area (union, sorted).
    public var permissions: [String: [String]]
    /// The actions its definitions ask a person to approve first (`config.approval_required_for`, union, sorted).
    public var approvals: [String]

    public struct Definition: Codable, Sendable, Hashable {
        /// The file's path in the archive (relative, `/`-separated).
        public var path: String
        /// The agent's id and version, as its metadata says.
        public var id: String
        public var version: String
        /// Lowercase hex SHA-256 of the file's bytes.
        public var sha256: String

        public init(path: String, id: String, version: String, sha256: String) {
            self.path = path
            self.id = id
            self.version = version
            self.sha256 = sha256
        }
    }

    public struct File: Codable, Sendable, Hashable {
        public var path: String
        public var sha256: String
        public var size: Int
        /// Installed with mode 0755 when true, 0644 otherwise.
        public var executable: Bool
        /// The agents whose handler names the file (its program, or a script an interpreter runs); empty for data.
        public var usedBy: [String]

        public init(path: String, sha256: String, size: Int, executable: Bool, usedBy: [String]) {
            self.path = path
            self.sha256 = sha256
            self.size = size
            self.executable = executable
            self.usedBy = usedBy
        }

        enum CodingKeys: String, CodingKey {
            case path, sha256, size, executable
            case usedBy = "used_by"
        }
    }

    public struct Dependency: Codable, Sendable, Hashable {
        /// The subagent's id.
        public var id: String
        /// The versions that fit, in ``VersionRange``'s syntax.
        public var range: String
        /// The bundle's agents that delegate to it.
        public var requiredBy: [String]

        public init(id: String, range: String, requiredBy: [String]) {
            self.id = id
            self.range = range
            self.requiredBy = requiredBy
        }

        enum CodingKeys: String, CodingKey {
            case id, range
            case requiredBy = "required_by"
        }
    }

    public init(
        format: Int = BundleManifest.currentFormat, id: String, version: String, description: String, author: String,
        license: String, minAgentryVersion: String, definitions: [Definition], files: [File],
        dependencies: [Dependency], skills: [String], permissions: [String: [String]], approvals: [String]
    ) {
        self.format = format
        self.id = id
        self.version = version
        self.description = description
        self.author = author
        self.license = license
        self.minAgentryVersion = minAgentryVersion
        self.definitions = definitions
        self.files = files
        self.dependencies = dependencies
        self.skills = skills
        self.permissions = permissions
        self.approvals = approvals
    }

    enum CodingKeys: String, CodingKey {
        case format, id, version, description, author, license
        case minAgentryVersion = "min_agentry_version"
        case definitions, files, dependencies, skills, permissions, approvals
    }

    /// The manifest as `manifest.json` holds it: sorted keys, so that packing the same directory twice gives the
    /// same bytes (and the same signature).
    public func encoded() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        // Encoding plain strings, numbers and arrays cannot fail.
        return (try? encoder.encode(self)) ?? Data()
    }

    /// The agents the bundle holds, `id@version`.
    public var agentIDs: [String] { definitions.map(\.id) }

    /// Parsed ranges of the dependencies (the manifest was checked when read, so each parses).
    public func dependencyRanges() -> [(id: String, range: VersionRange)] {
        dependencies.compactMap { dependency in VersionRange.parse(dependency.range).map { (dependency.id, $0) } }
    }
}
