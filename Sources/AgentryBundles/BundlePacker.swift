import AgentryCore
public import Foundation
import Yams

#if canImport(Glibc)
import Glibc
#endif

/// Makes a bundle from a source directory (`agentry bundle pack DIR`):
///
/// ```
/// DIR/bundle.yaml    id, version, description, author, license, min_agentry_version, optional definitions: [paths]
/// DIR/agents/*.yaml  the agent definitions (when bundle.yaml lists none)
/// DIR/…              every other regular file: handler programs, scripts, their data (hidden files are skipped)
/// ```
///
/// Each definition is validated as the registry would; an exec handler names its program relative to the bundle's
/// root (`command: [handlers/check.sh]`) and may not set an absolute `working_directory` (the installer runs it in
/// the directory it placed the bundle in). Links are refused: a bundle holds regular files only.
public enum BundlePacker {
    /// `bundle.yaml`'s keys.
    struct Source: Decodable {
        var id: String
        var version: String
        var description: String
        var author: String
        var license: String
        var minAgentryVersion: String?
        var definitions: [String]?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case id, version, description, author, license
            case minAgentryVersion = "min_agentry_version"
            case definitions
        }
    }

    /// The manifest and the archive's bytes, signed with `key` when one is given.
    public static func pack(
        directory: String, signingKey key: BundleSigningKey? = nil, defaultMinAgentryVersion: String
    ) throws(BundleError) -> (manifest: BundleManifest, data: Data) {
        let root = directory.hasSuffix("/") && directory.count > 1 ? String(directory.dropLast()) : directory
        let source = try readSource(root)
        let files = try regularFiles(under: root)
        var contents: [String: Data] = [:]
        for path in files {
            guard let bytes = FileManager.default.contents(atPath: "\(root)/\(path)") else {
                throw BundleError(.packing, "cannot read '\(root)/\(path)'")
            }
            contents[path] = bytes
        }
        let definitionPaths =
            source.definitions
            ?? files.filter { $0.hasPrefix("agents/") && ($0.hasSuffix(".yaml") || $0.hasSuffix(".yml")) }
        guard !definitionPaths.isEmpty else {
            throw BundleError(
                .packing, "\(root) holds no agent definition: put them in agents/*.yaml or list them in bundle.yaml's definitions")
        }
        var definitions: [(path: String, definition: AgentDefinition)] = []
        for path in definitionPaths {
            try BundlePath.check(path)
            guard let bytes = contents[path], let text = String(data: bytes, encoding: .utf8) else {
                throw BundleError(.packing, "bundle.yaml lists the definition '\(path)', which is not a UTF-8 file in \(root)")
            }
            do {
                definitions.append((path, try AgentDefinition.parse(yaml: text, file: path)))
            } catch {
                throw BundleError(.packing, error.problems.map(\.description).joined(separator: "\n"))
            }
        }
        var seen = Set<String>()
        for (path, definition) in definitions where !seen.insert(definition.metadata.id).inserted {
            throw BundleError(.packing, "\(path): the bundle holds agent '\(definition.metadata.id)' twice")
        }
        let definitionSet = Set(definitionPaths)
        let filePaths = files.filter { !definitionSet.contains($0) }
        let usedBy = try handlerFiles(definitions, files: Set(filePaths))
        let manifest = BundleManifest(
            id: source.id, version: source.version, description: source.description, author: source.author,
            license: source.license, minAgentryVersion: source.minAgentryVersion ?? defaultMinAgentryVersion,
            definitions: definitions.map { path, definition in
                BundleManifest.Definition(
                    path: path, id: definition.metadata.id, version: definition.metadata.version,
                    sha256: BundleArchive.sha256(contents[path] ?? Data()))
            },
            files: filePaths.map { path in
                let bytes = contents[path] ?? Data()
                return BundleManifest.File(
                    path: path, sha256: BundleArchive.sha256(bytes), size: bytes.count,
                    executable: isExecutable("\(root)/\(path)"), usedBy: usedBy[path, default: []].sorted())
            },
            dependencies: try dependencies(definitions.map(\.definition)),
            skills: Array(Set(definitions.flatMap(\.definition.skills))).sorted(),
            permissions: permissions(definitions.map(\.definition)),
            approvals: Array(Set(definitions.flatMap(\.definition.config.approvalRequiredFor))).sorted())
        try BundleArchive.checkShape(manifest)
        let manifestData = manifest.encoded()
        let data = BundleWriter.archive(
            manifestData: manifestData, signature: key?.signature(of: manifestData), contents: contents,
            executable: Set(manifest.files.filter(\.executable).map(\.path)))
        return (manifest, data)
    }

    static func readSource(_ root: String) throws(BundleError) -> Source {
        let path = "\(root)/bundle.yaml"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw BundleError(
                .packing,
                "\(path) is missing: a bundle's directory needs one with id, version, description, author, license (and optionally min_agentry_version, definitions)"
            )
        }
        let keys = Set(Source.CodingKeys.allCases.map(\.rawValue))
        if let mapping = (try? Yams.load(yaml: text)) as? [String: Any] {
            for key in mapping.keys.sorted() where !keys.contains(key) {
                throw BundleError(
                    .packing, "\(path): unknown key '\(key)'; bundle.yaml has \(keys.sorted().joined(separator: ", "))")
            }
        }
        let source: Source
        do {
            source = try YAMLDecoder().decode(Source.self, from: text)
        } catch {
            throw BundleError(.packing, "\(path): \(BundleArchive.describe(error))")
        }
        guard BundleID.isValid(source.id) else {
            throw BundleError(.packing, "\(path): id '\(source.id)' must be lowercase letters, digits and '-' (at most 64)")
        }
        guard SemanticVersion.parse(source.version) != nil else {
            throw BundleError(.packing, "\(path): version '\(source.version)' is not a semantic version (MAJOR.MINOR.PATCH)")
        }
        if let minimum = source.minAgentryVersion, SemanticVersion.parse(minimum) == nil {
            throw BundleError(.packing, "\(path): min_agentry_version '\(minimum)' is not a semantic version")
        }
        return source
    }

    /// Every regular file under `root` except bundle.yaml and hidden ones, as sorted relative paths; a link or a
    /// device is an error.
    static func regularFiles(under root: String) throws(BundleError) -> [String] {
        var result: [String] = []
        var pending = [""]
        while let relative = pending.popLast() {
            let directory = relative.isEmpty ? root : "\(root)/\(relative)"
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else {
                throw BundleError(.packing, "cannot read the directory '\(directory)'")
            }
            for name in names where !name.hasPrefix(".") {
                let path = relative.isEmpty ? name : "\(relative)/\(name)"
                var info = stat()
                guard lstat("\(root)/\(path)", &info) == 0 else { throw BundleError(.packing, "cannot stat '\(root)/\(path)'") }
                switch info.st_mode & S_IFMT {
                case S_IFDIR: pending.append(path)
                case S_IFREG: if path != "bundle.yaml" { result.append(path) }
                case S_IFLNK:
                    throw BundleError(.packing, "'\(root)/\(path)' is a link: a bundle holds regular files only; copy the file in")
                default: throw BundleError(.packing, "'\(root)/\(path)' is not a regular file")
                }
                try BundlePath.check(path)
            }
        }
        return result.sorted()
    }

    static func isExecutable(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & 0o111) != 0
    }

    /// For each bundle file an exec handler names (its program, or an argument naming a file of the bundle), the
    /// agents that name it. A relative program that is not in the bundle is an error: it would not exist installed.
    static func handlerFiles(
        _ definitions: [(path: String, definition: AgentDefinition)], files: Set<String>
    ) throws(BundleError) -> [String: Set<String>] {
        var usedBy: [String: Set<String>] = [:]
        for (path, definition) in definitions {
            guard case .exec(let exec) = definition.effectiveHandler else { continue }
            let base = exec.workingDirectory ?? ""
            if base.hasPrefix("/") {
                throw BundleError(
                    .packing,
                    "\(path): handler.exec.working_directory '\(base)' is absolute; a bundled handler runs where the bundle is installed: remove it or make it relative to the bundle's root"
                )
            }
            for (index, argument) in exec.command.enumerated() {
                guard !argument.hasPrefix("-"), !argument.contains("{{"), !argument.hasPrefix("/") else { continue }
                guard let joined = normalized(base.isEmpty ? argument : "\(base)/\(argument)") else { continue }
                if files.contains(joined) {
                    usedBy[joined, default: []].insert(definition.metadata.id)
                } else if index == 0, argument.contains("/") {
                    throw BundleError(
                        .packing, "\(path): the handler runs '\(argument)', which is not a file of the bundle (\(joined))")
                }
            }
        }
        return usedBy
    }

    /// `a/./b/../c` → `a/c`; nil when it climbs above the root.
    static func normalized(_ path: String) -> String? {
        var parts: [Substring] = []
        for part in path.split(separator: "/") {
            if part == "." { continue }
            if part == ".." {
                guard !parts.isEmpty else { return nil }
                parts.removeLast()
            } else {
                parts.append(part)
            }
        }
        return parts.joined(separator: "/")
    }

    /// The subagents the definitions delegate to that the bundle does not hold, one entry per (id, range) with the
    /// agents asking for it; a held subagent whose version the range excludes is an error.
    static func dependencies(_ definitions: [AgentDefinition]) throws(BundleError) -> [BundleManifest.Dependency] {
        let held = Dictionary(definitions.map { ($0.metadata.id, $0.metadata.version) }, uniquingKeysWith: { a, _ in a })
        var requiredBy: [String: [String: Set<String>]] = [:]
        for definition in definitions {
            for subagent in definition.referencedSubagents {
                if let version = held[subagent.id] {
                    if let range = VersionRange.parse(subagent.version), let parsed = SemanticVersion.parse(version),
                        !range.contains(parsed)
                    {
                        throw BundleError(
                            .packing,
                            "\(definition.metadata.id) needs \(subagent.id) \(subagent.version), but the bundle holds \(subagent.id) \(version)")
                    }
                    continue
                }
                requiredBy[subagent.id, default: [:]][subagent.version, default: []].insert(definition.metadata.id)
            }
        }
        return requiredBy.keys.sorted().flatMap { id in
            requiredBy[id, default: [:]].keys.sorted().map { range in
                BundleManifest.Dependency(id: id, range: range, requiredBy: requiredBy[id]?[range]?.sorted() ?? [])
            }
        }
    }

    static func permissions(_ definitions: [AgentDefinition]) -> [String: [String]] {
        var result: [String: [String]] = [:]
        for section in ["devices", "database", "external"] {
            let granted = Set(definitions.flatMap { $0.permissions.granted(in: section) })
            if !granted.isEmpty { result[section] = granted.sorted() }
        }
        return result
    }
}
