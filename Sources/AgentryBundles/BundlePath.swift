/// The rule for paths inside a bundle: relative, `/`-separated, no `.` or `..` segment, no empty segment, no
/// backslash, NUL or control character, at most 255 bytes per segment and 1024 in all. A path that passes cannot name
/// anything outside the directory it is joined to (links are refused separately, when reading the archive and when
/// placing files).
public enum BundlePath {
    /// Why `path` may not be used, or nil when it may.
    public static func refusal(_ path: String) -> String? {
        if path.isEmpty { return "an empty path" }
        if path.hasPrefix("/") { return "'\(path)' is an absolute path" }
        if path.utf8.count > 1024 { return "'\(path.prefix(60))…' is longer than 1024 bytes" }
        if path.unicodeScalars.contains(where: { $0 == "\\" || $0.value < 0x20 || $0.value == 0x7f }) {
            return "'\(path)' holds a backslash or a control character"
        }
        for segment in path.split(separator: "/", omittingEmptySubsequences: false) {
            if segment == ".." { return "'\(path)' climbs out of its directory with '..'" }
            if segment == "." || segment.isEmpty { return "'\(path)' has an empty or '.' segment" }
            if segment.utf8.count > 255 { return "'\(path)' has a segment longer than 255 bytes" }
        }
        return nil
    }

    /// Throws ``BundleError/Kind/unsafePath`` when `path` may not be used.
    public static func check(_ path: String) throws(BundleError) {
        if let reason = refusal(path) { throw BundleError(.unsafePath, "unsafe path in the bundle: \(reason)") }
    }
}
