import AMQP
import AgentryBundles
import AgentryBus
import AgentryCore
import AgentryRuntime
import AgentryStore
import ArgumentParser
import Foundation
import Logging

/// Where installed bundles' files go and which keys may sign them (flags of the bundle commands and the worker).
struct BundleOptions: ParsableArguments {
    @Option(
        name: .customLong("bundles-dir"),
        help: ArgumentHelp(
            "Where installed bundles' files go, <dir>/<bundle-id>/<version>/ (AGENTRY_BUNDLES_DIR; default \(BundleSettings.defaultDirectory)).",
            valueName: "DIR"))
    var bundlesDirectory: String?

    @Option(
        name: .customLong("trusted-keys"),
        help: ArgumentHelp(
            "Files of trusted public keys, one `ed25519 BASE64 comment` per line, colon-separated (AGENTRY_TRUSTED_KEYS).", valueName: "FILES"))
    var trustedKeys: String?

    /// The configuration's bundle settings with these flags applied.
    func settings(_ configuration: AgentryConfiguration) -> BundleSettings {
        var settings = configuration.bundles
        if let bundlesDirectory, !bundlesDirectory.isEmpty { settings.directory = bundlesDirectory }
        if let trustedKeys, !trustedKeys.isEmpty { settings.trustedKeyFiles = trustedKeys.split(separator: ":").map(String.init) }
        return settings
    }
}

/// Runs `body` with a bundle installer on the configured database and broker.
func withInstaller<T: Sendable>(
    _ options: GlobalOptions, _ bundle: BundleOptions, _ body: @Sendable (BundleInstaller) async throws -> T
) async throws -> T {
    let configuration = try options.resolve()
    let settings = bundle.settings(configuration)
    let logger = try options.logger("agentry.bundles", default: .warning)
    do {
        return try await withRegistry(options) { registry in
            try await body(try BundleInstaller(registry: registry, settings: settings, logger: logger))
        }
    } catch {
        throw fail(error)
    }
}

/// Who runs the command: `user@host`, recorded as who installed.
func cliCaller() -> String {
    "\(ProcessInfo.processInfo.environment["USER"] ?? "someone")@\(ProcessInfo.processInfo.hostName)"
}

/// `agentry bundle install FILE|URL`.
struct BundleInstallCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "install",
        abstract: "Install a bundle: check its signature, place its files, register its agents as drafts.",
        discussion: """
            Refuses an unsigned bundle, one signed by a key not in the trusted keys files (--trusted-keys, \
            AGENTRY_TRUSTED_KEYS), a changed file or manifest, a path leaving the bundles directory, a version \
            installed already with other content and missing subagents. Shows the permissions and approvals the \
            bundle asks for. A newer version installs beside the installed ones (an upgrade).
            """)

    @OptionGroup var options: GlobalOptions
    @OptionGroup var bundle: BundleOptions

    @OptionGroup var location: CatalogLocationOptions

    @Argument(
        help:
            "A .agentry file, an http(s) URL of one, or ID[@VERSION] of a bundle in the catalog (--catalog, AGENTRY_CATALOG), which installs the subagents it needs too."
    )
    var source: String

    @Flag(help: "Publish the bundle's agents once installed.")
    var publish = false

    @Flag(help: "Accept a bundle without a trusted signature (never a changed one); only when the database and the broker are on this host.")
    var allowUnsigned = false

    @Flag(help: "Print the result as JSON.")
    var json = false

    func run() async throws {
        if let (id, version) = Self.catalogReference(source) {
            let catalog = try location.catalog()
            let options = BundleInstaller.Options(publish: publish, allowUnsigned: allowUnsigned, installedBy: cliCaller())
            let installation = try await withInstaller(self.options, bundle) { installer in
                try await installer.install(id, version: version, from: catalog, index: try await catalog.index(), options: options)
            }
            if json {
                printJSON(installation.jsonValue)
            } else {
                for report in installation.reports { report.lines.forEach { print($0) } }
                for met in installation.plan.alreadyInstalled {
                    print("\(met.agent) \(met.version) is registered already: \(met.requirements.map(\.description).joined(separator: ", "))")
                }
                print(installation.message)
            }
            return
        }
        let archive: BundleArchive
        do {
            archive = try BundleArchive(data: try await BundleSource.read(source))
        } catch {
            throw fail(error)
        }
        let options = BundleInstaller.Options(publish: publish, allowUnsigned: allowUnsigned, installedBy: cliCaller())
        let report = try await withInstaller(self.options, bundle) { installer in try await installer.install(archive, options: options) }
        if json { printJSON(report.jsonValue) } else { report.lines.forEach { print($0) } }
    }
}

/// `agentry bundle list`.
struct BundleListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the installed bundles and which version is active.")

    @OptionGroup var options: GlobalOptions
    @OptionGroup var bundle: BundleOptions

    @Argument(help: "Only this bundle.")
    var id: String?

    @Flag(help: "Include uninstalled versions.")
    var all = false

    @Flag(help: "Print the result as JSON.")
    var json = false

    func run() async throws {
        let (id, all) = (id, all)
        let bundles = try await withInstaller(options, bundle) { installer in try await installer.installed(id, includingRemoved: all) }
        if json {
            printJSON(.array(bundles.map(\.jsonValue)))
            return
        }
        if bundles.isEmpty {
            print("no bundles installed")
            return
        }
        for item in bundles {
            let state = item.record.state == .removed ? "removed" : item.active ? "active" : "installed"
            let signer = item.signer.map { "\($0.fingerprint)\($0.comment.isEmpty ? "" : " (\($0.comment))")" } ?? "unsigned"
            print(
                "\(item.record.bundleID) \(item.record.version)  \(state)  agents: \(item.manifest.definitions.map { "\($0.id) \($0.version)" }.joined(separator: ", "))"
            )
            print(
                "    signed by \(signer); installed \(Timestamp.format(item.record.installedAt)) by \(item.record.installedBy); files \(item.record.directory)"
            )
        }
    }
}

/// `agentry bundle rollback ID`.
struct BundleRollbackCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback", abstract: "Publish, for each agent of a bundle, its version in the installed bundle version before the active one.")

    @OptionGroup var options: GlobalOptions
    @OptionGroup var bundle: BundleOptions

    @Argument(help: "The bundle's id.")
    var id: String

    @Flag(help: "Print the result as JSON.")
    var json = false

    func run() async throws {
        let id = id
        let report = try await withInstaller(options, bundle) { installer in try await installer.rollback(bundleID: id) }
        if json { printJSON(report.jsonValue) } else { report.lines.forEach { print($0) } }
    }
}

/// `agentry bundle uninstall ID [--version V]`.
struct BundleUninstallCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "uninstall",
        abstract: "Uninstall a bundle (its agents retired, its files removed), or one version of it that is not active.")

    @OptionGroup var options: GlobalOptions
    @OptionGroup var bundle: BundleOptions

    @Argument(help: "The bundle's id.")
    var id: String

    @Option(help: "Remove only this version (not the active one).")
    var version: String?

    @Flag(help: "Print the result as JSON.")
    var json = false

    func run() async throws {
        let (id, version) = (id, version)
        let report = try await withInstaller(options, bundle) { installer in try await installer.uninstall(bundleID: id, version: version) }
        if json { printJSON(report.jsonValue) } else { report.lines.forEach { print($0) } }
    }
}

extension BundleInstallCommand {
    /// `ID` or `ID@VERSION` when `source` names a catalog's bundle rather than a file or a URL: no such file, no
    /// `/`, not ending in `.agentry`, and an id of lowercase letters, digits and `-`.
    static func catalogReference(_ source: String) -> (id: String, version: String?)? {
        guard !source.contains("/"), !source.hasSuffix(".agentry"), !FileManager.default.fileExists(atPath: source) else {
            return nil
        }
        let parts = source.split(separator: "@", maxSplits: 1).map(String.init)
        guard let id = parts.first, BundleID.isValid(id) else { return nil }
        return (id, parts.count > 1 ? parts[1] : nil)
    }
}
