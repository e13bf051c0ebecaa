public import Foundation
import ZIPFoundation

/// Writes bundle archives deterministically: entries sorted by path, one fixed modification time, fixed modes, so
/// packing the same directory twice gives the same bytes.
public enum BundleWriter {
    /// 1980-01-01, the earliest time a zip header holds.
    static let fixedDate = Date(timeIntervalSince1970: 315_532_800)

    /// The zip archive of `manifest.json`, `manifest.sig` (when signed) and `contents`.
    public static func archive(
        manifestData: Data, signature: BundleSignature?, contents: [String: Data], executable: Set<String>
    ) -> Data {
        var entries: [(String, Data, UInt16)] = [(BundleArchive.manifestPath, manifestData, 0o644)]
        if let signature {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            entries.append((BundleArchive.signaturePath, (try? encoder.encode(signature)) ?? Data(), 0o644))
        }
        for path in contents.keys.sorted() {
            entries.append((path, contents[path] ?? Data(), executable.contains(path) ? 0o755 : 0o644))
        }
        // An in-memory archive being created, with entries built from Data: none of ZIPFoundation's failures (a file
        // that cannot be opened, a read-only archive) can happen here.
        guard let archive = try? Archive(data: Data(), accessMode: .create, pathEncoding: nil) else { return Data() }
        for (path, bytes, mode) in entries {
            try? archive.addEntry(
                with: path, type: .file, uncompressedSize: Int64(bytes.count), modificationDate: fixedDate,
                permissions: mode, compressionMethod: .deflate
            ) { position, size in
                let start = Int(position)
                return bytes.subdata(in: start..<min(start + size, bytes.count))
            }
        }
        return archive.data ?? Data()
    }
}
