import AgentryBundles
import AgentryStore
import Foundation
import Logging
import NIOConcurrencyHelpers

/// A worker's side of installed bundles: places on this host the files of installed bundle versions that its bundles
/// directory lacks, from the archive kept in the database, so that a bundle installed from another host runs here
/// too; and deletes the files of uninstalled versions it still has. Each archive is read and checked again (every file against the manifest's SHA-256, the archive against the
/// SHA-256 recorded at installation), and placed by the installer's own rules (``BundleFiles``).
///
/// A worker does this before each sync with the registry (at start, every `--sync-seconds`, and at once when a publish
/// asks workers to sync), so files are in place before a newly published version is served. Each version is looked
/// at once per worker; one that cannot be placed is logged once.
final class BundlePlacement: Sendable {
    let directory: String
    let store: BundleStore
    let logger: Logger
    /// By `id version sha256`, the state last acted on (placed or removed, or failed and logged already): a version
    /// is looked at again when its state changes (uninstalled, installed again).
    private let seen = NIOLockedValueBox<[String: InstalledBundleRecord.State]>([:])

    init(directory: String, database: Database, logger: Logger) {
        self.directory = directory
        self.store = BundleStore(database: database, logger: logger)
        self.logger = logger
    }

    /// Places what is missing; never throws (a failure is logged, and the agent's run fails with the reason when it
    /// cannot find its program).
    func placeMissing() async {
        let records: [InstalledBundleRecord]
        do {
            records = try await store.bundles(includingRemoved: true)
        } catch {
            logger.warning("cannot read the installed bundles", metadata: ["error": "\(error)"])
            return
        }
        for record in records {
            let key = "\(record.bundleID) \(record.version) \(record.sha256)"
            let changed = seen.withLockedValue { seen in
                defer { seen[key] = record.state }
                return seen[key] != record.state
            }
            guard changed else { continue }
            do {
                switch record.state {
                case .installed: try await place(record)
                case .removed: try remove(record)
                }
            } catch {
                logger.warning(
                    "cannot place or remove the files of a bundle on this host",
                    metadata: [
                        "agentry.bundle.id": "\(record.bundleID)", "agentry.bundle.version": "\(record.version)", "error": "\(error)",
                    ])
            }
        }
    }

    /// Deletes the files of an uninstalled version that this host still has (the installer deleted them on its own).
    private func remove(_ record: InstalledBundleRecord) throws {
        guard FileManager.default.fileExists(atPath: "\(directory)/\(record.bundleID)/\(record.version)") else { return }
        let files = try BundleFiles(directory: directory)
        let manifest = try BundleInstaller.read(record).manifest
        let removed = try files.remove(record.bundleID, record.version, paths: manifest.files.map(\.path))
        logger.info(
            "removed the files of an uninstalled bundle",
            metadata: ["agentry.bundle.id": "\(record.bundleID)", "agentry.bundle.version": "\(record.version)", "removed": "\(removed)"])
    }

    private func place(_ record: InstalledBundleRecord) async throws {
        let files = try BundleFiles(directory: directory)
        let target = files.versionDirectory(record.bundleID, record.version)
        let manifest = try BundleInstaller.read(record).manifest
        let complete = manifest.files.allSatisfy { file in
            FileManager.default.contents(atPath: "\(target)/\(file.path)").map(BundleArchive.sha256) == file.sha256
        }
        guard !complete else { return }
        guard let data = try await store.archive(bundleID: record.bundleID, version: record.version) else { return }
        let archive = try BundleArchive(data: data)
        guard archive.sha256 == record.sha256, archive.manifest.id == record.bundleID, archive.manifest.version == record.version else {
            throw BundleError(
                .tamperedFile,
                "the stored archive of \(record.bundleID) \(record.version) is not the one installed (sha256 \(archive.sha256), recorded \(record.sha256))"
            )
        }
        let placement = try files.place(
            record.bundleID, record.version,
            files: archive.manifest.files.map { ($0.path, archive.contents[$0.path] ?? Data(), $0.executable) })
        if target != record.directory {
            logger.warning(
                "this worker's bundles directory differs from the installer's: the agents' handlers run in the installer's directory",
                metadata: ["agentry.bundle.id": "\(record.bundleID)", "here": "\(target)", "installed": "\(record.directory)"])
        }
        logger.info(
            "placed the files of an installed bundle",
            metadata: [
                "agentry.bundle.id": "\(record.bundleID)", "agentry.bundle.version": "\(record.version)", "written": "\(placement.written)",
                "directory": "\(target)",
            ])
    }
}
