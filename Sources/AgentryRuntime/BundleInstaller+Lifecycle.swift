import AgentryBundles
import AgentryCore
import AgentryStore
import Foundation
import Logging

extension BundleInstaller {
    // MARK: List

    /// The installed bundle versions (removed ones when asked), of one bundle or all, each bundle's versions lowest
    /// first, with which one is active.
    public func installed(_ bundleID: String? = nil, includingRemoved: Bool = false) async throws -> [InstalledBundle] {
        let records = try await store.bundles(bundleID, includingRemoved: includingRemoved)
        let states = Dictionary(uniqueKeysWithValues: try await registry.store.states().map { ($0.agentID, $0) })
        var result: [InstalledBundle] = []
        for (_, versions) in Dictionary(grouping: records, by: \.bundleID).sorted(by: { $0.key < $1.key }) {
            let bundles = try versions.sorted { AgentRegistry.order($0.version, $1.version) }.map { try Self.read($0) }
            let active = Self.activeVersion(bundles.filter { $0.record.state == .installed }, states: states)
            result += bundles.map { bundle in
                var bundle = bundle
                bundle.active = bundle.record.state == .installed && bundle.record.version == active
                return bundle
            }
        }
        return result
    }

    static func read(_ record: InstalledBundleRecord) throws -> InstalledBundle {
        let manifest: BundleManifest
        do {
            manifest = try JSONDecoder().decode(BundleManifest.self, from: Data(record.manifest.utf8))
        } catch {
            throw BundleError(.malformed, "the stored manifest of \(record.bundleID) \(record.version) cannot be read: \(error)")
        }
        return InstalledBundle(
            record: record, manifest: manifest, signer: record.signer.flatMap { try? BundlePublicKey(line: $0) }, active: false)
    }

    /// The version whose agents are the active ones: the highest installed version all of whose definitions are
    /// active, else the highest with any definition active; nil when none is (never published, or retired).
    static func activeVersion(_ bundles: [InstalledBundle], states: [String: AgentState]) -> String? {
        func isActive(_ definition: BundleManifest.Definition) -> Bool {
            guard let state = states[definition.id], !state.retired else { return false }
            return state.activeVersion == definition.version
        }
        let highestFirst = bundles.sorted { AgentRegistry.order($1.record.version, $0.record.version) }
        return
            (highestFirst.first { $0.manifest.definitions.allSatisfy(isActive) }
            ?? highestFirst.first { $0.manifest.definitions.contains(where: isActive) })?.record.version
    }

    // MARK: Rollback

    /// Publishes, for each agent of the bundle, its version in the installed bundle version before the active one.
    public func rollback(bundleID: String) async throws -> RollbackReport {
        let bundles = try await installed(bundleID)
        guard !bundles.isEmpty else { throw BundleError(.install, "no version of \(bundleID) is installed") }
        guard let active = bundles.first(where: \.active) else {
            throw BundleError(
                .install,
                "no installed version of \(bundleID) is active (never published, or retired); publish one with `agentry agents publish`")
        }
        guard let target = bundles.last(where: { AgentRegistry.order($0.record.version, active.record.version) }) else {
            throw BundleError(
                .install,
                "\(bundleID) \(active.record.version) is the lowest installed version; there is no earlier one to roll back to (installed: \(bundles.map(\.record.version).joined(separator: ", ")))"
            )
        }
        let definitions = try Self.definitions(of: try await archive(of: target), directory: target.record.directory)
        let published = try await publish(definitions)
        let kept = Set(target.manifest.definitions.map(\.id))
        logger.info(
            "bundle rolled back",
            metadata: ["agentry.bundle.id": "\(bundleID)", "from": "\(active.record.version)", "to": "\(target.record.version)"])
        return RollbackReport(
            bundleID: bundleID, from: active.record.version, to: target.record.version, published: published,
            leftAsIs: active.manifest.definitions.map(\.id).filter { !kept.contains($0) })
    }

    func archive(of bundle: InstalledBundle) async throws -> BundleArchive {
        guard let data = try await store.archive(bundleID: bundle.record.bundleID, version: bundle.record.version) else {
            throw BundleError(.install, "the archive of \(bundle.record.bundleID) \(bundle.record.version) is not stored")
        }
        return try BundleArchive(data: data)
    }

    // MARK: Uninstall

    /// Uninstalls the whole bundle (`version` nil: its agents are retired, every version's files removed and every
    /// version marked removed), or one version that is not the active one (its files removed, its row marked
    /// removed; its registered agent versions stay, as every registered version does).
    public func uninstall(bundleID: String, version: String? = nil) async throws -> UninstallReport {
        let bundles = try await installed(bundleID)
        guard !bundles.isEmpty else { throw BundleError(.install, "no version of \(bundleID) is installed") }
        let files = try BundleFiles(directory: settings.directory)
        var removed: [InstalledBundle]
        var retired: [String] = []
        if let version {
            guard let bundle = bundles.first(where: { $0.record.version == version }) else {
                throw BundleError(
                    .install, "\(bundleID) \(version) is not installed (installed: \(bundles.map(\.record.version).joined(separator: ", ")))")
            }
            if bundle.active {
                throw BundleError(
                    .install,
                    "\(bundleID) \(version) is the active version; roll back (`agentry bundle rollback \(bundleID)`) or publish another version first, or uninstall the whole bundle"
                )
            }
            removed = [bundle]
        } else {
            removed = bundles
            var agents: [String] = []
            for bundle in bundles {
                for id in bundle.manifest.definitions.map(\.id) where !agents.contains(id) { agents.append(id) }
            }
            for agentID in agents {
                guard let state = try await registry.store.state(of: agentID), !state.retired else { continue }
                _ = try await registry.retire(agentID: agentID)
                retired.append(agentID)
            }
        }
        var count = 0
        for bundle in removed {
            count += try files.remove(bundleID, bundle.record.version, paths: bundle.manifest.files.map(\.path))
            try await store.markRemoved(bundleID: bundleID, version: bundle.record.version)
        }
        logger.info(
            "bundle uninstalled",
            metadata: ["agentry.bundle.id": "\(bundleID)", "versions": "\(removed.map(\.record.version).joined(separator: ","))"])
        return UninstallReport(bundleID: bundleID, versions: removed.map(\.record.version), retired: retired, filesRemoved: count)
    }
}
