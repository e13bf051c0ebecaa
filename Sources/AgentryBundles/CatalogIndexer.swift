import Foundation

/// Builds a catalog's `index.json` from a directory of `.agentry` archives (`agentry catalog index DIR`).
///
/// Only the directory's own `*.agentry` files are read (not its subdirectories; hidden files are skipped; a link is
/// refused, as reading the catalog would refuse it). Each is read and checked with ``BundleArchive``; its signature,
/// when there is one, is copied into the index but not checked against any trusted keys (installing does that).
public enum CatalogIndexer {
    /// The index of the bundles in `directory`. Throws, naming the file, for a damaged bundle (as
    /// ``BundleArchive`` does: `malformed`, `unsafePath`, `tamperedFile`), and ``BundleError/Kind/catalog`` for a
    /// directory that cannot be listed or two files holding the same bundle id and version.
    public static func index(directory: String) throws(BundleError) -> CatalogIndex {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw BundleError(.catalog, "cannot list the directory \(directory)")
        }
        var entries: [CatalogIndex.Entry] = []
        var seen: [String: String] = [:]
        for name in names.sorted() where name.hasSuffix(".agentry") && !name.hasPrefix(".") {
            let path = (directory as NSString).appendingPathComponent(name)
            // Not following links: reading a catalog refuses them (an entry must be a regular file inside it).
            let type = (try? FileManager.default.attributesOfItem(atPath: path))?[.type] as? FileAttributeType
            if type == .typeSymbolicLink {
                throw BundleError(.unsafePath, "\(path) is a link; a catalog's bundles must be regular files in it")
            }
            guard type == .typeRegular else { continue }
            let archive: BundleArchive
            do {
                archive = try BundleArchive(contentsOf: path)
            } catch {
                throw BundleError(error.kind, "\(path): \(error.message)")
            }
            let entry = CatalogIndex.Entry(archive: archive, file: name)
            let key = "\(entry.id)@\(entry.semanticVersion)"
            if let other = seen[key] {
                throw BundleError(
                    .catalog, "\(other) and \(name) both hold \(entry.name); a catalog holds one bundle per id and version")
            }
            seen[key] = name
            entries.append(entry)
        }
        return CatalogIndex(bundles: entries)
    }

    /// Builds the index of `directory` and writes it to `directory/index.json`; returns it.
    @discardableResult
    public static func write(directory: String) throws(BundleError) -> CatalogIndex {
        let index = try index(directory: directory)
        let path = (directory as NSString).appendingPathComponent(CatalogIndex.fileName)
        do {
            try index.encoded().write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw BundleError(.catalog, "cannot write \(path): \(error.localizedDescription)")
        }
        return index
    }
}
