import AMQP
public import AgentryBundles
import AgentryBus
import AgentryCore
public import AgentryStore
import Foundation
public import Logging

/// Installs agent bundles: checks who signed them and what they hold, places their files under the bundles directory,
/// registers their definitions as drafts and records the version; upgrades, rolls back and uninstalls them.
///
/// Every check runs before anything is written: a bundle refused for its signature, a hash, a path, its Agentry
/// version, a definition, a conflict with what is registered or a missing dependency leaves no file, no registered
/// version and no row. An upgrade is the installation of another version beside the installed ones (each version has
/// its own directory, so the running version's files never change under it).
public struct BundleInstaller: Sendable {
    public let registry: AgentRegistry
    public let store: BundleStore
    public let settings: BundleSettings
    public let trusted: TrustedKeys
    let logger: Logger

    /// How to install.
    public struct Options: Sendable {
        /// Publish each definition once installed (subagents of the bundle before the agents that delegate to them).
        public var publish: Bool
        /// Accept a bundle that is unsigned or signed by a key not trusted (never one whose hashes or signature do not
        /// match); only when the database and the broker are both on this host (loopback), for tests.
        public var allowUnsigned: Bool
        /// Who installs: the CLI's user and host, the admin API's caller.
        public var installedBy: String

        public init(publish: Bool = false, allowUnsigned: Bool = false, installedBy: String) {
            self.publish = publish
            self.allowUnsigned = allowUnsigned
            self.installedBy = installedBy
        }
    }

    /// An installer on `registry`'s database and broker; `trusted` defaults to the keys of `settings`' files.
    public init(registry: AgentRegistry, settings: BundleSettings, trusted: TrustedKeys? = nil, logger: Logger) throws(BundleError) {
        self.registry = registry
        self.store = BundleStore(database: registry.store.database, logger: logger)
        self.settings = settings
        if let trusted {
            self.trusted = trusted
        } else {
            self.trusted = try settings.trustedKeys()
        }
        self.logger = logger
    }

    /// Whether the database and the broker are both reached over loopback (or a Unix socket): the only setups that
    /// may install unsigned bundles.
    public var isLoopbackOnly: Bool {
        LoopbackHost.isLoopback(registry.store.database.configuration.host)
            && registry.bus.connection.configuration.endpoints.allSatisfy { LoopbackHost.isLoopback($0.host) }
    }

    // MARK: Install

    /// Installs `archive` (see the type's description). Throws ``BundleError`` for a refusal, with a message that
    /// says what and why.
    public func install(_ archive: BundleArchive, options: Options) async throws -> InstallReport {
        let manifest = archive.manifest
        let signer = try checkTrust(archive, allowUnsigned: options.allowUnsigned)
        try Self.checkAgentryVersion(manifest)
        let installed = try await store.bundles(manifest.id)
        let previous = installed.filter { $0.version != manifest.version }.map(\.version).max(by: AgentRegistry.order)
        let files = try BundleFiles(directory: settings.directory)
        let directory = files.versionDirectory(manifest.id, manifest.version)
        if let existing = installed.first(where: { $0.version == manifest.version }) {
            guard existing.sha256 == archive.sha256 else {
                throw BundleError(
                    .install,
                    "\(manifest.id) \(manifest.version) is installed with other content (sha256 \(existing.sha256)); give the new one another version"
                )
            }
            // The same archive again: nothing to place, register or record.
            let definitions = try Self.definitions(of: archive, directory: existing.directory)
            var report = Self.report(
                archive, definitions: definitions, signer: signer, outcome: .unchanged, directory: existing.directory, previous: previous)
            if options.publish { report.published = try await publish(definitions) }
            return report
        }
        let definitions = try Self.definitions(of: archive, directory: directory)
        try await checkRegistered(definitions)
        let missing = try await missingDependencies(of: archive)
        if !missing.isEmpty {
            throw BundleError(
                .install,
                "\(manifest.id) \(manifest.version) needs subagents this installation does not have:\n"
                    + missing.map { "  - \($0)" }.joined(separator: "\n")
                    + "\ninstall them first (or install from a catalog, which brings them)")
        }
        try files.check(manifest.id, manifest.version, paths: manifest.files.map(\.path))

        // Every check passed: place, register, record.
        let placement = try files.place(
            manifest.id, manifest.version,
            files: manifest.files.map { ($0.path, archive.contents[$0.path] ?? Data(), $0.executable) })
        var agents: [InstallReport.Agent] = []
        for definition in definitions {
            let outcome = try await registry.register(definition)
            agents.append(.init(id: definition.metadata.id, version: definition.metadata.version, registration: outcome.rawValue))
        }
        let record = InstalledBundleRecord(
            bundleID: manifest.id, version: manifest.version, sha256: archive.sha256,
            manifest: String(decoding: archive.manifestData, as: UTF8.self), signer: signer?.line, directory: directory,
            installedBy: options.installedBy)
        let recorded: BundleStore.RecordOutcome
        do {
            recorded = try await store.record(record, archive: archive.data)
        } catch let error as StoreError where error.code == .conflict {
            throw BundleError(.install, error.message)
        }
        logger.info(
            "bundle installed",
            metadata: ["agentry.bundle.id": "\(manifest.id)", "agentry.bundle.version": "\(manifest.version)", "directory": "\(directory)"])
        var report = Self.report(
            archive, definitions: definitions, signer: signer, outcome: recorded == .reinstalled ? .reinstalled : .installed,
            directory: directory, previous: previous)
        report.agents = agents
        report.filesWritten = placement.written
        report.filesKept = placement.kept
        if options.publish {
            do {
                report.published = try await publish(definitions)
            } catch {
                throw BundleError(
                    .install, "\(manifest.id) \(manifest.version) is installed (its agents as drafts), but publishing failed: \(error)")
            }
        }
        return report
    }

    /// The bundle's subagent dependencies that neither the bundle nor the registry satisfies, one line each:
    /// `device-rebooter >=1.2.0 <2.0.0, needed by blackscreen-exec (registered: 1.0.0)`.
    public func missingDependencies(of archive: BundleArchive) async throws -> [String] {
        let manifest = archive.manifest
        var needs: [(id: String, range: String, by: [String])] = manifest.dependencies.map { ($0.id, $0.range, $0.requiredBy) }
        // The definitions' own references too, so that a manifest that leaves one out changes nothing.
        for entry in manifest.definitions {
            guard let text = archive.text(entry.path), let definition = try? AgentDefinition.parse(yaml: text) else { continue }
            for subagent in definition.referencedSubagents
            where !needs.contains(where: { $0.id == subagent.id && $0.range == subagent.version }) {
                needs.append((subagent.id, subagent.version, [definition.metadata.id]))
            }
        }
        var missing: [String] = []
        for need in needs {
            guard let range = VersionRange.parse(need.range) else {
                missing.append("\(need.id) '\(need.range)' (not a version range), needed by \(need.by.joined(separator: ", "))")
                continue
            }
            let inBundle = manifest.definitions.filter { $0.id == need.id }.compactMap { SemanticVersion.parse($0.version) }
            let registered = try await registry.store.versions(of: need.id).map(\.version)
            if range.highestMatch(in: inBundle + registered.compactMap(SemanticVersion.parse)) != nil { continue }
            let have = registered.isEmpty ? "none registered" : "registered: \(registered.sorted(by: AgentRegistry.order).joined(separator: ", "))"
            missing.append("\(need.id) \(need.range), needed by \(need.by.joined(separator: ", ")) (\(have))")
        }
        return missing
    }

    // MARK: Checks

    /// The trusted signer, or nil when `allowUnsigned` let an unsigned or untrusted bundle through.
    func checkTrust(_ archive: BundleArchive, allowUnsigned: Bool) throws(BundleError) -> BundlePublicKey? {
        if allowUnsigned, !isLoopbackOnly {
            throw BundleError(
                .install,
                "--allow-unsigned is refused: it is only for a loopback-only test setup, and this installation's database (\(registry.store.database.configuration.host)) or broker (\(registry.bus.connection.configuration.host)) is not on 127.0.0.0/8, ::1, localhost or a Unix socket; sign the bundle and trust its key instead"
            )
        }
        do {
            return try archive.verify(trusting: trusted).signer
        } catch {
            guard allowUnsigned, error.kind == .unsigned || error.kind == .untrustedKey else { throw error }
            logger.warning(
                "installing a bundle without a trusted signature (--allow-unsigned)",
                metadata: ["agentry.bundle.id": "\(archive.manifest.id)", "agentry.bundle.version": "\(archive.manifest.version)"])
            return nil
        }
    }

    static func checkAgentryVersion(_ manifest: BundleManifest) throws(BundleError) {
        guard let needed = SemanticVersion.parse(manifest.minAgentryVersion), let current = SemanticVersion.parse(AgentryVersion.current)
        else { return }
        if current < needed {
            throw BundleError(
                .install,
                "\(manifest.id) \(manifest.version) needs Agentry \(manifest.minAgentryVersion) or later (min_agentry_version); this is Agentry \(AgentryVersion.current)"
            )
        }
    }

    /// Refuses a definition whose version is registered already (installed from elsewhere) with another content: the
    /// registry would replace a draft silently and refuse a published one after the files were placed.
    func checkRegistered(_ definitions: [AgentDefinition]) async throws {
        for definition in definitions {
            let id = definition.metadata.id, version = definition.metadata.version
            guard let stored = try await registry.store.version(version, of: id) else { continue }
            if (try? AgentRegistry.decode(stored)) != definition {
                throw BundleError(
                    .install,
                    "agent \(id) \(version) is registered already (\(stored.status.rawValue)) with another definition; the bundle cannot install its own \(id) \(version) (the bundle needs a new version of \(id), or the other one another version)"
                )
            }
        }
    }

    // MARK: Publishing

    /// Publishes the definitions, each subagent of the bundle before the agents that delegate to it.
    func publish(_ definitions: [AgentDefinition]) async throws -> [InstallReport.Publication] {
        var published: [InstallReport.Publication] = []
        for definition in Self.publicationOrder(definitions) {
            let publication = try await registry.publish(agentID: definition.metadata.id, version: definition.metadata.version)
            published.append(.init(agentID: publication.agentID, version: publication.version, previousVersion: publication.previousVersion))
        }
        return published
    }

    /// Subagents first: a definition comes after every definition of the list it delegates to.
    static func publicationOrder(_ definitions: [AgentDefinition]) -> [AgentDefinition] {
        var ordered: [AgentDefinition] = []
        var remaining = definitions
        while !remaining.isEmpty {
            let ready = remaining.firstIndex { definition in
                definition.referencedSubagents.allSatisfy { reference in
                    !remaining.contains { $0.metadata.id == reference.id && $0.metadata.id != definition.metadata.id }
                }
            }
            // A cycle (which publishing refuses anyway): keep the manifest's order.
            ordered.append(remaining.remove(at: ready ?? 0))
        }
        return ordered
    }

    // MARK: Report

    /// The report's frame. The permissions, approvals and skills shown are those of the manifest and of the
    /// definitions together, so that a manifest that leaves one out hides nothing.
    static func report(
        _ archive: BundleArchive, definitions: [AgentDefinition], signer: BundlePublicKey?, outcome: InstallReport.Outcome,
        directory: String, previous: String?
    ) -> InstallReport {
        let manifest = archive.manifest
        var permissions = manifest.permissions
        var approvals = Set(manifest.approvals)
        var skills = Set(manifest.skills)
        for definition in definitions {
            for (area, granted) in [
                ("devices", definition.permissions.devices), ("database", definition.permissions.database),
                ("external", definition.permissions.external),
            ] where !granted.isEmpty {
                permissions[area] = Array(Set(permissions[area] ?? []).union(granted)).sorted()
            }
            approvals.formUnion(definition.config.approvalRequiredFor)
            skills.formUnion(definition.skills)
        }
        return InstallReport(
            bundleID: manifest.id, version: manifest.version, sha256: archive.sha256, outcome: outcome, signer: signer,
            description: manifest.description, author: manifest.author, license: manifest.license,
            agents: definitions.map { .init(id: $0.metadata.id, version: $0.metadata.version, registration: "unchanged") },
            skills: skills.sorted(), permissions: permissions.mapValues { Array(Set($0)).sorted() }, approvals: approvals.sorted(),
            directory: directory, filesWritten: 0, filesKept: 0, previousVersion: previous, published: [])
    }
}
