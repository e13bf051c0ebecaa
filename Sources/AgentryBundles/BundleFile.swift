public import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Writing and reading files whose mode matters: keys and bundles.
public enum BundleFile {
    /// Writes `data` to `path` through a temporary file in the same directory, created 0600 without following a
    /// link, given `mode`, synced and renamed into place: a reader never sees half a file, and a private key is never
    /// readable by others, even for a moment.
    public static func write(_ data: Data, to path: String, mode: Int) throws(BundleError) {
        let directory = (path as NSString).deletingLastPathComponent
        let temporary = (directory.isEmpty ? "." : directory) + "/.agentry-\(UUID().uuidString.prefix(12)).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw BundleError(.install, "cannot write '\(temporary)': \(errnoText())") }
        var failure: String?
        data.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count, let base = buffer.baseAddress {
                let n = Glibc.write(fd, base + offset, buffer.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = errnoText()
                    return
                }
                offset += n
            }
        }
        if failure == nil, fchmod(fd, mode_t(mode)) != 0 { failure = errnoText() }
        if failure == nil, fsync(fd) != 0 { failure = errnoText() }
        close(fd)
        if failure == nil, rename(temporary, path) != 0 { failure = errnoText() }
        if let failure {
            unlink(temporary)
            throw BundleError(.install, "cannot write '\(path)': \(failure)")
        }
    }

    static func errnoText() -> String { String(cString: strerror(errno)) }

    /// The mode bits of `path` (`0o777` part), or nil when it cannot be read.
    public static func mode(_ path: String) -> Int? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Int(info.st_mode & 0o777)
    }
}

extension BundleSigningKey {
    /// The private key in `path`, refusing one that others can read (as ssh does).
    public init(contentsOf path: String) throws(BundleError) {
        guard let mode = BundleFile.mode(path), let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw BundleError(.badKey, "cannot read the signing key '\(path)'")
        }
        if mode & 0o077 != 0 {
            throw BundleError(
                .badKey,
                "the signing key '\(path)' can be read by others (mode \(String(mode, radix: 8))); `chmod 600 \(path)` first")
        }
        try self.init(fileContents: text)
    }
}
