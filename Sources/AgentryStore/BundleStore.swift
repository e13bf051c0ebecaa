public import Foundation
public import Logging
import PostgresNIO

/// One installed bundle version as `installed_bundles` keeps it (without the archive's bytes, which
/// ``BundleStore/archive(bundleID:version:)`` reads when a worker needs them).
public struct InstalledBundleRecord: Sendable, Hashable {
    public enum State: String, Sendable { case installed, removed }

    public var bundleID: String
    public var version: String
    /// Lowercase hex SHA-256 of the archive.
    public var sha256: String
    /// `manifest.json` as JSON text.
    public var manifest: String
    /// The line of the trusted key that signed it (`ed25519 BASE64 comment`), or nil when installed unsigned.
    public var signer: String?
    /// Where its files were placed.
    public var directory: String
    public var installedAt: Date
    public var installedBy: String
    public var state: State
    public var removedAt: Date?

    public init(
        bundleID: String, version: String, sha256: String, manifest: String, signer: String?, directory: String,
        installedAt: Date = Date(), installedBy: String, state: State = .installed, removedAt: Date? = nil
    ) {
        self.bundleID = bundleID
        self.version = version
        self.sha256 = sha256
        self.manifest = manifest
        self.signer = signer
        self.directory = directory
        self.installedAt = installedAt
        self.installedBy = installedBy
        self.state = state
        self.removedAt = removedAt
    }
}

/// The bundle versions installed on this installation (`installed_bundles`).
public struct BundleStore: Sendable {
    public let database: Database
    let logger: Logger

    public init(database: Database, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    /// What ``record(_:archive:)`` did.
    public enum RecordOutcome: String, Sendable {
        /// A new row.
        case created
        /// A row marked removed came back, with the bytes given.
        case reinstalled
        /// The version was installed already with the same archive: nothing changed.
        case unchanged
    }

    /// Records an installed version. A version installed already with another archive is refused
    /// (``StoreError/Code-swift.struct/conflict``, naming the stored SHA-256); one marked removed is installed again.
    @discardableResult
    public func record(_ record: InstalledBundleRecord, archive: Data) async throws -> RecordOutcome {
        do {
            return try await database.withTransaction(logger: logger) { [logger] connection in
                var existing: (sha256: String, state: String)?
                for try await row in try await connection.queryAll(
                    """
                    SELECT sha256::text, state FROM installed_bundles
                    WHERE bundle_id = \(record.bundleID) AND version = \(record.version) FOR UPDATE
                    """, logger: logger
                ).decode((String, String).self) {
                    existing = row
                }
                switch existing {
                case nil:
                    try await connection.queryAll(
                        """
                        INSERT INTO installed_bundles (bundle_id, version, sha256, manifest, signer, archive, directory, installed_by)
                        VALUES (\(record.bundleID), \(record.version), \(record.sha256), \(record.manifest)::jsonb, \(record.signer),
                                \(archive), \(record.directory), \(record.installedBy))
                        """, logger: logger)
                    return .created
                case (let sha256, "installed")?:
                    guard sha256 == record.sha256 else {
                        throw StoreError(
                            .conflict,
                            "\(record.bundleID) \(record.version) is installed with other content (sha256 \(sha256)); give the new one another version"
                        )
                    }
                    return .unchanged
                case _?:
                    try await connection.queryAll(
                        """
                        UPDATE installed_bundles SET sha256 = \(record.sha256), manifest = \(record.manifest)::jsonb,
                            signer = \(record.signer), archive = \(archive), directory = \(record.directory), installed_at = now(),
                            installed_by = \(record.installedBy), state = 'installed', removed_at = NULL
                        WHERE bundle_id = \(record.bundleID) AND version = \(record.version)
                        """, logger: logger)
                    return .reinstalled
                }
            }
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(.query, "cannot record bundle \(record.bundleID) \(record.version)", cause: error)
        }
    }

    /// One version (installed or removed), or nil.
    public func bundle(_ bundleID: String, version: String) async throws -> InstalledBundleRecord? {
        try await fetch("WHERE bundle_id = \(bundleID) AND version = \(version)").first
    }

    /// The versions of one bundle, or of every bundle (`bundleID` nil); removed ones only when asked. Ordered by id,
    /// then by installation time.
    public func bundles(_ bundleID: String? = nil, includingRemoved: Bool = false) async throws -> [InstalledBundleRecord] {
        let all = try await fetch(bundleID.map { "WHERE bundle_id = \($0)" } ?? "")
        return all.filter { includingRemoved || $0.state == .installed }
    }

    /// The archive a version was installed from, or nil when there is no such version.
    public func archive(bundleID: String, version: String) async throws -> Data? {
        do {
            for try await bytes in try await database.query(
                "SELECT archive FROM installed_bundles WHERE bundle_id = \(bundleID) AND version = \(version)", logger: logger
            ).decode(Data.self) {
                return bytes
            }
            return nil
        } catch {
            throw StoreError(.query, "cannot read the archive of bundle \(bundleID) \(version)", cause: error)
        }
    }

    /// Marks a version removed. - Returns: whether it was installed.
    @discardableResult
    public func markRemoved(bundleID: String, version: String) async throws -> Bool {
        do {
            var changed = false
            for try await _ in try await database.write(
                """
                UPDATE installed_bundles SET state = 'removed', removed_at = now()
                WHERE bundle_id = \(bundleID) AND version = \(version) AND state = 'installed' RETURNING version
                """, logger: logger
            ).decode(String.self) {
                changed = true
            }
            return changed
        } catch {
            throw StoreError(.query, "cannot mark bundle \(bundleID) \(version) removed", cause: error)
        }
    }

    private func fetch(_ condition: PostgresQuery) async throws -> [InstalledBundleRecord] {
        var query: PostgresQuery = """
            SELECT bundle_id, version, sha256::text, manifest::text, signer, directory, extract(epoch FROM installed_at)::float8,
                   installed_by, state, extract(epoch FROM removed_at)::float8
            FROM installed_bundles
            """
        query.sql += " " + condition.sql + " ORDER BY bundle_id, installed_at, version"
        query.binds = condition.binds
        var result: [InstalledBundleRecord] = []
        do {
            for try await (id, version, sha256, manifest, signer, directory, installedAt, installedBy, state, removedAt)
                in try await database.query(query, logger: logger).decode(
                    (String, String, String, String, String?, String, Double, String, String, Double?).self)
            {
                result.append(
                    InstalledBundleRecord(
                        bundleID: id, version: version, sha256: sha256, manifest: manifest, signer: signer, directory: directory,
                        installedAt: Date(timeIntervalSince1970: installedAt), installedBy: installedBy,
                        state: InstalledBundleRecord.State(rawValue: state) ?? .removed,
                        removedAt: removedAt.map { Date(timeIntervalSince1970: $0) }))
            }
        } catch {
            throw StoreError(.query, "cannot read the installed bundles", cause: error)
        }
        return result
    }
}
