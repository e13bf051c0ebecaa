public import AgentryBundles
public import AgentryCore
import AgentryStore
import Foundation

/// What installing a bundle from a catalog did: the versions the resolver chose and one report per bundle version
/// installed, dependencies first, the bundle asked for last.
public struct CatalogInstallation: Sendable, Hashable {
    public var plan: InstallPlan
    public var reports: [InstallReport]

    /// `Installed blackscreen-recovery 2.1.0 and 1 dependency (device-rebooter 1.4.0)`.
    public var message: String {
        let root = plan.root
        let dependencies = reports.filter { $0.bundleID != root.id }
        let rootReport = reports.last { $0.bundleID == root.id }
        var text =
            rootReport?.outcome == .unchanged
            ? "\(root.id) \(root.version) was installed already with the same content"
            : "Installed \(root.id) \(root.version)"
        let placed = dependencies.filter { $0.outcome != .unchanged }
        if !placed.isEmpty {
            text += " and \(placed.count) \(placed.count == 1 ? "dependency" : "dependencies") ("
            text += placed.map { "\($0.bundleID) \($0.version)" }.joined(separator: ", ") + ")"
        }
        let published = reports.flatMap(\.published)
        if !published.isEmpty { text += "; published \(published.map { "\($0.agentID) \($0.version)" }.joined(separator: ", "))" }
        return text
    }

    public var jsonValue: JSONValue {
        [
            "bundle_id": .string(plan.root.id), "version": .string(plan.root.version), "message": .string(message),
            "reports": .array(reports.map(\.jsonValue)),
            "already_installed": .array(
                plan.alreadyInstalled.map { installed in
                    [
                        "agent": .string(installed.agent), "version": .string(installed.version),
                        "needed_by": .array(installed.requirements.map { .string($0.description) }),
                    ]
                }),
        ]
    }
}

extension BundleInstaller {
    /// Installs bundle `id` (at `version`, else the highest this Agentry runs) from a catalog whose index was read as
    /// `index`, with the subagents it needs: ``plan(_:version:index:)``, then ``install(_:from:options:)``.
    public func install(
        _ id: String, version: String?, from catalog: Catalog, index: CatalogIndex, options: Options
    ) async throws -> CatalogInstallation {
        try await install(try await plan(id, version: version, index: index), from: catalog, options: options)
    }

    /// What installing bundle `id` from the catalog takes: ``DependencyResolver`` picks, for every agent needed
    /// transitively, the highest version that fits every range, preferring the versions registered here. Throws
    /// ``BundleError``: `catalog` when the catalog has no such bundle or version (or none this Agentry runs),
    /// `conflict` when no versions satisfy every range (the message names who needs what, and what is available).
    public func plan(_ id: String, version: String?, index: CatalogIndex) async throws -> InstallPlan {
        var wanted: SemanticVersion?
        if let version {
            guard let parsed = SemanticVersion.parse(version) else {
                throw BundleError(.catalog, "'\(version)' is not a semantic version (e.g. 2.1.0)")
            }
            wanted = parsed
        }
        var registered: [String: [SemanticVersion]] = [:]
        for stored in try await registry.store.allVersions() {
            guard let parsed = SemanticVersion.parse(stored.version) else { continue }
            registered[stored.agentID, default: []].append(parsed)
        }
        let resolver = DependencyResolver(
            entries: index.bundles, installed: registered, agentryVersion: SemanticVersion.parse(AgentryVersion.current))
        return try resolver.plan(bundle: id, version: wanted)
    }

    /// Installs each catalog entry of `plan`, dependencies first.
    ///
    /// Every archive is downloaded, checked against the index's hash and, for its signature, against the trusted keys
    /// before the first is installed: a tampered or untrusted dependency refuses the whole installation and leaves
    /// nothing behind. A refusal while installing one (a version installed with other content) leaves the ones before
    /// it installed (each installation is whole on its own). Throws ``BundleError``: `catalog` when an archive cannot
    /// be read, and the archive's and the installer's kinds.
    public func install(_ plan: InstallPlan, from catalog: Catalog, options: Options) async throws -> CatalogInstallation {
        var archives: [BundleArchive] = []
        for entry in plan.install {
            let archive = try await catalog.archive(of: entry)
            _ = try checkTrust(archive, allowUnsigned: options.allowUnsigned)
            archives.append(archive)
        }
        var reports: [InstallReport] = []
        for archive in archives {
            reports.append(try await install(archive, options: options))
        }
        return CatalogInstallation(plan: plan, reports: reports)
    }
}
