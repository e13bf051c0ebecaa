public import AgentryCore
public import Foundation

/// A catalog's `index.json`: what each bundle of the catalog is, where its archive lies and what it needs, so that a
/// reader can search, show and resolve dependencies without downloading any archive.
///
/// The JSON uses snake_case keys; `format` is 1; entries are sorted by id, then by version (lowest first).
///
/// ```json
/// {"format": 1, "bundles": [{"id": "device-check", "version": "1.0.0", "file": "device-check-1.0.0.agentry",
///   "sha256": "…", "size": 4096, "description": "…", "author": "qa-team", "license": "Apache-2.0",
///   "agents": [{"id": "device-check", "version": "1.0.0"}],
///   "dependencies": [{"id": "device-rebooter", "range": "^1.2", "required_by": ["device-check"]}],
///   "skills": [], "permissions": {"devices": ["read"]}, "approvals": [],
///   "signature": {"algorithm": "ed25519", "public_key": "…", "signature": "…"},
///   "min_agentry_version": "0.4.0"}]}
/// ```
public struct CatalogIndex: Codable, Sendable, Hashable {
    /// The index format this build reads and writes.
    public static let currentFormat = 1
    /// The index's file name inside a catalog.
    public static let fileName = "index.json"

    public var format: Int
    /// Sorted by id, then version.
    public var bundles: [Entry]

    /// One bundle version of the catalog.
    public struct Entry: Codable, Sendable, Hashable {
        /// An agent a bundle holds.
        public struct Agent: Codable, Sendable, Hashable {
            public var id: String
            public var version: String

            public init(id: String, version: String) {
                self.id = id
                self.version = version
            }
        }

        public var id: String
        public var version: String
        /// The archive's path relative to the index (``BundlePath``'s rule: it cannot leave the catalog).
        public var file: String
        /// Lowercase hex SHA-256 of the whole archive.
        public var sha256: String
        /// The archive's size in bytes.
        public var size: Int
        public var description: String
        public var author: String
        public var license: String
        /// The agents the bundle holds: what it provides to bundles depending on these agent ids.
        public var agents: [Agent]
        /// Agent ids the bundle needs, with their ranges (the manifest's).
        public var dependencies: [BundleManifest.Dependency]
        public var skills: [String]
        public var permissions: [String: [String]]
        public var approvals: [String]
        /// The manifest's signature, copied so a reader sees who signed before downloading; nil when unsigned. The
        /// installer still verifies the archive's own `manifest.sig`.
        public var signature: BundleSignature?
        public var minAgentryVersion: String

        public init(
            id: String, version: String, file: String, sha256: String, size: Int, description: String, author: String,
            license: String, agents: [Agent], dependencies: [BundleManifest.Dependency], skills: [String],
            permissions: [String: [String]], approvals: [String], signature: BundleSignature?, minAgentryVersion: String
        ) {
            self.id = id
            self.version = version
            self.file = file
            self.sha256 = sha256
            self.size = size
            self.description = description
            self.author = author
            self.license = license
            self.agents = agents
            self.dependencies = dependencies
            self.skills = skills
            self.permissions = permissions
            self.approvals = approvals
            self.signature = signature
            self.minAgentryVersion = minAgentryVersion
        }

        /// The entry describing `archive`, stored at `file` (relative to the index).
        public init(archive: BundleArchive, file: String) {
            let manifest = archive.manifest
            self.init(
                id: manifest.id, version: manifest.version, file: file, sha256: archive.sha256, size: archive.data.count,
                description: manifest.description, author: manifest.author, license: manifest.license,
                agents: manifest.definitions.map { Agent(id: $0.id, version: $0.version) },
                dependencies: manifest.dependencies, skills: manifest.skills, permissions: manifest.permissions,
                approvals: manifest.approvals, signature: archive.signature, minAgentryVersion: manifest.minAgentryVersion)
        }

        /// The parsed version (an index that was read or built has only versions that parse).
        public var semanticVersion: SemanticVersion {
            SemanticVersion.parse(version) ?? SemanticVersion(major: 0, minor: 0, patch: 0)
        }

        /// `id version`, as messages name a bundle.
        public var name: String { "\(id) \(version)" }

        /// Whether `text` (lowercased) occurs in the id, description, author, an agent id or a skill.
        func matches(lowercased text: String) -> Bool {
            let fields = [id, description, author] + agents.map(\.id) + skills
            return fields.contains { $0.lowercased().contains(text) }
        }

        enum CodingKeys: String, CodingKey {
            case id, version, file, sha256, size, description, author, license, agents, dependencies, skills
            case permissions, approvals, signature
            case minAgentryVersion = "min_agentry_version"
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            id = try c.decode(String.self, forKey: .id)
            version = try c.decode(String.self, forKey: .version)
            file = try c.decode(String.self, forKey: .file)
            sha256 = try c.decode(String.self, forKey: .sha256)
            size = try c.decode(Int.self, forKey: .size)
            description = try c.decodeIfPresent(String.self, forKey: .description) ?? ""
            author = try c.decodeIfPresent(String.self, forKey: .author) ?? ""
            license = try c.decodeIfPresent(String.self, forKey: .license) ?? ""
            agents = try c.decode([Agent].self, forKey: .agents)
            dependencies = try c.decodeIfPresent([BundleManifest.Dependency].self, forKey: .dependencies) ?? []
            skills = try c.decodeIfPresent([String].self, forKey: .skills) ?? []
            permissions = try c.decodeIfPresent([String: [String]].self, forKey: .permissions) ?? [:]
            approvals = try c.decodeIfPresent([String].self, forKey: .approvals) ?? []
            signature = try c.decodeIfPresent(BundleSignature.self, forKey: .signature)
            minAgentryVersion = try c.decode(String.self, forKey: .minAgentryVersion)
        }

        /// Writes every key, `signature` as null when unsigned (synthesized coding would leave it out).
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(id, forKey: .id)
            try c.encode(version, forKey: .version)
            try c.encode(file, forKey: .file)
            try c.encode(sha256, forKey: .sha256)
            try c.encode(size, forKey: .size)
            try c.encode(description, forKey: .description)
            try c.encode(author, forKey: .author)
            try c.encode(license, forKey: .license)
            try c.encode(agents, forKey: .agents)
            try c.encode(dependencies, forKey: .dependencies)
            try c.encode(skills, forKey: .skills)
            try c.encode(permissions, forKey: .permissions)
            try c.encode(approvals, forKey: .approvals)
            if let signature { try c.encode(signature, forKey: .signature) } else { try c.encodeNil(forKey: .signature) }
            try c.encode(minAgentryVersion, forKey: .minAgentryVersion)
        }
    }

    /// An index of `bundles`, sorted by id then version.
    public init(bundles: [Entry]) {
        format = Self.currentFormat
        self.bundles = bundles.sorted(by: Self.precedes)
    }

    /// Reads and checks `index.json`'s bytes; `source` (a path or URL) names it in errors. Throws
    /// ``BundleError/Kind/catalog`` for JSON that does not decode, an unknown format, an id, version, hash or range
    /// that does not parse, an id and version listed twice, and ``BundleError/Kind/unsafePath`` for a `file` that
    /// would leave the catalog.
    public static func decode(_ data: Data, source: String) throws(BundleError) -> CatalogIndex {
        let index: CatalogIndex
        do {
            index = try JSONDecoder().decode(CatalogIndex.self, from: data)
        } catch {
            throw BundleError(.catalog, "the catalog index \(source) cannot be read: \(BundleArchive.describe(error))")
        }
        try index.check(source: source)
        return CatalogIndex(bundles: index.bundles)
    }

    /// The index as `index.json` holds it: sorted keys, pretty, so that indexing the same bundles twice gives the
    /// same bytes.
    public func encoded() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        // Strings, numbers, arrays and a signature of base64 text: encoding cannot fail.
        var data = (try? encoder.encode(self)) ?? Data()
        data.append(0x0A)
        return data
    }

    /// Every version of bundle `id`, lowest first.
    public func entries(id: String) -> [Entry] { bundles.filter { $0.id == id } }

    /// The entry of bundle `id` at `version`, or nil.
    public func entry(id: String, version: String) -> Entry? {
        guard let wanted = SemanticVersion.parse(version) else { return nil }
        return bundles.first { $0.id == id && $0.semanticVersion == wanted }
    }

    /// Entries whose id, description, author, agent ids or skills contain `text`, case-insensitively (every entry for
    /// an empty text), sorted as the index.
    public func search(_ text: String) -> [Entry] {
        let needle = text.trimmingCharacters(in: .whitespaces).lowercased()
        if needle.isEmpty { return bundles }
        return bundles.filter { $0.matches(lowercased: needle) }
    }

    static func precedes(_ a: Entry, _ b: Entry) -> Bool {
        if a.id != b.id { return a.id < b.id }
        return a.semanticVersion < b.semanticVersion
    }

    func check(source: String) throws(BundleError) {
        func bad(_ text: String) -> BundleError { BundleError(.catalog, "the catalog index \(source): \(text)") }
        guard format == Self.currentFormat else {
            throw bad("format \(format) is not known to this Agentry (it reads format \(Self.currentFormat)); upgrade Agentry")
        }
        var seen = Set<String>()
        for entry in bundles {
            guard BundleID.isValid(entry.id) else { throw bad("bundle id '\(entry.id)' is not valid") }
            guard let version = SemanticVersion.parse(entry.version) else {
                throw bad("\(entry.id) has version '\(entry.version)', not a semantic version")
            }
            guard seen.insert("\(entry.id)@\(version)").inserted else {
                throw bad("\(entry.id) \(entry.version) is listed twice")
            }
            if let reason = BundlePath.refusal(entry.file) {
                throw BundleError(.unsafePath, "the catalog index \(source): \(entry.name) has an unsafe file: \(reason)")
            }
            guard entry.sha256.count == 64, entry.sha256.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else {
                throw bad("\(entry.name) has no lowercase hex SHA-256")
            }
            guard !entry.agents.isEmpty else { throw bad("\(entry.name) lists no agent") }
            for agent in entry.agents where SemanticVersion.parse(agent.version) == nil {
                throw bad("\(entry.name): agent \(agent.id) has version '\(agent.version)', not a semantic version")
            }
            for dependency in entry.dependencies where VersionRange.parse(dependency.range) == nil {
                throw bad("\(entry.name): dependency \(dependency.id) has range '\(dependency.range)', which does not parse")
            }
        }
    }
}
